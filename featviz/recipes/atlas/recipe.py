"""`activation_atlas`: the four steps of an atlas (sample, lay out, cut into cells, render) in one call."""
from __future__ import annotations

import importlib.util
import os
import time
from typing import Any, Sequence

import torch

from featviz.dataset.processes import Processes
from featviz.device import resolve_device
from featviz.errors import FeatvizError, check_int
from featviz.models import Model, load_model
from featviz.renderer.calls import old_call_forms
from featviz.recipes.atlas.cells import grids as atlas_grids
from featviz.recipes.atlas.cells import cells as atlas_cells
from featviz.recipes.atlas.cells import render_cells
from featviz.recipes.atlas.layout import LAYOUTS, embed_2d
from featviz.recipes.atlas.result import Atlas
from featviz.dataset import image_folder
from featviz.recipes.atlas.sampling import ImagesLike, ModelLike, gather, resolve_label, sample_layer
from featviz.renderer import Renderer, RenderSettings
from featviz.renderer.settings import settings_from

DEFAULT_SIZE = 80
DEFAULT_STEPS = 256
DEFAULT_COSSIM_POW = 1.0
#: The render settings of an atlas's cells unless others are given.
DEFAULT_SETTINGS = RenderSettings(steps=DEFAULT_STEPS, size=DEFAULT_SIZE)


@old_call_forms(["model", "layer", "images", "grid"])
def activation_atlas(
    model: ModelLike | Renderer,
    layer: str,
    images: ImagesLike,
    *,
    grid: int | Sequence[int] = 20,
    levels: int = 3,
    samples: int = 20000,
    positions: int = 4,
    layout: str = "tsne",
    min_count: int = 1,
    label: str | int | None = None,
    top: int = 5,
    render: bool = True,
    cossim_pow: float = DEFAULT_COSSIM_POW,
    batch: int = 32,
    image_size: int | None = None,
    batch_size: int = 32,
    settings: RenderSettings | None = None,
    **render_settings: Any,
) -> Atlas:
    """Make an activation atlas of ``layer`` over ``images`` (see `featviz.recipes.atlas` for the steps).

    ``model`` is a name, a featviz `Model`, any ``nn.Module`` or a `Renderer` (reused as it is). ``images``,
    ``samples``, ``positions``, ``label``, ``top``, ``image_size`` and ``batch_size`` choose the activations
    (see `sample_activations`); ``layout`` ("tsne" or "umap") lays them out (see `embed_2d`). ``grid`` is the
    finest grid (cells a side) with ``levels`` coarser halvings below it (20 and 3: grids 5, 10, 20), or an
    explicit list of grid sizes; cells with fewer than ``min_count`` samples stay empty. With ``render``
    every cell's mean vector is rendered, ``batch`` cells at once, with ``settings`` (a `RenderSettings`;
    default ``DEFAULT_SETTINGS``: 256 steps at 80 pixels; any of its fields may also be given as a keyword,
    ``steps=64``); cell ``i`` of all levels (coarsest first, then row by row) uses seed ``seed + i``.
    ``seed`` also seeds the sample and the layout. Each cell renders ``objectives.direction_neuron`` with
    ``cossim_pow`` (1 by default; 0: the plain dot product). ``device`` defaults to the model's (a given
    `Renderer`'s own); ``progress`` shows progress bars.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
        >>> atlas = activation_atlas(net, "1", "shipped", grid=4, levels=2, samples=60, layout="tsne",
        ...                          steps=2, size=32, image_size=32, progress=False)
        >>> [level.grid for level in atlas.levels], atlas.levels[1].images.shape[1:]
        ([2, 4], torch.Size([3, 32, 32]))
    """
    settings = settings_from(settings, DEFAULT_SETTINGS, render_settings, owner="activation_atlas")
    size, seed, device, progress = settings.size, settings.seed, settings.device, settings.progress
    grids = atlas_grids(grid, levels)
    if layout not in LAYOUTS:
        raise FeatvizError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    if layout == "umap" and importlib.util.find_spec("umap") is None:  # say so before the activation pass
        raise FeatvizError("layout 'umap' needs umap-learn: pip install umap-learn (or use layout='tsne')")
    min_count = check_int(min_count, "min_count", 1)
    samples = check_int(samples, "samples", 1)
    positions = check_int(positions, "positions", 1)
    top = check_int(top, "top", 1)
    size = check_int(size, "size", 8)
    batch = check_int(batch, "batch", 1)
    batch_size = check_int(batch_size, "batch_size", 1)
    if isinstance(cossim_pow, bool) or not isinstance(cossim_pow, (int, float)) or not cossim_pow >= 0:
        raise FeatvizError(f"cossim_pow must be a number >= 0 (0: plain dot product), not {cossim_pow!r}")
    if isinstance(model, Renderer):
        default_device = model.device
    else:
        default_device = model.device if isinstance(model, Model) else None
    resolved = resolve_device(device, default=default_device, per_process=True)
    processes = Processes(resolved)
    try:
        if isinstance(model, Renderer):
            renderer = model
            loaded = renderer.model
        else:
            loaded = load_model(model, device=resolved)
            renderer = None
        loaded.get_layer(layer)
        folder = image_folder(loaded, images, image_size)
        workers = min(4, os.cpu_count() or 1)
        sample = sample_layer(
            loaded, layer, folder, samples, positions, resolve_label(loaded, label), top, batch_size, seed, workers,
            progress, processes,
        )
        started = time.perf_counter()
        coordinates = embed_2d(sample.vectors, layout, seed) if processes.rank == 0 else None
        coordinates = gather(processes, coordinates)[0]
        layout_seconds = time.perf_counter() - started
        atlas_levels = [atlas_cells(coordinates, sample.vectors, size_, min_count) for size_ in grids]
        seconds = {"activations": sample.seconds, "layout": layout_seconds}
        if render:
            started = time.perf_counter()
            if renderer is None:
                renderer = Renderer(loaded, autocast=settings.autocast)
            vectors = torch.cat([level.vectors for level in atlas_levels])
            rendered, values, seeds = render_cells(
                renderer, layer, vectors, settings=settings.replace(size=size), batch=batch,
                cossim_pow=float(cossim_pow), processes=processes,
            )
            start = 0
            for level in atlas_levels:
                end = start + len(level)
                level.images, level.values, level.seeds = rendered[start:end], values[start:end], seeds[start:end]
                start = end
            seconds["render"] = time.perf_counter() - started
        record = {
            "samples": samples, "positions": positions, "layout": layout, "grids": grids, "min_count": min_count,
            "label": sample.label, "top": top if label is not None else None, "steps": settings.steps if render else None,
            "size": size if render else None, "seed": seed, "cossim_pow": float(cossim_pow),
            "image_size": folder.size,
        }
        return Atlas(
            model=loaded.name, layer=layer, sample=sample, coordinates=coordinates, levels=atlas_levels,
            settings=record, seconds=seconds,
        )
    finally:
        processes.close()


__all__ = ["activation_atlas"]
