"""What layers a model has: dot-path names, module types, output shapes, layouts and channel counts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from featviz.errors import FeatvizError
from featviz.hooks.layout import map_shape
from featviz.hooks.survey import PROBE_BATCH, probe_shapes, survey_model


@dataclass(frozen=True)
class LayerInfo:
    """One row of `featviz layers`: a layer's dot-path name, module type, output shape (batch of 1), layout and
    channels (None where the layer did not run, or its layout cannot be told without a declaration)."""

    name: str
    type: str
    shape: tuple[int, ...] | None
    layout: str | None
    channels: int | None


def layer_table(model: Any, size: tuple[int, int] | None = None) -> list[LayerInfo]:
    """Every named module of the model's network with its output shape and layout at ``size`` (default: the
    model's input size; a model that takes no other size is shown at its own).

    Layouts come from `featviz.hooks.survey` (two dry forward passes, cached on the model).

    Example:
        >>> for row in layer_table(model, (64, 64))[:3]:
        ...     print(row.name, row.type, row.shape, row.layout, row.channels)
        conv_stem Conv2dSame (1, 32, 32, 32) nchw 32
        bn1 BatchNormAct2d (1, 32, 32, 32) nchw 32
        bn1.drop Identity (1, 32, 32, 32) nchw 32
    """
    found = survey_model(model)
    shapes, seen = found.shapes, found.size
    if size is not None and tuple(size) != found.size and found.takes_other_sizes:
        seen = (int(size[0]), int(size[1]))
        shapes = probe_shapes(model, seen)
    rows = []
    for name, module in model.network.named_modules():
        if not name:
            continue
        shape = shapes.get(name)
        layout = channels = None
        if shape is not None:
            try:
                chosen = found.layout(name, shape, seen)
                layout = chosen.describe()
                channels = map_shape(shape, chosen)[1]
            except FeatvizError:
                pass
            batch_dim = 1 if layout is not None and layout.startswith("lnc") else 0
            shape = tuple(1 if index == batch_dim and size == PROBE_BATCH else size for index, size in enumerate(shape))
        rows.append(LayerInfo(name, type(module).__name__, shape, layout, channels))
    return rows


def format_layer_table(rows: list[LayerInfo]) -> str:
    """The table `featviz layers` prints for ``rows`` (from `layer_table`): aligned columns name, type, output
    shape, layout, channels."""
    header = ("layer", "type", "output shape", "layout", "channels")
    cells = [header] + [
        (row.name, row.type, "x".join(map(str, row.shape)) if row.shape else "-", row.layout or "?" if row.shape else "-",
         str(row.channels) if row.channels is not None else "-")
        for row in rows
    ]
    widths = [max(len(cell[i]) for cell in cells) for i in range(4)]
    return "\n".join(
        "  ".join(f"{cell[i]:<{widths[i]}}" for i in range(4)).rstrip() + f"  {cell[4]}" for cell in cells
    )
