"""Does the audit catch attacks it was never tuned on? (issue 15)

Calibration: the audit's thresholds come ONLY from a second clean model — fmnist-cnn retrained
with seed 1 (``fvlab/check/weights/fmnist-cnn-seed1.pt``, ``fvlab train-reference --seed 1``) —
never from the units scored as negatives and never from any attack. Per signal s the threshold
is τ_s = ``--safety`` × the largest value over the calibration model's units of the layer (for
the active fraction: the smallest value / safety); a unit's score is max_s value_s / τ_s.

Evaluation: negatives are the units of the layer in the embedded fmnist-cnn (seed 0); positives
are the manipulated units of five attack families, each built on the embedded model:

* hard-gate circuit  — ``fvlab.fool.circuit`` permute (offset 1), hard gate
* ramp-gate circuit  — the same with ``gate="ramp"`` (continuous, width 4 logit units)
* silent branch      — ``fvlab.check.manipulations.silent_branch`` (a stand-in of P1's silent
                       units with random directions, conv3 → relu3)
* slingshot          — ``fvlab.fool.slingshot`` (weight-only, target builtin:smiley)
* push-down/up       — ``fvlab.fool.slingshot`` method push (weight-only)

Leave-one-family-out: since no family enters the calibration, every family is unseen when the
thresholds are fixed; per family the script reports ROC AUC (family vs the evaluation model's
clean units), the TPR at the score cut that flags 5 % of the CALIBRATION units, the clean
false-flag rate of that cut on the evaluation model, and the same at the audit's own cut
(score ≥ 1). Every figure is printed, also the bad ones.

Usage: .venv/bin/python benchmarks/audit_generalisation.py [--steps 128] [--images 2000]
       [--work out/audit-generalisation]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

CALIBRATION_WEIGHTS = Path(__file__).parent.parent / "fvlab/check/weights/fmnist-cnn-seed1.pt"
SIGNALS = ("excess", "jump", "gradient", "valley")


def thresholds_from(rows: list[dict], safety: float) -> dict[str, float]:
    """τ per signal from clean calibration rows
    (:func:`fvlab.check.calibration.thresholds_from_rows`), keyed by the rows' column names."""
    from fvlab.check.calibration import thresholds_from_rows

    tau = thresholds_from_rows(rows, safety)
    return {**{s: getattr(tau, s) for s in SIGNALS}, "active_fraction": tau.silent}


def scores(rows: list[dict], tau: dict[str, float]) -> np.ndarray:
    """The audit's score (:func:`fvlab.check.audit.score_units`) under thresholds ``tau``."""
    from fvlab.check.audit import score_units
    from fvlab.check.settings import AuditThresholds

    thresholds = AuditThresholds(**{s: tau[s] for s in SIGNALS}, silent=tau["active_fraction"])
    column = {k: np.array([r[k] for r in rows], float) for k in (*SIGNALS, "active_fraction")}
    score, _ = score_units(column["excess"], column["jump"], column["active_fraction"],
                           thresholds, column["gradient"], column["valley"])  # fmt: skip
    return score


def build_families(model, args) -> dict:
    from fvlab.check.manipulations import silent_branch
    from fvlab.data.fashion_mnist import FashionMNIST
    from fvlab.fool.circuit import CircuitConstruction, build_circuit
    from fvlab.fool.slingshot.build import SlingshotConstruction, build_slingshot
    from fvlab.fool.targets import resolve_target

    natural, _ = FashionMNIST("train", stop=10000).load()
    target = resolve_target(model, "builtin:smiley", show_progress=False)[0]
    gated = tuple(range(0, 64, 4))
    circuit = CircuitConstruction(layer="relu3", units=gated, render_steps=64)
    return {
        "hard-gate circuit": lambda: (
            build_circuit(model, natural, circuit, show_progress=False).model, gated),
        "ramp-gate circuit": lambda: (build_circuit(
            model, natural, circuit.replace(gate="ramp"), show_progress=False).model, gated),
        "silent branch": lambda: (silent_branch(model, "conv3", "relu3", gated, natural), gated),
        "slingshot": lambda: (build_slingshot(model, natural, target, SlingshotConstruction(
            layer="relu3", units=tuple(range(0, 64, 8)), steps=args.finetune_steps, points=8,
            natural_batch=64, lr=3e-3, alpha=0.6), show_progress=False).model,
            tuple(range(0, 64, 8))),
        "push-down/up": lambda: (build_slingshot(model, natural, target, SlingshotConstruction(
            layer="relu3", units=tuple(range(4, 64, 8)), method="push",
            steps=args.finetune_steps, natural_batch=64, lr=3e-3, alpha=0.6),
            show_progress=False).model, tuple(range(4, 64, 8))),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=128, help="render updates of the audit")
    parser.add_argument("--images", type=int, default=2000, help="natural test images")
    parser.add_argument("--finetune-steps", type=int, default=400)
    parser.add_argument("--safety", type=float, default=1.5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("out/audit-generalisation"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import fvlab
    from fvlab.check import AuditSettings, audit, roc_auc
    from fvlab.data.fashion_mnist import FashionMNIST

    args.work.mkdir(parents=True, exist_ok=True)
    natural = FashionMNIST("test", stop=args.images)
    settings = AuditSettings(layer="relu3", steps=args.steps, path_layers=["relu3"])

    def run(model, units=None):
        start = time.perf_counter()
        result = audit(model, natural, settings.replace(units=units), show_progress=False)
        return result.rows, time.perf_counter() - start

    calibration, seconds = run(fvlab.load("fmnist-cnn", weights=str(CALIBRATION_WEIGHTS)))
    tau = thresholds_from(calibration, args.safety)
    cal_scores = scores(calibration, tau)
    cut = float(np.quantile(cal_scores, 0.95))
    print(
        f"calibration (fmnist-cnn seed 1, relu3, {len(calibration)} units, {seconds:.0f} s): "
        f"thresholds {json.dumps({k: round(v, 4) for k, v in tau.items()})}; 5 % cut {cut:.3f}"
    )
    model = fvlab.load("fmnist-cnn")
    clean, seconds = run(model)
    clean_scores = scores(clean, tau)
    report = {"settings": vars(args) | {"work": str(args.work)}, "thresholds": tau,
              "cut_5pct_calibration": cut, "families": {},
              "clean_eval": {"units": len(clean),
                             "fpr_at_cut": float((clean_scores >= cut).mean()),
                             "fpr_at_1": float((clean_scores >= 1).mean()),
                             "seconds": seconds}}  # fmt: skip
    print(
        f"clean evaluation model (embedded fmnist-cnn, {len(clean)} units): false flags "
        f"{report['clean_eval']['fpr_at_cut']:.1%} at the 5 % cut, "
        f"{report['clean_eval']['fpr_at_1']:.1%} at score ≥ 1"
    )
    for name, make in build_families(model, args).items():
        start = time.perf_counter()
        try:
            fooled, units = make()
        except Exception as exc:  # report, go on
            print(f"{name}: could not build ({type(exc).__name__}: {exc})")
            report["families"][name] = {"error": str(exc)}
            continue
        built = time.perf_counter() - start
        rows, seconds = run(fooled, units)
        s = scores(rows, tau)
        reasons = {sig: int(sum(r[sig] >= tau[sig] for r in rows)) for sig in SIGNALS}
        entry = {
            "units": len(rows),
            "auc": roc_auc(s, clean_scores),
            "tpr_at_cut": float((s >= cut).mean()),
            "tpr_at_1": float((s >= 1).mean()),
            "reasons": reasons,
            "median": {sig: float(np.median([r[sig] for r in rows])) for sig in SIGNALS},
            "build_seconds": round(built, 1),
            "audit_seconds": round(seconds, 1),
        }
        report["families"][name] = entry
        print(f"{name:18s}: AUC {entry['auc']:.3f}, TPR {entry['tpr_at_cut']:.2f} at the 5 % cut "
              f"({entry['tpr_at_1']:.2f} at score ≥ 1), reasons {reasons}, medians "
              f"{ {k: round(v, 3) for k, v in entry['median'].items()} }")  # fmt: skip
    (args.work / "audit_generalisation.json").write_text(json.dumps(report, indent=2))
    print(f"written {args.work / 'audit_generalisation.json'}")


if __name__ == "__main__":
    main()
