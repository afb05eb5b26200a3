"""Does the audit catch attacks it was never tuned on? (issue 15)

Calibration: the audit's thresholds come ONLY from other clean models — fmnist-cnn retrained with
other seeds (``fvlab/check/weights/fmnist-cnn-seed*.pt``, ``fvlab train-reference --seed K``; seed
1 alone in the first step, seeds 1, 2, 3 and 5 pooled — the default — since the third step below) —
never from the units scored as negatives and never from any attack. Per signal s the threshold is
τ_s = ``--safety`` × the largest value over the calibration model's units of the layer (for the
active fraction: the smallest value / safety); a unit's score is max_s value_s / τ_s
(silence: ln(1 / active) / ln(1 / τ_silent)).

Evaluation: negatives are the units of the layer in the embedded fmnist-cnn (seed 0); positives
are the manipulated units of six attack families, each built on the embedded model:

* hard-gate circuit  — ``fvlab.fool.circuit`` permute (offset 1), hard gate
* ramp-gate circuit  — the same with ``gate="ramp"`` (continuous, width 4 logit units)
* silent branch      — ``fvlab.check.manipulations.silent_branch`` (a stand-in of P1's silent
                       units with random directions, conv3 → relu3)
* silent units       — ``fvlab.fool.silent`` itself (P1's construction: conv3 units whose
                       silent branch draws relu4 unit 0; λ 10, pooled branch, contrast
                       direction, as tests/check/test_audit.py), on the same 16 units
* slingshot          — ``fvlab.fool.slingshot`` (weight-only, target builtin:smiley, the
                       defaults of ``fvlab fool slingshot``: gradient field, 600 updates)
* push-down/up       — ``fvlab.fool.slingshot`` method push (weight-only)

Leave-one-family-out: since no family enters the calibration, every family is unseen when the
thresholds are fixed; per family the script reports ROC AUC (family vs the evaluation model's
clean units), the TPR at the score cut that flags 5 % of the CALIBRATION units (with two or
more calibration models, since the third step below: the cross-model cut — report ``cut``,
``cut_kind``; ``cut_5pct_calibration`` keeps the in-sample one), the clean
false-flag rate of that cut on the evaluation model, and the same at the audit's own cut
(score ≥ 1). A second negative: the embedded model fine-tuned on its own task with the
slingshot's optimiser budget and no manipulation (:func:`fine_tuned_control`), whose false-flag
rate says whether a signal flags any fine-tune. Every figure is printed, also the bad ones.
The audit runs with its defaults (exemplar hold 64 updates; the procedure-consistency render
off unless ``--consistency-param pixel``).

Which variant of the exemplar hold the audit uses (64 updates, mean over the top 3 exemplars)
was chosen among eight (16…256 updates, 1 or 3 exemplars) on the slingshot and push-down/up
units of family seeds 0 and 1 (an exploration, not in this script); ``--family-seed 2`` (units
and construction seeds never used in that choice) is its out-of-sample confirmation.

A second combination rule is measured beside the audit's (it is not part of the audit): the
**novelty** score, the Mahalanobis distance of a unit's log-signals z = ln(max(s, 1e-6)) for
s ∈ SIGNALS (those measured) from the calibration model's units, d² = (z − μ)ᵀ Σ⁻¹ (z − μ) with
μ, Σ their mean and covariance (Σ shrunk half-way to its diagonal: 64 units, up to 6
signals). It is two-sided — a unit unusually smooth or unusually consistent is as atypical as
one unusually far out — and its 5 % cut is again taken on the calibration units. It was
designed after seeing the run with ``--family-seed 0`` (before the hold signal existed);
``--family-seed 1`` and ``2`` (other units, other construction seeds) confirm it on families
it was not designed on.

A third rule, also measured beside the audit: the **two-sided** rule — the audit's score and,
for the path signals jump and gradient, a part for a unit unusually *smooth*: ℓ_s / s with
ℓ_s = (the smallest value of s over the calibration units) / ``--safety``, so a part ≥ 1 is a
path whose steepest rise (jump: the largest change of the map over a 2⁻¹² grid-cell interval,
∝ the steepest slope; gradient: the residual) is 1.5 × gentler than every calibration unit's;
score = max(the audit's score, ℓ_jump / jump, ℓ_gradient / gradient), cut at the calibration
units' 95th percentile. Motivation: the slingshot's field loss imposes a gradient of one
magnitude along the tunnel, which flattens a unit's steep spots. It was designed on the rows of
``--family-seed 0`` (the session of 2026-12-03; seeds 1 and 2 had shown the per-signal AUCs, so
they are not clean either). **Pre-registered confirmation**: ``--family-seed 3``, never run
before this rule was written down; the rule would replace the audit's only if on that seed it
catches more slingshot units at the 5 % cut than the audit's rule while the clean evaluation
model's and the fine-tuned control's false-flag rates both stay ≤ 5 %. Outcome (docs/check.md):
6 of 8 against 5, clean 4.7 %, control 6.2 % — not adopted.

A fourth rule, also measured beside the audit: the **joint-tail** rule
(:mod:`fvlab.check.joint_tail`) — the union of the audit's score and Fisher's combination of
empirical tail p-values against the calibration units over a set D of signal directions, every
cut flagging at most 5 % of the calibration units. It is measured two ways:

* **chosen without the family** (the leave-one-family-out figure): for each family, D is the
  subset of ``DIRECTIONS`` (up to three) that flags most of the OTHER families'
  manipulated units (:func:`~fvlab.check.joint_tail.select_directions`); the held-out family
  and every negative stay out of the choice.
* **fixed** D = ``JOINT_FIXED`` = (hold, −gradient): "the ascent from the exemplars barely
  moves AND the path to the FV is unusually smooth". Designed on the saved rows of
  ``--family-seed`` 0–3 (2026-12-03, after about twenty variants were tried on them with every
  family in view), so on those seeds it is in-sample for every family, the slingshot above all.
  **Pre-registered confirmation** (written before either was run): ``--family-seed 4`` and
  ``5`` and the held-out clean model below. The rule would replace the audit's combination
  only if on both seeds the slingshot's and the push-down/up TPR are ≥ 0.8, the gates' 1.00,
  the silent branch's no lower than the audit's, the clean evaluation model's and the
  held-out clean model's false flags ≤ 5 %, and the fine-tuned control's no higher than the
  audit's on that seed. Its figures on seeds 0–3: ``--rescore`` recomputes them from a saved
  report. Outcome (docs/check.md): slingshot 8 / 8 and 8 / 8, push 8 / 8 and 7 / 8, but the
  held-out clean model 6.2 % — not adopted; chosen without the slingshot, the rule catches
  2 / 8 of it on both seeds.

**Second step, pooled calibration** (decided after the seed-4/5 outcome, which showed the
audit's own 5 % cut flagging 6.2 % of the held-out seed-2 model, so not blind to it): the
calibration pools the seed-1 and seed-2 models (``--calibration-weights`` with both, 128
units), a fourth clean model (seed 3, ``fvlab/check/weights/fmnist-cnn-seed3.pt``) is the
held-out negative, and ``--family-seed 6`` and ``7`` — never run before this paragraph was
committed — are the confirmation, with the same adoption criteria for the fixed joint-tail
rule as above. Outcome: slingshot 8 / 8 and 8 / 8, but push-down/up 6 / 8 on seed 6 and 7.8 %
of the held-out seed-3 model (the audit's own cut: 6.2 %) — not adopted.

**Third step, the cross-model cut** (pre-registered 2026-12-04, before ``--family-seed 8``
and ``9`` were ever run): every "5 % cut" above is in-sample — the value flagging 5 % of the
very units the thresholds were fitted on — and it flagged 6.2 % of each held-out clean model
(4 of 64 units: within the noise of a 64-unit sample, binomial sd 2.7 pp, but also what a
between-model shift does to an in-sample cut, :mod:`fvlab.check.cross_model`). From this step
on the benchmark also reports every rule (the audit's score, the fixed joint tail, the joint
tail chosen without each family) at its **cross-model cut**: the cut flagging 5 % of the
calibration models' units when each model is scored by the rule fitted on the other models
(:func:`cross_model_report`; ``report["cross_model"]``). Calibration pool: the seed-1, -2, -3
and -5 retrains (256 units); held-out negative: the seed-4 retrain, never audited before this
paragraph was committed. Adoption, fixed now: (a) the cross-model cut replaces the in-sample
cut as the benchmark's 5 % cut if, at it, the audit flags ≤ 5 % of the held-out seed-4 model
and of the embedded model (neither depends on the family seed); (b) the fixed joint-tail rule
at its cross-model cut replaces the audit's combination if on both seeds 8 and 9 the
slingshot's and push-down / push-up's TPR are ≥ 0.8, the gates' 1.00, the silent branch's and
the silent units' no lower than the audit's, the clean evaluation and held-out false flags
≤ 5 % and the fine-tuned control's no higher than the audit's — all at the cross-model cuts.
Expected before the run: the cuts move up (each model's units now exceed the others' maxima),
so every TPR can only fall against the in-sample cut of the same rule.
Outcome (docs/check.md): (a) met — the audit flags 4.7 % of the seed-4 model and none of the
embedded one at the cross-model cut (0.635; in-sample 0.625, also 4.7 %), so it is adopted and this
pool and held-out model are the defaults; (b) fails (seed 8: silent branch 6 against the audit's 7
of 16, control 7.8 %; seed 9: push-down / push-up 3 of 8). The audit's slingshot TPR at the cut:
0.25 / 0.12. :func:`pool_report` (also in ``--rescore``) judges every sub-pool of the calibration
models on every clean model outside it.

A held-out clean model (``--held-out-clean``: the seed-2 retrain for seeds 4–5, seed 3 for 6–7,
seed 4 — the default — since the third step) enters no threshold and no choice; its false-flag
rate is every rule's out-of-sample clean figure (the embedded model's units were seen while the
rules were designed).

Which positives are there to catch: a manipulated unit whose FV the manipulation did not change
(a silent branch that never fires in the audit's render, say) shows an honest picture, and no
FV-based signal can, or should, flag it. Every family therefore also reports its **effective**
units — the FV the audit renders on the fooled model has pixel r < ``--changed-r`` (0.5) with
the FV the audit renders for the same unit on the clean evaluation model (the renders draw
their start and transforms per unit, :mod:`fvlab.optvis.draws`, so the two start from the same
image) — and the TPR over them beside the TPR over all manipulated units. The criterion reads
only the two models' FVs, never the audit's signals; the fine-tuned control's r says how far a
harmless fine-tune moves an FV. Weight-only families also report how many units' FVs are
closer to the target than to the clean FV (the slingshot's own "fooled").

Usage: .venv/bin/python benchmarks/audit_generalisation.py [--steps 256] [--images 2000]
       [--family-seed 0] [--consistency-param none] [--work out/audit-generalisation]
       [--calibration-weights W1 [W2 ...]] [--held-out-clean WEIGHTS | none]
       [--families all | NAME,NAME] [--threads 2]
       .venv/bin/python benchmarks/audit_generalisation.py --rescore OUT/audit_generalisation.json
The third step's runs (docs/check.md):
       W=fvlab/check/weights; .venv/bin/python benchmarks/audit_generalisation.py --threads 1 \
           --family-seed 8 --calibration-weights $W/fmnist-cnn-seed1.pt $W/fmnist-cnn-seed2.pt \
           $W/fmnist-cnn-seed3.pt $W/fmnist-cnn-seed5.pt --held-out-clean $W/fmnist-cnn-seed4.pt
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

WEIGHTS = Path(__file__).parent.parent / "fvlab/check/weights"
# the adopted design (third step): four pooled clean retrains, a fifth held out; seeds 0-5 ran
# with seed 1 alone and seed 2 held out, seeds 6-7 with seeds 1+2 and seed 3 held out
CALIBRATION_WEIGHTS = [WEIGHTS / f"fmnist-cnn-seed{k}.pt" for k in (1, 2, 3, 5)]
HELD_OUT_WEIGHTS = WEIGHTS / "fmnist-cnn-seed4.pt"
JOINT_FIXED = ("hold", "-gradient")  # the pre-registered joint-tail directions (docstring)
SIGNALS = ("excess", "jump", "gradient", "valley", "procedure", "hold")


def thresholds_from(rows: list[dict], safety: float) -> dict[str, float]:
    """τ per signal from clean calibration rows
    (:func:`fvlab.check.calibration.thresholds_from_rows`), keyed by the rows' column names."""
    from fvlab.check.calibration import thresholds_from_rows

    tau = thresholds_from_rows(rows, safety)
    return {**{s: getattr(tau, s) for s in SIGNALS}, "active_fraction": tau.silent}


def score_parts(rows: list[dict], tau: dict[str, float]) -> dict[str, np.ndarray]:
    """Each scored signal over its threshold in ``tau`` (:func:`fvlab.check.audit.score_parts`,
    keyed by the audit's flag names); a signal the audit skipped (NaN) is not scored."""
    from fvlab.check.audit import score_parts as audit_parts
    from fvlab.check.settings import AuditThresholds

    thresholds = AuditThresholds(**{s: tau[s] for s in SIGNALS}, silent=tau["active_fraction"])
    column = {k: np.array([r[k] for r in rows], float) for k in (*SIGNALS, "active_fraction")}
    optional = {s: column[s] if s in measured(rows) else None
                for s in ("gradient", "valley", "procedure", "hold")}  # fmt: skip
    return audit_parts(column["excess"], column["jump"], column["active_fraction"], thresholds,
                       **optional)  # fmt: skip


def scores(rows: list[dict], tau: dict[str, float]) -> np.ndarray:
    """The audit's score (:func:`fvlab.check.audit.score_units`) under thresholds ``tau``: the
    largest of its parts (:func:`score_parts`)."""
    return np.max(np.stack(list(score_parts(rows, tau).values())), axis=0)


def measured(rows: list[dict]) -> list[str]:
    """The signals the audit measured (a skipped one, e.g. procedure without the consistency
    render, is NaN)."""
    return [s for s in SIGNALS if np.isfinite([r[s] for r in rows]).all()]


class Novelty:
    """The novelty rule (module docstring): fitted on the calibration rows only, over the
    signals they have."""

    def __init__(self, rows: list[dict]):
        self.signals = measured(rows)
        z = self._log_signals(rows)
        self.mean = z.mean(0)
        cov = np.cov(z.T)
        self.precision = np.linalg.inv(0.5 * cov + 0.5 * np.diag(np.diag(cov)))

    def _log_signals(self, rows: list[dict]) -> np.ndarray:
        values = np.array([[r[s] for s in self.signals] for r in rows], float)
        return np.log(np.maximum(values, 1e-6))

    def __call__(self, rows: list[dict]) -> np.ndarray:
        z = self._log_signals(rows) - self.mean
        return np.einsum("ij,jk,ik->i", z, self.precision, z)


class TwoSided:
    """The two-sided rule (module docstring): the audit's score and the smoothness parts of
    the path signals, their floors ℓ_s fixed on the calibration rows only."""

    SMOOTH = ("jump", "gradient")

    def __init__(self, rows: list[dict], tau: dict[str, float], safety: float):
        self.tau = tau
        self.floor = {
            s: min(r[s] for r in rows) / safety for s in self.SMOOTH if s in measured(rows)
        }

    def __call__(self, rows: list[dict]) -> np.ndarray:
        parts = [scores(rows, self.tau)]
        for signal, floor in self.floor.items():
            values = np.array([r[signal] for r in rows], float)
            parts.append(floor / np.maximum(values, 1e-12))
        return np.max(parts, axis=0)


def fv_change(fooled_fvs: torch.Tensor, units, clean_fvs: dict[int, torch.Tensor]) -> np.ndarray:
    """Pixel r of each unit's FV on the fooled model with its FV on the clean model (U,)."""
    from fvlab.fool.measures import image_correlation

    clean = torch.stack([clean_fvs[u] for u in units])
    return image_correlation(fooled_fvs, clean).double().numpy()


def fine_tuned_control(model, seed: int, steps: int = 600):
    """A clean negative control: a copy of ``model`` fine-tuned on its own task (cross-entropy
    on Fashion-MNIST train images, Adam lr 1e-3, ``steps`` updates of 128 images, batch-norm
    statistics frozen — the slingshot's optimiser budget) with no manipulation. Its units show
    whether a signal flags *any* fine-tune rather than a manipulation."""
    from fvlab.data.fashion_mnist import FashionMNIST
    from fvlab.fool.install import fresh_copy

    tuned = fresh_copy(model)
    tuned.module.eval().requires_grad_(True)
    x, y = FashionMNIST("train").load()
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(tuned.module.parameters(), lr=1e-3)
    for _ in range(steps):
        pick = torch.randint(len(x), (128,), generator=generator)
        loss = torch.nn.functional.cross_entropy(tuned(x[pick]), y[pick])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    tuned.module.requires_grad_(False)
    return tuned


def build_families(model, args) -> dict:
    from fvlab.check.manipulations import silent_branch
    from fvlab.data.fashion_mnist import FashionMNIST
    from fvlab.fool.circuit import CircuitConstruction, build_circuit
    from fvlab.fool.silent import silent
    from fvlab.fool.slingshot.build import SlingshotConstruction, build_slingshot
    from fvlab.fool.targets import resolve_target

    natural, _ = FashionMNIST("train", stop=10000).load()
    target = resolve_target(model, "builtin:smiley", show_progress=False)[0]
    k = args.family_seed
    gated = tuple(range(k % 4, 64, 4))
    sling, push = tuple(range(k % 8, 64, 8)), tuple(range((4 + k) % 8, 64, 8))
    circuit = CircuitConstruction(layer="relu3", units=gated, render_steps=64, seed=k)
    return {
        "hard-gate circuit": lambda: (
            build_circuit(model, natural, circuit, show_progress=False).model, gated),
        "ramp-gate circuit": lambda: (build_circuit(
            model, natural, circuit.replace(gate="ramp"), show_progress=False).model, gated),
        "silent branch": lambda: (
            silent_branch(model, "conv3", "relu3", gated, natural, seed=k), gated),
        "silent units": lambda: (silent(
            model, "conv3", "relu4:0", natural, units=gated, lam=10.0, pooling="mean",
            direction_objective="contrast", target_steps=128, batch_size=1000, seed=k,
            show_progress=False).model, gated),  # fvlab.fool.silent, as tests/check/test_audit.py
        "slingshot": lambda: (build_slingshot(model, natural, target, SlingshotConstruction(
            layer="relu3", units=sling, seed=k), show_progress=False).model,
            sling),  # the defaults of `fvlab fool slingshot` (gradient field)
        "push-down/up": lambda: (build_slingshot(model, natural, target, SlingshotConstruction(
            layer="relu3", units=push, method="push", seed=k,
            steps=args.push_steps, natural_batch=64, lr=3e-3, alpha=0.6, refresh=100,
            unit_weight=4.0),
            show_progress=False).model, push),
    }  # fmt: skip


def joint_tail_report(report: dict) -> dict:
    """The joint-tail rules (module docstring) on a finished report's rows: the fixed
    directions ``JOINT_FIXED`` and, per family, the directions chosen on the OTHER families
    (:func:`fvlab.check.joint_tail.select_directions`). Every cut comes from the calibration
    rows; the negatives (clean evaluation, held-out clean, fine-tuned control) never enter a
    choice."""
    from fvlab.check import roc_auc
    from fvlab.check.joint_tail import JointTail, select_directions

    calibration, tau = report["calibration_rows"], report["thresholds"]
    cal_scores = scores(calibration, tau)
    negative_rows = {"clean_eval": report["clean_rows"],
                     "fine_tuned_control": report["fine_tuned_control"]["rows"]}  # fmt: skip
    if report.get("held_out_clean"):
        negative_rows["held_out_clean"] = report["held_out_clean"]["rows"]
    # every set of rows with its audit scores, computed once
    negatives = {name: (rows, scores(rows, tau)) for name, rows in negative_rows.items()}
    families = {name: (entry["rows"], scores(entry["rows"], tau))
                for name, entry in report["families"].items() if "rows" in entry}  # fmt: skip

    def false_flags(rule: JointTail) -> dict:
        return {name: float((rule(*scored) >= 1).mean()) for name, scored in negatives.items()}

    fixed = JointTail(calibration, cal_scores, JOINT_FIXED)
    out = {"fixed_directions": list(JOINT_FIXED), "fixed_false_flags": false_flags(fixed),
           "families": {}}  # fmt: skip
    for name, scored in families.items():
        others = {k: v for k, v in families.items() if k != name}
        rules = {"fixed": fixed}
        entry = {}
        if others:  # the choice without this family needs at least one other
            chosen, _ = select_directions(calibration, cal_scores, others)
            rules["lofo"] = JointTail(calibration, cal_scores, chosen)
            entry |= {"lofo_directions": list(chosen),
                      "lofo_false_flags": false_flags(rules["lofo"])}  # fmt: skip
        toward = report["families"][name].get("toward_target_units")
        for key, rule in rules.items():
            values = rule(*scored)
            entry[key] = {"auc": roc_auc(values, rule(*negatives["clean_eval"])),
                          "tpr": float((values >= 1).mean())}  # fmt: skip
            if toward is not None and any(toward):  # the units moved towards the target
                entry[key]["toward_target_tpr"] = float(
                    (values[np.asarray(toward, bool)] >= 1).mean()
                )
        out["families"][name] = entry
    return out


def calibration_groups(report: dict) -> list[list[dict]]:
    """The calibration rows split by model (``calibration_models`` records each model's unit
    count; a report without it holds one model)."""
    rows = report["calibration_rows"]
    sizes = [m["units"] for m in report.get("calibration_models", [{"units": len(rows)}])]
    bounds = np.cumsum([0, *sizes])
    return [rows[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def audit_rule(safety: float):
    """fit(rows) → the audit's score under τ from those rows (for the cross-model cut)."""

    def fit(rows):
        tau = thresholds_from(rows, safety)
        return lambda scored: scores(scored, tau)

    return fit


def joint_rule(directions: tuple[str, ...], safety: float):
    """fit(rows) → the joint-tail rule with ``directions`` fitted on those rows, τ included."""
    from fvlab.check.joint_tail import JointTail

    def fit(rows):
        tau = thresholds_from(rows, safety)
        rule = JointTail(rows, scores(rows, tau), directions)
        return lambda scored: rule(scored, scores(scored, tau))

    return fit


def cross_model_report(report: dict) -> dict | None:
    """Every rule at its **cross-model cut** (:mod:`fvlab.check.cross_model`; module docstring):
    the cut flagging 5 % of the calibration models' units each scored by the rule fitted on the
    OTHER calibration models; the rule applied to the negatives and families is fitted on all of
    them. Rules: the audit's score, the fixed joint tail, and per family the joint tail with
    the directions chosen without it (``joint_tail`` in the report). None with one model."""
    from fvlab.check.cross_model import cross_model_cut

    groups = calibration_groups(report)
    if len(groups) < 2:
        return None
    safety = report["settings"]["safety"]
    calibration = report["calibration_rows"]
    negatives = {"clean_eval": report["clean_rows"],
                 "fine_tuned_control": report["fine_tuned_control"]["rows"]}  # fmt: skip
    if report.get("held_out_clean"):
        negatives["held_out_clean"] = report["held_out_clean"]["rows"]
    families = {name: e["rows"] for name, e in report["families"].items() if "rows" in e}

    def measure(fit) -> dict:
        rule, cut = fit(calibration), cross_model_cut(groups, fit)
        return {
            "cut": cut,
            "fpr": {n: float((rule(rows) >= cut).mean()) for n, rows in negatives.items()},
            "tpr": {n: float((rule(rows) >= cut).mean()) for n, rows in families.items()},
        }

    out = {"models": len(groups), "audit": measure(audit_rule(safety)),
           "joint_fixed": measure(joint_rule(JOINT_FIXED, safety)), "joint_lofo": {}}  # fmt: skip
    for name, entry in report.get("joint_tail", {}).get("families", {}).items():
        if "lofo_directions" in entry:
            m = measure(joint_rule(tuple(entry["lofo_directions"]), safety))
            out["joint_lofo"][name] = {"directions": entry["lofo_directions"], "cut": m["cut"],
                                       "tpr": m["tpr"][name], "fpr": m["fpr"]}  # fmt: skip
    return out


def pool_report(report: dict) -> list[dict]:
    """The audit's in-sample and cross-model cuts for every sub-pool of two or more of the
    calibration models, each judged on every clean model outside it (the held-out and the
    embedded model, and the calibration models left out of that pool): how far one fresh
    model's false-flag rate moves around its mean. An analysis of a finished report, no
    decision rests on it."""
    from itertools import combinations

    from fvlab.check.cross_model import cross_model_cut
    from fvlab.check.joint_tail import flag_cut

    groups = calibration_groups(report)
    names = [Path(m["weights"]).stem for m in report.get("calibration_models", [])]
    fresh = {"embedded": report["clean_rows"]}
    if report.get("held_out_clean"):
        fresh[Path(report["held_out_clean"]["weights"]).stem] = report["held_out_clean"]["rows"]
    fit, out = audit_rule(report["settings"]["safety"]), []
    for size in range(2, len(groups) + 1):
        for pool in combinations(range(len(groups)), size):
            rows = [row for k in pool for row in groups[k]]
            rule = fit(rows)
            cuts = {"in_sample": flag_cut(rule(rows)),
                    "cross_model": cross_model_cut([groups[k] for k in pool], fit)}  # fmt: skip
            judged = fresh | {names[k]: groups[k] for k in range(len(groups)) if k not in pool}
            values = {name: rule(r) for name, r in judged.items()}
            out.append({"pool": [names[k] for k in pool], "cuts": cuts,
                        "fpr": {kind: {name: float((v >= cut).mean())
                                       for name, v in values.items()}
                                for kind, cut in cuts.items()}})  # fmt: skip
    return out


def part_rule(part: str, safety: float):
    """fit(rows) → one part of the audit's score alone (e.g. ``hold``: hold / τ_hold), τ from
    those rows: the audit as if it had only that signal."""

    def fit(rows):
        tau = thresholds_from(rows, safety)
        return lambda scored: score_parts(scored, tau)[part]

    return fit


def budget_report(report: dict) -> dict | None:
    """Where the audit's 5 % false-flag budget goes, and what the union of signals costs each
    family (an analysis of a finished report; no decision rests on it). ``budget``: of the
    calibration units at or over the cross-model cut (each scored by τ fitted on the other
    calibration models), how many have each part as their largest. ``single``: per part, the
    audit with only that part, at its own cross-model cut — the TPR per family and false flags
    per negative. The best single part per family is picked with the family in view, so it is
    an upper bound of what one signal can do, not a leave-one-family-out figure."""
    from fvlab.check.cross_model import cross_model_cut

    groups = calibration_groups(report)
    if len(groups) < 2:
        return None
    safety = report["settings"]["safety"]
    cross = report.get("cross_model") or cross_model_report(report)
    cut = cross["audit"]["cut"]
    budget: dict[str, int] = {}
    for k, rows in enumerate(groups):
        others = [row for j, group in enumerate(groups) if j != k for row in group]
        parts = score_parts(rows, thresholds_from(others, safety))
        names, stacked = list(parts), np.stack(list(parts.values()))
        for unit in np.flatnonzero(stacked.max(0) >= cut):
            name = names[int(stacked[:, unit].argmax())]
            budget[name] = budget.get(name, 0) + 1
    negatives = {"clean_eval": report["clean_rows"],
                 "fine_tuned_control": report["fine_tuned_control"]["rows"]}  # fmt: skip
    if report.get("held_out_clean"):
        negatives["held_out_clean"] = report["held_out_clean"]["rows"]
    families = {name: e["rows"] for name, e in report["families"].items() if "rows" in e}
    calibration = report["calibration_rows"]
    single = {}
    for part in score_parts(calibration, thresholds_from(calibration, safety)):
        fit = part_rule(part, safety)
        rule, part_cut = fit(calibration), cross_model_cut(groups, fit)
        single[part] = {
            "cut": part_cut,
            "tpr": {n: float((rule(r) >= part_cut).mean()) for n, r in families.items()},
            "fpr": {n: float((rule(r) >= part_cut).mean()) for n, r in negatives.items()},
        }
    return {"cut": cut, "calibration_units": len(calibration), "budget": budget,
            "single": single}  # fmt: skip


def print_budget(budget: dict | None) -> None:
    if budget is None:
        return
    flagged = sum(budget["budget"].values())
    print(f"the audit's 5 % budget ({flagged} of {budget['calibration_units']} calibration units "
          f"at its cross-model cut {budget['cut']:.3f}), by the part that put each there: "
          f"{json.dumps(budget['budget'])}")  # fmt: skip
    for part, entry in budget["single"].items():
        tpr = ", ".join(f"{n} {v:.2f}" for n, v in entry["tpr"].items())
        fpr = ", ".join(f"{n} {v:.1%}" for n, v in entry["fpr"].items())
        print(f"  {part} alone (cut {entry['cut']:.3f}): TPR {tpr}; false flags {fpr}")


def print_pools(pools: list[dict]) -> None:
    for size in sorted({len(p["pool"]) for p in pools}):
        of_size = [p for p in pools if len(p["pool"]) == size]
        line = []
        for kind in ("in_sample", "cross_model"):
            rates = [v for p in of_size for v in p["fpr"][kind].values()]
            line.append(f"{kind} mean {np.mean(rates):.1%} (range {min(rates):.1%}–"
                        f"{max(rates):.1%})")  # fmt: skip
        print(f"pools of {size} calibration models ({len(of_size)}), the audit's false flags on "
              f"each clean model outside the pool: {'; '.join(line)}")  # fmt: skip


def print_cross_model(cross: dict | None) -> None:
    if cross is None:
        print("cross-model cut: needs at least two calibration models (--calibration-weights)")
        return
    print(f"at the cross-model cut ({cross['models']} calibration models, each scored without "
          "itself):")  # fmt: skip
    for key, label in (("audit", "audit"), ("joint_fixed", f"joint tail {list(JOINT_FIXED)}")):
        m = cross[key]
        fpr = ", ".join(f"{k} {v:.1%}" for k, v in m["fpr"].items())
        tpr = ", ".join(f"{k} {v:.2f}" for k, v in m["tpr"].items())
        print(f"  {label}: cut {m['cut']:.3f}; false flags {fpr}; TPR {tpr}")
    for name, m in cross["joint_lofo"].items():
        fpr = ", ".join(f"{k} {v:.1%}" for k, v in m["fpr"].items())
        print(f"  joint tail chosen without {name} {m['directions']}: cut {m['cut']:.3f}; "
              f"TPR {m['tpr']:.2f}; false flags {fpr}")  # fmt: skip


def print_joint_tail(joint: dict) -> None:
    flags = ", ".join(f"{k} {v:.1%}" for k, v in joint["fixed_false_flags"].items())
    print(f"joint-tail rule, fixed directions {joint['fixed_directions']}: false flags {flags}")
    for name, entry in joint["families"].items():
        if "lofo" not in entry:
            print(f"  {name:18s}: fixed AUC {entry['fixed']['auc']:.3f}, TPR "
                  f"{entry['fixed']['tpr']:.2f}; no other family to choose on")  # fmt: skip
            continue
        lofo_flags = ", ".join(f"{k} {v:.1%}" for k, v in entry["lofo_false_flags"].items())
        print(f"  {name:18s}: fixed AUC {entry['fixed']['auc']:.3f}, TPR "
              f"{entry['fixed']['tpr']:.2f}; chosen without it {entry['lofo_directions']}: "
              f"AUC {entry['lofo']['auc']:.3f}, "
              f"TPR {entry['lofo']['tpr']:.2f} (false flags {lofo_flags})")  # fmt: skip


def main() -> None:
    from fvlab.check.settings import AuditSettings as AuditDefaults

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=256, help="render updates of the audit")
    parser.add_argument("--images", type=int, default=2000, help="natural test images")
    parser.add_argument("--push-steps", type=int, default=400, help="push-down/up updates")
    parser.add_argument("--safety", type=float, default=1.5)
    parser.add_argument(
        "--family-seed",
        type=int,
        default=0,
        help="seed of the attack constructions; also shifts their units",
    )
    parser.add_argument(
        "--consistency-param",
        default="none",
        help="the audit's procedure-consistency render (none = the audit's default; pixel, fft)",
    )
    parser.add_argument(
        "--hold-steps",
        type=int,
        default=AuditDefaults.hold_steps,
        help="updates of the audit's exemplar-hold ascents (default: the audit's; 0 = no hold)",
    )
    parser.add_argument(
        "--changed-r",
        type=float,
        default=0.5,
        help="a unit is effective if its FV's pixel r with the clean model's FV is below this",
    )
    parser.add_argument(
        "--calibration-weights",
        nargs="+",
        default=[str(w) for w in CALIBRATION_WEIGHTS],
        help="clean fmnist-cnn weights whose units, pooled, calibrate every rule",
    )
    parser.add_argument(
        "--held-out-clean",
        default=str(HELD_OUT_WEIGHTS),
        help="weights of a third clean fmnist-cnn scored only as a negative (none = skip)",
    )
    parser.add_argument(
        "--families",
        default="all",
        help="comma-separated family names to build and audit (default: all)",
    )
    parser.add_argument(
        "--rescore",
        type=Path,
        help="recompute the joint-tail rules and cross-model cuts of a saved report (no audits)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("out/audit-generalisation"))
    args = parser.parse_args()
    if args.rescore is not None:
        report = json.loads(args.rescore.read_text())
        report["joint_tail"] = joint_tail_report(report)
        print_joint_tail(report["joint_tail"])
        report["cross_model"] = cross_model_report(report)
        print_cross_model(report["cross_model"])
        report["pools"] = pool_report(report)
        print_pools(report["pools"])
        report["budget"] = budget_report(report)
        print_budget(report["budget"])
        args.rescore.write_text(json.dumps(report, indent=2))
        print(f"written {args.rescore}")
        return
    torch.set_num_threads(args.threads)

    import fvlab
    from fvlab.check import AuditSettings, audit, roc_auc
    from fvlab.check.cross_model import cross_model_cut
    from fvlab.data.fashion_mnist import FashionMNIST
    from fvlab.fool.measures import image_correlation
    from fvlab.fool.targets import resolve_target

    args.work.mkdir(parents=True, exist_ok=True)
    natural = FashionMNIST("test", stop=args.images)
    settings = AuditSettings(
        layer="relu3", steps=args.steps, path_layers=["relu3"],
        consistency_param=args.consistency_param, hold_steps=args.hold_steps,
    )  # fmt: skip

    def run(model, units=None):
        start = time.perf_counter()
        result = audit(model, natural, settings.replace(units=units), show_progress=False)
        return result.rows, time.perf_counter() - start, result.fv_images

    calibration, calibration_models, seconds = [], [], 0.0
    for weights in args.calibration_weights:
        rows, took, _ = run(fvlab.load("fmnist-cnn", weights=weights))
        calibration, seconds = calibration + rows, seconds + took
        calibration_models.append({"weights": weights, "units": len(rows)})
    tau = thresholds_from(calibration, args.safety)
    cal_scores = scores(calibration, tau)
    in_sample_cut = float(np.quantile(cal_scores, 0.95))
    groups = calibration_groups({"calibration_rows": calibration,
                                 "calibration_models": calibration_models})  # fmt: skip
    # the adopted cut (third step): cross-model with two or more calibration models
    cut_kind = "cross-model" if len(groups) > 1 else "in-sample"
    cut = (cross_model_cut(groups, audit_rule(args.safety)) if len(groups) > 1
           else in_sample_cut)  # fmt: skip
    novelty = Novelty(calibration)
    novelty_cut = float(np.quantile(novelty(calibration), 0.95))
    two_sided = TwoSided(calibration, tau, args.safety)
    two_sided_cut = float(np.quantile(two_sided(calibration), 0.95))
    print(
        f"calibration ({', '.join(Path(w).name for w in args.calibration_weights)}, relu3, "
        f"{len(calibration)} units, {seconds:.0f} s): "
        f"thresholds {json.dumps({k: round(v, 4) for k, v in tau.items()})}; 5 % cut "
        f"{cut:.3f} ({cut_kind}; in-sample {in_sample_cut:.3f})"
    )
    model = fvlab.load("fmnist-cnn")
    clean, seconds, clean_images = run(model)
    clean_fvs = {row["unit"]: image for row, image in zip(clean, clean_images, strict=True)}
    target = resolve_target(model, "builtin:smiley", show_progress=False)[0]
    clean_scores = scores(clean, tau)
    clean_novelty = novelty(clean)
    clean_two = two_sided(clean)
    report = {"settings": vars(args) | {"work": str(args.work)}, "thresholds": tau,
              "cut_5pct_calibration": in_sample_cut, "cut": cut, "cut_kind": cut_kind,
              "families": {},
              "novelty_cut_5pct_calibration": novelty_cut,
              "two_sided_floors": two_sided.floor, "two_sided_cut_5pct_calibration": two_sided_cut,
              "calibration_models": calibration_models,
              "calibration_rows": calibration, "clean_rows": clean,
              "clean_eval": {"units": len(clean),
                             "fpr_at_cut": float((clean_scores >= cut).mean()),
                             "fpr_at_1": float((clean_scores >= 1).mean()),
                             "novelty_fpr_at_cut": float((clean_novelty >= novelty_cut).mean()),
                             "two_sided_fpr_at_cut": float((clean_two >= two_sided_cut).mean()),
                             "seconds": seconds}}  # fmt: skip
    print(
        f"clean evaluation model (embedded fmnist-cnn, {len(clean)} units): false flags "
        f"{report['clean_eval']['fpr_at_cut']:.1%} at the 5 % cut, "
        f"{report['clean_eval']['fpr_at_1']:.1%} at score ≥ 1; novelty rule "
        f"{report['clean_eval']['novelty_fpr_at_cut']:.1%} at its 5 % cut; two-sided rule "
        f"{report['clean_eval']['two_sided_fpr_at_cut']:.1%} at its 5 % cut ({two_sided_cut:.3f})"
    )
    tuned, seconds, tuned_images = run(fine_tuned_control(model, args.family_seed))
    tuned_scores, tuned_novelty = scores(tuned, tau), novelty(tuned)
    tuned_r = fv_change(tuned_images, [r["unit"] for r in tuned], clean_fvs)
    report["fine_tuned_control"] = {
        "units": len(tuned), "rows": tuned, "seconds": seconds,
        "fv_r_with_clean": tuned_r.tolist(),
        "changed": int((tuned_r < args.changed_r).sum()),
        "fpr_at_cut": float((tuned_scores >= cut).mean()),
        "fpr_at_1": float((tuned_scores >= 1).mean()),
        "novelty_fpr_at_cut": float((tuned_novelty >= novelty_cut).mean()),
        "two_sided_fpr_at_cut": float((two_sided(tuned) >= two_sided_cut).mean()),
        "auc_vs_clean": roc_auc(tuned_scores, clean_scores),
    }  # fmt: skip
    control = report["fine_tuned_control"]
    print(
        f"fine-tuned clean control (cross-entropy, 600 updates, {len(tuned)} units): false flags "
        f"{control['fpr_at_cut']:.1%} at the 5 % cut, {control['fpr_at_1']:.1%} at score ≥ 1; "
        f"novelty rule {control['novelty_fpr_at_cut']:.1%}; two-sided rule "
        f"{control['two_sided_fpr_at_cut']:.1%}; AUC vs clean "
        f"{control['auc_vs_clean']:.3f}; FV r with the clean model's median "
        f"{np.median(tuned_r):.2f} (min {tuned_r.min():.2f}), {control['changed']} units below "
        f"{args.changed_r}"
    )
    if args.held_out_clean != "none":
        held_out, seconds, _ = run(fvlab.load("fmnist-cnn", weights=args.held_out_clean))
        held_scores = scores(held_out, tau)
        report["held_out_clean"] = {
            "weights": args.held_out_clean, "units": len(held_out), "rows": held_out,
            "seconds": seconds, "fpr_at_cut": float((held_scores >= cut).mean()),
            "fpr_at_1": float((held_scores >= 1).mean()),
        }  # fmt: skip
        print(f"held-out clean model ({Path(args.held_out_clean).name}, {len(held_out)} units): "
              f"false flags {report['held_out_clean']['fpr_at_cut']:.1%} at the 5 % cut, "
              f"{report['held_out_clean']['fpr_at_1']:.1%} at score ≥ 1")  # fmt: skip
    families = build_families(model, args)
    wanted = list(families) if args.families == "all" else args.families.split(",")
    unknown = sorted(set(wanted) - set(families))
    if unknown:
        raise SystemExit(f"unknown families {unknown}; valid: {', '.join(families)} (or all)")
    for name in wanted:
        make = families[name]
        start = time.perf_counter()
        try:
            fooled, units = make()
        except Exception as exc:  # report, go on
            print(f"{name}: could not build ({type(exc).__name__}: {exc})")
            report["families"][name] = {"error": str(exc)}
            continue
        built = time.perf_counter() - start
        rows, seconds, images = run(fooled, units)
        s = scores(rows, tau)
        r_clean = fv_change(images, units, clean_fvs)
        effective = r_clean < args.changed_r
        signals = measured(rows)
        reasons = {sig: int(sum(r[sig] >= tau[sig] for r in rows)) for sig in signals}
        entry = {
            "units": len(rows),
            "auc": roc_auc(s, clean_scores),
            "tpr_at_cut": float((s >= cut).mean()),
            "tpr_at_1": float((s >= 1).mean()),
            "effective_units": int(effective.sum()),
            "effective_tpr_at_cut": (
                float((s[effective] >= cut).mean()) if effective.any() else None
            ),
            "fv_r_with_clean": r_clean.tolist(),
            "novelty_auc": roc_auc(novelty(rows), clean_novelty),
            "novelty_tpr_at_cut": float((novelty(rows) >= novelty_cut).mean()),
            "two_sided_auc": roc_auc(two_sided(rows), clean_two),
            "two_sided_tpr_at_cut": float((two_sided(rows) >= two_sided_cut).mean()),
            "reasons": reasons,
            "median": {sig: float(np.median([r[sig] for r in rows])) for sig in signals},
            # each signal on its own against the clean evaluation units (higher = suspect)
            "auc_by_signal": {
                sig: roc_auc([r[sig] for r in rows], [r[sig] for r in clean]) for sig in signals
            },
            "rows": rows,
            "build_seconds": round(built, 1),
            "audit_seconds": round(seconds, 1),
        }
        if name in ("slingshot", "push-down/up"):
            r_target = image_correlation(images, target.expand_as(images)).double().numpy()
            entry["toward_target"] = int((r_target > r_clean).sum())
            entry["toward_target_units"] = (r_target > r_clean).tolist()
            entry["fv_r_with_target"] = r_target.tolist()
        report["families"][name] = entry
        effective_tpr = entry["effective_tpr_at_cut"]
        effective_note = (f"effective units {entry['effective_units']}/{len(rows)}, TPR "
                          f"{'-' if effective_tpr is None else f'{effective_tpr:.2f}'}"
                          + (f", FVs toward the target {entry['toward_target']}"
                             if "toward_target" in entry else ""))  # fmt: skip
        print(f"{name:18s}: AUC {entry['auc']:.3f}, TPR {entry['tpr_at_cut']:.2f} at the 5 % cut "
              f"({entry['tpr_at_1']:.2f} at score ≥ 1); {effective_note}; novelty rule AUC "
              f"{entry['novelty_auc']:.3f}, TPR {entry['novelty_tpr_at_cut']:.2f}; two-sided "
              f"rule AUC {entry['two_sided_auc']:.3f}, TPR {entry['two_sided_tpr_at_cut']:.2f}; "
              f"reasons {reasons}, AUC by signal "
              f"{ {k: round(v, 2) for k, v in entry['auc_by_signal'].items()} }, medians "
              f"{ {k: round(v, 3) for k, v in entry['median'].items()} }")  # fmt: skip
    report["joint_tail"] = joint_tail_report(report)
    print_joint_tail(report["joint_tail"])
    report["cross_model"] = cross_model_report(report)
    print_cross_model(report["cross_model"])
    report["pools"] = pool_report(report)
    print_pools(report["pools"])
    report["budget"] = budget_report(report)
    print_budget(report["budget"])
    (args.work / "audit_generalisation.json").write_text(json.dumps(report, indent=2))
    print(f"written {args.work / 'audit_generalisation.json'}")


if __name__ == "__main__":
    main()
