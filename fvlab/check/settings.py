"""Settings of the check pillar's jobs: path check, audit, silent-unit check.

Every job reads natural images through :class:`NaturalData` (``data``, ``split``, ``size``);
the three settings classes add their own parameters. Each is a frozen dataclass
(:class:`fvlab.jobs.Settings`) that holds every default and validates on construction; an
invalid value raises :class:`fvlab.jobs.SettingsError` naming the parameter. Whether layers
and units exist is checked against the model when the job runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fvlab.activations.sweep import REDUCTIONS
from fvlab.check.similarity import check_metric
from fvlab.jobs import Settings, SettingsError, at_least, choice, in_range, positive, unit_tuple

if TYPE_CHECKING:
    from fvlab.data.dataset import Dataset
    from fvlab.models.zoo import LoadedModel

SPLITS: tuple[str, ...] = ("test", "train")
#: parameterizations of the audit's procedure-consistency render (``none``: skipped)
CONSISTENCY_PARAMS: tuple[str, ...] = ("pixel", "fft", "none")


def _names(value: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
    """Layer names as given: a string stays (``"leaves"``, ``"a,b"``), a sequence → tuple."""
    return value if value is None or isinstance(value, str) else tuple(value)


@dataclass(frozen=True, kw_only=True)
class NaturalData(Settings):
    """Where the natural images come from.

    ``data``: a Fashion-MNIST folder (the four .gz files) or an image folder root/<class>/<image>
    (default: $FVLAB_DATA, then the system copy of Fashion-MNIST); ``split``: the Fashion-MNIST
    split; ``size``: the side in px at which folder images are read (and FVs rendered; default
    the model's own)."""

    data: Path | None = None
    split: str = "test"
    size: int | None = None

    def validate(self) -> None:
        choice("split", self.split, SPLITS)
        at_least("size", self.size, 1)
        if self.data is not None:
            self.normalise("data", Path(self.data))

    def dataset(self, model: LoadedModel) -> Dataset:
        """The natural images for ``model``: a folder at ``size`` px if given, else
        :func:`fvlab.data.natural.open_dataset` (Fashion-MNIST or a folder at the model's size)."""
        from fvlab.data.folders import ImageFolder
        from fvlab.data.natural import open_dataset

        if self.size is not None and self.data is not None and self.data.is_dir():
            return ImageFolder(self.data, size=self.size, channels=model.spec.channels)
        dataset = open_dataset(model, self.data, self.split)
        if self.size is not None and self.size != model.spec.size:
            raise SettingsError(
                "size",
                f"{self.size} px differs from the model's native {model.spec.size} px; "
                "Fashion-MNIST images are 28 px, so another size needs an image folder as data",
            )
        return dataset


@dataclass(frozen=True, kw_only=True)
class PathsSettings(NaturalData):
    """The path check (:func:`fvlab.check.paths.run_paths`).

    ``classes``: the classes compared (``images_per_class`` natural images each, the first in
    dataset order, and ``fv_seeds`` FVs of its logit, ``steps`` render updates each);
    ``logits``: the logit index of each class where it differs from the class index;
    ``logits_layer``: the layer whose outputs are the logits (default: the last in forward order);
    ``layers``: ``"leaves"`` (every layer in forward order) or layer names (a sequence or
    ``"a,b,c"``); ``reduce``: the activation vector per layer (``flatten``, ``spatial_mean``, …);
    ``metric``: ``spearman``, ``pearson`` or ``cosine``; ``bootstrap``: resamples of the bands;
    ``shard_images``: natural images per sweep shard (rounded up to whole batches);
    ``shard_classes``: classes per FV render shard (``fv_seeds`` FVs each, one optimisation)."""

    classes: tuple[int, ...] = tuple(range(10))
    images_per_class: int = 50
    metric: str = "spearman"
    fv_seeds: int = 3
    steps: int = 512
    layers: str | tuple[str, ...] = "leaves"
    reduce: str = "flatten"
    logits_layer: str | None = None
    logits: tuple[int, ...] | None = None
    bootstrap: int = 1000
    batch_size: int = 64
    shard_images: int = 2048
    shard_classes: int = 16
    seed: int = 0

    def validate(self) -> None:
        super().validate()
        at_least("shard_classes", self.shard_classes, 1)
        classes = unit_tuple("classes", self.classes)
        self.normalise("classes", classes)
        self.normalise("logits", unit_tuple("logits", self.logits))
        self.normalise("layers", _names(self.layers))
        if self.logits is not None and len(self.logits) != len(classes):
            raise SettingsError(
                "logits", f"got {len(self.logits)} logit ids for {len(classes)} classes; one each"
            )
        at_least("images_per_class", self.images_per_class, 2)
        check_metric(self.metric)
        at_least("fv_seeds", self.fv_seeds, 1)
        at_least("steps", self.steps, 1)
        choice("reduce", self.reduce, REDUCTIONS)
        at_least("bootstrap", self.bootstrap, 10)
        at_least("batch_size", self.batch_size, 1)
        at_least("shard_images", self.shard_images, 1)


@dataclass(frozen=True)
class AuditThresholds(Settings):
    """Flag thresholds of the audit score (see docs/check.md for how they were calibrated):
    excess (× the natural spread), jump (× the natural range), active fraction, gradient
    residual (∈ [0, 1]), valley (× the natural spread), procedure (max of |ln activation ratio|
    and the angle in radians, :mod:`fvlab.check.consistency`), hold (nats,
    :mod:`fvlab.check.exemplar_hold`; 3.0 ↔ an exemplar-started ascent keeping r ≥ 0.95)."""

    excess: float = 10.0
    jump: float = 0.01
    silent: float = 0.001
    gradient: float = 0.2
    valley: float = 3.0
    procedure: float = 2.0
    hold: float = 3.0

    def validate(self) -> None:
        for name in ("excess", "jump", "silent", "gradient", "valley", "procedure", "hold"):
            positive(f"thresholds.{name}", getattr(self, name))
        if not self.silent < 1:
            raise SettingsError(
                "thresholds.silent",
                f"is an active fraction and must be < 1 (a unit active on every image is not "
                f"silent), not {self.silent}",
            )


@dataclass(frozen=True, kw_only=True)
class AuditSettings(NaturalData):
    """The audit of one layer (:func:`fvlab.check.audit.run_audit`); see
    :func:`fvlab.check.audit.audit` for the steps that use each parameter.

    ``units``: the units audited (None: all); ``images``: use only the first N natural images
    (None: all); ``steps``: render updates (all units in one batch), of which the first
    ``relu_redirect_steps`` use ReLU-gradient redirection; ``snapshot_steps``: earlier states of
    the render that are path endpoints too; ``top_k``: exemplars per unit, of which the top
    ``path_exemplars`` start a path; ``n_reference``: random natural images (path similarity's
    level 0); ``path_layers``: layers of the path similarity (default: forward order up to
    ``layer``); ``gradient_grid``: grid points of the gradient residual's paths;
    ``consistency_param``: the parameterization of the procedure-consistency render (``pixel``,
    ``fft`` — then only the seed differs — or ``none``, the default: skipped; docs/check.md
    says why it is opt-in); ``hold_steps``: updates of the exemplar-hold ascents from the top
    ``path_exemplars`` exemplars (:mod:`fvlab.check.exemplar_hold`; 0: skipped, NaN, unscored);
    ``thresholds``: the flag thresholds of the score; ``batch_size``: images per forward pass
    and units per render (memory is bounded by it); ``shard_images``: natural images per sweep
    shard (rounded up to whole batches; docs/scale.md)."""

    layer: str
    units: tuple[int, ...] | None = None
    images: int | None = None
    steps: int = 256
    top_k: int = 5
    n_reference: int = 32
    snapshot_steps: tuple[int, ...] = (4, 16, 64)
    path_exemplars: int = 3
    relu_redirect_steps: int = 16
    path_layers: tuple[str, ...] | None = None
    metric: str = "spearman"
    gradient_grid: int = 33
    consistency_param: str = "none"
    hold_steps: int = 64
    thresholds: AuditThresholds = AuditThresholds()
    batch_size: int = 256
    shard_images: int = 2048
    seed: int = 0

    def validate(self) -> None:
        super().validate()
        if not self.layer:
            raise SettingsError("layer", "no layer given (see `fvlab layers`)")
        self.normalise("units", unit_tuple("units", self.units))
        self.normalise("snapshot_steps", tuple(int(t) for t in self.snapshot_steps))
        self.normalise("path_layers", _names(self.path_layers))
        at_least("images", self.images, 2)
        at_least("steps", self.steps, 1)
        at_least("top_k", self.top_k, 2)  # exemplar pairs are compared
        in_range("path_exemplars", self.path_exemplars, 1, self.top_k)
        at_least("n_reference", self.n_reference, 1)
        at_least("gradient_grid", self.gradient_grid, 2)
        choice("consistency_param", self.consistency_param, CONSISTENCY_PARAMS)
        at_least("hold_steps", self.hold_steps, 0)
        at_least("relu_redirect_steps", self.relu_redirect_steps, 0)
        check_metric(self.metric)
        if not isinstance(self.thresholds, AuditThresholds):
            raise SettingsError("thresholds", f"must be AuditThresholds, not {self.thresholds!r}")
        at_least("batch_size", self.batch_size, 1)
        at_least("shard_images", self.shard_images, 1)


@dataclass(frozen=True, kw_only=True)
class SilentCheckSettings(NaturalData):
    """The naturally-silent-unit check (:func:`fvlab.check.natural_silence.run_silent_check`).

    ``layers``: the layers checked (names, or ``"a,b"``; default: every ReLU that runs once per
    forward pass); a unit fires on an image when its spatial max exceeds ``threshold``; it is
    silent when it fires on at most ``max_fraction`` of the images (0 = never); the first
    ``max_render`` silent units of each layer are rendered (``steps`` updates, ``batch_size``
    units per optimisation); ``batch_size`` images per forward pass of the sweep, in shards of
    ``shard_images`` images (rounded up to whole batches; docs/scale.md)."""

    layers: str | tuple[str, ...] | None = None
    threshold: float = 0.0
    max_fraction: float = 0.0
    steps: int = 256
    max_render: int = 32
    batch_size: int = 500
    shard_images: int = 5000
    seed: int = 0

    def validate(self) -> None:
        super().validate()
        if self.layers == "":
            self.normalise("layers", None)
        elif isinstance(self.layers, str):
            self.normalise("layers", tuple(n.strip() for n in self.layers.split(",") if n.strip()))
        elif self.layers is not None:
            self.normalise("layers", tuple(self.layers))
        if self.layers is not None and not self.layers:
            raise SettingsError("layers", "none given; name layers or pass None for every ReLU")
        if not 0.0 <= self.max_fraction < 1.0:
            raise SettingsError("max_fraction", f"must be in [0, 1), got {self.max_fraction}")
        at_least("steps", self.steps, 1)
        at_least("max_render", self.max_render, 0)
        at_least("batch_size", self.batch_size, 1)
        at_least("shard_images", self.shard_images, 1)
