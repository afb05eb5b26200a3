"""Counter-based random numbers for rendering: a unit's draws depend on (seed, unit), not its batch.

A :class:`Draws` gives every batch element a *key* (the unit it renders, or its position when
an objective is rendered) and derives each random number from the tuple

    (seed, key, step, slot, index)

by a fixed integer hash, instead of from a stateful generator shared by the batch. ``step`` is
the optimiser update (0 for the random start), ``slot`` counts the draws within a step (the
first transform's first draw is slot 0, …), and ``index`` runs over the values one element
needs. Element b's numbers therefore never depend on which units share its batch or shard, or
on how many there are: rendering unit 7 alone or as the 40th of 64 units, on one machine or as
a Ray shard, starts from the same image and sees the same transforms (exactly, as integers).

The same unit requested several times in one render (several FVs of one class, say) is told
apart by its repeat index r: repeat r is keyed by (seed, unit, r), so the repeats differ and
each is still independent of everything else in the batch.

Draws *for the whole batch* (lucid's one-draw-per-step transforms, ``per_element=False``) use
one shared key, so they too are the same whatever the batch holds.

The hash is Wellons' "lowbias32" integer mix (xor-shift, multiply, xor-shift, multiply,
xor-shift) on 32-bit words, evaluated in int64 with the multiplications split into 16-bit
halves so that no intermediate exceeds 2⁴⁹; it runs as a handful of elementwise tensor ops on
the device of the render, with no host round-trip. A uniform number is the top 24 bits of a
word times 2⁻²⁴ (exact in float32); a normal number is Box–Muller on two words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

MASK32 = 0xFFFFFFFF
#: the key of draws shared by the whole batch (units are < 2^31, so it cannot clash)
SHARED_KEY = MASK32
_MUL1, _MUL2 = 0x7FEB352D, 0x846CA68B
_GOLDEN = 0x9E3779B1  # 2^32 / φ, spreads consecutive counters over the word


def _mul32(x, c: int):
    """(x · c) mod 2³² for 32-bit x (int or int64 tensor), without exceeding 2⁴⁹."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & MASK32


def mix32(x):
    """Wellons' lowbias32 mix of 32-bit words (a Python int or an int64 tensor)."""
    x = x ^ (x >> 16)
    x = _mul32(x, _MUL1)
    x = x ^ (x >> 15)
    x = _mul32(x, _MUL2)
    return x ^ (x >> 16)


class Draws:
    """Random numbers keyed by (seed, element key, step, slot, index); see the module docstring.

    ``keys`` (B,) are the batch elements' keys (non-negative ints < 2³², e.g. unit indices).
    ``repeats`` (B,), optional, tell apart elements with the same key: repeat r of a key has
    its own stream, keyed by (seed, key, r); repeat 0 is the key's stream. Call
    :meth:`at_step` before each step's draws; every draw method call takes the next slot.
    """

    def __init__(
        self,
        seed: int,
        keys: Sequence[int] | torch.Tensor,
        device=None,
        repeats: Sequence[int] | torch.Tensor | None = None,
    ) -> None:
        keys = torch.as_tensor(keys, dtype=torch.int64).reshape(-1)
        if keys.numel() and (int(keys.min()) < 0 or int(keys.max()) >= SHARED_KEY):
            raise ValueError("draw keys must be integers in [0, 2^32 - 1)")
        self.device = torch.device(device) if device is not None else keys.device
        self.seed = int(seed)
        base = mix32(int(seed) & MASK32)
        element = mix32(keys.to(self.device) ^ base)  # (B,)
        if repeats is not None:
            r = torch.as_tensor(repeats, dtype=torch.int64, device=self.device).reshape(-1)
            if r.shape != element.shape or (r.numel() and int(r.min()) < 0):
                raise ValueError("repeats: one non-negative int per key")
            element = torch.where(r == 0, element, mix32(element ^ mix32(_mul32(r, _GOLDEN))))
        self._element = element
        self._shared = mix32(SHARED_KEY ^ base)  # int
        self.batch = int(keys.numel())
        self.step = 0
        self._slot = 0

    def to(self, device) -> Draws:
        """The same draws on another device (the keys' hashes are moved, nothing is redrawn)."""
        other = object.__new__(Draws)
        other.__dict__.update(self.__dict__)
        other.device = torch.device(device)
        other._element = self._element.to(other.device)
        return other

    def at_step(self, step: int) -> Draws:
        """Start the draws of ``step`` (slot counter back to 0); returns self."""
        self.step, self._slot = int(step), 0
        return self

    def _words(self, per_element: bool, count: int) -> torch.Tensor:
        """(B or 1, count) 32-bit words of the next slot."""
        counter = mix32((self.step * _GOLDEN + self._slot * 0x85EBCA77 + 1) & MASK32)
        self._slot += 1
        if per_element:
            base = mix32(self._element ^ counter).unsqueeze(1)  # (B, 1)
        else:
            base = torch.tensor([[mix32(self._shared ^ counter)]], device=self.device)
        index = torch.arange(count, device=self.device, dtype=torch.int64)
        return mix32(base ^ _mul32(index + 1, _GOLDEN))

    def uniform(self, shape: Sequence[int] = (), per_element: bool = True) -> torch.Tensor:
        """Uniform numbers in [0, 1) of shape (B, *shape) — or (1, *shape) for a shared draw."""
        count = math.prod(shape)
        words = self._words(per_element, count)
        values = (words >> 8).to(torch.float32) * (2.0**-24)
        return values.reshape(-1, *shape)

    def integers(
        self, high: int, shape: Sequence[int] = (), per_element: bool = True
    ) -> torch.Tensor:
        """Integers uniform on 0 … high − 1 (int64), shape as :meth:`uniform`."""
        return (self.uniform(shape, per_element) * high).long().clamp_(max=high - 1)

    def normal(self, shape: Sequence[int] = (), per_element: bool = True) -> torch.Tensor:
        """Standard normal numbers (Box–Muller on two words each), shape as :meth:`uniform`."""
        count = math.prod(shape)
        words = self._words(per_element, 2 * count)
        u = ((words >> 8).to(torch.float32) + 0.5) * (2.0**-24)  # (0, 1): log is finite
        radius = torch.sqrt(-2.0 * torch.log(u[:, :count]))
        values = radius * torch.cos((2.0 * math.pi) * u[:, count:])
        return values.reshape(-1, *shape)


def randint(source, high: int, n: int, shape: Sequence[int], per_element: bool, device):
    """``n`` × ``shape`` integers in 0 … high − 1 from a :class:`Draws` or a ``torch.Generator``
    (the stateful path, kept for callers that augment with the transforms, e.g. the detector)."""
    if isinstance(source, Draws):
        draws = source.integers(high, tuple(shape), per_element).to(device)
        return draws if per_element else draws.expand(n, *shape)
    return torch.randint(high, (n, *shape), generator=source, device=device)


def _check_batch(source: Draws, shape: Sequence[int]) -> None:
    if shape[0] != source.batch:
        raise ValueError(f"draws for {source.batch} elements, asked for a batch of {shape[0]}")


def randn(source, shape: Sequence[int]) -> torch.Tensor:
    """Standard normal numbers of ``shape`` (B, …) on the CPU: per element from a
    :class:`Draws`, or from a ``torch.Generator`` / torch's default generator (``None``)."""
    if isinstance(source, Draws):
        _check_batch(source, shape)
        return source.normal(tuple(shape[1:])).cpu()
    return torch.randn(tuple(shape), generator=source)


def rand(source, shape: Sequence[int]) -> torch.Tensor:
    """Uniform numbers in [0, 1) of ``shape`` (B, …); sources as :func:`randn`."""
    if isinstance(source, Draws):
        _check_batch(source, shape)
        return source.uniform(tuple(shape[1:])).cpu()
    return torch.rand(tuple(shape), generator=source)
