"""Random numbers drawn per batch element, so that a batched render equals separate renders."""
from __future__ import annotations

import operator
from typing import Sequence

import torch
from torch import Tensor

from featviz.errors import FeatvizError


class RandomSource:
    """One CPU ``torch.Generator`` per batch element; every draw returns one row per element.

    Row ``i`` of every draw comes from the generator seeded ``seeds[i]`` alone, so element ``i`` of a batch sees
    exactly the numbers a batch of one seeded ``seeds[i]`` sees, whatever the batch size. Numbers are drawn on
    the CPU (bit-identical on every machine) and then moved to ``device``. A batch of ``K * B`` images in
    view-major order (index ``k * B + b``) takes element ``b``'s numbers; the ``image_*`` methods lay them out
    that way.

    Example:
        >>> batched = RandomSource([7, 8]).uniform(3, -1.0, 1.0)      # shape (2, 3)
        >>> torch.equal(batched[1], RandomSource([8]).uniform(3, -1.0, 1.0)[0])
        True
    """

    def __init__(self, seeds: int | Sequence[int], device: torch.device | str | None = None) -> None:
        if isinstance(seeds, int):
            seeds = [seeds]
        generators = []
        for seed in seeds:
            try:
                seed = operator.index(seed)
                generator = torch.Generator()
                generator.manual_seed(seed)
            except (TypeError, ValueError, RuntimeError, OverflowError):
                raise FeatvizError(f"seed {seed!r} is not a valid seed; use integers from 0 to 2**64 - 1") from None
            generators.append(generator)
        if not generators:
            raise FeatvizError("RandomSource needs one seed per batch element; got none")
        self.seeds: tuple[int, ...] = tuple(operator.index(seed) for seed in seeds)
        self.batch: int = len(generators)
        self.device: torch.device = torch.device("cpu") if device is None else torch.device(device)
        self._generators: tuple[torch.Generator, ...] = tuple(generators)

    @classmethod
    def from_seed(cls, seed: int, batch: int, device: torch.device | str | None = None) -> "RandomSource":
        """The source of a batch rendered with seed ``seed``: element ``i`` uses seed ``seed + i``.

        Example:
            >>> RandomSource.from_seed(5, batch=3).seeds
            (5, 6, 7)
        """
        if batch < 1:
            raise FeatvizError(f"batch must be at least 1; got {batch}")
        return cls(range(seed, seed + batch), device)

    def uniform(self, count: int, low: float = 0.0, high: float = 1.0, *, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None) -> Tensor:
        """``(batch, count)`` numbers uniform in ``[low, high)``, on ``device`` (default: the source's).

        Example:
            >>> RandomSource([1, 2]).uniform(4, 0.9, 1.1).shape
            torch.Size([2, 4])
        """
        if low > high:
            raise FeatvizError(f"uniform range must have low <= high; got low={low}, high={high}")
        values = torch.empty((self.batch, count), dtype=dtype)
        for row, generator in zip(values, self._generators):
            row.uniform_(low, high, generator=generator)
        return self._place(values, device)

    def integers(self, count: int, low: int, high: int, *, device: torch.device | str | None = None) -> Tensor:
        """``(batch, count)`` int64 numbers uniform in ``low .. high - 1`` (``high`` excluded, like torch.randint).

        Example:
            >>> RandomSource([1]).integers(2, 0, 9).shape        # offsets 0..8
            torch.Size([1, 2])
        """
        if low >= high:
            raise FeatvizError(f"integers range must have low < high (high is excluded); got low={low}, high={high}")
        values = torch.empty((self.batch, count), dtype=torch.int64)
        for row, generator in zip(values, self._generators):
            row.random_(low, high, generator=generator)
        return self._place(values, device)

    def normal(self, shape: int | Sequence[int], *, dtype: torch.dtype = torch.float32,
               device: torch.device | str | None = None) -> Tensor:
        """``(batch, *shape)`` standard normal numbers (mean 0, std 1).

        Example:
            >>> RandomSource([1, 2]).normal((3, 8, 8)).shape
            torch.Size([2, 3, 8, 8])
        """
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        values = torch.empty((self.batch, *shape), dtype=dtype)
        for row, generator in zip(values, self._generators):
            row.normal_(generator=generator)
        return self._place(values, device)

    def views_of(self, images: int) -> int:
        """How many views each element has in a batch of ``images`` images (``images / batch``).

        Example:
            >>> RandomSource([1, 2]).views_of(12)
            6
        """
        views, remainder = divmod(images, self.batch)
        if remainder or not views:
            raise FeatvizError(f"a batch of {images} images does not match a RandomSource of {self.batch} seeds; "
                               f"the image count must be a multiple of {self.batch}")
        return views

    def image_uniform(self, images: int, count: int, low: float = 0.0, high: float = 1.0, *,
                      dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
        """``(images, count)`` uniform numbers for a view-major batch: row ``k * batch + b`` comes from element ``b``.

        Each element draws ``views * count`` numbers at once, so every view gets its own numbers.

        Example:
            >>> RandomSource([1, 2]).image_uniform(6, 1, -10.0, 10.0).shape     # 3 views of 2 images
            torch.Size([6, 1])
        """
        views = self.views_of(images)
        values = self.uniform(views * count, low, high, dtype=dtype, device=device)
        return _view_major(values, self.batch, views, (count,))

    def image_integers(self, images: int, count: int, low: int, high: int, *,
                       device: torch.device | str | None = None) -> Tensor:
        """``(images, count)`` integers in ``low .. high - 1`` for a view-major batch (see ``image_uniform``).

        Example:
            >>> RandomSource([1]).image_integers(1, 2, 0, 9).shape
            torch.Size([1, 2])
        """
        views = self.views_of(images)
        values = self.integers(views * count, low, high, device=device)
        return _view_major(values, self.batch, views, (count,))

    def image_normal(self, images: int, shape: Sequence[int], *, dtype: torch.dtype = torch.float32,
                     device: torch.device | str | None = None) -> Tensor:
        """``(images, *shape)`` standard normal numbers for a view-major batch (see ``image_uniform``).

        Example:
            >>> RandomSource([1, 2]).image_normal(4, (3, 8, 8)).shape
            torch.Size([4, 3, 8, 8])
        """
        views = self.views_of(images)
        shape = tuple(shape)
        values = self.normal((views, *shape), dtype=dtype, device=device)
        return _view_major(values, self.batch, views, shape)

    def _place(self, values: Tensor, device: torch.device | str | None) -> Tensor:
        target = self.device if device is None else torch.device(device)
        return values if target.type == "cpu" else values.to(target)

    def __repr__(self) -> str:
        return f"RandomSource(seeds={list(self.seeds)}, device='{self.device}')"


def _view_major(values: Tensor, batch: int, views: int, shape: tuple[int, ...]) -> Tensor:
    """Reorder ``(batch, views * prod(shape))`` element rows into ``(views * batch, *shape)`` view-major rows."""
    if views == 1:
        return values.view(batch, *shape)
    return values.view(batch, views, *shape).transpose(0, 1).reshape(views * batch, *shape)


__all__ = ["RandomSource"]
