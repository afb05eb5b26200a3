"""Per-participant trial lists for the causal-understanding task.

A participant sees ``n_practice`` practice trials (with feedback), then ``n_main`` main trials
and ``n_catch`` catch trials interleaved in random order, all in one between-subject condition
(which reference images are shown). In every trial the two occluded copies of the query are
shown left and right; the side of the correct one (``occluded_max``: the unit responds more to
it) is balanced within each block: ⌊n/2⌋ or ⌈n/2⌉ trials have it on the left, in random order.

Two generators, as P2 matched its conditions:

* the **design** (which units and image sets) comes from ``default_rng([seed, slot])``, with
  ``slot`` the participant's number *within their condition* — so the k-th participant of
  every condition sees the same image sets (P2: the image set is the task index mod 10, the
  same across conditions). Units are used evenly: a block of n trials over k units shows each
  unit ⌊n/k⌋ or ⌈n/k⌉ times, and a unit's image sets are drawn without replacement (cycling
  when a unit has too few);
* the **sides and the order** come from ``default_rng([seed, participant_number, entropy])``,
  where the server draws ``entropy`` (128 bits) from the operating system for every
  participant and stores it: nobody who knows the seed and the code can predict the sides.

Catch trials of the no-reference condition (``none``) are made as P2 made them: there are no
references to check the answer against, so the wrong image is an occluded image of an
UNRELATED unit (``occluded_min`` of a main unit's image set this participant does not see, so
no image of theirs appears twice), while the correct one is the query occluded; the trial
looks like any other.

Practice trials (which show their answer) never use an image set the participant also sees
in a scored trial (when the practice falls back to catch units). Trial ids are
``<participant id>-t<position>`` (``-p<k>`` for practice): they name the participant and the
presentation position, nothing about the kind.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fvlab.errors import CorruptFileError, FvlabError
from fvlab.study.settings import TrialConfig

SIDES = ("left", "right")
# Six buttons "3 2 1 | 1 2 3": index 0..2 choose the left image with confidence 3, 2, 1;
# index 3..5 choose the right image with confidence 1, 2, 3.
N_BUTTONS = 6


def decode_response(button: int) -> tuple[str, int]:
    """Button index 0..5 → (chosen side, confidence 1..3)."""
    if not 0 <= button < N_BUTTONS:
        raise FvlabError(f"response button must be 0..5 ('3 2 1 | 1 2 3'), got {button}")
    return ("left", 3 - button) if button < 3 else ("right", button - 2)


def encode_response(side: str, confidence: int) -> int:
    """(side, confidence 1..3) → button index 0..5 (inverse of :func:`decode_response`)."""
    if side not in SIDES or confidence not in (1, 2, 3):
        raise FvlabError(f"need side left/right and confidence 1..3, got {side!r}, {confidence!r}")
    return 3 - confidence if side == "left" else confidence + 2


@dataclass
class Trial:
    """One trial as the server stores it. Paths are relative to the study directory."""

    trial_id: str
    kind: str
    position: int  # presentation order within its block (practice, or main + catch)
    unit_id: str
    layer: str
    set_id: str
    condition: str
    references: list[str]
    query: str
    left: str
    right: str
    correct_side: str
    activation: dict[str, float] = field(default_factory=dict)
    foil_set_id: str | None = None  # none-condition catch trials: where the wrong image is from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Trial:
        return Trial(**data)


def _units_of(manifest: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return sorted((u for u in manifest["units"] if u["kind"] == kind), key=lambda u: u["unit_id"])


def _draw_sets(
    units: list[dict[str, Any]], n: int, rng: np.random.Generator, avoid: set[str] = frozenset()
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """n (unit, image set) pairs: units as evenly as possible, sets without replacement, sets
    in ``avoid`` only when a unit has no others."""
    order: list[int] = []
    while len(order) < n:
        order.extend(rng.permutation(len(units)).tolist())
    order = order[:n]
    pools: dict[int, list[int]] = {}
    picks = []
    for u in order:
        if not pools.get(u):
            sets = units[u]["image_sets"]
            allowed = [i for i, s in enumerate(sets) if s["set_id"] not in avoid]
            pools[u] = [allowed[i] for i in rng.permutation(len(allowed))] or rng.permutation(
                len(sets)
            ).tolist()
        picks.append((units[u], units[u]["image_sets"][pools[u].pop()]))
    return picks


def _balanced_sides(n: int, rng: np.random.Generator) -> list[str]:
    """n correct sides, half left and half right (the odd one random), shuffled."""
    sides = ["left"] * (n // 2) + ["right"] * (n // 2)
    if n % 2:
        sides.append(SIDES[int(rng.integers(2))])
    return [sides[i] for i in rng.permutation(n)]


def _block(
    picks: list[tuple[dict[str, Any], dict[str, Any]]],
    kind: str,
    condition: str,
    sides: list[str],
) -> list[Trial]:
    trials = []
    for k, ((unit, image_set), side) in enumerate(zip(picks, sides, strict=True)):
        refs = image_set["references"].get(condition)
        if refs is None:
            raise CorruptFileError(
                f"image set {image_set['set_id']} has no references for condition {condition!r}"
            )
        correct, wrong = image_set["occluded_max"], image_set["occluded_min"]
        left, right = (correct, wrong) if side == "left" else (wrong, correct)
        trials.append(
            Trial(
                trial_id="",
                kind=kind,
                position=k,
                unit_id=unit["unit_id"],
                layer=str(unit.get("layer", "")),
                set_id=image_set["set_id"],
                condition=condition,
                references=list(refs),
                query=image_set["query"],
                left=left,
                right=right,
                correct_side=side,
                activation=dict(image_set.get("activation", {})),
            )
        )
    return trials


def _foils(
    catch: list[Trial], manifest: dict[str, Any], shown: set[str], rng: np.random.Generator
) -> None:
    """Replace the wrong image of each catch trial by an occluded image of an unrelated unit:
    ``occluded_min`` of a main unit's image set the participant does not see, else of any
    other unit's set they do not see, else of any other unit's set (a tiny study)."""
    catch_units = {t.unit_id for t in catch}
    others = [
        (u, s)
        for u in manifest["units"]
        if u["unit_id"] not in catch_units
        for s in u["image_sets"]
    ]
    unseen = [(u, s) for u, s in others if s["set_id"] not in shown]
    pool = [s for u, s in unseen if u["kind"] == "main"] or [s for _, s in unseen]
    pool = pool or [s for _, s in others]
    if not pool:
        raise FvlabError("catch trials of condition 'none' need image sets of another unit")
    picks = rng.choice(len(pool), size=len(catch), replace=len(pool) < len(catch))
    for trial, k in zip(catch, picks, strict=True):
        foil = pool[int(k)]
        if trial.correct_side == "left":
            trial.right = foil["occluded_min"]
        else:
            trial.left = foil["occluded_min"]
        trial.foil_set_id = foil["set_id"]


def make_trials(
    manifest: dict[str, Any],
    condition: str,
    participant_id: str,
    participant_number: int,
    seed: int = 0,
    config: TrialConfig | None = None,
    *,
    slot: int | None = None,
    entropy: int | None = None,
) -> tuple[list[Trial], list[Trial]]:
    """(practice trials, main + catch trials in presentation order) for one participant.

    ``slot`` (default: ``participant_number``) seeds the design, ``entropy`` (default: none,
    i.e. reproducible from seed and number alone) the sides and the order; see the module
    docstring. Practice trials use ``practice`` units, or ``catch`` units when the study has
    none.
    """
    config = config or TrialConfig()
    if condition not in config.conditions:
        raise FvlabError(f"condition {condition!r} is not one of {', '.join(config.conditions)}")
    design = np.random.default_rng([seed, participant_number if slot is None else slot])
    order = np.random.default_rng([seed, participant_number, *([entropy] if entropy else [])])
    main_units, catch_units = _units_of(manifest, "main"), _units_of(manifest, "catch")
    practice_units = _units_of(manifest, "practice") or catch_units
    blocks = {}
    for kind, units, n in (
        ("main", main_units, config.n_main),
        ("catch", catch_units, config.n_catch),
        ("practice", practice_units, config.n_practice),
    ):
        if n and not units:
            raise FvlabError(
                f"{n} {kind} trials requested but the study has no {kind} units; build the "
                f"study with {kind} units or set the number of {kind} trials to 0"
            )
        # practice answers are shown: never on a set this participant also sees scored
        avoid = {t.set_id for b in blocks.values() for t in b} if kind == "practice" else set()
        picks = _draw_sets(units, n, design, avoid) if n else []
        blocks[kind] = _block(picks, kind, condition, _balanced_sides(n, order))
    if condition == "none" and blocks["catch"]:
        shown = {t.set_id for block in blocks.values() for t in block}
        _foils(blocks["catch"], manifest, shown, design)  # last draws: the rest stays matched
    mixed = blocks["main"] + blocks["catch"]
    ordered = [mixed[i] for i in order.permutation(len(mixed))]
    for position, trial in enumerate(ordered):
        trial.position = position
        trial.trial_id = f"{participant_id}-t{position:02d}"
    for k, trial in enumerate(blocks["practice"]):
        trial.trial_id = f"{participant_id}-p{k:02d}"
    return blocks["practice"], ordered
