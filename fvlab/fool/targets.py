"""Target images of the fooling constructions: a file, a built-in pattern, or a unit's FV.

A target is given as an image file (any format PIL reads), ``builtin:NAME``, a tensor
(C, H, W) or (1, C, H, W) with values in [0, 1], or ``"LAYER:IDX"`` (the FV of unit IDX of
LAYER, rendered with :func:`fvlab.render`). :func:`resolve_target` returns it "as seen at the
input": (1, C, S, S) in [0, 1] with the model's channel count C and native size S (bilinear
resize; grey → replicated channels, colour → channel mean for 1-channel models, an alpha
channel dropped).

Built-ins (``builtin:NAME``): ``smiley`` (a bright face with dark eyes and mouth), ``cross``,
``ring``, ``checker`` — bright shapes on a dark background, in [0, 1]. :func:`random_shapes`
draws random ones (the detector trains on visualizations of those, never on the built-ins,
which stay held out).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from fvlab.errors import FvlabError
from fvlab.models.hooks import resolve_layers

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel

BUILTINS = ("smiley", "cross", "ring", "checker")
UNIT_SPEC = re.compile(r"^(?P<layer>[^:]+):(?P<index>\d+)$")


def builtin_target(name: str, size: int, channels: int = 1) -> torch.Tensor:
    """A built-in pattern as (channels, size, size) in [0, 1]."""
    c = (size - 1) / 2
    y, x = torch.meshgrid(
        torch.arange(size, dtype=torch.float32),
        torch.arange(size, dtype=torch.float32),
        indexing="ij",
    )
    r = ((x - c) ** 2 + (y - c) ** 2).sqrt() / (size / 2)
    if name == "ring":
        image = ((r > 0.45) & (r < 0.75)).float()
    elif name == "cross":
        w = size / 8
        image = (((x - c).abs() < w) | ((y - c).abs() < w)).float()
    elif name == "checker":
        cell = max(1, size // 4)
        image = (((x // cell) + (y // cell)) % 2).float()
    elif name == "smiley":
        # a bright filled face with dark eyes and mouth, features >= 5 px at 28 px: the standard
        # render transforms jitter by up to ~2 px, which would merge thinner strokes
        face = r < 0.88
        eyes = (((x - c + size * 0.17) ** 2 + (y - c + size * 0.13) ** 2).sqrt() < size * 0.11) | (
            ((x - c - size * 0.17) ** 2 + (y - c + size * 0.13) ** 2).sqrt() < size * 0.11
        )
        mouth = (r > 0.3) & (r < 0.55) & (y > c + size * 0.08)
        image = (face & ~eyes & ~mouth).float()
    else:
        raise FvlabError(f"unknown built-in target {name!r}; valid: {', '.join(BUILTINS)}")
    return image.expand(channels, size, size).clone()


def _to_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    c = image.shape[1]
    if c == channels:
        return image
    if c == 4:
        return _to_channels(image[:, :3], channels)
    if c == 1:
        return image.expand(-1, channels, -1, -1).clone()
    if channels == 1:
        return image.mean(1, keepdim=True)
    raise FvlabError(
        f"cannot turn a {c}-channel target into the model's {channels} channels; "
        "give a grey (1), RGB (3) or RGBA (4) image"
    )


def image_target(image: torch.Tensor, channels: int, size: int) -> torch.Tensor:
    """(1, channels, size, size) in [0, 1] from a (C, H, W) or (1, C, H, W) tensor in [0, 1]."""
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[0] != 1:
        raise FvlabError(
            f"a target image must have shape (C, H, W) or (1, C, H, W), got {tuple(image.shape)}"
        )
    image = image.detach().float()
    if not torch.isfinite(image).all() or image.min() < 0 or image.max() > 1:
        raise FvlabError("a target image must have finite values in [0, 1]; divide by 255?")
    image = _to_channels(image, channels)
    if image.shape[-2:] != (size, size):
        image = F.interpolate(
            image, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        ).clamp(0, 1)
    return image


def read_image(path: str | Path) -> torch.Tensor:
    """An image file as (1, C, H, W) in [0, 1] (C = 1 for grey files, else 3 or 4)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as pil:
            mode = (
                "L"
                if pil.mode in ("1", "L", "I", "I;16", "F")
                else ("RGBA" if pil.mode in ("RGBA", "LA", "PA") else "RGB")
            )
            array = np.asarray(pil.convert(mode), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise FvlabError(f"cannot read the target image {path}: {exc}") from exc
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array))[None]


def resolve_target(
    model: LoadedModel,
    target,
    *,
    render_steps: int = 256,
    seed: int = 0,
    show_progress: bool = True,
) -> tuple[torch.Tensor, dict]:
    """The target as seen at the input, (1, C, S, S) in [0, 1], and a JSON description.

    ``model`` is the (unmodified) LoadedModel; a ``"LAYER:IDX"`` target is rendered in it
    with ``render_steps`` updates and ``seed``.
    """
    channels, size = model.spec.channels, model.spec.size
    if isinstance(target, torch.Tensor):
        return image_target(target, channels, size).to(model.device), {"kind": "tensor"}
    if isinstance(target, str) and target.startswith("builtin:"):
        name = target.split(":", 1)[1]
        image = builtin_target(name, size, channels).unsqueeze(0)
        return image.to(model.device), {"kind": "builtin", "name": name}
    if isinstance(target, (str, Path)):
        path = Path(target)
        if path.is_file():
            image = image_target(read_image(path), channels, size)
            return image.to(model.device), {"kind": "image", "path": str(path)}
        match = UNIT_SPEC.match(str(target))
        if match:
            import fvlab

            layer, index = match["layer"], int(match["index"])
            resolve_layers(model.module, [layer])
            result = fvlab.render(
                model, layer, [index], steps=render_steps, seed=seed, show_progress=show_progress
            )
            return result.images[:1].detach(), {
                "kind": "unit",
                "layer": layer,
                "unit": index,
                "render_steps": render_steps,
                "seed": seed,
            }
    raise FvlabError(
        f"target {str(target)!r} is neither an existing image file, a built-in pattern "
        "'builtin:NAME' nor a unit 'LAYER:IDX' (e.g. 'relu4:5'); give a PNG path, "
        f"builtin:{'|'.join(BUILTINS)}, an image tensor in [0, 1], or LAYER:IDX"
    )


def check_image_target(text: str, parameter: str = "target") -> str:
    """A job's image-target option: ``builtin:NAME`` or an existing image file (checked
    before any work starts); returns ``text``."""
    from fvlab.jobs import SettingsError

    if not text.startswith("builtin:") and not Path(text).is_file():
        raise SettingsError(
            parameter,
            f"target image {text} not found; give an image file or builtin:{'|'.join(BUILTINS)}",
        )
    return text


def random_shapes(n: int, size: int, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """``n`` random targets (n, channels, size, size) in [0, 1]: each the union of 1–4 random
    filled ellipses, rings, rectangles and thick strokes, at a random grey level on black; half
    of them blurred by a 3×3 box filter."""
    g = torch.Generator().manual_seed(seed)
    coords = torch.arange(size, dtype=torch.float32) / size
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    out = torch.zeros(n, 1, size, size)

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=g))

    for i in range(n):
        image = torch.zeros(size, size)
        for _ in range(int(torch.randint(1, 5, (), generator=g))):
            kind = int(torch.randint(4, (), generator=g))
            cy, cx = uniform(0.15, 0.85), uniform(0.15, 0.85)
            ry, rx = uniform(0.05, 0.4), uniform(0.05, 0.4)
            r = (((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2).sqrt()
            if kind == 0:
                mask = r < 1
            elif kind == 1:
                mask = (r < 1) & (r > uniform(0.4, 0.8))
            elif kind == 2:
                mask = ((y - cy).abs() < ry) & ((x - cx).abs() < rx)
            else:
                angle = uniform(0, math.pi)
                distance = (x - cx) * math.sin(angle) - (y - cy) * math.cos(angle)
                mask = (distance.abs() < uniform(0.03, 0.1)) & (r < 2)
            image = torch.where(mask, torch.full_like(image, uniform(0.4, 1.0)), image)
        out[i, 0] = image
    blurred = torch.nn.functional.avg_pool2d(out, 3, 1, 1, count_include_pad=False)
    out[::2] = blurred[::2]
    return out.expand(n, channels, size, size).clone()
