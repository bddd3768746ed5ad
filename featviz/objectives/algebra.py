"""`stack`: N objectives rendered at once, one per image. The weighted sums, products and quotients that ``+ - * /``
build live beside `Objective` in `featviz.objectives.base`."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from featviz.errors import FeatvizError
from featviz.objectives.base import Objective
from featviz.objectives.checks import Activations, Shapes, read
from featviz.objectives.fused import UnitGather


class Stack(Objective):
    """N objectives rendered at once, one per image: element ``j`` of the batch gets objective ``j % N``.

    The batch holds ``N * K`` elements in view-major order (``k * N + b`` is view ``k`` of image ``b``).
    Built by ``stack()``.

    Example:
        >>> from featviz.objectives import channel
        >>> gallery = stack([channel("blocks.4.0.conv_pwl", c) for c in range(64)])
        >>> activations = {"blocks.4.0.conv_pwl": torch.rand(64 * 2, 112, 4, 4)}   # K = 2 views of 64 images
        >>> gallery(activations).shape
        torch.Size([128])
    """

    elementwise = False  # which objective applies depends on the element's position in the batch

    def __init__(self, objectives: Sequence[Objective]) -> None:
        objectives = tuple(objectives)
        if not objectives:
            raise FeatvizError("stack() needs at least one objective; pass a list like [channel('layer', 0), ...]")
        for item in objectives:
            if not isinstance(item, Objective):
                raise FeatvizError(f"stack() takes objectives, got {type(item).__name__}; parse strings with parse() first")
        layers = frozenset().union(*(item.layers for item in objectives))
        super().__init__(layers, _stack_name(objectives))
        self.objectives = objectives
        self._gather = UnitGather.build(objectives)
        self._batch_layer = min(layers) if layers else None

    def __call__(self, acts: Activations) -> Tensor:
        count = len(self.objectives)
        if self._batch_layer is None:
            raise FeatvizError("stack() of objectives that read no layer cannot tell the batch size")
        batch = read(acts, self._batch_layer).shape[0]
        if batch % count:
            raise FeatvizError(
                f"a stack of {count} objectives needs a batch of a multiple of {count} elements "
                f"(one per objective, times the views), got {batch}"
            )
        if self._gather is not None:
            return self._gather(acts, batch // count)
        values = []
        for index, item in enumerate(self.objectives):
            if item.elementwise:
                values.append(item({name: read(acts, name)[index::count] for name in item.layers}))
            else:
                values.append(item(acts)[index::count])
        # values[b][k] belongs at k * N + b: stacking on dim 1 gives a (K, N) grid in exactly that order.
        return torch.stack(values, dim=1).reshape(-1)

    def bind(self, model: Any, shapes: Shapes) -> None:
        for item in self.objectives:
            item.bind(model, shapes)
        if self._gather is not None:
            self._gather = UnitGather(self.objectives)  # type: ignore[arg-type]  # channels may have been resolved

    def resolve_layers(self, model: Any, read_layer: Callable[[str], Tensor]) -> None:
        for item in self.objectives:
            item.resolve_layers(model, read_layer)
        self._layers = frozenset().union(*(item.layers for item in self.objectives))
        self._batch_layer = min(self._layers) if self._layers else None


def stack(objectives: Sequence[Objective]) -> Objective:
    """Render N objectives at once, one per batch element: element ``j`` is scored by objective ``j % N``.

    The batch holds ``N * K`` elements in view-major order (index ``k * N + b`` is view ``k`` of image
    ``b``). Units (channels, neurons) of one layer are evaluated with a single gather, so a gallery of 64
    channels costs about as much as one; other objectives are evaluated on their own elements only.

    Example:
        >>> from featviz.objectives import channel
        >>> gallery = stack([channel("blocks.4.0.conv_pwl", c) for c in range(16)])
        >>> activations = {"blocks.4.0.conv_pwl": torch.rand(16, 112, 4, 4)}     # one view of 16 images
        >>> values = gallery(activations)
        >>> torch.allclose(values[3], activations["blocks.4.0.conv_pwl"][3, 3].mean())   # image 3: channel 3
        True
    """
    return Stack(objectives)


def _stack_name(objectives: Sequence[Objective]) -> str:
    if len(objectives) <= 4:
        return "stack(" + ", ".join(item.name for item in objectives) + ")"
    shown = ", ".join(item.name for item in objectives[:2])
    return f"stack({shown}, ... {len(objectives)} objectives)"
