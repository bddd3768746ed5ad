"""Random resized crops (as in MACO): every image becomes several random crops, each resized to full size."""
from __future__ import annotations

import math
import operator
from typing import Sequence

import torch
from torch import Tensor

from featviz.errors import FeatvizError
from featviz.transforms.affine import AffineTransform, Size, matrices_from_rows
from featviz.transforms.random import RandomSource


class RandomCrops(AffineTransform):
    """Turn each image into ``count`` random crops resized back to the image's size (``views == count``).

    A crop covers a fraction of the image's area uniform in ``area`` and has a width/height ratio
    log-uniform in ``aspect`` (relative to the image's own ratio), shrunk where needed to fit inside the image,
    at a uniformly random position. The output holds ``count * N`` images in view-major order: crop ``k`` of
    image ``n`` is at index ``k * N + n``. Inside ``Compose`` the crops are resized straight to the output size.

    Example:
        >>> random_crops(count=4)(torch.rand(2, 3, 64, 64), RandomSource([0, 1])).shape
        torch.Size([8, 3, 64, 64])
    """

    def __init__(self, count: int = 6, area: Sequence[float] = (0.25, 1.0),
                 aspect: Sequence[float] = (3 / 4, 4 / 3)) -> None:
        try:
            self.views = operator.index(count)
        except TypeError:
            self.views = 0
        if self.views < 1:
            raise FeatvizError(f"random_crops count must be a whole number >= 1; got {count!r}")
        self.area = _range(area, "area")
        if not 0 < self.area[0] <= self.area[1] <= 1:
            raise FeatvizError(f"random_crops area must satisfy 0 < low <= high <= 1 (fractions of the image); "
                               f"got {area!r}")
        self.aspect = _range(aspect, "aspect")
        if not 0 < self.aspect[0] <= self.aspect[1]:
            raise FeatvizError(f"random_crops aspect must satisfy 0 < low <= high (width / height); got {aspect!r}")
        self._log_aspect = (math.log(self.aspect[0]), math.log(self.aspect[1]))

    @property
    def count(self) -> int:
        """How many crops each image becomes (the same as ``views``)."""
        return self.views

    def size_after(self, height: int, width: int) -> Size:
        return height, width

    def geometry(self, height: int, width: int, count: int, source: RandomSource) -> tuple[Tensor, Size]:
        draws = source.image_uniform(count * self.views, 4, dtype=torch.float64, device="cpu").tolist()
        (area_low, area_high), (log_low, log_high) = self.area, self._log_aspect
        rows = []
        for area_draw, aspect_draw, x_draw, y_draw in draws:
            area = area_low + area_draw * (area_high - area_low)
            aspect = math.exp(log_low + aspect_draw * (log_high - log_low))
            crop_width, crop_height = min(math.sqrt(area * aspect), 1.0), min(math.sqrt(area / aspect), 1.0)
            rows.append((crop_width, 0.0, x_draw * (1.0 - crop_width) * width,
                         0.0, crop_height, y_draw * (1.0 - crop_height) * height))
        return matrices_from_rows(rows), (height, width)

    def __repr__(self) -> str:
        return f"random_crops(count={self.views}, area={self.area}, aspect={self.aspect})"


random_crops = RandomCrops


def _range(bounds: Sequence[float], what: str) -> tuple[float, float]:
    try:
        low, high = (float(bound) for bound in bounds)
    except (TypeError, ValueError):
        raise FeatvizError(f"random_crops {what} must be a (low, high) pair of numbers; got {bounds!r}") from None
    return low, high


__all__ = ["random_crops"]
