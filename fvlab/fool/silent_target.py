"""The target pattern of silent units: an image, or the feature visualization of a unit.

A target is given as an image file (any format PIL reads), a tensor (C, H, W) or (1, C, H, W)
with values in [0, 1], or ``"LAYER:IDX"`` (the FV of unit IDX of LAYER, rendered with
:func:`fvlab.render`). It is returned "as seen at the input": (1, C, S, S) in [0, 1] with the
model's channel count C and native size S (bilinear resize; grey → replicated channels,
colour → channel mean for 1-channel models, an alpha channel dropped).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F

from fvlab.errors import FvlabError
from fvlab.models.hooks import resolve_layers

UNIT_SPEC = re.compile(r"^(?P<layer>[^:]+):(?P<index>\d+)$")


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


def read_image(path: Path) -> torch.Tensor:
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
    model,
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
        from fvlab.fool.targets import builtin_target

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
    from fvlab.fool.targets import BUILTINS

    raise FvlabError(
        f"target {str(target)!r} is neither an existing image file, a built-in pattern "
        "'builtin:NAME' nor a unit 'LAYER:IDX' (e.g. 'relu4:5'); give a PNG path, "
        f"builtin:{'|'.join(BUILTINS)}, an image tensor in [0, 1], or LAYER:IDX"
    )
