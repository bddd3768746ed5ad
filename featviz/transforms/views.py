"""Many random views of each image per step, as text-guided generation uses them: crops, flips, perspective,
downsampling, cutout and noise.

``dream(output_size, views=K)`` chains them: ``random_crops`` (squares of 0.5 to 1 times the canvas side) and
``random_flip`` fuse with the resize to ``output_size`` into one resampling; ``random_perspective``,
``random_downsample``, ``cutout`` and ``noise`` then work on the model-size views. Each of the new transforms
is also usable on its own, in any list of transforms.
"""
from __future__ import annotations

import operator
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from featviz.errors import FeatvizError, check_int
from featviz.transforms.affine import AffineTransform, Size, check_images, matrices_from_rows
from featviz.transforms.compose import Compose, register_preset
from featviz.transforms.crops import random_crops
from featviz.transforms.pixel_noise import noise
from featviz.transforms.random import RandomSource

_SAMPLING_DTYPES = (torch.float32, torch.float64)


class RandomFlip(AffineTransform):
    """Mirror each image left to right with probability ``probability``, drawn per image (per view after crops).

    A geometric transform: inside ``Compose`` it fuses with crops and the resize into one resampling.

    Example:
        >>> random_flip(1.0)(torch.arange(4.0).view(1, 1, 1, 4), RandomSource([0])).flatten().tolist()
        [3.0, 2.0, 1.0, 0.0]
    """

    def __init__(self, probability: float = 0.5) -> None:
        self.probability = _probability(probability, "random_flip")

    def size_after(self, height: int, width: int) -> Size:
        return height, width

    def geometry(self, height: int, width: int, count: int, source: RandomSource) -> tuple[Tensor, Size]:
        draws = source.image_uniform(count, 1, dtype=torch.float64, device="cpu")[:, 0].tolist()
        rows = [(-1.0, 0.0, float(width), 0.0, 1.0, 0.0) if draw < self.probability else (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
                for draw in draws]
        return matrices_from_rows(rows), (height, width)

    def __repr__(self) -> str:
        return f"random_flip({self.probability})"


class RandomPerspective:
    """Warp each image by a random perspective: every corner moves towards the centre by up to ``distortion``
    times half the image side on each axis, and the quadrilateral they span is stretched back over the image.

    Corners only move inwards, so no sample falls outside the image. Not an affine map, so it resamples on its
    own (place it after the geometric transforms, where the images have the model's size).

    Example:
        >>> random_perspective(0.2)(torch.rand(2, 3, 32, 32), RandomSource([0, 1])).shape
        torch.Size([2, 3, 32, 32])
    """

    views = 1

    def __init__(self, distortion: float = 0.2) -> None:
        if isinstance(distortion, bool) or not isinstance(distortion, (int, float)) or not 0 <= distortion < 1:
            raise FeatvizError(f"random_perspective distortion must be a number in [0, 1) (0.2 is mild); "
                               f"got {distortion!r}")
        self.distortion = float(distortion)

    def __call__(self, images: Tensor, source: RandomSource) -> Tensor:
        count, _, height, width = check_images(images)
        if self.distortion == 0:
            return images
        shifts = source.image_uniform(count, 8, 0.0, self.distortion, dtype=torch.float64, device="cpu")
        homographies = _inward_homographies(shifts.view(count, 4, 2))
        dtype = images.dtype if images.dtype in _SAMPLING_DTYPES else torch.float32
        ys = (torch.arange(height, dtype=torch.float64) + 0.5) * (2.0 / height) - 1.0
        xs = (torch.arange(width, dtype=torch.float64) + 0.5) * (2.0 / width) - 1.0
        points = torch.stack([xs.expand(height, width), ys[:, None].expand(height, width),
                              torch.ones(height, width, dtype=torch.float64)], dim=-1).view(1, height * width, 3)
        mapped = torch.matmul(points.to(images.device, dtype), homographies.to(images.device, dtype).transpose(1, 2))
        grid = (mapped[..., :2] / mapped[..., 2:]).view(count, height, width, 2)
        sampled = F.grid_sample(images.to(dtype), grid, mode="bilinear", padding_mode="border", align_corners=False)
        return sampled.to(images.dtype)

    def __repr__(self) -> str:
        return f"random_perspective({self.distortion})"


class RandomDownsample:
    """With probability ``probability`` per image, average ``factor x factor`` pixel blocks (``factor`` drawn
    from ``factors``) and upsample back bilinearly: the view loses its fine detail, so the objective must hold
    at coarse scales too.

    Example:
        >>> random_downsample(1.0, factors=(4,))(torch.rand(2, 3, 32, 32), RandomSource([0, 1])).shape
        torch.Size([2, 3, 32, 32])
    """

    views = 1

    def __init__(self, probability: float = 0.3, factors: Sequence[int] = (2, 4)) -> None:
        self.probability = _probability(probability, "random_downsample")
        try:
            self.factors = tuple(operator.index(factor) for factor in factors)
        except TypeError:
            self.factors = ()
        if not self.factors or min(self.factors) < 2:
            raise FeatvizError(f"random_downsample factors must be whole numbers >= 2, such as (2, 4); got {factors!r}")

    def __call__(self, images: Tensor, source: RandomSource) -> Tensor:
        count, _, height, width = check_images(images)
        draws = source.image_uniform(count, 2, dtype=torch.float64, device="cpu").tolist()
        chosen: dict[int, list[int]] = {}
        for index, (apply_draw, factor_draw) in enumerate(draws):
            if apply_draw < self.probability:
                factor = min(self.factors[int(factor_draw * len(self.factors))], height, width)
                if factor > 1:
                    chosen.setdefault(factor, []).append(index)
        result = images
        for factor, indices in chosen.items():
            # the whole batch is resampled and the chosen views picked with a mask: on the CPU that is faster
            # than gathering and scattering the chosen views
            mask = torch.zeros(count, dtype=torch.bool)
            mask[indices] = True
            coarse = F.avg_pool2d(images, factor, ceil_mode=True)
            restored = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
            result = torch.where(mask.to(images.device).view(count, 1, 1, 1), restored.to(images.dtype), result)
        return result

    def __repr__(self) -> str:
        return f"random_downsample({self.probability}, factors={self.factors})"


class Cutout:
    """With probability ``probability`` per image, paint a random rectangle with ``fill``: its sides are
    fractions of the image's, uniform in ``size``, at a uniformly random position inside the image.

    Example:
        >>> views = cutout(1.0, size=(0.5, 0.5))(torch.zeros(1, 3, 8, 8), RandomSource([0]))
        >>> float(views.mean())                  # a quarter of the image painted 0.5
        0.125
    """

    views = 1

    def __init__(self, probability: float = 0.5, size: Sequence[float] = (0.1, 0.4), fill: float = 0.5) -> None:
        self.probability = _probability(probability, "cutout")
        try:
            low, high = (float(side) for side in size)
        except (TypeError, ValueError):
            low, high = -1.0, -1.0
        if not 0 < low <= high <= 1:
            raise FeatvizError(f"cutout size must be a (low, high) pair of fractions with 0 < low <= high <= 1; "
                               f"got {size!r}")
        self.size = (low, high)
        self.fill = float(fill)

    def __call__(self, images: Tensor, source: RandomSource) -> Tensor:
        count, _, height, width = check_images(images)
        apply_draw, width_draw, height_draw, x_draw, y_draw = (
            source.image_uniform(count, 5, dtype=torch.float64, device="cpu").T
        )
        low, high = self.size
        box_width = (low + width_draw * (high - low)) * width
        box_height = (low + height_draw * (high - low)) * height
        left = x_draw * (width - box_width)
        top = y_draw * (height - box_height)
        applied = apply_draw < self.probability
        bounds = torch.stack([left, left + box_width, top, top + box_height]).T
        bounds[~applied] = -1.0  # an empty box
        bounds = bounds.to(images.device, torch.float32).view(count, 4, 1, 1)
        xs = torch.arange(width, device=images.device, dtype=torch.float32).add_(0.5).view(1, 1, width)
        ys = torch.arange(height, device=images.device, dtype=torch.float32).add_(0.5).view(1, height, 1)
        inside = ((xs >= bounds[:, 0]) & (xs < bounds[:, 1])) & ((ys >= bounds[:, 2]) & (ys < bounds[:, 3]))
        return images.masked_fill(inside.unsqueeze(1), self.fill)

    def __repr__(self) -> str:
        return f"cutout({self.probability}, size={self.size}, fill={self.fill})"


random_flip = RandomFlip
random_perspective = RandomPerspective
random_downsample = RandomDownsample
cutout = Cutout


@register_preset("dream")
def dream(output_size: int | Sequence[int] | None = None, views: int = 16) -> Compose:
    """The views of text-guided generation: each image becomes ``views`` square crops of 0.5 to 1 times its side,
    randomly flipped, resized to ``output_size``, warped by a mild perspective, sometimes downsampled (30%) or
    cut out (50%), plus Gaussian noise (std 0.05). View-major: view ``k`` of image ``b`` is at ``k * B + b``.

    Example:
        >>> dream((224, 224), views=8)(torch.rand(2, 3, 448, 448), RandomSource([0, 1])).shape
        torch.Size([16, 3, 224, 224])
    """
    views = check_int(views, "views", 1)
    return Compose([random_crops(count=views, area=(0.25, 1.0), aspect=(1.0, 1.0)), random_flip(0.5),
                    random_perspective(0.2), random_downsample(0.3, factors=(2, 4)), cutout(0.5), noise(0.05)],
                   output_size)


def _inward_homographies(shifts: Tensor) -> Tensor:
    """``(N, 3, 3)`` float64 maps from output to input coordinates in ``[-1, 1]`` (grid_sample's): the output's
    corners go to the image's corners moved inwards by ``shifts`` ``(N, 4, 2)``."""
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
    targets = corners * (1.0 - shifts)
    count = shifts.shape[0]
    u, v = corners[:, 0].expand(count, 4), corners[:, 1].expand(count, 4)
    x, y = targets[..., 0], targets[..., 1]
    ones, zeros = torch.ones_like(x), torch.zeros_like(x)
    # x = (a u + b v + c) / (g u + h v + 1) and y = (d u + e v + f) / (g u + h v + 1), linear in a..h
    x_rows = torch.stack([u, v, ones, zeros, zeros, zeros, -u * x, -v * x], dim=-1)
    y_rows = torch.stack([zeros, zeros, zeros, u, v, ones, -u * y, -v * y], dim=-1)
    system = torch.cat([x_rows, y_rows], dim=1)
    solution = torch.linalg.solve(system, torch.cat([x, y], dim=1))
    return torch.cat([solution, torch.ones(count, 1, dtype=torch.float64)], dim=1).view(count, 3, 3)


def _probability(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise FeatvizError(f"{what} probability must be a number in [0, 1]; got {value!r}")
    return float(value)


__all__ = ["cutout", "random_downsample", "random_flip", "random_perspective"]
