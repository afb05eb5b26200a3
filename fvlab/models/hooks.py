"""Scoped capture of named layers.

``capture(model, ["layer4.1.conv2"])`` hooks only the named modules (dotted ``named_modules()``
paths) and removes every hook when the ``with`` block exits, also after an exception. It counts
how often each module runs in one forward pass of the root module: a module that runs more than
once (torchvision ResNet reuses one ``relu`` per block) has no single output, and reading it
raises :class:`RepeatedModuleError` unless ``on_repeat`` says which call to keep.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import torch
from torch import nn

from fvlab.errors import RepeatedModuleError, UnknownLayerError

OnRepeat = Literal["error", "first", "last"]


def layer_names(model: nn.Module) -> list[str]:
    """All dotted module names of ``model`` in registration order (the root excluded)."""
    return [name for name, _ in model.named_modules() if name]


def unknown_layer_message(name: str, valid: list[str]) -> str:
    """A message naming the closest valid layer names to ``name``."""
    close = difflib.get_close_matches(name, valid, n=5, cutoff=0.5)
    if not close:
        prefix = name.split(".")[0]
        close = [v for v in valid if v.startswith(prefix)][:5] or valid[:5]
    hint = ", ".join(repr(c) for c in close)
    return (
        f"unknown layer {name!r}; closest valid names: {hint} "
        f"(see all {len(valid)} with `fvlab layers --model NAME`)"
    )


def resolve_layers(model: nn.Module, names: Iterable[str]) -> dict[str, nn.Module]:
    """Map layer names to modules, raising :class:`UnknownLayerError` with close names."""
    if not isinstance(model, nn.Module) and isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    modules = dict(model.named_modules())
    resolved: dict[str, nn.Module] = {}
    for name in names:
        if not isinstance(name, str) or not name or name not in modules:
            raise UnknownLayerError(unknown_layer_message(str(name), layer_names(model)))
        resolved[name] = modules[name]
    return resolved


class _StopForward(Exception):
    """Raised inside a hook to end a forward pass once every requested layer has run."""


def _first_tensor(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"cannot capture a module output of type {type(output).__name__}")


class Capture:
    """Outputs of the requested layers in the latest forward pass of the root module."""

    def __init__(
        self,
        model: nn.Module,
        layers: Iterable[str],
        *,
        detach: bool = False,
        stop_early: bool = False,
        on_repeat: OnRepeat = "error",
        map_output: Callable[[str, torch.Tensor], Any] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module) and isinstance(
            getattr(model, "module", None), nn.Module
        ):
            model = model.module  # a LoadedModel
        self.model = model
        self.modules = resolve_layers(model, list(dict.fromkeys(layers)))
        self.detach = detach
        self.stop_early = stop_early
        self.on_repeat = on_repeat
        self.map_output = map_output
        self._outputs: dict[str, list[Any]] = {name: [] for name in self.modules}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._completed_passes = 0
        self._repeats_seen = False
        self._running = False

    # -- hook management -------------------------------------------------------------------
    def __enter__(self) -> Capture:
        self._handles.append(self.model.register_forward_pre_hook(self._reset))
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_hook(self._make_hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _reset(self, module: nn.Module, args: Any) -> None:
        for outputs in self._outputs.values():
            outputs.clear()

    def _make_hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            tensor = _first_tensor(output)
            value = tensor.detach() if self.detach else tensor
            if self.map_output is not None:
                value = self.map_output(name, value)
            self._outputs[name].append(value)
            if (
                self._running
                and self.stop_early
                and self._completed_passes > 0
                and not self._repeats_seen
                and all(self._outputs.values())
            ):
                raise _StopForward

        return hook

    # -- running -----------------------------------------------------------------------------
    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn`` (usually a forward pass); with ``stop_early`` the pass may end as soon as
        every requested layer has run (after one full pass has shown no module repeats).
        Returns ``fn``'s result, or None if the pass was stopped early."""
        self._running = True
        try:
            result = fn(*args, **kwargs)
        except _StopForward:
            return None
        finally:
            self._running = False
        self._completed_passes += 1
        if any(len(v) > 1 for v in self._outputs.values()):
            self._repeats_seen = True
        return result

    # -- reading ---------------------------------------------------------------------------
    @property
    def repeated(self) -> dict[str, int]:
        """Layers that ran more than once in the latest forward pass, with their call counts."""
        return {n: len(v) for n, v in self._outputs.items() if len(v) > 1}

    def calls(self, name: str) -> list[torch.Tensor]:
        """Every output of ``name`` in the latest forward pass, in call order."""
        if name not in self._outputs:
            raise UnknownLayerError(unknown_layer_message(name, list(self._outputs)))
        return list(self._outputs[name])

    def __getitem__(self, name: str) -> torch.Tensor:
        outputs = self.calls(name)
        if not outputs:
            raise RuntimeError(
                f"layer {name!r} did not run in the latest forward pass; "
                "run the model inside the capture block first"
            )
        if len(outputs) > 1:
            if self.on_repeat == "error":
                raise RepeatedModuleError(
                    f"module {name!r} ({type(self.modules[name]).__name__}) ran "
                    f"{len(outputs)} times in one forward pass, so it has no single output "
                    "(the model reuses this module object). Capture a module that runs once "
                    "(e.g. the preceding BatchNorm or the enclosing block), or pass "
                    "on_repeat='first' or 'last'."
                )
            return outputs[0] if self.on_repeat == "first" else outputs[-1]
        return outputs[0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._outputs)


def capture(model: nn.Module, layers: Iterable[str], **options: Any) -> Capture:
    """``with capture(model, layers, ...) as cap:`` — a :class:`Capture` (same options: detach,
    stop_early, on_repeat, map_output) whose hooks are removed when the block exits, always.

    ``map_output(name, tensor)``, if given, is applied inside the hook and its result is kept
    instead of the tensor — e.g. a reduction, so that large outputs are freed as soon as the
    next layer has consumed them.
    """
    return Capture(model, layers, **options)
