"""Steps 3 and 4 of an atlas: the unit square cut into grids of cells, and each cell's mean vector rendered."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from featviz import objectives
from featviz.dataset.processes import Processes
from featviz.errors import FeatvizError, check_int
from featviz.recipes.atlas.result import AtlasLevel
from featviz.recipes.atlas.sampling import gather
from featviz.renderer import Renderer, RenderSettings


def grids(grid: int | Sequence[int], levels: int) -> list[int]:
    """The grid sizes of an atlas, coarsest first: ``grid`` (the finest, cells a side) and ``levels - 1`` halvings
    below it (never under 2), or ``grid`` itself when it is a list of sizes.

    Example:
        >>> grids(20, 3), grids([16, 8, 16], 1)
        ([5, 10, 20], [8, 16])
    """
    if isinstance(grid, (int, np.integer)) and not isinstance(grid, bool):
        finest = check_int(grid, "grid", 2)
        levels = check_int(levels, "levels", 1)
        return sorted({max(2, finest // 2**step) for step in range(levels)})
    try:
        sizes = [check_int(size, "each grid size", 2) for size in grid]  # type: ignore[union-attr]
    except TypeError:
        raise FeatvizError(f"grid must be an int >= 2 or a list of them, not {grid!r}") from None
    if not sizes:
        raise FeatvizError("grid is empty; give an int >= 2 such as 16, or a list such as [8, 16, 32]")
    return sorted(set(sizes))


def cells(coordinates: Tensor, vectors: Tensor, grid: int, min_count: int) -> AtlasLevel:
    """The level of a ``grid x grid`` cut of the unit square: the cells holding at least ``min_count`` of the
    points ``coordinates`` ``(N, 2)`` (x, y in ``[0, 1]``), with the mean of their ``vectors`` ``(N, C)``.

    Example:
        >>> level = cells(torch.tensor([[0.1, 0.1], [0.2, 0.2], [0.9, 0.1]]), torch.eye(3), 2, 1)
        >>> level.cells.tolist(), level.counts.tolist()
        ([[0, 0], [0, 1]], [2, 1])
    """
    column = (coordinates[:, 0] * grid).floor().clamp(0, grid - 1).long()
    row = (coordinates[:, 1] * grid).floor().clamp(0, grid - 1).long()
    flat = row * grid + column
    counts = torch.bincount(flat, minlength=grid * grid)
    sums = torch.zeros((grid * grid, vectors.shape[1]), dtype=torch.float64).index_add_(0, flat, vectors.double())
    kept = torch.nonzero(counts >= min_count).flatten()
    means = (sums[kept] / counts[kept, None]).float()
    cells = torch.stack([kept // grid, kept % grid], 1)
    return AtlasLevel(grid=grid, cells=cells, vectors=means, counts=counts[kept])


def render_cells(
    renderer: Renderer, layer: str, vectors: Tensor, *, settings: RenderSettings, batch: int, cossim_pow: float,
    processes: Processes,
) -> tuple[Tensor, Tensor, Tensor]:
    """Render each row of ``vectors`` as a direction of ``layer`` at its centre (``direction_neuron`` with
    ``cossim_pow``) with ``renderer`` and ``settings``; cell ``i`` uses seed ``settings.seed + i`` (fixed batches
    of ``batch``, shared among ``processes``). Returns the images, each render's final value and its seed.

    Example:
        >>> render_cells(Renderer(model), "blocks.4", torch.rand(3, 112), settings=RenderSettings(steps=64),
        ...              batch=32, cossim_pow=1.0, processes=Processes("cpu"))  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    starts = list(range(0, len(vectors), batch))
    mine = starts[processes.rank::processes.world]
    done: list[tuple[int, Tensor, Tensor]] = []
    seed = settings.seed
    bar = tqdm(total=len(vectors), unit="cell", desc=f"rendering {layer}", disable=not settings.progress or processes.rank != 0)
    try:
        for start in mine:
            chunk = vectors[start:start + batch]
            goals = [objectives.direction_neuron(layer, vector, cossim_pow=cossim_pow) for vector in chunk]
            chunk_settings = settings.replace(seed=seed + start, progress=False)
            result = renderer.render(goals, **chunk_settings.render_options())
            done.append((start, result.images, result.history[-1].float()))
            bar.update(len(chunk) * processes.world)
    finally:
        bar.close()
    pieces = sorted((piece for part in gather(processes, done) for piece in part), key=lambda piece: piece[0])
    images = torch.cat([piece[1] for piece in pieces])
    values = torch.cat([piece[2] for piece in pieces])
    seeds = torch.arange(len(vectors), dtype=torch.int64) + seed
    return images, values, seeds


__all__ = ["cells", "grids", "render_cells"]
