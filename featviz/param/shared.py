"""Shared parameterization: each image's own Fourier spectrum plus low-resolution grids common to the batch, so
that images rendered together (the frames of an interpolation) stay aligned."""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from featviz.errors import FeatvizError, check_int
from featviz.param.arguments import SizeLike
from featviz.param.base import Parameterization, register_parameterization
from featviz.param.fourier import Fourier

DEFAULT_FACTORS = (2, 4, 8, 16)


@register_parameterization("shared")
class Shared(Parameterization):
    """Images made of a part of their own and a part shared by the whole batch: ``sigmoid(mix(own + shared))``.

    ``size``, ``batch``, ``channels``, ``seed``, ``alpha``, ``device`` and ``dtype`` are the arguments every
    parameterization shares (see `Parameterization`).

    The own part of image ``i`` is a Fourier spectrum (``featviz.param.Fourier``'s components, seeded with
    ``seed + i``, options ``decay`` and ``init_scale`` as there). The shared part is one pixel grid per factor
    in ``factors``, ``factor`` times coarser than the image (``ceil(H / factor) x ceil(W / factor)``),
    upsampled bilinearly and added to every image of the batch; ``shared_grids`` holds them, each
    ``(1, out_channels, h, w)``. Because every image's gradient reaches the shared grids, the optimizer moves
    the coarse layout of all images together and only the details apart: frames of an interpolation keep
    their composition (the "aligned interpolation" of Differentiable Image Parameterizations, Distill 2018).
    The grids start at zero, so before optimization element ``i`` of a batch equals a single image with seed
    ``seed + i``; afterwards, by design, it depends on the batch it was optimized with. Colour decorrelation
    as ``Fourier`` (``decorrelate``, ``color_sqrt``); ``factors=()`` is plain ``Fourier``.

    Example:
        >>> image = Shared((64, 96), batch=6, seed=0, factors=(4, 8))
        >>> image().shape, [tuple(grid.shape) for grid in image.shared_grids]
        (torch.Size([6, 3, 64, 96]), [(1, 3, 16, 24), (1, 3, 8, 12)])
    """

    default_lr: float = 0.05

    def __init__(self, size: SizeLike, *, factors: Sequence[int] = DEFAULT_FACTORS, decay: float = 1.3,
                 decorrelate: bool = True, color_sqrt: Tensor | None = None, init_scale: float = 0.01,
                 **shared: Any) -> None:
        super().__init__(size, **shared)
        self.factors = _check_factors(factors)
        seed = None if self.seeds[0] is None else self.seeds
        self.own = Fourier(
            self.size, decay=decay, decorrelate=False, init_scale=init_scale, batch=self.batch,
            channels=self.channels, seed=seed, alpha=self.alpha, device=self._device, dtype=self._dtype,
        )
        height, width = self.size
        shapes = [(1, self.out_channels, math.ceil(height / factor), math.ceil(width / factor)) for factor in self.factors]
        self.shared_grids = nn.ParameterList([nn.Parameter(self.place(torch.zeros(shape))) for shape in shapes])
        self.decorrelate_colors(decorrelate, color_sqrt)

    def components(self) -> Tensor:
        values = self.own.components()
        for grid in self.shared_grids:
            values = values + F.interpolate(grid, size=self.size, mode="bilinear", align_corners=False)
        return values


def _check_factors(factors: Sequence[int]) -> tuple[int, ...]:
    if isinstance(factors, (str, bytes)) or not isinstance(factors, Sequence):
        raise FeatvizError(f"factors must be a sequence of ints >= 1 such as (2, 4, 8, 16), got {factors!r}")
    return tuple(check_int(factor, "each of factors") for factor in factors)


__all__ = ["Shared"]
