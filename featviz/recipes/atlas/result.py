"""What an atlas is: its levels (one grid size each, the cells' mean vectors and renders) and the sample they came from."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from featviz.errors import FeatvizError
from featviz.recipes.atlas.sampling import ActivationSample
from featviz.recipes.atlas.site import write_atlas_site
from featviz.renderer.image import to_pil


@dataclass
class AtlasLevel:
    """One grid size of an atlas: ``cells`` ``(M, 2)`` the ``(row, column)`` of each cell with samples (row 0 on
    top), ``vectors`` ``(M, C)`` their mean activation, ``counts`` ``(M,)`` their samples; after rendering,
    ``images`` ``(M, 3, S, S)`` in ``[0, 1]``, ``values`` ``(M,)`` each render's final objective value and
    ``seeds`` ``(M,)`` the seed each was rendered with.

    Example:
        >>> level = atlas.level(16)  # doctest: +SKIP
        >>> level.to_image().save("atlas16.png")  # doctest: +SKIP
    """

    grid: int
    cells: Tensor
    vectors: Tensor
    counts: Tensor
    images: Tensor | None = None
    values: Tensor | None = None
    seeds: Tensor | None = None

    def __len__(self) -> int:
        return int(self.cells.shape[0])

    def canvas(self, background: float = 1.0) -> Tensor:
        """All rendered cells in their places as one image ``(1, 3, grid * S, grid * S)``; empty cells ``background``."""
        if self.images is None:
            raise FeatvizError("this atlas was made with render=False; render it to get images")
        channels, side = self.images.shape[1], self.images.shape[-1]
        canvas = torch.full((1, channels, self.grid * side, self.grid * side), float(background))
        for (row, column), image in zip(self.cells.tolist(), self.images):
            canvas[0, :, row * side:(row + 1) * side, column * side:(column + 1) * side] = image
        return canvas

    def to_image(self, background: float = 1.0) -> Image.Image:
        """`canvas` as a PIL image."""
        return to_pil(self.canvas(background))[0]


@dataclass
class Atlas:
    """An activation atlas of ``layer``: the ``sample`` it was made from, its 2-D ``coordinates`` ``(N, 2)`` in
    ``[0, 1]`` (x, y; one per sampled vector), and its ``levels`` from the coarsest grid to the finest.
    ``settings`` records how it was made and ``seconds`` how long each step took.

    Example:
        >>> atlas = activation_atlas(model, "blocks.4", "photos/", grid=8, steps=64)  # doctest: +SKIP
        >>> [(level.grid, len(level)) for level in atlas.levels]  # doctest: +SKIP
        [(2, 4), (4, 13), (8, 41)]
    """

    model: str
    layer: str
    sample: ActivationSample
    coordinates: Tensor
    levels: list[AtlasLevel]
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def level(self, grid: int) -> AtlasLevel:
        """The level with ``grid`` cells a side."""
        for level in self.levels:
            if level.grid == grid:
                return level
        raise FeatvizError(f"this atlas has no grid of {grid}; its grids are {', '.join(str(l.grid) for l in self.levels)}")

    def save(self, out: str | os.PathLike, title: str | None = None) -> Path:
        """Write the atlas as a static site (see `write_atlas_site`) and return its index.html."""
        return write_atlas_site(self, out, title=title)


__all__ = ["Atlas", "AtlasLevel"]
