"""Forward hooks on exactly the layers an objective reads, and a forward pass that stops after them."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import torch
from torch import nn

from featviz.errors import FeatvizError
from featviz.hooks.layout import Layout, channels_first

IMAGE = "@image"
OUTPUT = "@output"
RESERVED = frozenset({IMAGE, OUTPUT})


class _StopForward(Exception):
    """Raised inside a hook once every requested layer has produced its output."""


def first_tensor(output: Any) -> torch.Tensor:
    """The activation a layer's output stands for: itself, or the first tensor of a tuple, list or dict.

    Example:
        >>> first_tensor((torch.ones(1, 4), None)).shape
        torch.Size([1, 4])
    """
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
            if isinstance(item, (tuple, list, dict)):
                return first_tensor(item)
    raise FeatvizError(f"layer output of type {type(output).__name__} holds no tensor; pick a layer that outputs one")


class ActivationCapture:
    """Hooks on the named layers of a model; `run(images)` returns their activations.

    Hooks are registered on entering the context and removed on leaving it, even when an exception is
    raised. Unless the network's output (`"@output"`) is requested or ``stop_early`` is False, the forward pass
    stops as soon as every requested layer has run, so the rest of the network is never computed. With ``layouts`` (from
    `featviz.hooks.bind_layers`), every activation is returned channels-first, ``(B, C, H, W)``; without, as
    the layer output it. A layer that runs several times in one forward pass is read at its first call.

    Example:
        >>> images = torch.rand(2, 3, 64, 96)
        >>> with ActivationCapture(model, ["blocks.4.0.conv_pwl", "blocks.2"]) as capture:
        ...     activations = capture.run(images)       # the forward stops after blocks.4.0.conv_pwl
        >>> {name: tuple(value.shape) for name, value in sorted(activations.items())}
        {'blocks.2': (2, 40, 8, 12), 'blocks.4.0.conv_pwl': (2, 112, 4, 6)}
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Iterable[str],
        stop_early: bool = True,
        layouts: Mapping[str, Layout] | None = None,
    ):
        self.model = model
        self.layouts = layouts
        requested = set(layers)
        self.needs_output = OUTPUT in requested
        self.layer_names = sorted(requested - RESERVED)
        self.stop_early = stop_early and not self.needs_output
        network = getattr(model, "network", model)
        get_layer = getattr(model, "get_layer", network.get_submodule)
        self._modules = {name: get_layer(name) for name in self.layer_names}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._activations: dict[str, torch.Tensor] = {}
        self._pending: set[str] = set()
        self._versions: dict[str, int | None] = {}  # None: an inference tensor, which keeps no version
        # Layers whose output the network later changes in place (an in-place ReLU, `out += identity`): their
        # activation is copied at capture time, found out on the first run that sees it overwritten.
        self._copied: set[str] = set()

    def __enter__(self) -> "ActivationCapture":
        try:
            for name, module in self._modules.items():
                self._handles.append(module.register_forward_hook(self._hook_for(name)))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this capture registered."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook_for(self, name: str):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if name not in self._pending:
                return
            tensor = first_tensor(output)
            if name in self._copied:
                tensor = tensor.clone()
            self._activations[name] = tensor
            self._versions[name] = None if tensor.is_inference() else tensor._version
            self._pending.discard(name)
            if self.stop_early and not self._pending:
                raise _StopForward

        return hook

    def run(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the model on `images` and return `{layer name: activation}` (plus `"@output"` if requested)."""
        if not self._handles and self._modules:
            raise RuntimeError("ActivationCapture.run called outside its `with` block")
        output = self._forward(images)
        overwritten = {
            name for name, value in self._activations.items()
            if self._versions[name] is not None and value._version != self._versions[name]
        }
        if overwritten:
            self._copied |= overwritten
            output = self._forward(images)
        if self.needs_output:
            self._activations[OUTPUT] = first_tensor(output)
        if self.layouts is not None:
            return {name: channels_first(value, self.layouts[name]) for name, value in self._activations.items()}
        return self._activations

    def _forward(self, images: torch.Tensor) -> Any:
        self._activations = {}
        self._pending = set(self.layer_names)
        output = None
        try:
            output = self.model(images)
        except _StopForward:
            pass
        if self._pending:
            missing = ", ".join(sorted(self._pending))
            raise FeatvizError(f"layer(s) {missing} did not run in the forward pass; pick layers the model's forward calls")
        return output
