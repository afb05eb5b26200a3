"""End-to-end circuit job (the ``fvlab fool circuit`` command and the demo): build, measure,
save the fooled model, write the grid and summary.json."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from fvlab.errors import FvlabError
from fvlab.fool import build_circuit as bc
from fvlab.fool.trajectories import RenderSetting

#: render settings for the robustness report; `seen` says whether the detector trained on them
ROBUSTNESS_SETTINGS = (
    (RenderSetting("pixel", "standard", 0.05), True),
    (RenderSetting("fft", "none", 0.05), True),
    (RenderSetting("fft", "standard", 0.5), False),
    (RenderSetting("fft", "lucid", 0.05), False),
    (RenderSetting("maco", "standard", 1.0), False),
)


def _fooled_flags(measures: list[dict], mode: str) -> list[bool]:
    if mode == "permute":
        return [m["mapped_unit_more_active"] for m in measures]
    return [m["corr_with_target"] > m["corr_with_original_fv"] for m in measures]


def measure_fooling(
    original, built: bc.BuiltCircuit, images: torch.Tensor, target: torch.Tensor | None
) -> list[dict]:
    circuit = built.circuit
    units = circuit.units.tolist()
    if circuit.mode == "permute":
        return bc.permute_measures(original, built.layer, units, circuit.mapping.tolist(), images)
    return bc.target_measures(units, images, target, built.originals)


def run_circuit(
    *,
    model: str,
    weights,
    layer: str,
    mode: str,
    offset: int,
    target: str | None,
    units: str | None,
    detector_path,
    margin: float,
    robustness: bool,
    seed: int,
    device: str,
    out: Path,
    relu_redirect_steps: int = 16,
    show_progress: bool = True,
) -> dict:
    import fvlab
    from fvlab.data.fashion_mnist import FashionMNIST
    from fvlab.fool.circuit import circuit_tensors
    from fvlab.fool.detector import load_detector
    from fvlab.fool.targets import resolve_target
    from fvlab.int_lists import parse_int_list
    from fvlab.models.saved import save_model
    from fvlab.report.images import save_grid
    from fvlab.report.summary import write_summary

    if mode not in ("permute", "target"):
        raise FvlabError(f"unknown mode {mode!r}; valid: permute, target")
    original = fvlab.load(model, weights, device=device)
    if original.spec.channels != 1 or original.spec.size != 28:
        raise FvlabError(
            "fvlab fool circuit trains and evaluates on Fashion-MNIST; use the API "
            "(fvlab.fool.build_circuit) with your own data for other models"
        )
    detector_file = Path(detector_path) if detector_path else bc.default_detector_path(model)
    if not detector_file.is_file():
        raise FvlabError(
            f"no detector at {detector_file}; train one with "
            f"`fvlab fool train-detector --model {model} --out {detector_file}`"
        )
    detector = load_detector(detector_file)
    record = json.loads(detector_file.with_suffix(".json").read_text())
    natural_train, _ = FashionMNIST("train", stop=10000).load()
    test_x, test_y = FashionMNIST("test").load()
    target_image = None
    if mode == "target":
        if not target:
            raise FvlabError("target mode needs --target IMAGE or builtin:NAME")
        target_image = resolve_target(target, original.spec)
    built = bc.build_circuit(
        original,
        fvlab.load(model, weights, device=device),
        layer,
        natural_train,
        mode=mode,
        offset=offset,
        units=parse_int_list(units) if units else None,
        target=target_image,
        detector=detector,
        margin=margin,
        seed=seed,
        relu_redirect_steps=relu_redirect_steps,
        show_progress=show_progress,
    )
    fooled, circuit = built.model, built.circuit
    unit_ids = circuit.units.tolist()
    natural = bc.compare_outputs(original, fooled, test_x, test_y)
    fooled_fv = fvlab.render(
        fooled,
        layer,
        unit_ids,
        seed=seed + 1,
        relu_redirect_steps=relu_redirect_steps,
        show_progress=show_progress,
    )
    measures = measure_fooling(original, built, fooled_fv.images, target_image)
    flags = _fooled_flags(measures, mode)
    for row, flag in zip(measures, flags, strict=True):
        row["fooled"] = flag
    if mode == "permute":
        should_show = built.originals[
            [unit_ids.index(m) if m in unit_ids else 0 for m in circuit.mapping.tolist()]
        ]
    else:
        should_show = target_image.expand(len(unit_ids), *target_image.shape)
    out.mkdir(parents=True, exist_ok=True)
    save_grid(
        torch.cat([built.originals, fooled_fv.images, should_show]),
        out / "grid.png",
        ncol=len(unit_ids),
        upscale=4 if len(unit_ids) <= 16 else 2,
    )
    robustness_report = {}
    if robustness:
        for setting, seen in ROBUSTNESS_SETTINGS:
            images = fvlab.render(
                fooled,
                layer,
                unit_ids,
                param=setting.param,
                transforms=setting.transforms,
                lr=setting.lr,
                seed=seed + 2,
                relu_redirect_steps=relu_redirect_steps,
                show_progress=show_progress,
            ).images
            rows = measure_fooling(original, built, images, target_image)
            robustness_report[setting.name] = {
                "seen_by_detector": seen,
                "share_fooled": sum(_fooled_flags(rows, mode)) / len(rows),
            }
    save_model(
        out / "model",
        original.name,
        original.weights,
        "circuit",
        {"layer": layer, **circuit.params()},
        circuit_tensors(circuit),
    )
    evaluation = record["evaluation"]
    detector_natural = float((~detector.is_visualization(test_x)).float().mean())
    summary = {
        "model": original.name,
        "layer": layer,
        "mode": mode,
        "units": unit_ids,
        "mapping": None if circuit.mapping is None else circuit.mapping.tolist(),
        "target": target,
        "relu_redirect_steps": relu_redirect_steps,
        "constants": circuit.params()["constants"],
        "natural": natural,
        "exactness_violations": {
            "natural_test": bc.count_violations(original, fooled, layer, test_x),
            "fooled_visualizations": bc.count_violations(original, fooled, layer, fooled_fv.images),
        },
        "classifier": {
            "file": str(detector_file),
            "accuracy_natural_test": detector_natural,
            "accuracy_heldout_fv": evaluation["heldout_units"]["min_accuracy"],
            "accuracy_heldout_fv_by_step": evaluation["heldout_units"]["accuracy_by_step"],
            "accuracy_heldout_units_and_settings": (
                evaluation["heldout_units_and_settings"]["min_accuracy"]
            ),
        },
        "fooling": {
            "units": measures,
            "share_fooled": sum(flags) / len(flags),
        },
        "robustness": robustness_report,
        "files": {"model": "model", "grid": "grid.png"},
    }
    if mode == "permute" and built.layer == _last_layer(original):
        summary["fooling"]["share_classified_as_mapped"] = sum(
            m["original_prediction"] == m["shows"] for m in measures
        ) / len(measures)
    if mode == "target":
        summary["fooling"]["corr_with_target"] = bc.summarise(
            [m["corr_with_target"] for m in measures]
        )
    write_summary(out, summary)
    return summary


def _last_layer(model) -> str:
    return model.layer_names()[-1]
