"""What layers a model has: dot-path names, module types, output shapes and channel counts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from featviz.hooks.capture import first_tensor
from featviz.hooks.layout import channel_count


@dataclass(frozen=True)
class LayerInfo:
    """One row of `featviz layers`: a layer's dot-path name, module type, output shape and channels."""

    name: str
    type: str
    shape: tuple[int, ...] | None
    channels: int | None


def layer_table(model: nn.Module, size: tuple[int, int] | None = None) -> list[LayerInfo]:
    """Every named module of the model's network with the output shape seen in one dry forward pass.

    Modules that did not run in the forward pass (or output no tensor) have `shape=None`. The dry pass uses
    one image of the model's input size (or `size`) with all values 0.5.

    Example:
        >>> for row in layer_table(featviz.load_model("efficientnet_lite0"))[:3]:
        ...     print(row.name, row.type, row.shape)
    """
    network = getattr(model, "network", model)
    height, width = size or getattr(model, "input_size", (224, 224))
    channels = getattr(model, "channels", 3)
    shapes: dict[str, tuple[int, ...]] = {}

    def hook_for(name: str):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if name in shapes:
                return
            try:
                shapes[name] = tuple(first_tensor(output).shape)
            except ValueError:
                pass

        return hook

    named = [(name, module) for name, module in network.named_modules() if name]
    handles = [module.register_forward_hook(hook_for(name)) for name, module in named]
    try:
        parameter = next(network.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        dtype = parameter.dtype if parameter is not None else torch.float32
        with torch.no_grad():
            model(torch.full((1, channels, height, width), 0.5, device=device, dtype=dtype))
    finally:
        for handle in handles:
            handle.remove()
    rows = []
    for name, module in named:
        shape = shapes.get(name)
        rows.append(LayerInfo(name, type(module).__name__, shape, channel_count(shape) if shape else None))
    return rows


def format_layer_table(rows: list[LayerInfo]) -> str:
    """The table `featviz layers` prints: aligned columns name, type, output shape, channels."""
    header = ("layer", "type", "output shape", "channels")
    cells = [header] + [
        (row.name, row.type, "x".join(map(str, row.shape)) if row.shape else "-", str(row.channels or "-")) for row in rows
    ]
    widths = [max(len(cell[i]) for cell in cells) for i in range(3)]
    return "\n".join(
        f"{c[0]:<{widths[0]}}  {c[1]:<{widths[1]}}  {c[2]:<{widths[2]}}  {c[3]}".rstrip() for c in cells
    )
