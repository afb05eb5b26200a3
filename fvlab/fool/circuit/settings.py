"""Settings of the detector jobs, importable without torch (the CLI reads their defaults).

* :class:`DetectorTraining` — how the detector E trains (:mod:`.detector`);
* :class:`DetectorSettings` — the whole train-detector job (:mod:`.train_detector`): training,
  natural data, the trajectory plan and the rendering.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fvlab.jobs import Settings, SettingsError, at_least, in_range, positive

#: the last snapshot step of the trajectories (fvlab.fool.circuit.trajectories.DENSE_STEPS[-1])
LAST_STEP = 512
#: target-mode trajectories: random shapes + natural training images as targets (training); the
#: built-in targets + this many natural *test* images (held out)
N_TRAIN_TARGETS = 96
N_HELDOUT_NATURAL_TARGETS = 12


@dataclass(frozen=True)
class DetectorTraining(Settings):
    """How the detector trains: seed, Adam steps (cosine schedule) of ``batch_size`` images
    per class at learning rate ``lr``, the share of batches given the render transforms, and
    the conv widths."""

    seed: int = 0
    steps: int = 6000
    batch_size: int = 128  # per class
    lr: float = 2e-3
    transform_prob: float = 0.75
    widths: tuple[int, ...] = (32, 32, 64, 64, 64)

    def validate(self) -> None:
        at_least("steps", self.steps, 1)
        at_least("batch_size", self.batch_size, 1)
        in_range("transform_prob", self.transform_prob, 0.0, 1.0)
        positive("lr", self.lr)


@dataclass(frozen=True)
class DetectorSettings(DetectorTraining):
    """The train-detector job (:mod:`.train_detector`): the training hyperparameters
    (:class:`DetectorTraining`: ``seed``, ``steps``, ``batch_size`` images per class, …) and

    * natural images: ``data`` / ``test_data`` image folders (None: Fashion-MNIST; split rule
      in :mod:`.natural`), at most ``natural_limit`` training and test images each;
    * the plan: ``layers`` (None: the default plan), ``units_per_layer`` training units per
      layer (0: all), ``heldout_per_layer`` held-out units per other layer, ``fool_layer``
      (None: the logits) with ``heldout_fraction`` of its units held out, ``max_step`` (the
      last snapshot step), ``targets`` training targets (half random shapes, half natural
      images), ``heldout_natural_targets``, ``max_settings`` (only the first N render settings
      of each list: a dry run);
    * rendering: ``render_batch`` units per optimisation (None: a whole group in one) and
      ``render_dir``, the folder of the trajectory shards (None: next to the weights file).
    """

    data: Path | None = None
    test_data: Path | None = None
    natural_limit: int | None = None
    layers: tuple[str, ...] | None = None
    units_per_layer: int = 12
    heldout_per_layer: int = 4
    fool_layer: str | None = None
    heldout_fraction: float = 0.1
    max_step: int = LAST_STEP
    targets: int = N_TRAIN_TARGETS
    heldout_natural_targets: int = N_HELDOUT_NATURAL_TARGETS
    max_settings: int | None = None
    render_batch: int | None = None
    render_dir: Path | None = None

    def validate(self) -> None:
        super().validate()
        for name in ("data", "test_data", "render_dir"):
            if getattr(self, name) is not None:
                self.normalise(name, Path(getattr(self, name)))
        if isinstance(self.layers, str):
            self.normalise("layers", tuple(n.strip() for n in self.layers.split(",") if n.strip()))
        elif self.layers is not None:
            self.normalise("layers", tuple(self.layers))
        if self.layers is not None and not self.layers:
            raise SettingsError("layers", "give at least one layer name (see `fvlab layers`)")
        at_least("natural_limit", self.natural_limit, 1)
        at_least("units_per_layer", self.units_per_layer, 0)
        at_least("heldout_per_layer", self.heldout_per_layer, 1)
        in_range("heldout_fraction", self.heldout_fraction, 0.0, 0.9)
        at_least("max_step", self.max_step, 1)
        at_least("targets", self.targets, 2)
        at_least("heldout_natural_targets", self.heldout_natural_targets, 0)
        at_least("max_settings", self.max_settings, 1)
        at_least("render_batch", self.render_batch, 1)

    def training(self) -> DetectorTraining:
        """The training hyperparameters alone (what the record stores)."""
        return DetectorTraining(**{f: getattr(self, f) for f in TRAINING_FIELDS})


TRAINING_FIELDS = ("seed", "steps", "batch_size", "lr", "transform_prob", "widths")
