"""Read any activation channels-first: NCHW as is, NHWC permuted, ViT tokens on their grid, vectors as 1x1 maps.

Every function here works on views (slices, permutes, reshapes of one dimension): no data is copied.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple, Sequence

from torch import Tensor

from featviz.errors import FeatvizError

LAYOUTS = ("nchw", "nhwc", "tokens")
MAX_PREFIX_TOKENS = 8


class _Plan(NamedTuple):
    """How to read one activation shape: its kind, channel count, map size and prefix tokens to drop."""

    kind: str  # "nchw", "nhwc", "grid" (square token grid), "row" (tokens on one row), "vector"
    channels: int
    height: int
    width: int
    prefix: int


def _describe(dims: Sequence[int]) -> str:
    return "(B, " + ", ".join(str(size) for size in dims) + ")"


def _prefix_tokens(count: int) -> int | None:
    """The fewest leading tokens (at most 8) whose removal leaves a perfect square, or None."""
    for prefix in range(min(MAX_PREFIX_TOKENS, count - 1) + 1):
        side = math.isqrt(count - prefix)
        if side * side == count - prefix:
            return prefix
    return None


@functools.lru_cache(maxsize=512)
def _plan(dims: tuple[int, ...], layout: str | None) -> _Plan:
    if layout is not None and layout not in LAYOUTS:
        raise FeatvizError(f"unknown activation layout '{layout}'; valid: {', '.join(LAYOUTS)} or None (detect)")
    rank = len(dims) + 1
    expected = {"nchw": 4, "nhwc": 4, "tokens": 3}
    if layout is not None and rank != expected[layout]:
        raise FeatvizError(
            f"layout '{layout}' needs a {expected[layout]}-D activation but got shape {_describe(dims)}; "
            "use layout=None to detect it"
        )
    if rank == 4:
        first, second, third = dims
        nhwc = layout == "nhwc" or (layout is None and first == second and third != second)
        if nhwc:
            return _Plan("nhwc", third, first, second, 0)
        return _Plan("nchw", first, second, third, 0)
    if rank == 3:
        count, channels = dims
        prefix = _prefix_tokens(count)
        if prefix is None:
            return _Plan("row", channels, 1, count, 0)
        side = math.isqrt(count - prefix)
        return _Plan("grid", channels, side, side, prefix)
    if rank == 2:
        return _Plan("vector", dims[0], 1, 1, 0)
    raise FeatvizError(
        f"cannot read an activation of shape {_describe(dims)} channels-first; "
        "expected (B, C, H, W), (B, H, W, C), tokens (B, N, C) or (B, C)"
    )


def _plan_for(shape: Sequence[int], layout: str | None) -> _Plan:
    if len(shape) < 2:
        raise FeatvizError(f"an activation needs a batch and a channel dimension, got shape {tuple(shape)}")
    return _plan(tuple(shape[1:]), layout)


def channels_first(activation: Tensor, layout: str | None = None) -> Tensor:
    """View ``activation`` as ``(B, C, H, W)``, whatever layout the layer produced.

    4-D NCHW is returned as is. 4-D NHWC (``layout="nhwc"``, or detected when dims 1 and 2 are equal and
    dim 3 differs, like Swin's ``(B, 56, 56, 96)``) is permuted. Tokens ``(B, N, C)`` lose their prefix
    tokens (CLS, registers: the fewest, at most 8, that leave a perfect square) and become a ``(B, C, s, s)``
    grid, or ``(B, C, 1, N)`` when no square fits. Vectors ``(B, C)`` (logits, pooled features) become
    ``(B, C, 1, 1)``. The result is always a view of ``activation``.

    Example:
        >>> channels_first(torch.zeros(2, 197, 768)).shape  # ViT-B/16: CLS + 14x14 patches
        torch.Size([2, 768, 14, 14])
    """
    plan = _plan_for(activation.shape, layout)
    kind = plan.kind
    if kind == "nchw":
        return activation
    if kind == "nhwc":
        return activation.permute(0, 3, 1, 2)
    if kind == "grid":
        patches = activation[:, plan.prefix:] if plan.prefix else activation
        return patches.unflatten(1, (plan.height, plan.width)).permute(0, 3, 1, 2)
    if kind == "row":
        return activation.transpose(1, 2).unsqueeze(2)
    return activation[:, :, None, None]


def channel_count(shape: Sequence[int], layout: str | None = None) -> int:
    """The number of channels ``channels_first`` finds in an activation of this shape (batch included).

    Example:
        >>> channel_count(torch.Size([1, 56, 56, 96]))  # Swin, NHWC
        96
    """
    return _plan_for(shape, layout).channels


def spatial_size(shape: Sequence[int], layout: str | None = None) -> tuple[int, int]:
    """The ``(height, width)`` of the map ``channels_first`` makes from an activation of this shape.

    Example:
        >>> spatial_size(torch.Size([1, 197, 768]))  # CLS token dropped, 14x14 patch grid
        (14, 14)
    """
    plan = _plan_for(shape, layout)
    return plan.height, plan.width
