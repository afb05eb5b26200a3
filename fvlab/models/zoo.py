"""The model zoo: load a model by name together with its input spec.

Names:
  ``fmnist-cnn``            the embedded reference model (weights ship with fvlab)
  ``fmnist-resnet18``       torchvision's ResNet-18, unmodified, trained on Fashion-MNIST at
                            64 px with 3 channels (embedded weights, fvlab.models.resnet18)
  ``torchvision:<name>``    a torchvision classifier, e.g. ``torchvision:resnet50``; weights from a
                            local file (``weights=PATH``), never downloaded; random without one
  ``inceptionv1``           lucid's InceptionV1; weights from the public PyTorch conversion of
                            lucid's weights (``inception5h.pth``) given as ``weights=PATH``
  a saved-model directory   a model written by fvlab (e.g. a fooled model), see fvlab.models.saved
A user's own module: :func:`from_module`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from fvlab.device import resolve_device
from fvlab.errors import CorruptFileError, FvlabError, FvlabWarning, UnknownModelError
from fvlab.models.hooks import layer_names
from fvlab.models.spec import IMAGENET_MEAN, IMAGENET_STD, InputSpec

EMBEDDED_WEIGHTS = Path(__file__).parent / "weights" / "fmnist-cnn.pt"
REFERENCE_NAME = "fmnist-cnn"


@dataclass
class LoadedModel:
    """A model in eval mode, what its input must look like, and its class names if known.

    Calling it takes images in [0, 1] of shape (B, C, H, W) and applies the spec's
    preprocessing before the module. ``weights`` says where the weights came from
    (a path, ``"embedded"``, or None for random initialisation).
    """

    name: str
    module: nn.Module
    spec: InputSpec
    class_names: tuple[str, ...] | None = None
    weights: str | None = None
    extra: dict = field(default_factory=dict)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.module(self.spec.preprocess(images))

    @property
    def device(self) -> torch.device:
        for tensor in self.module.parameters():
            return tensor.device
        return torch.device("cpu")

    def to(self, device: str | torch.device | None) -> LoadedModel:
        self.module.to(resolve_device(device))
        return self

    def layer_names(self) -> list[str]:
        return layer_names(self.module)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict without executing pickled code; explain a corrupt or wrong file."""
    path = Path(path)
    if not path.is_file():
        raise FvlabError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a broken archive
        raise CorruptFileError(
            f"cannot read weights file {path}: {str(exc).splitlines()[0][:200]}. "
            "It must be a PyTorch state dict saved with torch.save(model.state_dict(), path)"
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CorruptFileError(
            f"{path} does not hold a state dict (a mapping of parameter names to tensors)"
        )
    return state


def load_weights(module: nn.Module, path: str | Path) -> None:
    """Load a state dict into ``module`` strictly, with a readable message on mismatch."""
    state = read_state_dict(path)
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)}≠{tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} (e.g. {', '.join(unexpected[:3])})")
        if wrong_shape:
            parts.append(f"wrong shape {len(wrong_shape)} (e.g. {', '.join(wrong_shape[:3])})")
        raise CorruptFileError(
            f"weights in {path} do not fit this architecture: {'; '.join(parts)}"
        )
    module.load_state_dict(state, strict=True)


def _load_reference(weights: str | Path | None) -> LoadedModel:
    from fvlab.data.fashion_mnist import CLASS_NAMES
    from fvlab.models.reference import FMNIST_SPEC, FmnistCNN

    module = FmnistCNN()
    path = Path(weights) if weights is not None else EMBEDDED_WEIGHTS
    if weights is None and not path.is_file():
        raise FvlabError(
            f"the embedded weights {path} are missing; restore them from git or train them with "
            "`fvlab train-reference --out fvlab/models/weights/fmnist-cnn.pt`"
        )
    load_weights(module, path)
    source = "embedded" if weights is None else str(path)
    return LoadedModel(REFERENCE_NAME, module.eval(), FMNIST_SPEC, CLASS_NAMES, source)


def _load_fmnist_resnet18(weights: str | Path | None) -> LoadedModel:
    from fvlab.data.fashion_mnist import CLASS_NAMES
    from fvlab.models.resnet18.model import FMNIST_RESNET18_SPEC, NAME, WEIGHTS, build

    path = Path(weights) if weights is not None else WEIGHTS
    if weights is None and not path.is_file():
        raise FvlabError(
            f"the embedded weights {path} are missing; restore them from git or train them with "
            f"`python -m fvlab.models.resnet18.train --out {path}`"
        )
    module = build()
    load_weights(module, path)  # float16 on disk → copied into the float32 parameters
    source = "embedded" if weights is None else str(path)
    return LoadedModel(NAME, module.eval(), FMNIST_RESNET18_SPEC, CLASS_NAMES, source)


def _warn_random(name: str) -> None:
    warnings.warn(
        f"{name} has no weights file (weights=PATH / --weights PATH); using random initialisation",
        FvlabWarning,
        stacklevel=4,
    )


def _load_torchvision(name: str, arch: str, weights: str | Path | None) -> LoadedModel:
    import torchvision

    builders = torchvision.models.list_models(module=torchvision.models)
    if arch not in builders:
        import difflib

        close = difflib.get_close_matches(arch, builders, n=5)
        raise UnknownModelError(
            f"torchvision has no classifier {arch!r}; close names: {', '.join(close) or 'none'} "
            f"({len(builders)} available)"
        )
    kwargs: dict = {"weights": None}
    if arch in ("googlenet", "inception_v3"):
        kwargs.update(aux_logits=False, init_weights=True)
    module = torchvision.models.get_model(arch, **kwargs)
    categories = None
    try:
        enum = torchvision.models.get_model_weights(arch)
        categories = tuple(next(iter(enum)).meta.get("categories") or ()) or None
    except (ValueError, StopIteration):
        pass
    if weights is None:
        _warn_random(name)
    else:
        load_weights(module, weights)
    spec = InputSpec(
        channels=3,
        size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        min_size=32,
        fixed_size=arch.startswith("vit_") or arch.startswith("swin_"),
    )
    source = None if weights is None else str(weights)
    return LoadedModel(name, module.eval(), spec, categories, source)


def _load_inceptionv1(weights: str | Path | None) -> LoadedModel:
    from fvlab.models.inceptionv1 import INCEPTIONV1_SPEC, InceptionV1

    module = InceptionV1()
    if weights is None:
        _warn_random("inceptionv1")
    else:
        load_weights(module, weights)
    source = None if weights is None else str(weights)
    return LoadedModel("inceptionv1", module.eval(), INCEPTIONV1_SPEC, None, source)


def load(
    name: str, weights: str | Path | None = None, device: str | torch.device | None = "cpu"
) -> LoadedModel:
    """Load a model by zoo name or saved-model directory (see the module docstring)."""
    if name == REFERENCE_NAME:
        model = _load_reference(weights)
    elif name == "fmnist-resnet18":
        model = _load_fmnist_resnet18(weights)
    elif name.startswith("torchvision:"):
        model = _load_torchvision(name, name.split(":", 1)[1], weights)
    elif name == "inceptionv1":
        model = _load_inceptionv1(weights)
    elif Path(name).is_dir() and (Path(name) / "manifest.json").is_file():
        from fvlab.models.saved import load_saved

        model = load_saved(name, load)
    else:
        raise UnknownModelError(
            f"unknown model {name!r}; valid: 'fmnist-cnn', 'fmnist-resnet18', 'inceptionv1', "
            "'torchvision:<name>' (e.g. torchvision:resnet50), or a directory written by fvlab "
            "(with manifest.json)"
        )
    return model.to(device)


def from_module(
    module: nn.Module,
    spec: InputSpec,
    name: str = "custom",
    class_names: tuple[str, ...] | None = None,
) -> LoadedModel:
    """Wrap a user's own module and input spec (the module is put in eval mode)."""
    return LoadedModel(name, module.eval(), spec, class_names, "user")
