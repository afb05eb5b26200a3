"""Random image transforms for feature visualization, in pure torch.

Each transform draws its parameters with :meth:`sample` (independently per batch element unless
``per_sample=False``, which draws once for the whole batch as lucid does) and applies them with
:meth:`apply`, so tests can pass explicit parameters. Geometric transforms act about the image
centre in pixel coordinates; a per-sample scale or rotation keeps the canvas size (content is
resampled, uncovered pixels get ``fill``), since a batch must share one size.

Presets (sizes scale with the image side S; lucid's are 12/8/4 px at S = 128):

* ``standard`` — pad S·12/128 (value 0.5), jitter S·8/128, scale 0.90…1.10 (step 0.02),
  rotate −10…10°, jitter S·4/128, all fused into ONE bilinear resampling per step
  (:class:`FusedAffineJitter`), drawn per element.
* ``lucid`` — lucid's list with lucid's semantics: constant pad 12 (0.5), crop-jitter 8 (the image
  shrinks), bilinear resize by a scale from 0.90…1.10, nearest-neighbour rotation by one of
  −10…10° plus five extra 0°, crop-jitter 4; one draw per step for the whole batch.
* ``none`` — identity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fvlab.optvis.draws import Draws, randint

#: where a transform's random parameters come from: keyed :class:`Draws` (rendering: a unit's
#: draws do not depend on its batch) or a stateful ``torch.Generator`` (augmentation elsewhere)
Source = Draws | torch.Generator
LUCID_SCALES = tuple(round(1 + (i - 5) / 50, 2) for i in range(11))  # 0.90 … 1.10
LUCID_ANGLES = tuple(range(-10, 11)) + (0,) * 5


def _choice(
    values: Sequence[float], n: int, source: Source, device: torch.device, per_element: bool
) -> torch.Tensor:
    table = torch.tensor(values, dtype=torch.float32, device=device)
    return table[randint(source, len(values), n, (), per_element, device)]


def _draws(x: torch.Tensor, per_sample: bool) -> int:
    return x.shape[0] if per_sample else 1


class Transform(nn.Module):
    """A random transform: ``forward(x, generator)`` = ``apply(x, sample(x, generator))``."""

    per_sample: bool = True

    def sample(self, x: torch.Tensor, generator: Source) -> dict[str, torch.Tensor]:
        return {}

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor, generator: Source) -> torch.Tensor:
        return self.apply(x, self.sample(x, generator))


class Pad(Transform):
    """Constant padding by ``pad`` pixels on every side."""

    def __init__(self, pad: int, value: float = 0.5) -> None:
        super().__init__()
        self.pad, self.value = pad, value

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.pad(x, (self.pad,) * 4, value=self.value) if self.pad else x


class Jitter(Transform):
    """lucid's jitter: a random crop that shrinks each side by ``d`` pixels (offsets 0…d)."""

    def __init__(self, d: int, per_sample: bool = True) -> None:
        super().__init__()
        self.d, self.per_sample = d, per_sample

    def sample(self, x: torch.Tensor, generator: Source) -> dict[str, torch.Tensor]:
        n = _draws(x, self.per_sample)
        offsets = randint(generator, self.d + 1, n, (2,), self.per_sample, x.device)
        return {"offsets": offsets.expand(x.shape[0], 2)}

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.d == 0:
            return x
        b, c, h, w = x.shape
        oy, ox = params["offsets"][:, 0], params["offsets"][:, 1]
        rows = (oy.view(b, 1) + torch.arange(h - self.d, device=x.device)).view(b, 1, -1, 1)
        x = x.gather(2, rows.expand(b, c, h - self.d, w))
        cols = (ox.view(b, 1) + torch.arange(w - self.d, device=x.device)).view(b, 1, 1, -1)
        return x.gather(3, cols.expand(b, c, h - self.d, w - self.d))


def affine_resample(
    x: torch.Tensor,
    matrix: torch.Tensor,
    out_size: tuple[int, int],
    mode: str = "bilinear",
    fill: float = 0.0,
) -> torch.Tensor:
    """Resample ``x`` with per-element 2×3 affine maps given in *pixel* coordinates.

    ``matrix[b]`` maps an output pixel centre (u, v) = (column + 0.5, row + 0.5) to the input
    position it samples from; positions outside the input get ``fill``.
    """
    b, _, h, w = x.shape
    oh, ow = out_size
    # pixel → normalised [-1, 1] (align_corners=False): n = 2·p/size − 1
    to_norm_in = x.new_tensor([[2.0 / w, 0, -1], [0, 2.0 / h, -1], [0, 0, 1]])
    from_norm_out = x.new_tensor([[ow / 2.0, 0, ow / 2.0], [0, oh / 2.0, oh / 2.0], [0, 0, 1]])
    full = torch.cat([matrix, matrix.new_tensor([0, 0, 1]).expand(b, 1, 3)], dim=1)
    theta = (to_norm_in @ full @ from_norm_out)[:, :2]
    grid = F.affine_grid(theta, [b, x.shape[1], oh, ow], align_corners=False)
    if fill == 0.0:
        return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)
    shifted = F.grid_sample(x - fill, grid, mode=mode, padding_mode="zeros", align_corners=False)
    return shifted + fill


def centred_affine(
    scale: torch.Tensor,
    angle_deg: torch.Tensor,
    shift: torch.Tensor,
    in_size: tuple[int, int],
    out_size: tuple[int, int],
    pre_shift: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pixel-space maps output → input for: translate the content by −``pre_shift`` (dy, dx),
    scale by s and rotate by θ about the centre, then translate by ``shift``. Shape (B, 2, 3)."""
    (h, w), (oh, ow) = in_size, out_size
    theta = angle_deg * (math.pi / 180.0)
    cos, sin = torch.cos(theta) / scale, torch.sin(theta) / scale
    # input = R(-θ)/s · (output − c_out − shift) + c_in, with (u, v) = (x, y) order
    cx_out, cy_out, cx_in, cy_in = ow / 2.0, oh / 2.0, w / 2.0, h / 2.0
    du = -(cx_out + shift[:, 1])
    dv = -(cy_out + shift[:, 0])
    if pre_shift is not None:
        cx_in, cy_in = cx_in + pre_shift[:, 1], cy_in + pre_shift[:, 0]
    row0 = torch.stack([cos, sin, cos * du + sin * dv + cx_in], dim=1)
    row1 = torch.stack([-sin, cos, -sin * du + cos * dv + cy_in], dim=1)
    return torch.stack([row0, row1], dim=1)


class RandomScale(Transform):
    """Scale by a factor drawn from ``scales``.

    Per-sample: content scaled about the centre on the same canvas (bilinear, ``fill`` outside).
    Per-batch: the whole batch is resized to round(s·H) × round(s·W) (lucid's semantics).
    """

    def __init__(
        self, scales: Sequence[float] = LUCID_SCALES, per_sample: bool = True, fill: float = 0.5
    ) -> None:
        super().__init__()
        self.scales, self.per_sample, self.fill = tuple(scales), per_sample, fill

    def sample(self, x: torch.Tensor, generator: Source) -> dict[str, torch.Tensor]:
        n = _draws(x, self.per_sample)
        return {"scale": _choice(self.scales, n, generator, x.device, self.per_sample)}

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        scale = params["scale"]
        h, w = x.shape[-2:]
        if scale.numel() == 1:
            s = float(scale)  # one draw per batch: a host read is inherent to a size change
            size = (max(1, round(s * h)), max(1, round(s * w)))
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        zeros = torch.zeros_like(scale)
        matrix = centred_affine(
            scale, zeros, torch.zeros(len(scale), 2, device=x.device), (h, w), (h, w)
        )
        return affine_resample(x, matrix, (h, w), "bilinear", self.fill)


class RandomRotate(Transform):
    """Rotate about the centre by an angle (degrees) drawn from ``angles``; canvas kept."""

    def __init__(
        self,
        angles: Sequence[float] = LUCID_ANGLES,
        mode: str = "bilinear",
        per_sample: bool = True,
        fill: float = 0.0,
    ) -> None:
        super().__init__()
        self.angles, self.mode, self.per_sample, self.fill = tuple(angles), mode, per_sample, fill

    def sample(self, x: torch.Tensor, generator: Source) -> dict[str, torch.Tensor]:
        n = _draws(x, self.per_sample)
        angle = _choice(self.angles, n, generator, x.device, self.per_sample)
        return {"angle": angle.expand(x.shape[0])}

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        h, w = x.shape[-2:]
        angle = params["angle"]
        ones = torch.ones_like(angle)
        matrix = centred_affine(
            ones, angle, torch.zeros(len(angle), 2, device=x.device), (h, w), (h, w)
        )
        return affine_resample(x, matrix, (h, w), self.mode, self.fill)


class CenterCrop(Transform):
    """Deterministic central crop to ``size`` (or removal of ``margin`` pixels per side)."""

    def __init__(self, margin: int) -> None:
        super().__init__()
        self.margin = margin

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        m = self.margin
        return x[..., m:-m, m:-m] if m else x


class Compose(Transform):
    """Apply transforms in order, each with its own draw."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: torch.Tensor, generator: Source) -> torch.Tensor:
        for transform in self.transforms:
            x = transform(x, generator)
        return x


@dataclass(frozen=True)
class AffineJitterConfig:
    """Sizes (pixels) and ranges of the fused standard transform."""

    pad: int
    jitter1: int
    jitter2: int
    scales: tuple[float, ...] = LUCID_SCALES
    angles: tuple[float, ...] = tuple(range(-10, 11))
    fill: float = 0.5

    @classmethod
    def for_size(cls, size: int) -> AffineJitterConfig:
        """lucid's 12/8/4 px at 128 px, scaled to ``size`` (at least 1 px each)."""
        scaled = [max(1, round(p * size / 128)) for p in (12, 8, 4)]
        return cls(*scaled)


class FusedAffineJitter(Transform):
    """pad → jitter → scale → rotate → jitter as ONE per-element affine resampling.

    Output side = S + 2·pad − jitter1 − jitter2, as with the sequential ops. Translations are
    drawn uniformly in pixels: the two jitters' crop offsets (integers 0…d) relative to their
    centred positions.
    """

    def __init__(self, config: AffineJitterConfig) -> None:
        super().__init__()
        self.config = config

    def sample(self, x: torch.Tensor, generator: Source) -> dict[str, torch.Tensor]:
        b, dev, c = x.shape[0], x.device, self.config
        o1 = randint(generator, c.jitter1 + 1, b, (2,), True, dev)
        o2 = randint(generator, c.jitter2 + 1, b, (2,), True, dev)
        return {
            "scale": _choice(c.scales, b, generator, dev, True),
            "angle": _choice(c.angles, b, generator, dev, True),
            "offset1": o1.float(),
            "offset2": o2.float(),
        }

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        c = self.config
        h, w = x.shape[-2:]
        out = (h + 2 * c.pad - c.jitter1 - c.jitter2, w + 2 * c.pad - c.jitter1 - c.jitter2)
        # a crop at offset o moves content by −(o − d/2) relative to a centred crop; the first
        # crop happens before scale/rotation (input space), the second after (output space)
        pre = params["offset1"] - c.jitter1 / 2
        shift = -(params["offset2"] - c.jitter2 / 2)
        matrix = centred_affine(params["scale"], params["angle"], shift, (h, w), out, pre)
        return affine_resample(x, matrix, out, "bilinear", c.fill)


def lucid_transforms(size: int = 128) -> Compose:
    """lucid's standard transforms with lucid's semantics (see the module docstring)."""
    return Compose(
        [
            Pad(12, 0.5),
            Jitter(8, per_sample=False),
            RandomScale(LUCID_SCALES, per_sample=False),
            RandomRotate(LUCID_ANGLES, mode="nearest", per_sample=False, fill=0.0),
            Jitter(4, per_sample=False),
        ]
    )


def make_transforms(name: str | Transform, size: int) -> Transform:
    """Build a preset by name ('standard', 'lucid', 'none') or pass a Transform through."""
    if isinstance(name, Transform):
        return name
    if name == "standard":
        return FusedAffineJitter(AffineJitterConfig.for_size(size))
    if name == "lucid":
        return lucid_transforms(size)
    if name == "none":
        return Transform()
    raise ValueError(f"unknown transforms {name!r}; valid: 'standard', 'lucid', 'none'")
