"""Running per-unit statistics of activations with bounded memory, mergeable across shards.

Each accumulator sees batches of values (B, U) — B images, U units — together with the images'
global dataset indices, keeps a state whose size does not depend on how many images it saw, and
merges with the accumulator of another shard so that ``merge(sweep(A), sweep(B))`` equals
``sweep(A ∪ B)`` (exactly for counts/min/max/top-k values/sample, up to float64 rounding
for mean/variance). State arrays are numpy float64/int64.

* :class:`Moments`   count, mean, variance (Chan et al.'s pairwise update), min, max, and the
                      number of values > 0 ("active") per unit
* :class:`TopK`      the exact k largest values per unit with their image indices
* :class:`Sample`    a uniform random sample of m images without replacement (bottom-m of a
                      hash of the image index and the seed), kept with all units' values; its
                      empirical quantiles estimate the per-unit quantiles. The hash makes the
                      sample independent of batch and shard boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

Values = np.ndarray | torch.Tensor


def _as_batch(values: Values, indices: Values) -> tuple[np.ndarray, np.ndarray]:
    """(B, U) float64 values and (B,) int64 indices as numpy arrays (single-threaded maths:
    these arrays are small, and numpy avoids thread hand-offs for tiny operations)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    if isinstance(indices, torch.Tensor):
        indices = indices.detach().cpu().numpy()
    values = np.asarray(values, dtype=np.float64)
    indices = np.asarray(indices, dtype=np.int64)
    if values.ndim != 2 or indices.ndim != 1 or values.shape[0] != indices.shape[0]:
        raise ValueError(
            f"expected values (B, U) and indices (B,), got {values.shape}, {indices.shape}"
        )
    return values, indices


@dataclass
class Moments:
    """Per-unit count, mean, M2 (sum of squared deviations), min, max, active count (> 0)."""

    count: int = 0
    mean: np.ndarray | None = None
    m2: np.ndarray | None = None
    min: np.ndarray | None = None
    max: np.ndarray | None = None
    active: np.ndarray | None = None

    def update(self, values: Values, indices: Values) -> None:
        v, _ = _as_batch(values, indices)
        if v.shape[0] == 0:
            return
        mean = v.mean(0)
        other = Moments(
            count=v.shape[0],
            mean=mean,
            m2=((v - mean) ** 2).sum(0),
            min=v.min(0),
            max=v.max(0),
            active=(v > 0).sum(0),
        )
        self.merge(other)

    def merge(self, other: Moments) -> Moments:
        """Combine with another shard's moments in place (returns self)."""
        if other.count == 0:
            return self
        if self.count == 0:
            self.count, self.mean, self.m2 = other.count, other.mean.copy(), other.m2.copy()
            self.min, self.max, self.active = other.min.copy(), other.max.copy(), other.active
            return self
        if other.mean.shape != self.mean.shape:
            raise ValueError(f"cannot merge moments of {self.mean.shape} and {other.mean.shape}")
        n = self.count + other.count
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.count / n)
        self.m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / n)
        self.min = np.minimum(self.min, other.min)
        self.max = np.maximum(self.max, other.max)
        self.active = self.active + other.active
        self.count = n
        return self

    def columns(self, cols: slice) -> Moments:
        """The moments of units ``cols`` only (a copy)."""
        if self.count == 0:
            return Moments()
        return Moments(
            self.count,
            *(a[cols].copy() for a in (self.mean, self.m2, self.min, self.max, self.active)),
        )

    @property
    def var(self) -> np.ndarray:
        """Population variance M2 / n per unit."""
        return self.m2 / max(self.count, 1)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var)

    @property
    def active_fraction(self) -> np.ndarray:
        """Fraction of images whose value is > 0, per unit."""
        return self.active / max(self.count, 1)


@dataclass
class TopK:
    """The k largest values per unit (exact) and the dataset indices of their images.

    Candidates are ordered by value, then by lower image index; which of several images tied
    at exactly the k-th value is kept may depend on batch boundaries (the values never do).
    """

    k: int
    values: np.ndarray | None = None  # (U, ≤k), descending
    indices: np.ndarray | None = None  # (U, ≤k) int64

    def update(self, values: Values, indices: Values) -> None:
        v, i = _as_batch(values, indices)
        if v.shape[0] == 0:
            return
        v = v.T
        i = np.broadcast_to(i, v.shape)
        if v.shape[1] > self.k:  # pre-select per unit: O(B) partition instead of a full sort
            part = np.argpartition(-v, self.k - 1, axis=1)[:, : self.k]
            v, i = np.take_along_axis(v, part, 1), np.take_along_axis(i, part, 1)
        self.merge(TopK(self.k, v, i))

    def merge(self, other: TopK) -> TopK:
        """Combine with another shard's top-k in place (returns self)."""
        if other.values is None:
            return self
        if self.values is None:
            cand_v, cand_i = other.values, other.indices
        else:
            cand_v = np.concatenate([self.values, other.values], 1)
            cand_i = np.concatenate([self.indices, other.indices], 1)
        order = np.lexsort((cand_i, -cand_v), axis=1)[:, : self.k]
        self.values = np.take_along_axis(cand_v, order, 1)
        self.indices = np.take_along_axis(cand_i, order, 1)
        return self

    def columns(self, cols: slice) -> TopK:
        """The top-k of units ``cols`` only (a copy)."""
        if self.values is None:
            return TopK(self.k)
        return TopK(self.k, self.values[cols].copy(), self.indices[cols].copy())


def hash_keys(indices: np.ndarray, seed: int) -> np.ndarray:
    """SplitMix64 of (index, seed) mapped to [0, 1): a fixed pseudo-random key per image."""
    with np.errstate(over="ignore"):
        z = np.asarray(indices).astype(np.uint64)
        z = z + np.uint64(seed + 1) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@dataclass
class Sample:
    """A uniform sample of ≤ m images (bottom-m hash keys) with every unit's value."""

    m: int
    seed: int = 0
    keys: np.ndarray | None = None  # (≤m,)
    indices: np.ndarray | None = None  # (≤m,)
    values: np.ndarray | None = None  # (≤m, U)

    def update(self, values: Values, indices: Values) -> None:
        v, i = _as_batch(values, indices)
        if v.shape[0] == 0:
            return
        self.merge(Sample(self.m, self.seed, hash_keys(i, self.seed), i, v))

    def merge(self, other: Sample) -> Sample:
        """Combine with another shard's sample in place (returns self)."""
        if other.keys is None:
            return self
        if other.seed != self.seed:
            raise ValueError("cannot merge samples drawn with different seeds")
        if self.keys is None:
            keys, indices, values = other.keys, other.indices, other.values
        else:
            keys = np.concatenate([self.keys, other.keys])
            indices = np.concatenate([self.indices, other.indices])
            values = np.concatenate([self.values, other.values])
        keep = np.argsort(keys, kind="stable")[: self.m]
        self.keys, self.indices, self.values = keys[keep], indices[keep], values[keep]
        return self

    def columns(self, cols: slice) -> Sample:
        """The same sampled images with the values of units ``cols`` only (a copy)."""
        if self.keys is None:
            return Sample(self.m, self.seed)
        values = self.values[:, cols].copy()
        return Sample(self.m, self.seed, self.keys.copy(), self.indices.copy(), values)

    def quantile(self, q: float | np.ndarray) -> np.ndarray:
        """Per-unit empirical quantile(s) of the sampled values (linear interpolation)."""
        if self.values is None:
            raise ValueError("the sample is empty")
        return np.quantile(self.values, q, axis=0)
