"""A layer's output swapped for a leaf tensor, so that the gradient of anything computed after it can be taken with
respect to that output (attribution, text directions, class atlases)."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from featviz.errors import FeatvizError


class LeafOutput:
    """The output of one layer as a leaf tensor, filled in by the forward pass that runs inside `leaf_output`.

    ``tensor`` is the layer's output at its first call in the forward pass, detached and requiring grad; the
    network goes on with a copy, so that it may change its copy in place (``out += identity``) without touching the
    leaf. ``gradient(value)`` is ``d value / d tensor`` (None when ``value`` does not depend on the layer).
    ``layer`` names the layer and ``need`` what the caller computes, in errors (see `leaf_output`).

    Example:
        >>> network = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
        >>> with leaf_output(network[0], "0") as leaf:
        ...     value = network(torch.ones(2, 3)).sum()
        >>> leaf.tensor.shape, leaf.gradient(value).shape
        (torch.Size([2, 4]), torch.Size([2, 4]))
    """

    def __init__(self, layer: str, need: str) -> None:
        self.layer = layer
        self.need = need
        self._leaf: Tensor | None = None

    @property
    def tensor(self) -> Tensor:
        """The leaf: the layer's output at its first call, detached and requiring grad."""
        if self._leaf is None:
            raise FeatvizError(f"layer '{self.layer}' did not run in the forward pass; pick a layer the model's forward calls")
        return self._leaf

    def gradient(self, value: Tensor, **options: Any) -> Tensor | None:
        """``d value / d tensor`` (``options`` go to `torch.autograd.grad`), or None when ``value`` does not depend
        on the layer."""
        return torch.autograd.grad(value, self.tensor, allow_unused=True, **options)[0]

    def hook(self, module: nn.Module, inputs: Any, output: Any) -> Tensor | None:
        """The forward hook: keep the first output as the leaf and pass a copy of it on."""
        if self._leaf is not None:  # a module that runs again later in the forward is read at its first call only
            return None
        if not isinstance(output, Tensor):
            raise FeatvizError(
                f"layer '{self.layer}' outputs a {type(output).__name__}; {self.need} needs a layer that outputs one tensor"
            )
        self._leaf = output.detach().requires_grad_(True)
        return self._leaf.clone()


@contextlib.contextmanager
def leaf_output(module: nn.Module, layer: str, need: str = "a gradient") -> Iterator[LeafOutput]:
    """Swap ``module``'s output (the layer named ``layer``) for a leaf tensor during the forward passes run inside
    the block, to take gradients with respect to it; the hook is removed on exit. ``need`` says what the caller
    computes, for the error raised when the layer's output is not one tensor.

    Example:
        >>> layer = model.get_layer("blocks.4.0.conv_pwl")
        >>> with torch.enable_grad(), leaf_output(layer, "blocks.4.0.conv_pwl", "an attribution") as leaf:
        ...     logits = model(torch.rand(1, 3, 64, 64))
        >>> (leaf.tensor * leaf.gradient(logits[0, 1])).shape     # activation x gradient towards class 1
        torch.Size([1, 112, 4, 4])
    """
    found = LeafOutput(layer, need)
    handle = module.register_forward_hook(found.hook)
    try:
        yield found
    finally:
        handle.remove()


__all__ = ["LeafOutput", "leaf_output"]
