"""The one shape of every fvlab job.

A job is a library function

    run_<job>(model: LoadedModel, settings: <Job>Settings, out: OutDir = None, *,
              show_progress: bool = True) -> <Job>Result

(jobs without a model, such as ``run_theory``, drop the first argument). The CLI only parses
options — unit lists included — into the settings object and calls the job; the demo calls the
same jobs; a Ray engine calls them on shards. The pieces:

* **Settings**: a frozen dataclass deriving from :class:`Settings`. It holds every parameter's
  default and validates once, in :meth:`Settings.validate` (called on construction); an invalid
  value raises :class:`SettingsError`, whose message names the *parameter* (not a CLI flag),
  what was wrong and what is valid. ``settings.to_dict()`` is its JSON form for summaries.
* **Result**: an object with ``summary() -> dict`` (JSON-able figures) and ``save(out) -> Path``
  (writes every file of the job into the folder ``out`` and returns the summary's path); the
  :class:`JobResult` protocol states it. A job that is given ``out`` saves its result there
  before returning it (:func:`finish`).

This module imports nothing heavy, so settings can be built (and validated) without torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol, TypeVar, runtime_checkable

from fvlab.errors import FvlabError

#: the ``out`` argument of every job: the folder to save the result into, or None to keep it
OutDir = Path | None


class SettingsError(FvlabError, ValueError):
    """A job parameter has an invalid value; the message starts with the parameter's name."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


class Settings:
    """Base of the frozen settings dataclasses: validation on construction, JSON form.

    Subclasses are ``@dataclass(frozen=True)`` and override :meth:`validate` (call the helpers
    below: :func:`choice`, :func:`at_least`, :func:`positive`, :func:`in_range`;
    :meth:`normalise` stores a field's normalised form)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`SettingsError` for an invalid parameter (default: nothing to check)."""

    def normalise(self, name: str, value: Any) -> None:
        """Store the normalised form of field ``name`` (e.g. a list as a tuple) on this frozen
        object; for use inside :meth:`validate` only."""
        object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-able data (paths as strings, tuples as lists)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self: S, **changes: Any) -> S:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


S = TypeVar("S", bound=Settings)


def defaults(cls: type[Settings]) -> SimpleNamespace:
    """The default of every field of the settings class ``cls`` that has one, as attributes
    (the CLI's option defaults read them, so each default is written once)."""
    values = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            values[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            values[f.name] = f.default_factory()
    return SimpleNamespace(**values)


def from_options(cls: type[S], options: Mapping[str, Any], **values: Any) -> S:
    """``cls`` built from the entries of ``options`` (e.g. a command's parsed options) that
    name one of its fields, overridden by ``values``."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{**{k: v for k, v in options.items() if k in names}, **values})


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Settings):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def choice(parameter: str, value: Any, valid: Collection[Any]) -> None:
    """``value`` must be one of ``valid``."""
    if value not in valid:
        listed = ", ".join(str(v) for v in valid)
        raise SettingsError(parameter, f"must be one of {listed}, not {value!r}")


def at_least(parameter: str, value: float | None, minimum: float) -> None:
    """``value`` (if not None) must be ≥ ``minimum``."""
    if value is not None and not value >= minimum:
        raise SettingsError(parameter, f"must be >= {minimum}, got {value}")


def positive(parameter: str, value: float | None) -> None:
    """``value`` (if not None) must be > 0."""
    if value is not None and not value > 0:
        raise SettingsError(parameter, f"must be positive (> 0), got {value}")


def in_range(parameter: str, value: float | None, low: float, high: float) -> None:
    """``value`` (if not None) must lie in the closed interval [low, high]."""
    if value is not None and not low <= value <= high:
        raise SettingsError(parameter, f"must be in [{low}, {high}], got {value}")


def unit_tuple(parameter: str, units: Sequence[int] | None) -> tuple[int, ...] | None:
    """A unit selection as a tuple of non-negative ints (None = all units of the layer).

    Whether each unit exists is checked against the model by
    :func:`fvlab.models.probe.check_units` when the job runs."""
    if units is None:
        return None
    values = tuple(int(u) for u in units)
    if not values:
        raise SettingsError(parameter, "is empty; give at least one unit (or None for all)")
    negative = [u for u in values if u < 0]
    if negative:
        raise SettingsError(parameter, f"unit indices start at 0; got {negative[:10]}")
    return values


@runtime_checkable
class JobResult(Protocol):
    """What every job returns."""

    def summary(self) -> dict[str, Any]:
        """The job's figures as JSON-able data (what ``summary.json`` holds)."""
        ...

    def save(self, out: Path) -> Path:
        """Write every file of the job into ``out`` (created); return the summary's path."""
        ...


R = TypeVar("R", bound=JobResult)


def finish(result: R, out: OutDir) -> R:
    """Save ``result`` into ``out`` when a folder is given; return it."""
    if out is not None:
        result.save(Path(out))
    return result
