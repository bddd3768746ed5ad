"""Geometric transforms (pad, jitter, scale, rotate, resize) that Compose can fuse into one grid_sample.

Geometry convention: continuous pixel coordinates ``(x, y)`` with ``x`` along the width, the image spanning
``[0, width] x [0, height]`` and pixel ``(row i, column j)`` centred at ``(j + 0.5, i + 0.5)`` (what
``align_corners=False`` means). A transform's geometry is a homogeneous 3x3 matrix per image that maps an
OUTPUT pixel coordinate to the INPUT coordinate it samples, so a chain ``t1, t2, ..., tn`` samples its input
at ``M1 @ M2 @ ... @ Mn @ p``.
"""
from __future__ import annotations

import abc
import functools
import math
import operator
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from featviz.errors import FeatvizError
from featviz.transforms.random import RandomSource

Size = tuple[int, int]

_SAMPLING_DTYPES = (torch.float32, torch.float64)


class AffineTransform(abc.ABC):
    """A transform that moves pixels by one affine map per image; ``Compose`` fuses runs of them.

    Subclasses define ``size_after`` (the output size, without randomness) and ``geometry`` (the per-image
    matrices, drawing their random numbers from the source). Calling the transform resamples once with
    bilinear interpolation. ``fill`` is the value seen outside the input image (``None``: the transform never
    looks outside, and edges are clamped). ``views`` is how many output images each input image becomes.

    Example:
        >>> matrices, size = random_rotate(10.0).geometry(64, 64, 2, RandomSource([0, 1]))
        >>> matrices.shape, size
        (torch.Size([2, 3, 3]), (64, 64))
    """

    views: int = 1
    fill: float | None = None

    @abc.abstractmethod
    def size_after(self, height: int, width: int) -> Size:
        """The ``(height, width)`` of the output for an input of ``height x width`` pixels."""

    @abc.abstractmethod
    def geometry(self, height: int, width: int, count: int, source: RandomSource) -> tuple[Tensor, Size]:
        """Float64 CPU matrices ``(1 or count * views, 3, 3)`` mapping output to input pixel coordinates, and the
        output size; one row is shared by every image, otherwise rows follow the view-major output order. The
        matrices may be cached constants: never modify them in place."""

    def __call__(self, images: Tensor, source: RandomSource) -> Tensor:
        count, _, height, width = check_images(images)
        matrices, size = self.geometry(height, width, count, source)
        return resample(images, matrices, size, views=self.views, fill=self.fill)


class Pad(AffineTransform):
    """Pad every side by ``width`` pixels of the constant ``fill`` (lucid's ``pad``); the output grows by ``2 * width``.

    Example:
        >>> pad(12, fill=0.5)(torch.rand(1, 3, 64, 64), RandomSource([0])).shape
        torch.Size([1, 3, 88, 88])
    """

    def __init__(self, width: int, fill: float = 0.5) -> None:
        self.width = _non_negative_int(width, "pad width")
        self.fill = float(fill)
        self._matrix = matrices_from_rows([(1.0, 0.0, -self.width, 0.0, 1.0, -self.width)])

    def size_after(self, height: int, width: int) -> Size:
        return height + 2 * self.width, width + 2 * self.width

    def geometry(self, height: int, width: int, count: int, source: RandomSource) -> tuple[Tensor, Size]:
        return self._matrix, self.size_after(height, width)

    def __call__(self, images: Tensor, source: RandomSource) -> Tensor:
        check_images(images)
        if self.width == 0:
            return images
        return F.pad(images, (self.width,) * 4, mode="constant", value=self.fill)

    def __repr__(self) -> str:
        return f"pad({self.width}, fill={self.fill})"


class Jitter(AffineTransform):
    """Crop a random window ``distance`` pixels smaller, shifted by 0..``distance`` pixels on each axis (lucid's
    ``jitter``): every pixel moves by a whole number of pixels, so a lone jitter copies pixels exactly.

    Example:
        >>> jitter(8)(torch.rand(2, 3, 64, 64), RandomSource([0, 1])).shape
        torch.Size([2, 3, 56, 56])
    """

    def __init__(self, distance: int) -> None:
        self.distance = _non_negative_int(distance, "jitter distance")

    def size_after(self, height: int, width: int) -> Size:
        if min(height, width) <= self.distance:
            raise FeatvizError(f"jitter({self.distance}) needs images larger than {self.distance} pixels; "
                               f"got {height}x{width}; use a smaller distance or a larger image")
        return height - self.distance, width - self.distance

    def offsets(self, count: int, source: RandomSource) -> Tensor:
        """``(count, 2)`` int64 shifts ``(x, y)``, each in ``0 .. distance``, for a view-major batch."""
        return source.image_integers(count, 2, 0, self.distance + 1, device="cpu")

    def geometry(self, height: int, width: int, count: int, source: RandomSource) -> tuple[Tensor, Size]:
        size = self.size_after(height, width)
        shifts = self.offsets(count, source).tolist()
        return matrices_from_rows([(1.0, 0.0, x, 0.0, 1.0, y) for x, y in shifts]), size

    def __call__(self, images: Tensor, source: RandomSource) -> Tensor:
        count, _, height, width = check_images(images)
        out_height, out_width = self.size_after(height, width)
        if self.distance == 0:
            return images
        crops = [images[index, :, y:y + out_height, x:x + out_width]
                 for index, (x, y) in enumerate(self.offsets(count, source).tolist())]
        return torch.stack(crops)

    def __repr__(self) -> str:
        return f"jitter({self.distance})"


class RandomScale(AffineTransform):
    """Zoom each image about its centre by a factor uniform in ``[low, high]`` (above 1 magnifies), keeping its
    size; samples from outside the image get ``fill``.

    Example:
        >>> random_scale(0.9, 1.1)(torch.rand(1, 3, 64, 64), RandomSource([0])).shape
        torch.Size([1, 3, 64, 64])
    """

    def __init__(self, low: float = 0.9, high: float = 1.1, *, fill: float = 0.5) -> None:
        if not 0 < low <= high:
            raise FeatvizError(f"random_scale needs 0 < low <= high; got low={low}, high={high}")
        self.low, self.high, self.fill = float(low), float(high), float(fill)

    def size_after(self, height: int, width: int) -> Size:
        return height, width

    def geometry(self, height: int, width: int, count: int, source: RandomSource) -> tuple[Tensor, Size]:
        if self.low == self.high:
            factors = [self.low]
        else:
            draws = source.image_uniform(count, 1, self.low, self.high, dtype=torch.float64, device="cpu")
            factors = draws[:, 0].tolist()
        centre_x, centre_y = width / 2, height / 2
        rows = [(1 / factor, 0.0, centre_x * (1 - 1 / factor), 0.0, 1 / factor, centre_y * (1 - 1 / factor))
                for factor in factors]
        return matrices_from_rows(rows), (height, width)

    def __repr__(self) -> str:
        return f"random_scale({self.low}, {self.high}, fill={self.fill})"


class RandomRotate(AffineTransform):
    """Rotate each image about its centre by an angle uniform in ``[-degrees, degrees]``, keeping its size;
    the corners get ``fill``.

    Example:
        >>> random_rotate(10.0)(torch.rand(1, 3, 64, 64), RandomSource([0])).shape
        torch.Size([1, 3, 64, 64])
    """

    def __init__(self, degrees: float = 10.0, *, fill: float = 0.5) -> None:
        if not degrees >= 0:
            raise FeatvizError(f"random_rotate needs degrees >= 0 (angles are drawn in +-degrees); got {degrees}")
        self.degrees, self.fill = float(degrees), float(fill)

    def size_after(self, height: int, width: int) -> Size:
        return height, width

    def geometry(self, height: int, width: int, count: int, source: RandomSource) -> tuple[Tensor, Size]:
        if self.degrees == 0:
            return matrices_from_rows([(1.0, 0.0, 0.0, 0.0, 1.0, 0.0)]), (height, width)
        limit = math.radians(self.degrees)
        angles = source.image_uniform(count, 1, -limit, limit, dtype=torch.float64, device="cpu")[:, 0].tolist()
        centre_x, centre_y = width / 2, height / 2
        rows = []
        for angle in angles:
            cos, sin = math.cos(angle), math.sin(angle)
            rows.append((cos, -sin, centre_x - cos * centre_x + sin * centre_y,
                         sin, cos, centre_y - sin * centre_x - cos * centre_y))
        return matrices_from_rows(rows), (height, width)

    def __repr__(self) -> str:
        return f"random_rotate({self.degrees}, fill={self.fill})"


class Resize(AffineTransform):
    """Resize to ``size`` (an int for square, or ``(height, width)``) with bilinear interpolation, like
    ``F.interpolate(mode="bilinear", align_corners=False)``.

    Example:
        >>> resize((32, 48))(torch.rand(1, 3, 64, 64), RandomSource([0])).shape
        torch.Size([1, 3, 32, 48])
    """

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = image_size(size, "resize size")

    def size_after(self, height: int, width: int) -> Size:
        return self.size

    def geometry(self, height: int, width: int, count: int, source: RandomSource) -> tuple[Tensor, Size]:
        return resize_matrix((height, width), self.size), self.size

    def __call__(self, images: Tensor, source: RandomSource) -> Tensor:
        if tuple(check_images(images)[2:]) == self.size:
            return images
        return super().__call__(images, source)

    def __repr__(self) -> str:
        return f"resize({self.size})"


pad = Pad
jitter = Jitter
random_scale = RandomScale
random_rotate = RandomRotate
resize = Resize


@functools.lru_cache(maxsize=64)
def resize_matrix(size_in: Size, size_out: Size) -> Tensor:
    """The ``(1, 3, 3)`` matrix that maps pixel coordinates of a ``size_out`` image to a ``size_in`` image.

    Example:
        >>> resize_matrix((64, 64), (32, 32))[0, 0, 0].item()
        2.0
    """
    return matrices_from_rows([(size_in[1] / size_out[1], 0.0, 0.0, 0.0, size_in[0] / size_out[0], 0.0)])


def resample(images: Tensor, matrices: Tensor, size: Size, *, views: int = 1, fill: float | None = None) -> Tensor:
    """Sample ``images`` at ``matrices @ p`` for every output pixel ``p`` of a ``size`` ``(height, width)`` output:
    one bilinear ``F.grid_sample`` call.

    ``matrices`` (float64, ``(1 or N * views, 3, 3)``) map output to input pixel coordinates; with ``views > 1``
    the output holds ``views * N`` images, view-major. Outside the input, samples read ``fill``, or the nearest
    edge pixel when ``fill`` is None. Differentiable with respect to ``images``; low-precision images are
    sampled in float32 and returned in their own dtype.

    Example:
        >>> resample(torch.rand(2, 3, 16, 16), resize_matrix((16, 16), (8, 8)), (8, 8)).shape
        torch.Size([2, 3, 8, 8])
    """
    count, channels, height, width = images.shape
    out_height, out_width = size
    rows = matrices.shape[0]
    if rows not in (1, count * views):
        raise FeatvizError(f"resample got {rows} matrices for {count} images x {views} views; "
                           f"pass 1 shared matrix or {count * views}")
    dtype = images.dtype if images.dtype in _SAMPLING_DTYPES else torch.float32
    to_normalized = matrices.new_tensor([[2.0 / width, 0.0, -1.0], [0.0, 2.0 / height, -1.0]])
    theta = torch.matmul(to_normalized, matrices).to(device=images.device, dtype=dtype).transpose(1, 2)
    grid = torch.matmul(_pixel_centres(out_height, out_width, images.device, dtype), theta)
    grid = grid.view(rows, out_height, out_width, 2)
    if rows == 1:
        if views > 1:
            grid = grid.repeat(1, views, 1, 1)
        grid = grid.expand(count, -1, -1, -1)
    elif views > 1:
        # view k of image n goes below the others in one tall output, so the input is never copied per view
        grid = grid.view(views, count, out_height, out_width, 2).transpose(0, 1)
        grid = grid.reshape(count, views * out_height, out_width, 2)
    shifted = images.to(dtype)
    if fill:
        shifted = shifted - fill
    sampled = F.grid_sample(shifted, grid, mode="bilinear", padding_mode="border" if fill is None else "zeros",
                            align_corners=False)
    if views > 1:
        sampled = sampled.view(count, channels, views, out_height, out_width).permute(2, 0, 1, 3, 4)
        sampled = sampled.reshape(views * count, channels, out_height, out_width)
    if fill:
        sampled = sampled.add_(fill)
    return sampled.to(images.dtype)


def check_images(images: Tensor) -> torch.Size:
    """The shape ``(N, C, H, W)`` of ``images``; FeatvizError when it is not a 4-D floating tensor.

    Example:
        >>> tuple(check_images(torch.rand(2, 3, 8, 8)))
        (2, 3, 8, 8)
    """
    if not isinstance(images, Tensor) or images.dim() != 4 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise FeatvizError(f"transforms take float images of shape (N, C, H, W); got {shape}")
    return images.shape


def image_size(size: int | Sequence[int], what: str) -> Size:
    """``size`` as a ``(height, width)`` pair of positive ints (an int means a square).

    Example:
        >>> image_size(224, "output_size")
        (224, 224)
    """
    try:
        pair = (operator.index(size),) * 2 if not isinstance(size, Sequence) else tuple(map(operator.index, size))
    except TypeError:
        pair = ()
    if len(pair) != 2 or min(pair) < 1:
        raise FeatvizError(f"{what} must be a positive int or a (height, width) pair of positive ints; got {size!r}")
    return pair


@functools.lru_cache(maxsize=32)
def _pixel_centres(height: int, width: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``(height * width, 3)`` homogeneous coordinates ``(x, y, 1)`` of the pixel centres, row by row."""
    ys = torch.arange(height, dtype=torch.float64).add_(0.5)
    xs = torch.arange(width, dtype=torch.float64).add_(0.5)
    centres = torch.stack([xs.expand(height, width), ys[:, None].expand(height, width),
                           torch.ones(height, width, dtype=torch.float64)], dim=-1)
    return centres.reshape(height * width, 3).to(device=device, dtype=dtype)


def matrices_from_rows(rows: Sequence[Sequence[float]]) -> Tensor:
    """Float64 ``(len(rows), 3, 3)`` matrices ``[[xx, xy, x0], [yx, yy, y0], [0, 0, 1]]`` from rows of six numbers.

    Geometry is built from Python floats: for a handful of images that beats many tiny tensor operations.

    Example:
        >>> matrices_from_rows([(1.0, 0.0, 4.0, 0.0, 1.0, 2.0)]).shape         # a shift by (4, 2) pixels
        torch.Size([1, 3, 3])
    """
    return torch.tensor([(row[0:3], row[3:6], (0.0, 0.0, 1.0)) for row in rows], dtype=torch.float64)


def _non_negative_int(value: int, what: str) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        number = -1
    if number < 0:
        raise FeatvizError(f"{what} must be a whole number of pixels >= 0; got {value!r}")
    return number


__all__ = ["AffineTransform", "jitter", "pad", "random_rotate", "random_scale", "resample", "resize"]
