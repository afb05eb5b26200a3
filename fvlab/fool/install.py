"""What every fooling construction shares: installing it, saving it, rebuilding it.

A construction is a child module of the model (``fvlab_circuit``, ``fvlab_silent``) wired in
with forward hooks, so every layer of the model keeps its name and downstream layers are
unchanged. Its pieces:

* :func:`fresh_copy` — a deep copy of a model, so building leaves the caller's model unchanged;
* :func:`attach_child` — add the construction's child module and return the fooled
  ``LoadedModel`` (the caller registers the hooks);
* :class:`Installed` — the base of a built construction: the fooled model, what rebuilds its
  base (:class:`Base`), and ``save(directory)`` in the saved-model format
  (:mod:`fvlab.models.saved`; the construction's ``rebuild`` is registered as an entry point
  of the group ``fvlab.constructions``);
* :func:`restore_base` — the first step of every ``rebuild``: the base model's own weights
  when they were random (they travel in the tensor file as ``base.*``).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from fvlab.errors import FvlabError

if TYPE_CHECKING:
    from fvlab.models.zoo import LoadedModel

BASE_PREFIX = "base."


def fresh_copy(model: LoadedModel) -> LoadedModel:
    """A LoadedModel with a deep copy of ``model.module`` (same weights, spec, names)."""
    from fvlab.models.zoo import LoadedModel

    return LoadedModel(
        model.name,
        copy.deepcopy(model.module),
        model.spec,
        model.class_names,
        model.weights,
        dict(model.extra),
    )


def attach_child(
    model: LoadedModel, child: str, module: nn.Module, construction: str, extra: dict[str, Any]
) -> LoadedModel:
    """Add ``module`` as child ``child`` of ``model.module`` (in place) and return the fooled
    LoadedModel named ``<base>+<construction>(<layer>)``; ``extra`` must hold ``layer``."""
    from fvlab.models.zoo import LoadedModel

    root = model.module
    if hasattr(root, child):
        raise FvlabError(
            f"this model already has a {construction} construction ({child}); load a fresh "
            "copy of the model"
        )
    root.add_module(child, module.to(model.device))
    return LoadedModel(
        name=f"{model.name}+{construction}({extra['layer']})",
        module=root.eval(),
        spec=model.spec,
        class_names=model.class_names,
        weights=model.weights,
        extra={"construction": construction, "base": model.name, **extra},
    )


@dataclass(frozen=True)
class Base:
    """What rebuilds the unmodified model: its zoo name (or saved-model directory), its weights
    source, and — when its weights are random (``weights`` None) — the weights themselves."""

    name: str
    weights: str | None
    state: dict[str, torch.Tensor] | None = None

    @classmethod
    def of(cls, model: LoadedModel) -> Base:
        state = None
        if model.weights is None:  # random weights: the saved model must carry them
            state = {k: v.detach().cpu().clone() for k, v in model.module.state_dict().items()}
        return cls(model.name, model.weights, state)


class Installed(ABC):
    """Base of a built construction (``BuiltCircuit``, ``BuiltSilent``): ``model`` is the
    fooled LoadedModel, ``base`` rebuilds the original; subclasses name their ``construction``
    and give the manifest's JSON parameters and tensors."""

    construction: ClassVar[str]
    model: LoadedModel
    base: Base

    @abstractmethod
    def saved_params(self) -> dict[str, Any]:
        """JSON parameters for the manifest (what ``rebuild`` reads)."""

    @abstractmethod
    def saved_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors for ``tensors.pt`` (without the base weights, which are added here)."""

    def save(self, directory: str | Path) -> Path:
        """Write the fooled model in fvlab's saved-model format (``fvlab.load(directory)``
        rebuilds it exactly); returns ``directory``."""
        from fvlab.models.saved import save_model

        if self.base.weights == "user":
            raise FvlabError(
                f"{self.base.name} was wrapped with fvlab.from_module, so fvlab.load cannot "
                f"rebuild it; save {self.construction} constructions of zoo models (fmnist-cnn, "
                "torchvision:…, inceptionv1) or of saved-model directories"
            )
        tensors = dict(self.saved_tensors())
        if self.base.state is not None:
            tensors.update({BASE_PREFIX + k: v for k, v in self.base.state.items()})
        return save_model(
            directory,
            self.base.name,
            self.base.weights,
            self.construction,
            self.saved_params(),
            tensors,
        )


def restore_base(base: LoadedModel, tensors: dict[str, torch.Tensor]) -> None:
    """Load the stored ``base.*`` weights (a base with random weights) into ``base``."""
    n = len(BASE_PREFIX)
    state = {k[n:]: v for k, v in tensors.items() if k.startswith(BASE_PREFIX)}
    if state:
        base.module.load_state_dict(state, strict=True)


@dataclass
class FooledResult:
    """What a fooling job returns: the built construction (``built.model`` is the fooled model,
    ``built.save(dir)`` writes it), the grid (rows: original FV | fooled FV | what it should
    show) and the job's figures (what summary.json holds)."""

    built: Installed
    grid: torch.Tensor
    figures: dict[str, Any]

    @property
    def model(self) -> LoadedModel:
        """The fooled model."""
        return self.built.model

    def summary(self) -> dict[str, Any]:
        return self.figures

    def save(self, out: Path) -> Path:
        """Write OUT/model/ (the fooled model), OUT/grid.png and OUT/summary.json."""
        from fvlab.report.images import save_grid
        from fvlab.report.summary import write_summary

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        columns = len(self.figures["units"])
        save_grid(self.grid, out / "grid.png", ncol=columns, upscale=4 if columns <= 16 else 2)
        self.built.save(out / "model")
        return write_summary(out, self.figures)
