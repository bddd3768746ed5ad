"""Redirected ReLU gradients: dead units still get a gradient early in a render, on any model.

A unit that is negative everywhere under a ReLU gets no gradient at all, so its render stays grey. For the
first steps of a render, featviz swaps every ReLU, ReLU6 and hardtanh call (modules, in-place, functional)
for one whose backward lets through the gradient that would push a clamped value back into range, but only
for batch elements whose ordinary gradient is zero everywhere.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


class _RedirectedClamp(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, low: float, high: float | None) -> torch.Tensor:
        # Masks, not x itself, are saved: an in-place ReLU overwrites x right after this.
        below = x <= low
        above = x >= high if high is not None else torch.zeros_like(below)
        ctx.save_for_backward(below, above)
        return x.clamp(low, high)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        below, above = ctx.saved_tensors
        outside = below | above
        ordinary = grad.masked_fill(outside, 0.0)
        if grad.dim() == 0:
            dead = ~ordinary.bool()
        else:
            dead = ~ordinary.flatten(1).any(dim=1)
            if not bool(dead.any()):
                return ordinary, None, None
            dead = dead.view(-1, *([1] * (grad.dim() - 1)))
        # The loss is minimized: a negative gradient raises x, a positive one lowers it.
        pushes_inside = (below & (grad < 0)) | (above & (grad > 0))
        redirected = grad.masked_fill(outside & ~pushes_inside, 0.0)
        return torch.where(dead, redirected, ordinary), None, None


def redirected_clamp(x: torch.Tensor, low: float = 0.0, high: float | None = None) -> torch.Tensor:
    """`x.clamp(low, high)` whose gradient is redirected for batch elements with no ordinary gradient.

    Example:
        >>> x = torch.full((1, 3), -1.0, requires_grad=True)      # every input below 0: a dead ReLU
        >>> loss = -redirected_clamp(x).sum()                     # renders minimize minus the objective
        >>> loss.backward()
        >>> x.grad                                                 # a descent step x - lr * grad raises x
        tensor([[-1., -1., -1.]])
    """
    return _RedirectedClamp.apply(x, low, high)


_RELU: set[Callable] = {F.relu, torch.relu, torch.Tensor.relu}
_RELU_INPLACE: set[Callable] = {F.relu_, torch.relu_, torch.Tensor.relu_}
_HARDTANH: set[Callable] = {F.hardtanh, F.relu6}
_HARDTANH_INPLACE: set[Callable] = {F.hardtanh_}


def _argument(args: tuple, kwargs: dict, index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


class RedirectedReLU(TorchFunctionMode):
    """While active, ReLU-like calls (nn.ReLU, nn.ReLU6, nn.Hardtanh, F.relu, torch.relu, x.relu_(), ...)
    compute the same forward values with redirected gradients.

    Example:
        >>> network = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
        >>> with torch.no_grad():
        ...     _ = network[0].bias.fill_(-10.0)                  # the ReLU is dead for small inputs
        >>> inputs = torch.rand(1, 2, requires_grad=True)
        >>> with RedirectedReLU():
        ...     loss = -network(inputs).sum()
        >>> loss.backward()
        >>> bool(inputs.grad.abs().sum() > 0)                      # a plain ReLU would give zero gradient here
        True
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELU or func in _RELU_INPLACE:
            x = args[0]
            inplace = func in _RELU_INPLACE or bool(_argument(args, kwargs, 1, "inplace", False))
            return _write_back(x, redirected_clamp(x, 0.0, None), inplace)
        if func in _HARDTANH or func in _HARDTANH_INPLACE:
            x = args[0]
            if func is F.relu6:
                low, high = 0.0, 6.0
                inplace = bool(_argument(args, kwargs, 1, "inplace", False))
            else:
                low = float(_argument(args, kwargs, 1, "min_val", -1.0))
                high = float(_argument(args, kwargs, 2, "max_val", 1.0))
                inplace = func in _HARDTANH_INPLACE or bool(_argument(args, kwargs, 3, "inplace", False))
            return _write_back(x, redirected_clamp(x, low, high), inplace)
        return func(*args, **kwargs)


def _write_back(x: torch.Tensor, result: torch.Tensor, inplace: bool) -> torch.Tensor:
    if inplace:
        return x.copy_(result)
    return result
