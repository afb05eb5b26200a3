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

The input image is an activation too: the key :data:`INPUT` (``"input"``, lucid's
``T("input")``) holds the image the model sees — in [0, 1], *after* the render transforms and
*before* the model's own preprocessing (``LoadedModel.spec.preprocess``: normalisation, resizing);
when the final images are scored, it is the untransformed image. Image regularisers read it:

* ``total_variation()``     Σ_{c,h,w} |x[b,c,h+1,w] − x[b,c,h,w]| + |x[b,c,h,w+1] − x[b,c,h,w]|
                             (anisotropic TV, summed like ``tf.image.total_variation``)
* ``l1(constant=0)``        Σ_{c,h,w} |x[b,c,h,w] − constant|
* ``l2(constant=0)``        √(ε + Σ_{c,h,w} (x[b,c,h,w] − constant)²), ε = 1e-6

They are positive, so as objectives (maximised) they *reward* noise and contrast; a penalty is
written with a minus sign, e.g. ``channel("bn3", 5) - 0.05 * total_variation()``.

``batch=`` restricts an objective to given batch elements (zero elsewhere). Primitives are
decorated with :func:`wrap_objective`, which names each objective after the function and its
arguments (``channel(bn3, 5)``), as lucid's ``wrap_objective`` does.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F

Activations = Mapping[str, torch.Tensor]
#: the activation key of the model's input image (see the module docstring)
INPUT = "input"
Batch = int | Sequence[int] | None


class Objective:
    """A named callable ``activations → (B,) tensor`` with the set of layers it reads.

    ``layers`` may contain :data:`INPUT`, which is the input image rather than a module."""

    def __init__(
        self, fn: Callable[[Activations], torch.Tensor], layers: Iterable[str], name: str = ""
    ) -> None:
        self.fn = fn
        self.layers = tuple(dict.fromkeys(layers))
        self.name = name or getattr(fn, "__name__", "objective")

    @property
    def model_layers(self) -> tuple[str, ...]:
        """The module layers read (``layers`` without :data:`INPUT`)."""
        return tuple(name for name in self.layers if name != INPUT)

    @property
    def reads_input(self) -> bool:
        """Whether the objective reads the input image (:data:`INPUT`)."""
        return INPUT in self.layers

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


# -- naming ------------------------------------------------------------------------------------
def _describe(value: object) -> str:
    """A short text form of an argument: strings bare, tensors by shape, long lists cut."""
    if isinstance(value, str):
        return value
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)}"
    if isinstance(value, (list, tuple, range)):
        items = [_describe(v) for v in list(value)[:4]]
        if len(value) > 4:
            items[3:] = [f"… ({len(value)} values)"]
        left, right = "()" if isinstance(value, tuple) else "[]"
        return left + ", ".join(items) + right
    return repr(value)


def _same(value: object, default: object) -> bool:
    if value is default:
        return True
    return isinstance(value, (int, float, str)) and value == default


def wrap_objective(primitive: Callable[..., Objective]) -> Callable[..., Objective]:
    """Decorator naming the objective a primitive returns after the call (lucid's
    ``wrap_objective``): ``channel("bn3", 5, batch=[0])`` is named ``channel(bn3, 5, batch=[0])``.
    Arguments given at their default are left out of the name."""
    signature = inspect.signature(primitive)

    @functools.wraps(primitive)
    def named(*args: object, **kwargs: object) -> Objective:
        made = primitive(*args, **kwargs)
        parts = []
        for key, value in signature.bind(*args, **kwargs).arguments.items():
            default = signature.parameters[key].default
            if default is inspect.Parameter.empty:
                parts.append(_describe(value))
            elif not _same(value, default):
                parts.append(f"{key}={_describe(value)}")
        return Objective(made.fn, made.layers, f"{primitive.__name__}({', '.join(parts)})")

    return named


# -- helpers -----------------------------------------------------------------------------------
def _masked(values: torch.Tensor, batch: Batch) -> torch.Tensor:
    if batch is None:
        return values
    index = [batch] if isinstance(batch, int) else list(batch)
    mask = torch.zeros_like(values)
    mask[index] = 1.0
    return values * mask


def _spatial_mean(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).mean(-1) if x.ndim > 2 else x


def _position_mean(
    layer: str,
    vector: torch.Tensor | Sequence[float],
    batch: Batch,
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> Objective:
    """(1/HW) Σ_{h,w} score(a[b, :, h, w], v): ``score(act, v)`` maps (B, C, …) and (C,) to
    (B, …) values per position."""
    v = torch.as_tensor(vector, dtype=torch.float32).flatten()

    def fn(a: Activations) -> torch.Tensor:
        act = a[layer]
        values = score(act, v.to(act.device, act.dtype))
        return _masked(values.flatten(1).mean(1) if values.ndim > 1 else values, batch)

    return Objective(fn, [layer])


# -- unit objectives ---------------------------------------------------------------------------
@wrap_objective
def channel(layer: str, unit: int, batch: Batch = None) -> Objective:
    """Spatial mean of channel ``unit`` (or feature ``unit`` of a linear layer)."""
    return Objective(lambda a: _masked(_spatial_mean(a[layer])[:, unit], batch), [layer])


@wrap_objective
def logit(layer: str, index: int, batch: Batch = None) -> Objective:
    """Logit ``index`` of a (B, K) output layer."""
    return channel(layer, index, batch)


@wrap_objective
def neuron(
    layer: str, unit: int, x: int | None = None, y: int | None = None, batch: Batch = None
) -> Objective:
    """One position of channel ``unit``; lucid's axes: x = row (height), y = column (width)."""

    def fn(a: Activations) -> torch.Tensor:
        act = a[layer]
        row = act.shape[2] // 2 if x is None else x
        col = act.shape[3] // 2 if y is None else y
        return _masked(act[:, unit, row, col], batch)

    return Objective(fn, [layer])


@wrap_objective
def direction(layer: str, vector: torch.Tensor | Sequence[float], batch: Batch = None) -> Objective:
    """Dot product of ``vector`` with the activation vector, averaged over positions."""
    return _position_mean(
        layer, vector, batch, lambda act, v: torch.einsum("bc...,c->b...", act, v)
    )


@wrap_objective
def direction_cosine(
    layer: str, vector: torch.Tensor | Sequence[float], batch: Batch = None
) -> Objective:
    """Cosine similarity of ``vector`` with the activation vector, averaged over positions."""

    def cosine(act: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.cosine_similarity(act, v.view([1, -1] + [1] * (act.ndim - 2)), dim=1, eps=1e-8)

    return _position_mean(layer, vector, batch, cosine)


@wrap_objective
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

    return Objective(fn, [layer])


@wrap_objective
def diversity(layer: str) -> Objective:
    """Negative Gram similarity (see the module docstring): maximise it to diversify a batch."""
    return -gram_similarity(layer)


@wrap_objective
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

    return Objective(fn, [layer])


@wrap_objective
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

    return Objective(fn, list(by_layer))


# -- image regularisers (read the input image; use them with a minus sign) ----------------------
@wrap_objective
def total_variation(layer: str = INPUT, batch: Batch = None) -> Objective:
    """Anisotropic total variation per element (see the module docstring); in image units
    (intensity in [0, 1]) summed over channels and pixel pairs. A penalty: use ``- w * tv``."""

    def fn(a: Activations) -> torch.Tensor:
        x = a[layer]
        rows = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).sum(1)
        cols = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).sum(1)
        return _masked(rows + cols, batch)

    return Objective(fn, [layer])


@wrap_objective
def l1(layer: str = INPUT, constant: float = 0.0, batch: Batch = None) -> Objective:
    """Σ |x − constant| per element (lucid's ``L1``). A penalty: use ``- w * l1()``."""
    return Objective(
        lambda a: _masked((a[layer] - constant).abs().flatten(1).sum(1), batch), [layer]
    )


@wrap_objective
def l2(
    layer: str = INPUT, constant: float = 0.0, epsilon: float = 1e-6, batch: Batch = None
) -> Objective:
    """√(ε + Σ (x − constant)²) per element (lucid's ``L2``). A penalty: use ``- w * l2()``."""

    def fn(a: Activations) -> torch.Tensor:
        return _masked((epsilon + (a[layer] - constant).square().flatten(1).sum(1)).sqrt(), batch)

    return Objective(fn, [layer])
