"""Render settings: every parameter of one render with its default, validated once.

A preset is a settings object: :data:`LUCID` (= ``RenderSettings.lucid()``) holds lucid's
schedule, and ``fvlab.render(model, layer, units, settings=LUCID)`` uses it. This module imports
nothing heavy (no torch), so settings can be built and checked before a model is loaded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from fvlab.jobs import Settings, SettingsError, at_least, choice, positive

#: updates when neither ``steps`` nor ``thresholds`` is given (lucid's 512)
DEFAULT_STEPS = 512
PARAM_NAMES = ("fft", "pixel", "maco")
TRANSFORM_NAMES = ("standard", "lucid", "none")


@dataclass(frozen=True)
class RenderSettings(Settings):
    """How to render (the objective and the model are given separately).

    * ``steps``: number of optimiser updates; None → max(thresholds) if thresholds are given,
      else 512.
    * ``size``: image side in px; None → the model's native input size.
    * ``param``: parameterization name, 'fft' (default), 'pixel' or 'maco' (a module can be given
      to :func:`fvlab.render` instead, see its ``param=``).
    * ``transforms``: 'standard' (sizes scale with the image), 'lucid' or 'none'.
    * ``lr``: learning rate; None → 0.05 (Adam), or 1.0 (NAdam) for 'maco'.
    * ``seed``: the random start and the transforms' draws of each batch element are keyed by
      (seed, unit) (:mod:`fvlab.optvis.draws`): a unit's image does not depend on its batch.
    * ``thresholds``: update counts after which snapshots are kept (sorted, each ≥ 1).
    * ``relu_redirect_steps``: lucid's ReLU-gradient redirection for the first N updates.
    * ``decay_power``, ``init_sd``: the FFT spectrum's 1/f^decay scale and the random start's
      standard deviation (pixel and fft).
    * ``lucid_counting``: lucid's update count — ``max(thresholds) + 1`` updates (thresholds
      default to ``(steps,)``), the snapshot after update t + 1 labelled t.
    """

    steps: int | None = None
    size: int | None = None
    param: str = "fft"
    transforms: str = "standard"
    lr: float | None = None
    seed: int = 0
    thresholds: tuple[int, ...] = ()
    relu_redirect_steps: int = 0
    decay_power: float = 1.0
    init_sd: float = 0.01
    lucid_counting: bool = False

    def __post_init__(self) -> None:
        thresholds = tuple(sorted({int(t) for t in self.thresholds or ()}))
        self.normalise("thresholds", thresholds)
        super().__post_init__()

    def validate(self) -> None:
        at_least("steps", self.steps, 1)
        at_least("size", self.size, 1)
        choice("param", self.param, PARAM_NAMES)
        choice("transforms", self.transforms, TRANSFORM_NAMES)
        positive("lr", self.lr)
        if self.thresholds and self.thresholds[0] < 1:
            raise SettingsError("thresholds", f"must be update counts >= 1, got {self.thresholds}")
        if self.steps and self.thresholds and self.thresholds[-1] > self.steps:
            raise SettingsError(
                "thresholds", f"threshold {self.thresholds[-1]} exceeds steps={self.steps}"
            )
        at_least("relu_redirect_steps", self.relu_redirect_steps, 0)
        at_least("init_sd", self.init_sd, 0)

    @property
    def preset(self) -> str:
        """'lucid' with lucid's update counting, else 'fvlab' (the label in summaries)."""
        return "lucid" if self.lucid_counting else "fvlab"

    def schedule(self) -> tuple[int, tuple[int, ...]]:
        """(number of updates to run, snapshot thresholds) — see ``steps``, ``lucid_counting``."""
        steps = self.steps or (self.thresholds[-1] if self.thresholds else DEFAULT_STEPS)
        if not self.lucid_counting:
            return steps, self.thresholds
        thresholds = self.thresholds or (steps,)
        return thresholds[-1] + 1, thresholds

    @classmethod
    def lucid(cls, **changes: Any) -> RenderSettings:
        """lucid's schedule: lucid's transforms and update counting (``changes`` on top)."""
        return cls(**{"transforms": "lucid", "lucid_counting": True, **changes})

    @classmethod
    def from_preset(cls, name: str, **changes: Any) -> RenderSettings:
        """The preset called ``name`` ('fvlab' or 'lucid') with ``changes``; a change equal to
        the fvlab default keeps the preset's value, so ``preset="lucid",
        transforms="standard"`` (the CLI's defaults) means lucid's transforms."""
        choice("preset", name, PRESETS)
        default = cls()
        kept = {k: v for k, v in changes.items() if k not in FIELDS or v != getattr(default, k)}
        return PRESETS[name].replace(**kept)


#: the names of the settings, i.e. the keyword overrides ``fvlab.render`` accepts
FIELDS = frozenset(f.name for f in dataclasses.fields(RenderSettings))
#: lucid's schedule as a settings object
LUCID = RenderSettings.lucid()
#: named presets (the CLI's ``--preset``)
PRESETS = {"fvlab": RenderSettings(), "lucid": LUCID}
