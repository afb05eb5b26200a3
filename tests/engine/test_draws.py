"""Keyed draws: element b's numbers depend on (seed, key, step, slot) only, never its batch."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fvlab.optvis.draws import Draws, mix32

keys_strategy = st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=12, unique=True)


@settings(max_examples=40, deadline=None)
@given(keys=keys_strategy, seed=st.integers(0, 2**40), step=st.integers(0, 5000))
def test_an_element_draws_the_same_numbers_whatever_shares_its_batch(keys, seed, step):
    batch = Draws(seed, keys).at_step(step)
    together = [batch.uniform((3,)), batch.integers(7, (2,)), batch.normal((4,))]
    for b, key in enumerate(keys):
        alone = Draws(seed, [key]).at_step(step)
        assert torch.equal(alone.uniform((3,))[0], together[0][b])
        assert torch.equal(alone.integers(7, (2,))[0], together[1][b])
        assert torch.equal(alone.normal((4,))[0], together[2][b])


@settings(max_examples=25, deadline=None)
@given(keys=keys_strategy, seed=st.integers(0, 2**31), high=st.integers(1, 50))
def test_draws_are_in_range_and_shared_draws_ignore_the_batch(keys, seed, high):
    draws = Draws(seed, keys).at_step(3)
    u = draws.uniform((16,))
    assert u.shape == (len(keys), 16) and float(u.min()) >= 0 and float(u.max()) < 1
    ints = draws.integers(high, (5,))
    assert int(ints.min()) >= 0 and int(ints.max()) < high
    # a draw for the whole batch (lucid's transforms) is the same for any batch
    shared = [Draws(seed, batch).at_step(3) for batch in (keys, [0])]
    for d in shared:
        d.uniform((16,)), d.integers(high, (5,))  # the same slots as above
    first, second = (d.uniform((2,), per_element=False) for d in shared)
    assert first.shape == (1, 2) and torch.equal(first, second)


def test_steps_slots_seeds_and_keys_give_different_streams():
    base = Draws(0, [1]).at_step(1).uniform((8,))
    assert not torch.equal(base, Draws(0, [1]).at_step(2).uniform((8,)))  # step
    assert not torch.equal(base, Draws(1, [1]).at_step(1).uniform((8,)))  # seed
    assert not torch.equal(base, Draws(0, [2]).at_step(1).uniform((8,)))  # key
    two = Draws(0, [1]).at_step(1)
    assert torch.equal(two.uniform((8,)), base) and not torch.equal(two.uniform((8,)), base)


def test_the_distributions_are_uniform_and_standard_normal():
    """1 M values: mean and spread of U[0,1) and N(0,1) to 3 standard errors; the mix is a
    bijection on 32-bit words (no two of 2^16 consecutive inputs collide)."""
    draws = Draws(7, range(1000)).at_step(1)
    u = draws.uniform((1000,)).double()
    assert abs(float(u.mean()) - 0.5) < 3 * (1 / 12) ** 0.5 / 1000
    assert abs(float(u.var()) - 1 / 12) < 0.001
    z = draws.normal((1000,)).double()
    assert abs(float(z.mean())) < 3e-3 and abs(float(z.std()) - 1) < 3e-3
    words = mix32(torch.arange(2**16, dtype=torch.int64))
    assert words.unique().numel() == 2**16


def test_repeats_of_a_key_get_their_own_streams_and_repeat_zero_is_the_key():
    plain = Draws(5, [3, 4]).at_step(2).uniform((6,))
    repeated = Draws(5, [3, 3, 3, 4], repeats=[0, 1, 2, 0]).at_step(2).uniform((6,))
    assert torch.equal(repeated[0], plain[0]) and torch.equal(repeated[3], plain[1])
    assert not torch.equal(repeated[0], repeated[1])
    assert not torch.equal(repeated[1], repeated[2])
    alone = Draws(5, [3], repeats=[2]).at_step(2).uniform((6,))
    assert torch.equal(alone[0], repeated[2])  # repeat 2 of unit 3, whatever else is there
