"""Objectives: functions of captured activations returning ONE VALUE PER BATCH ELEMENT.

Objectives are always *maximised* (the render loop minimises −Σ_b objective_b; nothing is negated
silently). They combine with ``+ - *`` and ``/`` by scalars, and know which layers they need.
Activations are (B, C, H, W) for conv layers or (B, F) for linear layers.

* ``channel(layer, c)``     mean over space of channel c:  (1/HW) Σ_{h,w} a[b, c, h, w]
* ``neuron(layer, c, x, y)`` a[b, c, x, y] with lucid's axes: **x is the row (height) index,
                             y the column (width) index**; default: the centre position
* ``logit(layer, k)``       a[b, k] of a linear layer (same as ``channel`` on a 2-D output)
* ``direction(layer, v)``   dot product (1/HW) Σ_{h,w} ⟨v, a[b, :, h, w]⟩
* ``direction_cosine(layer, v)`` mean over positions of cos(v, a[b, :, h, w])
* ``diversity(layer)``      −(1/(B−1)) Σ_{j≠b} ⟨Ĝ_b, Ĝ_j⟩ with Ĝ the L2-normalised Gram matrix
                             (C×C) of an element's activations: higher = more different from the
                             rest of the batch (lucid's "diversity"; lucid sums it over the batch)
* ``units(layer, [u_0, …])`` element b maximises channel u_b — many units in one optimisation

``batch=`` restricts an objective to given batch elements (zero elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F

Activations = Mapping[str, torch.Tensor]


class Objective:
    """A named callable ``activations → (B,) tensor`` with the set of layers it reads."""

    def __init__(
        self, fn: Callable[[Activations], torch.Tensor], layers: Iterable[str], name: str
    ) -> None:
        self.fn = fn
        self.layers = tuple(dict.fromkeys(layers))
        self.name = name

    def __call__(self, activations: Activations) -> torch.Tensor:
        return self.fn(activations)

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    # -- algebra -----------------------------------------------------------------------------
    def _combine(self, other: object, op: Callable, symbol: str) -> Objective:
        if isinstance(other, Objective):
            return Objective(
                lambda a: op(self(a), other(a)),
                self.layers + other.layers,
                f"({self.name} {symbol} {other.name})",
            )
        if isinstance(other, (int, float)):
            return Objective(
                lambda a: op(self(a), other), self.layers, f"({self.name} {symbol} {other})"
            )
        return NotImplemented

    def __add__(self, other: object) -> Objective:
        return self._combine(other, torch.add, "+")

    def __radd__(self, other: object) -> Objective:
        if other == 0:  # so that sum([...]) works
            return self
        return self._combine(other, lambda a, b: b + a, "+")

    def __sub__(self, other: object) -> Objective:
        return self._combine(other, torch.sub, "-")

    def __rsub__(self, other: object) -> Objective:
        return self._combine(other, lambda a, b: b - a, "r-")

    def __mul__(self, other: object) -> Objective:
        return self._combine(other, torch.mul, "*")

    __rmul__ = __mul__

    def __truediv__(self, other: object) -> Objective:
        if not isinstance(other, (int, float)):
            return NotImplemented
        return self._combine(other, torch.div, "/")

    def __neg__(self) -> Objective:
        return Objective(lambda a: -self(a), self.layers, f"-{self.name}")


def _masked(values: torch.Tensor, batch: int | Sequence[int] | None) -> torch.Tensor:
    if batch is None:
        return values
    index = [batch] if isinstance(batch, int) else list(batch)
    mask = torch.zeros_like(values)
    mask[index] = 1.0
    return values * mask


def _spatial_mean(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).mean(-1) if x.ndim > 2 else x


def channel(layer: str, unit: int, batch: int | Sequence[int] | None = None) -> Objective:
    """Spatial mean of channel ``unit`` (or feature ``unit`` of a linear layer)."""
    return Objective(
        lambda a: _masked(_spatial_mean(a[layer])[:, unit], batch),
        [layer],
        f"channel({layer}:{unit})",
    )


def logit(layer: str, index: int, batch: int | Sequence[int] | None = None) -> Objective:
    """Logit ``index`` of a (B, K) output layer."""
    obj = channel(layer, index, batch)
    obj.name = f"logit({layer}:{index})"
    return obj


def neuron(
    layer: str,
    unit: int,
    x: int | None = None,
    y: int | None = None,
    batch: int | Sequence[int] | None = None,
) -> Objective:
    """One position of channel ``unit``; lucid's axes: x = row (height), y = column (width)."""

    def fn(a: Activations) -> torch.Tensor:
        act = a[layer]
        row = act.shape[2] // 2 if x is None else x
        col = act.shape[3] // 2 if y is None else y
        return _masked(act[:, unit, row, col], batch)

    return Objective(fn, [layer], f"neuron({layer}:{unit}@{x},{y})")


def _as_vector(vector: torch.Tensor | Sequence[float]) -> torch.Tensor:
    return torch.as_tensor(vector, dtype=torch.float32).flatten()


def direction(
    layer: str, vector: torch.Tensor | Sequence[float], batch: int | Sequence[int] | None = None
) -> Objective:
    """Dot product of ``vector`` with the activation vector, averaged over positions."""
    v = _as_vector(vector)

    def fn(a: Activations) -> torch.Tensor:
        act = a[layer]
        w = v.to(act.device, act.dtype)
        dots = torch.einsum("bc...,c->b...", act, w)
        return _masked(dots.flatten(1).mean(1) if dots.ndim > 1 else dots, batch)

    return Objective(fn, [layer], f"direction({layer})")


def direction_cosine(
    layer: str, vector: torch.Tensor | Sequence[float], batch: int | Sequence[int] | None = None
) -> Objective:
    """Cosine similarity of ``vector`` with the activation vector, averaged over positions."""
    v = _as_vector(vector)

    def fn(a: Activations) -> torch.Tensor:
        act = a[layer]
        shape = [1, -1] + [1] * (act.ndim - 2)
        cos = F.cosine_similarity(act, v.to(act.device, act.dtype).view(shape), dim=1, eps=1e-8)
        return _masked(cos.flatten(1).mean(1) if cos.ndim > 1 else cos, batch)

    return Objective(fn, [layer], f"direction_cosine({layer})")


def gram_similarity(layer: str) -> Objective:
    """Mean cosine similarity of each element's Gram matrix with the other elements' (B ≥ 2)."""

    def fn(a: Activations) -> torch.Tensor:
        act = a[layer]
        b = act.shape[0]
        if b < 2:
            return act.new_zeros(b)
        flat = act.flatten(2)  # (B, C, HW)
        grams = flat @ flat.transpose(1, 2)  # (B, C, C)
        grams = F.normalize(grams.flatten(1), dim=1)
        sims = grams @ grams.T
        return (sims.sum(1) - sims.diagonal()) / (b - 1)

    return Objective(fn, [layer], f"gram_similarity({layer})")


def diversity(layer: str) -> Objective:
    """Negative Gram similarity (see the module docstring): maximise it to diversify a batch."""
    obj = -gram_similarity(layer)
    obj.name = f"diversity({layer})"
    return obj


def units(layer: str, unit_ids: Sequence[int]) -> Objective:
    """Element b maximises the spatial mean of channel ``unit_ids[b]`` (one vectorised gather)."""
    ids = torch.as_tensor(list(unit_ids), dtype=torch.long)

    def fn(a: Activations) -> torch.Tensor:
        act = _spatial_mean(a[layer])
        if act.shape[0] != len(ids):
            raise ValueError(
                f"units objective has {len(ids)} units but the batch has {act.shape[0]} elements"
            )
        index = ids.to(act.device)
        return act.gather(1, index.view(-1, 1)).squeeze(1)

    return Objective(fn, [layer], f"units({layer}:{len(ids)})")


def layer_units(pairs: Sequence[tuple[str, int]]) -> Objective:
    """Element b maximises channel ``u_b`` of layer ``L_b`` for ``pairs[b] = (L_b, u_b)``:
    units of several layers in one optimisation (one gather per distinct layer)."""
    by_layer: dict[str, tuple[list[int], list[int]]] = {}
    for b, (layer, unit) in enumerate(pairs):
        elements, ids = by_layer.setdefault(layer, ([], []))
        elements.append(b)
        ids.append(int(unit))
    n = len(pairs)

    def fn(a: Activations) -> torch.Tensor:
        out = None
        for layer, (elements, ids) in by_layer.items():
            act = _spatial_mean(a[layer])
            if act.shape[0] != n:
                raise ValueError(f"layer_units has {n} pairs but the batch has {act.shape[0]}")
            if out is None:
                out = act.new_zeros(n)
            index = torch.as_tensor(elements, device=act.device)
            unit = torch.as_tensor(ids, device=act.device)
            out = out.index_put((index,), act[index, unit])
        return out

    return Objective(fn, list(by_layer), f"layer_units({n})")
