"""Per-participant trial lists for the causal-understanding task.

A participant sees ``n_practice`` practice trials (with feedback), then ``n_main`` main trials
and ``n_catch`` catch trials interleaved in random order, all in one between-subject condition
(which reference images are shown). In every trial the two occluded copies of the query are
shown left and right; the side of the correct one (``occluded_max``: the unit responds more to
it) is balanced within each block: ⌊n/2⌋ or ⌈n/2⌉ trials have it on the left, in random order.

Units are used evenly: a block of n trials over k units shows each unit ⌊n/k⌋ or ⌈n/k⌉ times,
and a unit's image sets are drawn without replacement (cycling when a unit has too few).
Everything random comes from ``numpy.random.default_rng([seed, participant_number])``, so the
same study seed and participant number always give the same list.
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Trial:
        return Trial(**data)


def _units_of(manifest: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return sorted((u for u in manifest["units"] if u["kind"] == kind), key=lambda u: u["unit_id"])


def _draw_sets(
    units: list[dict[str, Any]], n: int, rng: np.random.Generator
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """n (unit, image set) pairs: units as evenly as possible, sets without replacement."""
    order: list[int] = []
    while len(order) < n:
        order.extend(rng.permutation(len(units)).tolist())
    order = order[:n]
    pools: dict[int, list[int]] = {}
    picks = []
    for u in order:
        if not pools.get(u):
            pools[u] = rng.permutation(len(units[u]["image_sets"])).tolist()
        picks.append((units[u], units[u]["image_sets"][pools[u].pop()]))
    return picks


def _balanced_sides(n: int, rng: np.random.Generator) -> list[str]:
    """n correct sides, half left and half right (the odd one random), shuffled."""
    sides = ["left"] * (n // 2) + ["right"] * (n // 2)
    if n % 2:
        sides.append(SIDES[int(rng.integers(2))])
    return [sides[i] for i in rng.permutation(n)]


def _block(
    units: list[dict[str, Any]],
    n: int,
    kind: str,
    condition: str,
    prefix: str,
    rng: np.random.Generator,
) -> list[Trial]:
    sides = _balanced_sides(n, rng)
    trials = []
    picks = _draw_sets(units, n, rng)
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
                trial_id=f"{prefix}-{kind[0]}{k:02d}",
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


def make_trials(
    manifest: dict[str, Any],
    condition: str,
    participant_id: str,
    participant_number: int,
    seed: int = 0,
    config: TrialConfig | None = None,
) -> tuple[list[Trial], list[Trial]]:
    """(practice trials, main + catch trials in presentation order) for one participant.

    Trial ids are ``<participant_id>-<m|c|p><k>``, so they name their participant. Practice
    trials use ``practice`` units, or ``catch`` units when the study has none.
    """
    config = config or TrialConfig()
    if condition not in config.conditions:
        raise FvlabError(f"condition {condition!r} is not one of {', '.join(config.conditions)}")
    rng = np.random.default_rng([seed, participant_number])
    main_units, catch_units = _units_of(manifest, "main"), _units_of(manifest, "catch")
    practice_units = _units_of(manifest, "practice") or catch_units
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
    main = _block(main_units, config.n_main, "main", condition, participant_id, rng)
    catch = _block(catch_units, config.n_catch, "catch", condition, participant_id, rng)
    practice = _block(practice_units, config.n_practice, "practice", condition, participant_id, rng)
    mixed = main + catch
    ordered = [mixed[i] for i in rng.permutation(len(mixed))]
    for position, trial in enumerate(ordered):
        trial.position = position
    return practice, ordered
