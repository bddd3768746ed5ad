"""Many units of one layer read with one gather instead of one evaluation each, for `stack` (sums group their
channel terms with `featviz.objectives.base.ChannelGroup`).

Only the library's own units (channel, neuron, class logit) are fused (`featviz.objectives.base.fusable`): a
subclass may compute something else in its ``__call__``, so it is always evaluated by calling it.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from featviz.objectives.base import Constant, Objective, Unit, fusable
from featviz.objectives.checks import Activations, read


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
