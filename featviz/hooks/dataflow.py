"""Which layer feeds which: the module whose output tensor is exactly another module's input, in one forward."""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn

__all__ = ["feeding_layers"]

# Layers that hand their input on unchanged at inference; an in-place activation also returns its input, changed.
PASS_THROUGH = (nn.Dropout, nn.Identity)


def feeding_layers(
    network: nn.Module,
    sample: Tensor,
    consumers: Iterable[str],
    producers: Callable[[nn.Module], bool] = lambda module: True,
    *,
    views: bool = False,
) -> list[tuple[str | None, str]]:
    """``(producer, consumer)`` for every call of a layer named in ``consumers`` during one forward of ``sample``:
    the producer is the layer (among those ``producers`` accepts) whose output is the very tensor the consumer
    receives first, or with ``views`` a view of the same memory (a flatten), else None. Where nested layers
    output the same tensor the outermost is named; Dropout and Identity, which hand their input on unchanged, are no producers.

    Example:
        >>> network = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        >>> feeding_layers(network, torch.rand(1, 3, 8, 8), ["1"])
        [('0', '1')]
    """
    consumers = set(consumers)
    produced: dict[int, str] = {}
    same_memory: dict[tuple[int, int], str] = {}
    alive: list[Tensor] = []  # keeps each output alive so that its id cannot be reused by a later tensor
    found: list[tuple[str | None, str]] = []

    def after(name: str, module: nn.Module):
        def hook(_: nn.Module, inputs: Any, output: Any) -> None:
            if not isinstance(output, Tensor):
                return
            if isinstance(module, PASS_THROUGH) and any(output is value for value in inputs):
                return
            alive.append(output)
            produced[id(output)] = name
            same_memory[(output.data_ptr(), output.numel())] = name

        return hook

    def before(name: str):
        def hook(_: nn.Module, inputs: Any) -> None:
            if not inputs or not isinstance(inputs[0], Tensor):
                return
            features = inputs[0]
            producer = produced.get(id(features))
            if producer is None and views:
                producer = same_memory.get((features.data_ptr(), features.numel()))
            found.append((producer, name))

        return hook

    handles = []
    for name, module in network.named_modules():
        if name in consumers:
            handles.append(module.register_forward_pre_hook(before(name)))
        elif name and producers(module):
            handles.append(module.register_forward_hook(after(name, module)))
    try:
        with torch.no_grad():
            network(sample)
    finally:
        for handle in handles:
            handle.remove()
    return found
