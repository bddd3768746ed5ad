"""Many units of one layer read with one gather instead of one evaluation each: for sums and stacks.

Only the library's own units (channel, neuron, class logit) are fused: a subclass may compute something
else in its ``__call__``, so it is always evaluated by calling it.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from featviz.objectives.base import Constant, Objective, Unit
from featviz.objectives.checks import Activations, read


def fusable(item: Objective) -> bool:
    """Whether ``item`` is one of the library's own units, whose value a gather computes exactly.

    A class opts in by setting ``fusable = True`` in its own body; subclasses do not inherit it.

    Example:
        >>> from featviz.objectives.units import Channel
        >>> class ClampedChannel(Channel):                    # a subclass is called, never gathered
        ...     def __call__(self, acts):
        ...         return super().__call__(acts).clamp(max=4.0)
        >>> fusable(Channel("blocks.4", 3)), fusable(ClampedChannel("blocks.4", 3))
        (True, False)
    """
    return isinstance(item, Unit) and type(item).__dict__.get("fusable", False) is True


class ChannelGroup:
    """Weighted spatial means of several ``channels`` of one ``layer`` (one entry of ``weights`` each), computed
    with one gather.

    Example:
        >>> ChannelGroup("blocks.4", [1, 5], [1.0, -0.5])({"blocks.4": torch.rand(2, 8, 4, 4)}).shape
        torch.Size([2])
    """

    def __init__(self, layer: str, channels: list[int], weights: list[float]) -> None:
        self.layer = layer
        self.count = len(channels)
        self.channels = Constant(torch.tensor(channels, dtype=torch.long))
        self.weights = Constant(torch.tensor(weights, dtype=torch.float64))

    def __call__(self, acts: Activations) -> Tensor:
        activation = read(acts, self.layer)
        channels = self.channels.on(activation.device)
        if 2 * self.count >= activation.shape[1]:
            means = activation.mean((-2, -1)).index_select(1, channels)
        else:
            means = activation.index_select(1, channels).mean((-2, -1))
        return means @ self.weights.like(means)


class UnitGather:
    """A stack of units of one layer (all spatial means, or all positions) read with one gather.

    Example:
        >>> from featviz.objectives import channel
        >>> gather = UnitGather.build([channel("blocks.4", c) for c in range(4)])
        >>> gather({"blocks.4": torch.rand(8, 16, 4, 4)}, views=2).shape
        torch.Size([8])
    """

    def __init__(self, units: Sequence[Unit]) -> None:
        self.units = units
        self.layer = units[0].layer
        self.point = units[0].point
        self.elements = Constant(torch.arange(len(units)))
        self._channels: Constant | None = None  # read on first use: class labels resolve at bind time
        self._positions: dict[tuple[int, int, torch.device], tuple[Tensor, Tensor]] = {}

    @classmethod
    def build(cls, objectives: Sequence[Objective]) -> UnitGather | None:
        """The gather for ``objectives`` when all are fusable units of one layer and one kind, else None."""
        first = objectives[0]
        for item in objectives:
            if not fusable(item) or item.layer != first.layer or item.point != first.point:  # type: ignore[attr-defined]
                return None
        return cls(objectives)  # type: ignore[arg-type]

    def __call__(self, acts: Activations, views: int) -> Tensor:
        activation = read(acts, self.layer)
        device = activation.device
        grid = activation.unflatten(0, (views, len(self.units)))  # (K, N, C, H, W)
        if self._channels is None:
            self._channels = Constant(torch.tensor([unit.channel for unit in self.units], dtype=torch.long))
        elements, channels = self.elements.on(device), self._channels.on(device)
        if not self.point:
            return grid[:, elements, channels].mean((-2, -1)).reshape(-1)
        rows, columns = self._rows_columns(grid.shape[-2], grid.shape[-1], device)
        return grid[:, elements, channels, rows, columns].reshape(-1)

    def _rows_columns(self, height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor]:
        key = (height, width, device)
        found = self._positions.get(key)
        if found is None:
            rows, columns = zip(*(unit.position(height, width) for unit in self.units))
            found = (torch.tensor(rows, device=device), torch.tensor(columns, device=device))
            self._positions[key] = found
        return found
