"""Top-k natural exemplars per unit: one streaming activation sweep over a dataset.

Activation of unit ``u`` of layer ``L`` on image ``x`` (the convention of P2):

    a_u(x) = (1 / HW) Σ_{h,w} L(x)[u, h, w]

the spatial mean of the channel of the layer's raw output — pre-ReLU when ``L`` is a conv or
BatchNorm module (for ``fmnist-cnn`` use the ``bn*`` layers). A linear layer's output is used as
is. The search is :func:`fvlab.activations.sweep` with the ``spatial_mean`` reduction: every unit
of every requested layer at once, the exact top-k per unit (:class:`fvlab.activations.TopK`:
ordered by activation, ties by lower dataset index) and each unit's mean and standard
deviation over the stream (:class:`fvlab.activations.Moments`). Image indices are global
dataset indices (``dataset.start`` + position), so shards merge with
:func:`fvlab.activations.merge_sweeps`; :func:`fvlab.data.dataset.fetch_images` reads the
exemplars back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from fvlab.activations.sweep import SweepResult, reduce_activation, sweep
from fvlab.data.dataset import Dataset, head
from fvlab.errors import FvlabError
from fvlab.jobs import at_least
from fvlab.models.hooks import Capture

if TYPE_CHECKING:
    from fvlab.engine.base import Engine
    from fvlab.models.zoo import LoadedModel


def layer_means(
    loaded: LoadedModel, images: torch.Tensor, layers: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Spatial-mean activations ``{layer: (B, C)}`` of images in [0, 1] (one forward, no grad;
    the forward stops once every requested layer has run)."""
    with torch.no_grad(), Capture(loaded.module, layers, detach=True, stop_early=True) as cap:
        cap.run(loaded, images.to(loaded.device))
        return {name: reduce_activation(cap[name], "spatial_mean") for name in layers}


def top_exemplars(
    loaded: LoadedModel,
    dataset: Dataset,
    layers: Sequence[str],
    k: int = 200,
    *,
    batch_size: int = 500,
    max_images: int | None = None,
    shard_images: int | None = None,
    engine: Engine | None = None,
    out: Path | None = None,
    resume: bool = False,
    show_progress: bool = True,
) -> SweepResult:
    """Stream ``dataset`` (its first ``max_images`` images, if given) once and keep the top ``k``
    images of every unit of every layer, with each unit's moments.

    ``result[layer].top.indices`` (U, k) are global dataset indices, best first;
    ``result[layer].moments.std`` (U,) the population standard deviation of a_u.

    With ``shard_images``, the stream is swept in slices of that many images (rounded up to
    whole batches), each a shard run by ``engine`` (default: this process) and kept in
    ``out/shards/exemplars`` (``resume`` reuses intact ones):
    :func:`fvlab.activations.sharded.sharded_sweep`; the top-k is identical to one pass."""
    at_least("top_k", k, 1)
    stream = head(dataset, max_images, "max_images")
    if len(stream) < k:
        raise FvlabError(
            f"top_k={k} needs at least {k} images, but the dataset stream has {len(stream)}; "
            "lower top_k or use more images (max_images, or the train split)"
        )
    names = list(dict.fromkeys(layers))
    if shard_images is None:
        if engine is not None or out is not None or resume:
            raise FvlabError("engine, out and resume need shard_images (a sharded sweep)")
        return sweep(
            loaded, stream, names, reduce="spatial_mean", top_k=k, batch_size=batch_size,
            show_progress=show_progress,
        )  # fmt: skip
    from fvlab.activations.sharded import sharded_sweep

    return sharded_sweep(
        loaded, stream, names, shard_images=shard_images, engine=engine, out=out, resume=resume,
        part="exemplars", reduce="spatial_mean", top_k=k, batch_size=batch_size,
        show_progress=show_progress,
    )  # fmt: skip
