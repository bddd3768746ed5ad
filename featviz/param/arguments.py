"""Checks of the arguments every parameterization takes, and the per-element seeded draws of their values."""
from __future__ import annotations

import math
import numbers
from typing import Callable, Sequence

import torch
from torch import Tensor

from featviz.errors import FeatvizError

SeedLike = int | Sequence[int] | None
SizeLike = int | tuple[int, int] | Sequence[int]

_SEED_LIMIT = 2**63


def check_size(size: SizeLike) -> tuple[int, int]:
    """``size`` as ``(height, width)``: an int means a square; raise FeatvizError unless both sides are >= 1.

    Example:
        >>> check_size(64), check_size((48, 80))
        ((64, 64), (48, 80))
    """
    if _is_int(size):
        sides = (size, size)
    elif isinstance(size, (tuple, list, torch.Size)) and len(size) == 2 and all(_is_int(side) for side in size):
        sides = (size[0], size[1])
    else:
        raise FeatvizError(f"image size {size!r} is not valid; give an int or a (height, width) pair of ints >= 1")
    if min(sides) < 1:
        raise FeatvizError(f"image size {size!r} is not valid; each side must be >= 1")
    return int(sides[0]), int(sides[1])


def check_dtype(dtype: torch.dtype) -> torch.dtype:
    """``dtype`` when it is a floating-point torch dtype, else raise FeatvizError.

    Example:
        >>> check_dtype(torch.float64)
        torch.float64
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise FeatvizError(f"dtype must be a floating-point torch dtype such as torch.float32, got {dtype!r}")
    return dtype


def element_seeds(seed: SeedLike, batch: int) -> list[int | None]:
    """One seed per batch element: ``s`` gives ``s, s+1, ...``; a sequence is used as is; None means unseeded.

    Element ``i`` of a batch built with seed ``s`` therefore equals a single image built with seed ``s + i``.

    Example:
        >>> element_seeds(10, 3), element_seeds([7, 3], 2), element_seeds(None, 2)
        ([10, 11, 12], [7, 3], [None, None])
    """
    if seed is None:
        return [None] * batch
    if _is_int(seed):
        seeds = [int(seed) + index for index in range(batch)]
    elif isinstance(seed, Sequence) and not isinstance(seed, (str, bytes)) and all(_is_int(s) for s in seed):
        if len(seed) != batch:
            raise FeatvizError(f"got {len(seed)} seeds for a batch of {batch}; give one int or exactly {batch} seeds")
        seeds = [int(s) for s in seed]
    else:
        raise FeatvizError(f"seed {seed!r} is not valid; give an int, a sequence of {batch} ints, or None")
    if any(not 0 <= s < _SEED_LIMIT for s in seeds):
        raise FeatvizError(f"seeds must be in [0, 2**63), got {seeds}")
    return seeds


def draw_per_element(
    seeds: list[int | None],
    draw: Callable[[torch.Generator | None], Tensor],
    device: torch.device | str | None,
    dtype: torch.dtype,
) -> Tensor:
    """Stack ``draw(generator)`` for each element's generator, then place the result on ``device`` as ``dtype``.

    Draws happen on the CPU in float32 so a seed gives the same starting image on every device and in every
    precision; an unseeded element draws from torch's global generator (so ``torch.manual_seed`` applies).

    Example:
        >>> noise = draw_per_element([1, 2], lambda g: torch.randn(3, 8, 8, generator=g), None, torch.float32)
        >>> noise.shape
        torch.Size([2, 3, 8, 8])
    """
    values = []
    for seed in seeds:
        generator = None
        if seed is not None:
            generator = torch.Generator(device="cpu")
            generator.manual_seed(seed)
        values.append(draw(generator))
    return torch.stack(values).to(device=device, dtype=dtype)


def check_init_scale(init_scale: float) -> float:
    """``init_scale`` as a float when it is a finite number >= 0, else raise FeatvizError.

    Example:
        >>> check_init_scale(0.01)
        0.01
    """
    if isinstance(init_scale, bool) or not isinstance(init_scale, (int, float)) or not math.isfinite(init_scale):
        raise FeatvizError(f"init_scale must be a finite number >= 0 (0.01 is usual), got {init_scale!r}")
    if init_scale < 0:
        raise FeatvizError(f"init_scale must be >= 0 (0.01 is usual), got {init_scale!r}")
    return float(init_scale)


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


__all__ = ["SeedLike", "SizeLike"]
