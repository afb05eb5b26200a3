"""The ``fvlab fool train-detector`` job: plan → trajectories → training → evaluation → detector.

For any model and its natural images (Fashion-MNIST, or an image folder in the ImageNet layout,
:mod:`.natural`), at the model's own input (channels, size):

1. **plan** (:func:`detector_plan`): which units' visualizations train the detector and which
   are held out; the render settings; the snapshot steps (:data:`DENSE_STEPS` up to
   ``max_step``); the target-mode templates.

   * fmnist-cnn (no ``layers`` given): exactly the committed detector's plan — every unit of
     :data:`FMNIST_LAYERS` (fc, bn1…bn5, relu1…relu5) but 40 held-out ones (the same 20
     channels before and after their ReLU; every logit trains).
   * any other model: the logits plus :data:`N_PROBE_LAYERS` layers spread evenly over the
     model's forward order (:func:`fvlab.models.probe.forward_order`: the leaf layers with a
     channel map), or ``layers``. Per layer ``units_per_layer`` training and
     ``heldout_per_layer`` held-out units, spread evenly over the channels — except the layer
     to be fooled (``fool_layer``, default the logits), where ``heldout_fraction`` of the units
     (whole classes, for the logits; P1 held out 100 of 1000 ImageNet classes) are held out, so
     the detector is evaluated on visualizations of units like the ones the circuit gates. For
     lucid's InceptionV1 only the 1000 ImageNet logits count (:mod:`.logits`).

2. **trajectories**: every planned unit × training settings, template units drawing
   ``targets`` targets (half random shapes, half natural training images) × target settings;
   held-out units × training and unseen settings; held-out targets (the built-ins and natural
   test images). Each (group, setting, chunk of ``render_batch`` units) is one shard of the
   engine (:mod:`fvlab.engine`), written to ``render_dir`` (default: ``<out stem>-render/`` next
   to the weights file) as it finishes; ``resume=True`` renders only the missing shards.
3. **training** on natural training images vs the training trajectories
   (:func:`~fvlab.fool.circuit.detector.train_detector`), and **evaluation**: accuracy on
   natural test images and on each held-out group per snapshot step, as rendered and as the
   model sees them (after the render transforms).

Job: ``run_train_detector(model, DetectorSettings(...), out)`` with ``out`` the detector's
weights file (``.pt``; the record goes next to it as ``.json``).

Seeds: setting i of a group renders with seed ``seed + group offset + 1000·i``, and element j
of a group (its position in the group, whatever the chunk) draws its start and transforms with
key j, so a unit's trajectory depends on (seed, group, setting, position), never on
``render_batch`` or on the engine.

Memory: with an output file the training sets live on disk in the render folder —
``natural-train.npy`` (the natural training images) and ``train-trajectories.npy`` (the training
trajectories, each shard written at its rows as it finishes), both
:class:`~fvlab.data.image_bank.ImageBank` s that the training reads one batch at a time (the
same draws as from memory, so the same detector). The evaluation sets (natural test images,
held-out trajectories) and one shard at a time are held in memory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from fvlab.data.image_bank import create_bank, indexed
from fvlab.errors import FvlabError
from fvlab.fool.circuit.detector import (
    Detector,
    save_detector,
    train_detector,
    training_record,
)
from fvlab.fool.circuit.logits import class_units, logits_layer
from fvlab.fool.circuit.natural import NaturalSplit, evenly, natural_split
from fvlab.fool.circuit.settings import N_HELDOUT_NATURAL_TARGETS, N_TRAIN_TARGETS, DetectorSettings
from fvlab.fool.circuit.trajectories import (
    DENSE_STEPS,
    HELDOUT_SETTINGS,
    TRAIN_SETTINGS,
    RenderSetting,
    Trajectories,
    concat,
    describe,
    render_setting,
    split_units,
    template_model,
)
from fvlab.fool.targets import BUILTINS, builtin_target, random_shapes
from fvlab.jobs import OutDir, SettingsError, finish
from fvlab.optvis.transforms import make_transforms

if TYPE_CHECKING:
    from fvlab.engine.base import Engine
    from fvlab.models.zoo import LoadedModel

#: units whose visualizations train the detector, per fmnist-cnn layer (channel counts): the
#: logits, and every channel before (BatchNorm) and after its ReLU — a ReLU unit's visualization
#: may leave regions black where the BatchNorm unit's may not, and circuits gate either
FMNIST_LAYERS = {
    "fc": 10,
    **{f"{kind}{i}": n for i, n in enumerate((32, 32, 64, 64, 128), 1) for kind in ("bn", "relu")},
}
#: other models: the logits plus this many layers spread over the forward order
N_PROBE_LAYERS = 4
HELDOUT_GROUPS = ("heldout_units", "heldout_units_and_settings", "heldout_targets")
#: the groups whose trajectories train the detector (rows of the training image bank)
TRAIN_GROUPS = ("train_units", "train_targets")
#: image banks in the render folder: the training trajectories and natural training images
TRAIN_BANK, NATURAL_BANK = "train-trajectories.npy", "natural-train.npy"
TARGET_SETTINGS = (
    RenderSetting("fft", "standard", 0.05),
    RenderSetting("fft", "none", 0.05),
    RenderSetting("pixel", "standard", 0.05),
    RenderSetting("fft", "standard", 0.02),
)
#: seed offset of each trajectory group (chunks of a group share its seed; their elements' draws
#: are keyed by their position in the group, :func:`trajectory_shard`)
GROUP_SEEDS = {"train_units": 0, "train_targets": 3, "heldout_units": 7,
               "heldout_units_and_settings": 11, "heldout_targets": 13}  # fmt: skip


@dataclass(frozen=True)
class DetectorPlan:
    """What the detector's trajectories are made of (module docstring): units per group, the
    settings per group, the snapshot steps and the targets."""

    layers: dict[str, int]
    fool_layer: str
    train_units: list[tuple[str, int]]
    heldout_units: list[tuple[str, int]]
    steps: tuple[int, ...]
    train_settings: tuple[RenderSetting, ...] = TRAIN_SETTINGS
    heldout_settings: tuple[RenderSetting, ...] = HELDOUT_SETTINGS
    target_settings: tuple[RenderSetting, ...] = TARGET_SETTINGS
    n_shape_targets: int = N_TRAIN_TARGETS // 2
    n_natural_targets: int = N_TRAIN_TARGETS // 2
    n_heldout_natural_targets: int = N_HELDOUT_NATURAL_TARGETS
    builtins: tuple[str, ...] = field(default=BUILTINS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": self.layers,
            "fool_layer": self.fool_layer,
            "train_units": [f"{layer}:{u}" for layer, u in self.train_units],
            "heldout_units": [f"{layer}:{u}" for layer, u in self.heldout_units],
            "steps": list(self.steps),
            "train_settings": describe(self.train_settings),
            "heldout_settings": describe(self.heldout_settings),
            "target_settings": describe(self.target_settings),
            "targets": [self.n_shape_targets, self.n_natural_targets],
            "heldout_targets": [list(self.builtins), self.n_heldout_natural_targets],
        }


def default_layers(model: LoadedModel, n: int = N_PROBE_LAYERS) -> list[str]:
    """The logits and ``n`` layers with channel maps (4-d outputs), spread evenly over the
    forward order (:func:`fvlab.models.probe.forward_order`)."""
    from fvlab.models.probe import forward_order, probe

    order = forward_order(model)
    shapes = probe(model)
    maps = [name for name in order[:-1] if len(shapes.shape(name)) == 4]
    chosen = [maps[(2 * i + 1) * len(maps) // (2 * n)] for i in range(min(n, len(maps)))]
    return [*dict.fromkeys(chosen), order[-1]]


def _held_out_of_fool_layer(units: list[int], fraction: float) -> list[int]:
    """``fraction`` of ``units`` (at least one), evenly spaced (whole classes for logits)."""
    k = max(1, round(fraction * len(units)))
    return [units[(2 * i + 1) * len(units) // (2 * k)] for i in range(k)]


def detector_plan(model: LoadedModel, settings: DetectorSettings) -> DetectorPlan:
    """The plan of the module docstring for ``model``."""
    from fvlab.models.probe import layer_units

    steps = tuple(s for s in DENSE_STEPS if s <= settings.max_step)
    half = settings.targets // 2
    n = settings.max_settings
    common = {
        "steps": steps,
        "train_settings": TRAIN_SETTINGS[:n],
        "heldout_settings": HELDOUT_SETTINGS[:n],
        "target_settings": TARGET_SETTINGS[:n],
        "n_shape_targets": half,
        "n_natural_targets": half,
        "n_heldout_natural_targets": settings.heldout_natural_targets,
    }
    fool = settings.fool_layer or logits_layer(model)
    if model.name == "fmnist-cnn" and settings.layers is None and fool == "fc":
        train, heldout = split_units(FMNIST_LAYERS, per_layer=None, always_train=("fc",))
        return DetectorPlan(dict(FMNIST_LAYERS), "fc", train, heldout, **common)
    names = list(settings.layers or default_layers(model))
    if fool not in names:
        names.append(fool)
    per_layer = settings.units_per_layer or None
    train, heldout = [], []
    layers = {}
    for name in names:
        layers[name] = layer_units(model, name)
        units = class_units(model, name)
        if name == fool:
            held = _held_out_of_fool_layer(units, settings.heldout_fraction)
            rest = [u for u in units if u not in set(held)]
            train += [(name, u) for u in evenly(rest, per_layer)]
            heldout += [(name, u) for u in held]
        else:
            t, h = split_units({name: layers[name]}, per_layer, settings.heldout_per_layer)
            train += t
            heldout += h
    return DetectorPlan(layers, fool, train, heldout, **common)


def _targets(plan: DetectorPlan, spec, natural: NaturalSplit, seed: int):
    """Training targets (random shapes + natural training images) and held-out targets (the
    built-ins + natural test images), each (K, C, S, S) in [0, 1]."""
    train = torch.cat([random_shapes(plan.n_shape_targets, spec.size, spec.channels, seed),
                       natural.targets])  # fmt: skip
    builtins = torch.stack([builtin_target(n, spec.size, spec.channels) for n in plan.builtins])
    return train, torch.cat([builtins, natural.test[: plan.n_heldout_natural_targets]])


def _shards(plan: DetectorPlan, train_targets, heldout_targets, settings: DetectorSettings):
    """(group, shard) pairs: one per group × setting × chunk of ``render_batch`` units; a shard
    is (kind, pairs, setting, steps, seed, targets or None)."""
    groups = [
        ("train_units", plan.train_units, plan.train_settings, None),
        ("train_targets", None, plan.target_settings, train_targets),
        ("heldout_units", plan.heldout_units, plan.train_settings, None),
        ("heldout_units_and_settings", plan.heldout_units, plan.heldout_settings, None),
        ("heldout_targets", None, plan.target_settings, heldout_targets),
    ]
    out = []
    for group, pairs, render_settings, targets in groups:
        n = len(pairs) if targets is None else len(targets)
        batch = settings.render_batch or max(n, 1)
        for i, setting in enumerate(render_settings):
            for k, first in enumerate(range(0, n, batch)):
                seed = settings.seed + GROUP_SEEDS[group] + 1000 * i
                if targets is None:
                    shard = ("units", tuple(pairs[first : first + batch]), setting, None)
                else:
                    shard = ("targets", tuple(range(first, min(n, first + batch))), setting,
                             targets[first : first + batch])  # fmt: skip
                out.append((f"{group}-{i}-{k:04d}", group, (*shard, plan.steps, seed, first)))
    return out


def trajectory_shard(model: LoadedModel, shard: tuple) -> dict[str, Any]:
    """One shard: ``(kind, pairs, setting, targets, steps, seed, first, magnitude,
    show_progress)`` → the trajectories as plain data (tensors, strings and lists; CPU).

    Element j of the shard draws its start and transforms with key ``first + j``, its position
    in the whole group, so a trajectory does not depend on how the group is chunked."""
    kind, pairs, setting, targets, steps, seed, first, magnitude, show_progress = shard
    keys = range(first, first + len(pairs))
    if kind == "units":
        traj = render_setting(model, pairs, setting, steps, seed, show_progress, magnitude, keys)
    else:
        bank = template_model(model.spec, targets)
        local = [("response", j) for j in range(len(targets))]
        traj = render_setting(bank, local, setting, steps, seed, show_progress, magnitude, keys)
        traj.unit = [("target", pairs[j]) for _, j in traj.unit]
    return _to_plain(traj)


def _to_plain(traj: Trajectories) -> dict:
    return {"images": traj.images.cpu(), "unit": [list(u) for u in traj.unit],
            "setting": traj.setting, "step": traj.step}  # fmt: skip


def _from_plain(plain: dict) -> Trajectories:
    units = [(str(layer), int(unit)) for layer, unit in plain["unit"]]
    return Trajectories(plain["images"], units, list(plain["setting"]), plain["step"])


def _accuracy_by_step(
    detector: Detector, traj: Trajectories, transformed: bool, seed: int
) -> dict[int, float]:
    images = traj.images
    if transformed:
        images = make_transforms("standard", images.shape[-1])(
            images, torch.Generator().manual_seed(seed)
        )
    hits = detector.is_visualization(images)
    return {
        int(step): float(hits[traj.step == step].float().mean())
        for step in traj.step.unique().tolist()
    }


def evaluate_detector(
    detector: Detector, natural_test: torch.Tensor, groups: dict[str, Trajectories], seed: int = 0
) -> dict:
    """Accuracy on natural test images and, per group of trajectories, per snapshot step (as
    rendered, and as the model sees them after the standard render transforms)."""
    natural_hits = detector.is_visualization(natural_test)
    transformed = make_transforms("standard", natural_test.shape[-1])(
        natural_test, torch.Generator().manual_seed(seed)
    )
    report = {
        "natural_test": {
            "n": len(natural_test),
            "accuracy": float((~natural_hits).float().mean()),
            "accuracy_transformed": float((~detector.is_visualization(transformed)).float().mean()),
        }
    }
    for name, traj in groups.items():
        raw = _accuracy_by_step(detector, traj, False, seed)
        seen = _accuracy_by_step(detector, traj, True, seed)
        report[name] = {
            "n": len(traj.images),
            "accuracy_by_step": raw,
            "accuracy_by_step_transformed": seen,
            "min_accuracy": min(min(raw.values()), min(seen.values())),
            "accuracy": float(detector.is_visualization(traj.images).float().mean()),
        }
    return report


@dataclass
class DetectorResult:
    """A trained detector and its record (training, data, plan, evaluation)."""

    detector: Detector
    record: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return self.record

    def save(self, out: Path) -> Path:
        """Write the weights to ``out`` (a ``.pt`` file) and the record next to it."""
        return save_detector(self.detector, out, self.record)


def render_folder(settings: DetectorSettings, out: Path | None) -> Path | None:
    """Where the trajectory shards go: ``render_dir``, else ``<out stem>-render/`` next to the
    weights file ``out`` (None without either: nothing is stored)."""
    if settings.render_dir is not None:
        return Path(settings.render_dir)
    return None if out is None else Path(out).with_name(Path(out).stem + "-render")


def _magnitude(plan: DetectorPlan, natural: NaturalSplit, size: int) -> torch.Tensor | None:
    """MACO's spectrum from the first 2000 natural training images (if a setting uses MACO)."""
    from fvlab.optvis.param import estimate_magnitude

    settings = (*plan.train_settings, *plan.heldout_settings, *plan.target_settings)
    if not any(s.param == "maco" for s in settings):
        return None
    first = indexed(natural.train).take(range(min(2000, len(natural.train))))
    return estimate_magnitude(first.split(500), size, 2000)


def render_groups(
    model: LoadedModel,
    settings: DetectorSettings,
    plan: DetectorPlan,
    natural: NaturalSplit,
    store_folder: Path | None,
    *,
    show_progress: bool = True,
    engine: Engine | None = None,
    resume: bool = False,
) -> dict[str, Trajectories]:
    """Every trajectory group of ``plan`` (train = training units + training targets), each
    shard through ``engine`` into the store at ``store_folder``."""
    from fvlab.engine.jobs import shard_store
    from fvlab.engine.run import run_shards

    train_targets, heldout_targets = _targets(plan, model.spec, natural, settings.seed)
    shards = _shards(plan, train_targets, heldout_targets, settings)
    if not plan.heldout_units:
        raise SettingsError("layers", "the plan holds out no units; give layers with more units")
    magnitude = _magnitude(plan, natural, model.spec.size)
    inner = show_progress and getattr(engine, "name", "local") == "local"
    names = [name for name, _, _ in shards]
    fingerprint = {"plan": plan.to_dict(), "seed": settings.seed, "render_batch":
                   settings.render_batch, "natural": natural.source}  # fmt: skip
    bank = _train_bank(shards, plan, model.spec, store_folder, fingerprint)

    def keep(i: int, result: dict) -> dict:
        """Training images go to the bank (if any) at the shard's offset, not into memory."""
        if bank is None or shards[i][1] not in TRAIN_GROUPS:
            return result
        writer, offsets = bank
        if len(result["images"]) != offsets[i][1]:
            raise FvlabError(
                f"trajectory shard {names[i]}: {len(result['images'])} images, expected "
                f"{offsets[i][1]}; delete {store_folder} and rerun"
            )
        writer.write(offsets[i][0], result["images"])
        return {**result, "images": None}

    results = run_shards(
        trajectory_shard,
        model,
        [(*shard, magnitude, inner) for _, _, shard in shards],
        names,
        engine=engine,
        store=shard_store(model, "train-detector", fingerprint, names, store_folder, resume),
        show_progress=show_progress,
        description=f"rendering {len(shards)} trajectory shards",
        on_result=keep,
    )
    by_group: dict[str, list[Trajectories]] = {}
    for (_, group, _), result in zip(shards, results, strict=True):
        by_group.setdefault(group, []).append(_from_plain(result))
    groups = {name: concat(parts) for name, parts in by_group.items()}
    groups["train"] = concat([groups.pop("train_units"), groups.pop("train_targets")])
    if bank is not None:
        groups["train"].images = bank[0].close()
    return groups


def _train_bank(shards, plan: DetectorPlan, spec, folder: Path | None, fingerprint: dict):
    """(writer, {shard index: (offset, count)}) of the training trajectories' image bank in
    ``folder`` (rows in the order of :func:`concat` of the training groups' shards), or None
    without a folder (training images then stay in memory)."""
    if folder is None:
        return None
    offsets, total = {}, 0
    for i, (_, group, shard) in enumerate(shards):
        if group in TRAIN_GROUPS:
            pairs = shard[1]
            offsets[i] = (total, len(pairs) * len(plan.steps))
            total += offsets[i][1]
    shape = (spec.channels, spec.size, spec.size)
    writer = create_bank(folder / TRAIN_BANK, total, shape, {"fingerprint": fingerprint})
    return writer, offsets


def build_detector(
    model: LoadedModel,
    settings: DetectorSettings,
    show_progress: bool = True,
    *,
    engine: Engine | None = None,
    resume: bool = False,
    store_folder: Path | None = None,
) -> DetectorResult:
    """Plan, render the trajectories, train and evaluate (module docstring)."""
    start = time.perf_counter()
    seed = settings.seed
    plan = detector_plan(model, settings)
    natural = natural_split(
        model,
        settings.data,
        settings.test_data,
        reserve=plan.n_natural_targets,
        limit=settings.natural_limit,
        bank=None if store_folder is None else store_folder / NATURAL_BANK,
    )
    data = render_groups(model, settings, plan, natural, store_folder,
                         show_progress=show_progress, engine=engine, resume=resume)  # fmt: skip
    train_traj = data["train"]
    heldout = {name: data[name] for name in HELDOUT_GROUPS}
    render_seconds = time.perf_counter() - start
    config = settings.training()
    detector = train_detector(natural.train, train_traj.images, config, show_progress)
    report = evaluate_detector(detector, natural.test, heldout, seed)
    half = plan.n_natural_targets
    record = {
        **training_record(config),
        "model": model.name,
        "input": {"channels": model.spec.channels, "size": model.spec.size},
        "layers": plan.layers,
        "fool_layer": plan.fool_layer,
        "train_units": len(plan.train_units),
        "heldout_units": [f"{layer}:{unit}" for layer, unit in plan.heldout_units],
        "train_targets": f"{plan.n_shape_targets} random shapes (seed {seed}) + the last "
        f"{half} natural training images",
        "heldout_targets": [f"builtin:{name}" for name in plan.builtins]
        + [
            f"natural test image {i}"
            for i in range(min(plan.n_heldout_natural_targets, len(natural.test)))
        ],  # fmt: skip
        "train_settings": describe(plan.train_settings),
        "target_settings": describe(plan.target_settings),
        "heldout_settings": describe(plan.heldout_settings),
        "snapshot_steps": list(plan.steps),
        "render_batch": settings.render_batch,
        "natural": natural.describe(),
        "n_train_visualizations": len(train_traj.images),
        "n_train_natural": len(natural.train),
        "evaluation": report,
        "render_seconds": round(render_seconds, 1),
        "total_seconds": round(time.perf_counter() - start, 1),
    }
    return DetectorResult(detector, record)


def run_train_detector(
    model: LoadedModel,
    settings: DetectorSettings,
    out: OutDir = None,
    *,
    show_progress: bool = True,
    engine: Engine | None = None,
    resume: bool = False,
) -> DetectorResult:
    """The whole job: :func:`build_detector`, saved to the weights file ``out`` if given; the
    trajectory shards go to :func:`render_folder` (resumable with ``resume=True``)."""
    folder = render_folder(settings, out)
    result = build_detector(model, settings, show_progress, engine=engine, resume=resume,
                            store_folder=folder)  # fmt: skip
    return finish(result, out)
