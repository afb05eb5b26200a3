"""Trial lists: counts, balanced and randomised sides, even use of units, determinism, errors."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from fvlab.errors import CorruptFileError, FvlabError
from fvlab.study.manifest import CONDITIONS, manifest_image_paths, read_manifest
from fvlab.study.settings import TrialConfig
from fvlab.study.trials import decode_response, encode_response, make_trials


@pytest.fixture(scope="module")
def manifest(tiny_study):
    return read_manifest(tiny_study)


def _sets(manifest):
    return {s["set_id"]: s for u in manifest["units"] for s in u["image_sets"]}


def test_buttons_map_to_side_and_confidence():
    assert [decode_response(b) for b in range(6)] == [
        ("left", 3),
        ("left", 2),
        ("left", 1),
        ("right", 1),
        ("right", 2),
        ("right", 3),
    ]
    for b in range(6):
        assert encode_response(*decode_response(b)) == b
    with pytest.raises(FvlabError, match="0..5"):
        decode_response(6)
    with pytest.raises(FvlabError, match="confidence"):
        encode_response("left", 4)


@pytest.mark.parametrize("condition", CONDITIONS)
def test_default_list_has_balanced_sides_and_right_images(manifest, condition):
    practice, trials = make_trials(manifest, condition, "p00007", 7, seed=3)
    kinds = Counter(t.kind for t in trials)
    assert kinds == {"main": 18, "catch": 3} and len(practice) == 2
    main = [t for t in trials if t.kind == "main"]
    assert Counter(t.correct_side for t in main) == {"left": 9, "right": 9}
    assert Counter(t.correct_side for t in practice) == {"left": 1, "right": 1}
    assert sorted(Counter(t.correct_side for t in trials if t.kind == "catch").values()) == [1, 2]
    sets = _sets(manifest)
    ids = [t.trial_id for t in practice + trials]
    assert len(set(ids)) == len(ids) and all(i.startswith("p00007-") for i in ids)
    assert [t.position for t in trials] == list(range(21))
    assert [t.trial_id for t in trials] == [f"p00007-t{k:02d}" for k in range(21)]
    for t in practice + trials:
        s = sets[t.set_id]
        correct, wrong = (t.left, t.right) if t.correct_side == "left" else (t.right, t.left)
        assert (correct, t.query) == (s["occluded_max"], s["query"])
        if condition == "none" and t.kind == "catch":  # P2: the foil is an unrelated unit's
            foil = sets[t.foil_set_id]
            shown = {m.set_id for m in practice + trials}
            assert wrong == foil["occluded_min"] and foil["set_id"] not in shown
            assert t.foil_set_id.rsplit(":", 1)[0] != t.unit_id
        else:
            assert wrong == s["occluded_min"] and t.foil_set_id is None
        assert t.references == s["references"][condition] and t.condition == condition
    assert len(trials[0].references) == (0 if condition == "none" else 9)
    # 18 main trials over 6 main units: each unit 3 times, each time another image set.
    per_unit = Counter(t.unit_id for t in main)
    assert set(per_unit.values()) == {3} and len(per_unit) == 6
    assert len({t.set_id for t in main}) == 18
    assert {t.unit_id for t in practice} <= {
        u["unit_id"] for u in manifest["units"] if u["kind"] == "practice"
    }


def test_lists_are_seeded_and_differ_between_participants(manifest):
    a = make_trials(manifest, "natural", "p00001", 1, seed=0)
    b = make_trials(manifest, "natural", "p00001", 1, seed=0)
    assert [t.to_dict() for t in a[1]] == [t.to_dict() for t in b[1]]
    orders = set()
    for number in range(1, 21):
        _, trials = make_trials(manifest, "natural", f"p{number:05d}", number, seed=0)
        orders.add(tuple((t.set_id, t.correct_side) for t in trials))
        sides = Counter(t.correct_side for t in trials if t.kind == "main")
        assert sides == {"left": 9, "right": 9}
    assert len(orders) == 20  # randomised per participant
    other_seed = make_trials(manifest, "natural", "p00001", 1, seed=1)
    assert [t.set_id for t in other_seed[1]] != [t.set_id for t in a[1]]


def test_conditions_are_matched_and_sides_need_the_servers_entropy(manifest):
    """The k-th participant of every condition sees the same image sets (P2's matching); the
    sides and the order come from the entropy, which nobody outside the server knows."""
    designs = set()
    for number, condition in enumerate(CONDITIONS, start=1):
        practice, trials = make_trials(manifest, condition, "p", number, slot=4, entropy=number)
        designs.add(
            (
                tuple(sorted(t.set_id for t in trials)),
                tuple(sorted(t.set_id for t in practice)),
            )
        )
    assert len(designs) == 1
    sides = {
        tuple(t.correct_side for t in make_trials(manifest, "natural", "p", 1, entropy=e)[1])
        for e in range(1, 21)
    }
    assert len(sides) == 20  # the same participant number, 20 different answer sequences


def test_configurable_counts_and_odd_blocks(manifest):
    config = TrialConfig(n_main=7, n_catch=0, n_practice=0, conditions=("blur", "none"))
    practice, trials = make_trials(manifest, "blur", "p1", 1, config=config)
    assert practice == [] and len(trials) == 7 and {t.kind for t in trials} == {"main"}
    assert sorted(Counter(t.correct_side for t in trials).values()) == [3, 4]
    with pytest.raises(FvlabError, match="condition 'natural' is not one of blur, none"):
        make_trials(manifest, "natural", "p1", 1, config=config)


def test_bad_configuration_and_manifest_are_clear_errors(manifest, tmp_path):
    with pytest.raises(FvlabError, match="distinct names"):
        TrialConfig(conditions=("synthetic", "fancy"))
    with pytest.raises(FvlabError, match="main >= 1"):
        TrialConfig(n_main=0)
    no_catch = {**manifest, "units": [u for u in manifest["units"] if u["kind"] == "main"]}
    with pytest.raises(FvlabError, match="no catch units"):
        make_trials(no_catch, "natural", "p1", 1)
    with pytest.raises(FvlabError, match="no manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        read_manifest(tmp_path)
    bad = json.loads(json.dumps(manifest))
    bad["units"][0]["kind"] = "bonus"
    (tmp_path / "manifest.json").write_text(json.dumps(bad))
    with pytest.raises(CorruptFileError, match="kind 'bonus'"):
        read_manifest(tmp_path)


def test_manifest_image_paths_cover_every_trial_image(manifest):
    paths = manifest_image_paths(manifest)
    practice, trials = make_trials(manifest, "mixed", "p1", 1)
    for t in practice + trials:
        assert {t.query, t.left, t.right, *t.references} <= paths


def test_practice_never_reveals_a_scored_image_set(manifest):
    """Without practice units the practice uses catch units; its answers are shown, so its
    image sets are never ones the participant also sees scored."""
    no_practice = {**manifest, "units": [u for u in manifest["units"] if u["kind"] != "practice"]}
    config = TrialConfig(n_catch=2, n_practice=2)
    for number in range(1, 30):
        practice, trials = make_trials(no_practice, "natural", "p", number, config=config)
        catch_units = {u["unit_id"] for u in no_practice["units"] if u["kind"] == "catch"}
        assert {t.unit_id for t in practice} <= catch_units
        assert not {t.set_id for t in practice} & {t.set_id for t in trials}
