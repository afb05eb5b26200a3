"""Audit thresholds calibrated on a clean reference model, never on the units being judged.

The audit's default thresholds (:class:`~fvlab.check.settings.AuditThresholds`) are one set for
every model and layer. A layer's clean values differ from another's (FVs of fmnist-cnn's relu5
reach ~4× the natural spread, its relu1 ~1×), so a fixed threshold is loose where clean values
are small. Calibration takes them from the same layer of a *second, clean* model of the same
architecture (fmnist-cnn: the seed-1 retrain ``fvlab/check/weights/fmnist-cnn-seed1.pt``):

    τ_s = safety × max_{u ∈ reference layer} s(u)    for s ∈ {excess, jump, gradient, valley,
                                                               procedure, hold}
    τ_silent = min_{u ∈ reference layer} active(u) / safety        (capped at 1 − 1e-6: a
                                                                     fraction below 1)

(units: those of each signal, see :mod:`fvlab.check.audit`). A unit of the audited model is
flagged when any of its signals exceeds τ (score = max_s s / τ_s ≥ 1). The reference model is
audited with the same settings as the audited one; its rows are never scored.

:func:`thresholds_from_rows` is the rule; :class:`Calibration` carries the thresholds with
what they came from and reads/writes ``thresholds.json`` so one calibration serves many audits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from warnings import warn

from fvlab.check.settings import AuditSettings, AuditThresholds
from fvlab.errors import CorruptFileError, FvlabError, FvlabWarning
from fvlab.jobs import OutDir, finish

if TYPE_CHECKING:
    from fvlab.check.audit import AuditResult
    from fvlab.engine.base import Engine
    from fvlab.models.zoo import LoadedModel

#: the signals whose calibrated threshold is safety × the reference maximum
MAX_SIGNALS = ("excess", "jump", "gradient", "valley", "procedure", "hold")
FORMAT = "fvlab-audit-calibration"
VERSION = 1
#: a threshold is never below this (a reference value of exactly 0 must not make τ = 0)
FLOOR = 1e-9
#: τ_silent is an active fraction below which a unit counts as silent, so it stays below 1
SILENT_CAP = 1 - 1e-6


def thresholds_from_rows(rows: Sequence[dict], safety: float = 1.5) -> AuditThresholds:
    """τ per signal from clean reference audit rows (module docstring)."""
    if not rows:
        raise FvlabError("calibration: the reference audit has no units")
    if not safety > 0:
        raise FvlabError(f"safety: must be > 0, not {safety}")
    missing = [s for s in (*MAX_SIGNALS, "active_fraction") if s not in rows[0]]
    if missing:
        raise FvlabError(f"calibration: the reference rows lack {', '.join(missing)}")
    maxima = {s: _largest(rows, s) for s in MAX_SIGNALS}
    least_active = min(float(r["active_fraction"]) for r in rows)
    return AuditThresholds(
        **{
            s: getattr(AuditThresholds(), s) if v is None else max(safety * v, FLOOR)
            for s, v in maxima.items()
        },
        silent=min(max(least_active / safety, FLOOR), SILENT_CAP),
    )


def _largest(rows: Sequence[dict], signal: str) -> float | None:
    """The largest finite value of ``signal`` over the rows (a reference audited without the
    consistency render or the exemplar hold has NaN values there: then its default threshold
    stays)."""
    values = [float(r[signal]) for r in rows if math.isfinite(float(r[signal]))]
    return max(values) if values else None


@dataclass(frozen=True)
class Calibration:
    """Thresholds and their provenance: the reference model, layer, units and safety factor."""

    thresholds: AuditThresholds
    reference: str
    layer: str
    units: int
    safety: float

    @classmethod
    def from_rows(
        cls, rows: Sequence[dict], *, reference: str, layer: str, safety: float = 1.5
    ) -> Calibration:
        return cls(thresholds_from_rows(rows, safety), reference, layer, len(rows), safety)

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "reference": self.reference,
            "layer": self.layer,
            "units": self.units,
            "safety": self.safety,
            "thresholds": self.thresholds.to_dict(),
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """Read a file written by :meth:`save`; a clear error when it is not one."""
        path = Path(path)
        if not path.is_file():
            raise FvlabError(
                f"calibration: no file {path} (write one with `fvlab audit --calibrate-on "
                "REFERENCE ...`, which saves OUT/thresholds.json)"
            )
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT or data.get("version") != VERSION:
                raise ValueError(f"format {data.get('format')!r} version {data.get('version')!r}")
            return cls(
                AuditThresholds(**data["thresholds"]),
                str(data["reference"]),
                str(data["layer"]),
                int(data["units"]),
                float(data["safety"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptFileError(
                f"{path} is not an audit calibration ({FORMAT} v{VERSION}): {exc}"
            ) from exc


def run_calibrated_audit(
    model: LoadedModel,
    settings: AuditSettings,
    out: OutDir = None,
    *,
    reference: LoadedModel | None = None,
    calibration: Calibration | None = None,
    safety: float = 1.5,
    show_progress: bool = True,
    engine: Engine | None = None,
    resume: bool = False,
) -> AuditResult:
    """The audit job with calibrated thresholds (``fvlab audit --calibrate-on REF`` or
    ``--thresholds FILE``).

    Given ``reference`` (a clean model of the same architecture), it is audited first with the
    same ``settings`` (saved into ``out/reference``), :meth:`Calibration.from_rows` turns its
    rows into thresholds (saved as ``out/thresholds.json``), and ``model`` is audited with them;
    given ``calibration`` instead, its thresholds are used as they are. The result's settings
    record the calibration (``settings['calibration']``)."""
    from fvlab.check.audit import run_audit

    if (reference is None) == (calibration is None):
        raise FvlabError("calibration: give exactly one of a reference model or a calibration")
    if calibration is None:
        where = None if out is None else Path(out) / "reference"
        clean = run_audit(reference, settings, where, show_progress=show_progress,
                          engine=engine, resume=resume)  # fmt: skip
        calibration = Calibration.from_rows(
            clean.rows, reference=_describe(reference), layer=settings.layer, safety=safety
        )
        if out is not None:
            calibration.save(Path(out) / "thresholds.json")
    elif calibration.layer != settings.layer:
        warn(
            f"calibration: thresholds were calibrated on layer {calibration.layer!r}, "
            f"auditing {settings.layer!r}; clean values differ between layers",
            FvlabWarning,
            stacklevel=2,
        )
    calibrated = settings.replace(thresholds=calibration.thresholds)
    result = run_audit(model, calibrated, out, show_progress=show_progress, engine=engine,
                       resume=resume)  # fmt: skip
    result.settings["calibration"] = calibration.to_dict()
    return finish(result, out)  # again: summary.json now records the calibration


def _describe(model: LoadedModel) -> str:
    """The reference model's name and weights source, for the calibration's record."""
    return f"{model.name} ({model.weights})" if model.weights else model.name
