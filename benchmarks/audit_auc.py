"""How well does `fvlab audit` separate manipulated units from clean ones? (issue 6)

For each fooling method, the units it manipulated (audited in the fooled model) are scored
against all units of the same layer in the unmodified fmnist-cnn; ROC AUC of the audit score,
and the fraction flagged. On the unmodified model, the fraction of flagged units per layer.

Fooled models:
* circuit  — `fvlab fool circuit --layer L --mode permute --offset 1` (the committed detector)
             at fc (10 units) and relu3 (64 units)
* silent   — fvlab.fool.silent.silent on conv3 (all 64 units, branch after relu3), target the
             FV of relu4:0, fvlab's pooled variant (lam 10, contrast direction; the settings of
             tests/fool/test_silent_fmnist.py) and the paper's per-position variant (lam 3)
* toy gate / toy silent — fvlab.check.manipulations (self-contained stand-ins)

Usage: .venv/bin/python benchmarks/audit_auc.py [--steps 256] [--work out/audit-auc]
Built models are kept in --work and reused.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def build_circuit(work: Path, layer: str) -> Path:
    from fvlab.cli import main

    out = work / f"circuit-{layer}"
    if not (out / "model" / "manifest.json").is_file():
        main(["fool", "circuit", "--layer", layer, "--mode", "permute", "--offset", "1",
              "--no-robustness", "--out", str(out), "-q"])  # fmt: skip
    return out / "model"


def build_silent(work: Path, variant: str) -> Path:
    from fvlab.data.fashion_mnist import FashionMNIST
    from fvlab.fool.silent import silent

    out = work / f"silent-{variant}"
    if not (out / "manifest.json").is_file():
        import fvlab

        options = (
            dict(lam=10.0, pooling="mean", direction_objective="contrast")
            if variant == "pooled"
            else dict(lam=3.0, pooling="none")
        )
        result = silent(
            fvlab.load("fmnist-cnn"), "conv3", "relu4:0", FashionMNIST("train"),
            target_steps=128, batch_size=1000, show_progress=False, **options,
        )  # fmt: skip
        result.save(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=256, help="render updates in the audit")
    parser.add_argument("--work", type=Path, default=Path("out/audit-auc"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--clean-layers", default="relu1,relu2,relu3,relu4,relu5,fc", help="false-flag check"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import fvlab
    from fvlab.check import AuditSettings, audit, roc_auc
    from fvlab.check.manipulations import gate_units, silent_branch
    from fvlab.data.fashion_mnist import FashionMNIST

    args.work.mkdir(parents=True, exist_ok=True)
    clean_model = fvlab.load("fmnist-cnn")
    test = FashionMNIST("test")
    report: dict = {"steps": args.steps, "clean": {}, "methods": {}}

    def run(model, layer, units=None):
        start = time.perf_counter()
        settings = AuditSettings(layer=layer, units=units, steps=args.steps)
        result = audit(model, test, settings, show_progress=False)
        return result, time.perf_counter() - start

    clean = {}
    for layer in args.clean_layers.split(","):
        result, seconds = run(clean_model, layer)
        clean[layer] = result
        report["clean"][layer] = {
            "units": len(result.rows),
            "flagged": len(result.flagged),
            "flagged_fraction": len(result.flagged) / len(result.rows),
            "max_score": float(result.scores.max()),
            "seconds": round(seconds, 1),
        }
        print(f"clean {layer:6s}: {len(result.flagged)}/{len(result.rows)} flagged, "
              f"max score {result.scores.max():.3f} ({seconds:.0f} s)")  # fmt: skip
    total = sum(v["units"] for v in report["clean"].values())
    flagged = sum(v["flagged"] for v in report["clean"].values())
    report["clean_flagged_fraction"] = flagged / total
    print(f"clean model: {flagged}/{total} units flagged = {flagged / total:.1%}")

    natural = torch.cat([FashionMNIST("train", stop=10000).load()[0], test.load()[0]])
    methods = {
        "circuit fc": lambda: (fvlab.load(str(build_circuit(args.work, "fc"))), "fc", None),
        "circuit relu3": lambda: (
            fvlab.load(str(build_circuit(args.work, "relu3"))),
            "relu3",
            None,
        ),
        "silent pooled (conv3→relu3)": lambda: (
            fvlab.load(str(build_silent(args.work, "pooled"))),
            "relu3",
            None,
        ),
        "silent paper (conv3→relu3)": lambda: (
            fvlab.load(str(build_silent(args.work, "paper"))),
            "relu3",
            None,
        ),
        "toy gate relu3": lambda: (
            gate_units(
                clean_model, "relu3", range(64), [(u + 32) % 64 for u in range(64)], natural
            ),
            "relu3",
            None,
        ),  # fmt: skip
        "toy silent relu3": lambda: (
            silent_branch(clean_model, "conv3", "relu3", range(64), natural),
            "relu3",
            None,
        ),
    }
    for name, make in methods.items():
        start = time.perf_counter()
        try:
            model, layer, units = make()
        except Exception as exc:  # a construction still being written: say so, go on
            print(f"{name}: could not build ({type(exc).__name__}: {exc})")
            report["methods"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        build_seconds = time.perf_counter() - start
        if layer not in clean:
            clean[layer], _ = run(clean_model, layer)
        fooled, seconds = run(model, layer, units)
        auc = roc_auc(fooled.scores, clean[layer].scores)
        # a unit is manipulated *in effect* if its FV (same seed and settings) differs from the
        # clean model's; where it does not, no audit of FVs and natural data can tell them apart
        position = {row["unit"]: i for i, row in enumerate(clean[layer].rows)}
        clean_fvs = clean[layer].fv_images[[position[r["unit"]] for r in fooled.rows]]
        changed = (fooled.fv_images - clean_fvs).flatten(1).abs().amax(1) > 1e-3
        effective = fooled.scores[changed.numpy()]
        auc_effective = roc_auc(effective, clean[layer].scores) if effective.size else None
        reasons: dict[str, int] = {}
        for row in fooled.rows:
            for flag in row["flags"]:
                reasons[flag] = reasons.get(flag, 0) + 1
        report["methods"][name] = {
            "layer": layer,
            "manipulated_units": len(fooled.rows),
            "auc": auc,
            "fvs_changed": int(changed.sum()),
            "auc_changed_fvs": auc_effective,
            "flagged_changed": int(
                sum(bool(r["flags"]) for r, c in zip(fooled.rows, changed, strict=True) if c)
            ),
            "flagged_fraction": len(fooled.flagged) / len(fooled.rows),
            "flag_reasons": reasons,
            "median_excess": float(np.median([r["excess"] for r in fooled.rows])),
            "median_jump": float(np.median([r["jump"] for r in fooled.rows])),
            "build_seconds": round(build_seconds, 1),
            "audit_seconds": round(seconds, 1),
        }
        changed_text = (
            f"AUC {auc_effective:.3f} on the {int(changed.sum())} units whose FV changed"
            if effective.size
            else "no FV changed: the manipulation had no effect on the visualizations"
        )
        flagged = f"{len(fooled.flagged)}/{len(fooled.rows)}"
        print(f"{name:28s}: AUC {auc:.3f} (all {len(fooled.rows)}), {changed_text}; flagged "
              f"{flagged} {reasons} (audit {seconds:.0f} s)")  # fmt: skip
    (args.work / "audit_auc.json").write_text(json.dumps(report, indent=2))
    print(f"written {args.work / 'audit_auc.json'}")


if __name__ == "__main__":
    main()
