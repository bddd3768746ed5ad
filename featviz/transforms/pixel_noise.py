"""Additive Gaussian pixel noise."""
from __future__ import annotations

import torch
from torch import Tensor

from featviz.errors import FeatvizError
from featviz.transforms.affine import check_images
from featviz.transforms.random import RandomSource


class Noise:
    """Add Gaussian noise of standard deviation ``std`` to every pixel, independently per view and channel.

    The noise of image ``k * B + b`` comes from element ``b``'s generator, so batched and separate renders agree.

    Example:
        >>> noise(0.02)(torch.full((1, 3, 32, 32), 0.5), RandomSource([0])).std().item() < 0.03
        True
    """

    views = 1

    def __init__(self, std: float = 0.02) -> None:
        if not std >= 0:
            raise FeatvizError(f"noise std must be >= 0; got {std}")
        self.std = float(std)

    def __call__(self, images: Tensor, source: RandomSource) -> Tensor:
        count, channels, height, width = check_images(images)
        if self.std == 0:
            return images
        dtype = images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32
        values = source.image_normal(count, (channels, height, width), dtype=dtype, device=images.device)
        return torch.add(images, values, alpha=self.std).to(images.dtype)

    def __repr__(self) -> str:
        return f"noise({self.std})"


noise = Noise


__all__ = ["noise"]
