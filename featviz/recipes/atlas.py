"""Activation atlases (Carter et al., "Exploring Neural Networks with Activation Atlases", Distill 2019).

An atlas shows what a layer can represent, laid out so that similar activations sit side by side:

1. ``sample_activations`` runs the model over a folder of images and keeps a bounded, uniform sample of the
   layer's activation vectors: up to ``positions`` random spatial positions per image, and at most
   ``samples`` vectors in all (each candidate gets a random key drawn from the image's own seeded stream; the
   ``samples`` smallest keys are kept, so memory stays ``samples x channels`` however many images there are,
   and the sample does not depend on how the folder is split among processes). With ``label`` only images
   whose top ``top`` predictions hold that class, and only their positions whose activation x gradient toward
   the class is positive (the largest first), are sampled: a *class activation atlas*.
2. ``embed_2d`` lays the vectors out in 2-D (t-SNE by default, or UMAP), cosine distance, scaled into the
   unit square with both axes scaled alike.
3. The square is cut into a ``grid x grid`` array of cells at several grid sizes; each cell with samples gets
   their mean activation vector and count.
4. Every cell's mean vector is rendered as a direction at the centre position of the layer
   (``objectives.direction_neuron`` with ``cossim_pow``), many cells in one batched ``Renderer.render``.

``write_atlas_site`` writes the result as a zoomable static page (no server needed). Under ``torchrun``
(``WORLD_SIZE > 1``) the images are shared among the processes for step 1 and the cells for step 4; every
process returns the same `Atlas` and only rank 0 writes files.

Example:
    >>> from featviz.recipes import activation_atlas, write_atlas_site
    >>> atlas = activation_atlas("efficientnet_lite0", "blocks.4", "photos/", grid=16, steps=128)  # doctest: +SKIP
    >>> write_atlas_site(atlas, "atlas-site")  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import html
import importlib.util
import json
import math
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from featviz import objectives
from featviz.dataset import ImageFolder
from featviz.device import resolve_device
from featviz.errors import FeatvizError, check_int
from featviz.dataset.folder import image_source
from featviz.dataset.processes import Processes
from featviz.hooks import IMAGE, OUTPUT, ActivationCapture, bind_layers, channels_first
from featviz.io import ensure_writable_dir, write_text
from featviz.models import Model, load_model
from featviz.renderer import Renderer
from featviz.renderer.image import save_png, to_pil

LAYOUTS = ("tsne", "umap")
DEFAULT_SIZE = 80
DEFAULT_STEPS = 256
DEFAULT_COSSIM_POW = 1.0
SITE_FORMAT = 1
_TILE_NAME = re.compile(r"^(\d+)-(\d+)\.png$")

ModelLike = Model | nn.Module | str
ImagesLike = ImageFolder | str | os.PathLike | Sequence[str | os.PathLike]


@dataclass
class ActivationSample:
    """Activation vectors of one layer sampled over a folder of images (see `sample_activations`).

    ``vectors`` ``(N, channels)`` float32; ``images`` ``(N,)`` indexes ``paths`` (only the images that gave a
    sample are listed); ``positions`` ``(N, 2)`` the ``(row, column)`` of each vector on the layer's
    ``map_size`` map; ``image_count`` images were read in all; ``label`` the class index a class atlas was
    filtered on (None: every image); ``seconds`` how long the sampling took.

    Example:
        >>> sample = sample_activations(model, "blocks.4", "photos/", samples=500)  # doctest: +SKIP
        >>> sample.vectors.shape, sample.map_size  # doctest: +SKIP
        (torch.Size([500, 112]), (14, 14))
    """

    layer: str
    vectors: Tensor
    images: Tensor
    positions: Tensor
    map_size: tuple[int, int]
    paths: list[str]
    image_count: int
    label: int | None = None
    seconds: float = 0.0

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


class _Reservoir:
    """The ``capacity`` candidates with the smallest keys seen so far (bottom-k sampling: a uniform sample
    without replacement, and the merge of two reservoirs is the reservoir of their union). Buffers of
    ``capacity`` rows are allocated once; a candidate replaces the largest key in place."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.count = 0
        self.keys = torch.empty(0, dtype=torch.float64)
        self.vectors: Tensor | None = None
        self.images = torch.empty(0, dtype=torch.int64)
        self.spots = torch.empty(0, dtype=torch.int64)

    def add(self, keys: Tensor, vectors: Tensor, images: Tensor, spots: Tensor) -> None:
        if keys.numel() == 0:
            return
        if self.vectors is None:
            self.keys = torch.full((self.capacity,), math.inf, dtype=torch.float64)
            self.vectors = vectors.new_zeros((self.capacity, vectors.shape[1]))
            self.images = torch.zeros(self.capacity, dtype=torch.int64)
            self.spots = torch.zeros(self.capacity, dtype=torch.int64)
        take = min(self.capacity - self.count, int(keys.numel()))
        if take:
            rows = slice(self.count, self.count + take)
            self.keys[rows], self.vectors[rows] = keys[:take], vectors[:take]
            self.images[rows], self.spots[rows] = images[:take], spots[:take]
            self.count += take
            keys, vectors, images, spots = keys[take:], vectors[take:], images[take:], spots[take:]
        if keys.numel() == 0:
            return
        better = keys < self.keys.max()
        if not bool(better.any()):
            return
        keys, vectors, images, spots = keys[better], vectors[better], images[better], spots[better]
        kept = torch.zeros(self.capacity + keys.numel(), dtype=torch.bool)
        kept[torch.cat([self.keys, keys]).argsort(stable=True)[: self.capacity]] = True
        evicted = torch.nonzero(~kept[: self.capacity]).flatten()
        incoming = torch.nonzero(kept[self.capacity:]).flatten()
        self.keys[evicted], self.vectors[evicted] = keys[incoming], vectors[incoming]
        self.images[evicted], self.spots[evicted] = images[incoming], spots[incoming]

    def state(self) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
        """The candidates held, smallest key first."""
        if self.vectors is None:
            return self.keys, None, self.images, self.spots
        order = self.keys[: self.count].argsort(stable=True)
        return self.keys[order], self.vectors[order], self.images[order], self.spots[order]


def _image_stream(seed: int, image: int) -> np.random.Generator:
    """The random stream of one image: the same whichever process reads it."""
    return np.random.default_rng([seed, image])


def _candidates(
    activation: Tensor, attribution: Tensor | None, image: int, positions: int, seed: int
) -> tuple[Tensor, Tensor]:
    """Flat positions sampled from one image's ``(C, H, W)`` map and their reservoir keys."""
    stream = _image_stream(seed, image)
    flat = activation.flatten(1)
    alive = flat.abs().amax(0) > 0  # a position where every channel is 0 has no direction to render
    if attribution is None:
        order = torch.from_numpy(stream.permutation(flat.shape[1]))
        order = order[alive[order]][:positions]
    else:
        scores = attribution.flatten()
        eligible = (scores > 0) & alive
        order = torch.argsort(-scores, stable=True)
        order = order[eligible[order]][:positions]
    keys = torch.from_numpy(stream.random(int(order.numel())))
    return order, keys


def _resolve_label(model: Model, label: str | int | None) -> int | None:
    if label is None:
        return None
    label_index = getattr(model, "label_index", None)
    if label_index is None:
        raise FeatvizError("a class atlas needs a model with a class output; pass label=None")
    index = int(label_index(label))
    classes = bind_layers(model, [OUTPUT]).shapes[OUTPUT][1]
    if not 0 <= index < classes:
        raise FeatvizError(f"class {label!r} is out of range for {model.name} with {classes} classes; valid: 0-{classes - 1}")
    return index


def image_folder(images: ImagesLike | None, model: Model, image_size: int | None = None) -> ImageFolder:
    """The `ImageFolder` that ``images`` names (a folder, image files, ``"shipped"``, or an `ImageFolder`, checked
    against the model's channels), read at ``image_size`` (default: the model's square input size).

    Example:
        >>> image_folder("shipped", load_model("efficientnet_lite0")).size  # doctest: +SKIP
        224
    """
    if isinstance(images, ImageFolder):
        if images.channels != model.channels:
            raise FeatvizError(
                f"the folder reads {images.channels}-channel images but {model.name} takes {model.channels}; "
                f"use ImageFolder(..., channels={model.channels})"
            )
        return images
    source = image_source(images)
    if source is None:
        raise FeatvizError("images is required: a folder, a list of image files, or 'shipped'")
    if image_size is None:
        height, width = model.input_size
        if height != width:
            raise FeatvizError(f"{model.name} takes {height}x{width} images; pass a square image_size to read them at")
        image_size = int(height)
    image_size = check_int(image_size, "image_size", 8)
    return ImageFolder(source[0], size=image_size, channels=model.channels)


def _gather(processes: Processes, value: Any) -> list[Any]:
    """``value`` from every process, in rank order."""
    if processes.world == 1:
        return [value]
    gathered: list[Any] = [None] * processes.world
    processes.distributed.all_gather_object(gathered, value)
    return gathered


def _sample(
    model: Model, layer: str, folder: ImageFolder, samples: int, positions: int, label: int | None, top: int,
    batch_size: int, seed: int, workers: int, progress: bool, processes: Processes,
) -> ActivationSample:
    from tqdm.auto import tqdm

    started = time.perf_counter()
    if layer in (IMAGE, OUTPUT):
        raise FeatvizError(f"'{layer}' is not a layer with a spatial map; pick a layer of the network")
    size = (folder.size, folder.size)
    reads = [layer] if label is None else [layer, OUTPUT]
    binding = bind_layers(model, reads, size)
    layout = binding.layouts[layer]
    everything = [str(path) for path in folder.paths]
    index_of = {path: index for index, path in enumerate(everything)}
    mine = everything[processes.rank::processes.world]
    reservoir = _Reservoir(samples)
    read = 0
    map_size: tuple[int, int] | None = None
    bar = tqdm(total=len(everything), unit="image", desc=f"sampling {layer}", disable=not progress or processes.rank != 0)
    try:
        if mine:
            shard = folder if processes.world == 1 else ImageFolder(mine, size=folder.size, channels=folder.channels)
            with contextlib.closing(shard.batches(batch_size, workers=workers)) as batches:
                for paths, images in batches:
                    images = images.to(device=model.device, dtype=model.dtype)
                    activation, attribution, chosen = _read_batch(model, reads, binding.layouts, layer, layout, images, label, top)
                    map_size = (int(activation.shape[2]), int(activation.shape[3]))
                    found: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
                    for row, path in enumerate(paths):
                        image = index_of[str(path)]
                        if not chosen[row]:
                            continue
                        spots, keys = _candidates(
                            activation[row], None if attribution is None else attribution[row], image, positions, seed
                        )
                        vectors = activation[row].flatten(1)[:, spots].t()
                        found.append((keys, vectors, torch.full_like(spots, image), spots))
                    if found:
                        reservoir.add(*(torch.cat(parts) for parts in zip(*found)))
                    read += len(paths)
                    bar.update(len(paths) * processes.world)
    finally:
        bar.close()
    if map_size is None:
        map_size = tuple(binding.shapes[layer][2:])  # type: ignore[assignment]
    parts = _gather(processes, (reservoir.state(), read))
    merged = _Reservoir(samples)
    for (keys, vectors, images, spots), _ in parts:
        if vectors is not None:
            merged.add(keys, vectors, images, spots)
    keys, vectors, images, spots = merged.state()
    image_count = sum(count for _, count in parts)
    if image_count == 0:
        raise FeatvizError(f"none of the {len(folder)} images under '{folder.root}' could be read; pass valid images")
    if vectors is None or keys.numel() == 0:
        what = f" where class {label} is among the top {top} predictions" if label is not None else ""
        raise FeatvizError(
            f"no activation of '{layer}' was sampled from {image_count} images{what}; "
            "pass more images" + (" or a larger top" if label is not None else " or another layer")
        )
    used, compact = torch.unique(images, sorted=True, return_inverse=True)
    width = map_size[1]
    return ActivationSample(
        layer=layer,
        vectors=vectors.contiguous(),
        images=compact,
        positions=torch.stack([spots // width, spots % width], 1),
        map_size=(int(map_size[0]), int(map_size[1])),
        paths=[everything[index] for index in used.tolist()],
        image_count=image_count,
        label=label,
        seconds=time.perf_counter() - started,
    )


def _read_batch(
    model: Model, reads: list[str], layouts: dict, layer: str, layout: Any, images: Tensor, label: int | None, top: int,
) -> tuple[Tensor, Tensor | None, list[bool]]:
    """The layer's channels-first activations (float32, CPU); with ``label``, activation x gradient toward the
    class summed over channels per position, and whether the class is among each image's top predictions."""
    if label is None:
        with torch.no_grad(), ActivationCapture(model, reads, layouts=layouts) as capture:
            activation = capture.run(images)[layer]
        return activation.float().cpu(), None, [True] * len(images)
    module = model.get_layer(layer)
    held: dict[str, Tensor] = {}

    def substitute(module: nn.Module, inputs: Any, output: Any) -> Tensor | None:
        if "leaf" in held:  # a module that runs again later in the forward is read at its first call only
            return None
        if not isinstance(output, Tensor):
            raise FeatvizError(f"layer '{layer}' outputs a {type(output).__name__}; a class atlas needs one tensor")
        held["leaf"] = output.detach().requires_grad_(True)
        return held["leaf"].clone()  # the network may change its input in place; the leaf stays as it was

    handle = module.register_forward_hook(substitute)
    try:
        with torch.enable_grad(), ActivationCapture(model, [OUTPUT], layouts=layouts) as capture:
            logits = capture.run(images)[OUTPUT].flatten(1)
            gradient = torch.autograd.grad(logits[:, label].sum(), held["leaf"], allow_unused=True)[0]
    finally:
        handle.remove()
    if gradient is None:
        raise FeatvizError(f"the class output does not depend on layer '{layer}'; pick a layer before the output")
    leaf = held["leaf"].detach()
    activation = channels_first(leaf, layout).float()
    attribution = (activation * channels_first(gradient, layout).float()).sum(1)
    ranked = logits.detach().topk(min(top, logits.shape[1]), dim=1).indices
    chosen = (ranked == label).any(1).tolist()
    return activation.cpu(), attribution.cpu(), chosen


def sample_activations(
    model: ModelLike,
    layer: str,
    images: ImagesLike,
    samples: int = 20000,
    positions: int = 4,
    *,
    label: str | int | None = None,
    top: int = 5,
    image_size: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
    device: str | torch.device | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> ActivationSample:
    """Sample ``layer``'s activation vectors over ``images`` with bounded memory (see the module docstring).

    ``images`` is a folder, a list of image files, ``"shipped"`` (the photos inside scikit-image and
    scikit-learn) or an `ImageFolder`; images are read at ``image_size`` (default: the model's square input
    size), ``batch_size`` at a time, decoded by ``workers`` threads. Each image gives up to ``positions``
    random positions (positions where every channel is 0 are skipped), and at most ``samples`` vectors are
    kept in all, chosen uniformly with ``seed``. ``label`` (a class name or index; a model with a class
    output) keeps only images whose ``top`` predictions include it, and their positions whose activation x
    gradient toward it is positive, the largest first. Under torchrun each process reads its share of the
    images and all return the same sample. ``device`` defaults to the model's (under torchrun a bare
    ``"cuda"`` is each process's own GPU); ``progress`` shows a progress bar.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
        >>> sample = sample_activations(net, "1", "shipped", samples=40, positions=3, image_size=32)
        >>> sample.vectors.shape, sample.image_count
        (torch.Size([40, 8]), 15)
    """
    samples = check_int(samples, "samples", 1)
    positions = check_int(positions, "positions", 1)
    top = check_int(top, "top", 1)
    batch_size = check_int(batch_size, "batch_size", 1)
    seed = check_int(seed, "seed", 0)
    workers = check_int(min(4, os.cpu_count() or 1) if workers is None else workers, "workers", 0)
    default_device = model.device if isinstance(model, Model) else None
    resolved = resolve_device(device, default=default_device, per_process=True)
    processes = Processes(resolved)
    try:
        loaded = load_model(model, device=resolved)
        loaded.get_layer(layer)
        folder = image_folder(images, loaded, image_size)
        return _sample(
            loaded, layer, folder, samples, positions, _resolve_label(loaded, label), top, batch_size, seed, workers,
            progress, processes,
        )
    finally:
        processes.close()


def embed_2d(vectors: Tensor, method: str = "tsne", seed: int = 0, neighbors: int = 15) -> Tensor:
    """Lay ``vectors`` ``(N, C)`` out in 2-D with cosine distance and return ``(N, 2)`` coordinates in ``[0, 1]``.

    ``method`` is ``"tsne"`` (default: scikit-learn's Barnes-Hut t-SNE, perplexity ``neighbors * 2`` capped by
    the point count) or ``"umap"`` (umap-learn, ``pip install umap-learn``, with ``neighbors`` nearest
    neighbours, as Carter et al. used). Both are seeded by ``seed`` and run on one thread. The layout is shifted and
    scaled into the unit square with one factor for both axes (distances keep their proportions) and
    centred along the shorter axis.

    Example:
        >>> points = embed_2d(torch.randn(60, 8), method="tsne")
        >>> points.shape, bool(points.min() >= 0), bool(points.max() <= 1)
        (torch.Size([60, 2]), True, True)
    """
    if method not in LAYOUTS:
        raise FeatvizError(f"layout method must be one of {', '.join(LAYOUTS)}, not {method!r}")
    seed = check_int(seed, "seed", 0)
    neighbors = check_int(neighbors, "neighbors", 2)
    data = torch.as_tensor(vectors).detach().float().cpu().numpy()
    if data.ndim != 2:
        raise FeatvizError(f"vectors must be 2-D (points x channels), got shape {tuple(data.shape)}")
    count = data.shape[0]
    if count < 4:
        raise FeatvizError(f"a layout needs at least 4 vectors, got {count}; sample more images or positions")
    from threadpoolctl import threadpool_limits

    # One thread: with a seed UMAP runs on one anyway, and t-SNE's OpenMP threads measured 30x slower than one
    # thread on two busy cores (their workers spin while they wait).
    with threadpool_limits(limits=1):
        points = _fit_layout(data, method, seed, neighbors)
    low, high = points.min(0), points.max(0)
    span = float((high - low).max()) or 1.0
    scaled = (points - low) / span
    scaled += (1.0 - scaled.max(0)) / 2  # centre the shorter side
    return torch.from_numpy(scaled.clip(0.0, 1.0)).float()


def _fit_layout(data: np.ndarray, method: str, seed: int, neighbors: int) -> np.ndarray:
    count = data.shape[0]
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise FeatvizError("layout 'umap' needs umap-learn: pip install umap-learn (or use layout='tsne')") from None
        reducer = umap.UMAP(
            n_components=2, n_neighbors=min(neighbors, count - 1), min_dist=0.05, metric="cosine", random_state=seed,
            init="spectral" if count > neighbors + 2 else "random",
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "n_jobs overridden to 1 by random_state": reproducibility is asked for
            points = reducer.fit_transform(data)
    else:
        from sklearn.manifold import TSNE

        perplexity = float(min(2 * neighbors, max(1.0, (count - 1) / 3)))
        points = TSNE(2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed).fit_transform(data)
    return np.asarray(points, dtype=np.float64)


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


def _grids(grid: int | Sequence[int], levels: int) -> list[int]:
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


def _cells(coordinates: Tensor, vectors: Tensor, grid: int, min_count: int) -> AtlasLevel:
    """The cells of a ``grid x grid`` cut of the unit square holding at least ``min_count`` points each."""
    column = (coordinates[:, 0] * grid).floor().clamp(0, grid - 1).long()
    row = (coordinates[:, 1] * grid).floor().clamp(0, grid - 1).long()
    flat = row * grid + column
    counts = torch.bincount(flat, minlength=grid * grid)
    sums = torch.zeros((grid * grid, vectors.shape[1]), dtype=torch.float64).index_add_(0, flat, vectors.double())
    kept = torch.nonzero(counts >= min_count).flatten()
    means = (sums[kept] / counts[kept, None]).float()
    cells = torch.stack([kept // grid, kept % grid], 1)
    return AtlasLevel(grid=grid, cells=cells, vectors=means, counts=counts[kept])


def _render_cells(
    renderer: Renderer, layer: str, vectors: Tensor, *, steps: int, size: int | tuple[int, int], seed: int, batch: int,
    cossim_pow: float, param: Any, transforms: Any, progress: bool, processes: Processes,
) -> tuple[Tensor, Tensor, Tensor]:
    """Render each row of ``vectors`` as a direction at the layer's centre; cell ``i`` uses seed ``seed + i``
    (fixed batches of ``batch``, shared among processes)."""
    from tqdm.auto import tqdm

    starts = list(range(0, len(vectors), batch))
    mine = starts[processes.rank::processes.world]
    done: list[tuple[int, Tensor, Tensor]] = []
    bar = tqdm(total=len(vectors), unit="cell", desc=f"rendering {layer}", disable=not progress or processes.rank != 0)
    try:
        for start in mine:
            chunk = vectors[start:start + batch]
            goals = [objectives.direction_neuron(layer, vector, cossim_pow=cossim_pow) for vector in chunk]
            result = renderer.render(
                goals, param=param, transforms=transforms, steps=steps, seed=seed + start, size=size, progress=False,
            )
            done.append((start, result.images, result.history[-1].float()))
            bar.update(len(chunk) * processes.world)
    finally:
        bar.close()
    pieces = sorted((piece for part in _gather(processes, done) for piece in part), key=lambda piece: piece[0])
    images = torch.cat([piece[1] for piece in pieces])
    values = torch.cat([piece[2] for piece in pieces])
    seeds = torch.arange(len(vectors), dtype=torch.int64) + seed
    return images, values, seeds


def activation_atlas(
    model: ModelLike | Renderer,
    layer: str,
    images: ImagesLike,
    grid: int | Sequence[int] = 20,
    *,
    levels: int = 3,
    samples: int = 20000,
    positions: int = 4,
    layout: str = "tsne",
    min_count: int = 1,
    label: str | int | None = None,
    top: int = 5,
    render: bool = True,
    steps: int = DEFAULT_STEPS,
    size: int = DEFAULT_SIZE,
    seed: int = 0,
    cossim_pow: float = DEFAULT_COSSIM_POW,
    batch: int = 32,
    param: str | None = None,
    transforms: Any = None,
    image_size: int | None = None,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Atlas:
    """Make an activation atlas of ``layer`` over ``images`` (see the module docstring for the steps).

    ``model`` is a name, a featviz `Model`, any ``nn.Module`` or a `Renderer` (reused as it is). ``images``,
    ``samples``, ``positions``, ``label``, ``top``, ``image_size`` and ``batch_size`` choose the activations
    (see `sample_activations`); ``layout`` ("tsne" or "umap") lays them out (see `embed_2d`). ``grid`` is the
    finest grid (cells a side) with ``levels`` coarser halvings below it (20 and 3: grids 5, 10, 20), or an
    explicit list of grid sizes; cells with fewer than ``min_count`` samples stay empty. With ``render``
    every cell's mean vector is rendered, ``batch`` cells at once, for ``steps`` steps at ``size`` pixels
    with ``param``/``transforms`` (the renderer's defaults when None); cell ``i`` of all levels (coarsest
    first, then row by row) uses seed ``seed + i``. ``seed`` also seeds the sample and the layout. Each cell
    renders ``objectives.direction_neuron`` with ``cossim_pow`` (1 by default; 0: the plain dot product).
    ``device`` defaults to the model's (a given `Renderer`'s own); ``progress`` shows progress bars.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
        >>> atlas = activation_atlas(net, "1", "shipped", grid=4, levels=2, samples=60, layout="tsne",
        ...                          steps=2, size=32, image_size=32, progress=False)
        >>> [level.grid for level in atlas.levels], atlas.levels[1].images.shape[1:]
        ([2, 4], torch.Size([3, 32, 32]))
    """
    grids = _grids(grid, levels)
    if layout not in LAYOUTS:
        raise FeatvizError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    if layout == "umap" and importlib.util.find_spec("umap") is None:  # say so before the activation pass
        raise FeatvizError("layout 'umap' needs umap-learn: pip install umap-learn (or use layout='tsne')")
    min_count = check_int(min_count, "min_count", 1)
    samples = check_int(samples, "samples", 1)
    positions = check_int(positions, "positions", 1)
    top = check_int(top, "top", 1)
    steps = check_int(steps, "steps", 1)
    size = check_int(size, "size", 8)
    seed = check_int(seed, "seed", 0)
    batch = check_int(batch, "batch", 1)
    batch_size = check_int(batch_size, "batch_size", 1)
    if isinstance(cossim_pow, bool) or not isinstance(cossim_pow, (int, float)) or not cossim_pow >= 0:
        raise FeatvizError(f"cossim_pow must be a number >= 0 (0: plain dot product), not {cossim_pow!r}")
    if isinstance(param, nn.Module):
        raise FeatvizError("param must be a parameterization kind such as 'fft' or 'pixel' (each batch of cells gets its own)")
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
        folder = image_folder(images, loaded, image_size)
        workers = min(4, os.cpu_count() or 1)
        sample = _sample(
            loaded, layer, folder, samples, positions, _resolve_label(loaded, label), top, batch_size, seed, workers,
            progress, processes,
        )
        started = time.perf_counter()
        coordinates = embed_2d(sample.vectors, layout, seed) if processes.rank == 0 else None
        coordinates = _gather(processes, coordinates)[0]
        layout_seconds = time.perf_counter() - started
        atlas_levels = [_cells(coordinates, sample.vectors, size_, min_count) for size_ in grids]
        seconds = {"activations": sample.seconds, "layout": layout_seconds}
        if render:
            started = time.perf_counter()
            if renderer is None:
                renderer = Renderer(loaded)
            vectors = torch.cat([level.vectors for level in atlas_levels])
            rendered, values, seeds = _render_cells(
                renderer, layer, vectors, steps=steps, size=size, seed=seed, batch=batch, cossim_pow=float(cossim_pow),
                param=param, transforms=transforms, progress=progress, processes=processes,
            )
            start = 0
            for level in atlas_levels:
                end = start + len(level)
                level.images, level.values, level.seeds = rendered[start:end], values[start:end], seeds[start:end]
                start = end
            seconds["render"] = time.perf_counter() - started
        settings = {
            "samples": samples, "positions": positions, "layout": layout, "grids": grids, "min_count": min_count,
            "label": sample.label, "top": top if label is not None else None, "steps": steps if render else None,
            "size": size if render else None, "seed": seed, "cossim_pow": float(cossim_pow),
            "image_size": folder.size,
        }
        return Atlas(
            model=loaded.name, layer=layer, sample=sample, coordinates=coordinates, levels=atlas_levels,
            settings=settings, seconds=seconds,
        )
    finally:
        processes.close()


# ---------------------------------------------------------------- the static site

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0; background: #fafafa; color: #222; }
header { padding: 12px 16px; }
h1 { font-size: 20px; margin: 0 0 4px; }
header p { margin: 0 0 8px; color: #555; font-size: 14px; }
.controls button { font-size: 16px; min-width: 32px; }
.controls span { display: inline-block; min-width: 150px; text-align: center; font-size: 14px; }
#viewport { position: relative; width: min(96vw, 86vh); aspect-ratio: 1; margin: 0 16px 16px; overflow: hidden;
  background: #fff; border: 1px solid #ccc; cursor: grab; touch-action: none; }
#viewport.dragging { cursor: grabbing; }
#world { position: absolute; left: 0; top: 0; width: 100%; height: 100%; transform-origin: 0 0; }
.level { position: absolute; inset: 0; display: none; }
.level.shown { display: block; }
.level img { position: absolute; display: block; image-rendering: auto; user-select: none; -webkit-user-drag: none; }
.level img:hover { outline: 2px solid #e33; z-index: 1; }
#tip { position: absolute; pointer-events: none; background: rgba(0, 0, 0, 0.75); color: #fff; font-size: 12px;
  padding: 3px 6px; border-radius: 3px; display: none; white-space: nowrap; }
</style>
</head>
<body>
<header>
<h1>__TITLE__</h1>
<p>__SUMMARY__</p>
<div class="controls"><button id="out" title="zoom out">&minus;</button><span id="status"></span><button id="in" title="zoom in">+</button>
<button id="reset">reset</button></div>
</header>
<div id="viewport"><div id="world"></div><div id="tip"></div></div>
<script id="atlas-data" type="application/json">__DATA__</script>
<script>
(function () {
  const data = JSON.parse(document.getElementById("atlas-data").textContent);
  const viewport = document.getElementById("viewport"), world = document.getElementById("world");
  const tip = document.getElementById("tip"), status = document.getElementById("status");
  const layers = data.levels.map(function (level) {
    const layer = document.createElement("div");
    layer.className = "level";
    const share = 100 / level.grid;
    level.cells.forEach(function (cell) {
      const image = document.createElement("img");
      image.src = cell.tile;
      image.loading = "lazy";
      image.alt = cell.count + " samples";
      image.style.left = cell.column * share + "%";
      image.style.top = cell.row * share + "%";
      image.style.width = image.style.height = share + "%";
      image.dataset.text = "grid " + level.grid + ", row " + cell.row + ", column " + cell.column + ": " +
        cell.count + (cell.count === 1 ? " sample" : " samples");
      layer.appendChild(image);
    });
    world.appendChild(layer);
    return layer;
  });
  let zoom = 1, x = 0, y = 0, shown = -1;
  const maxZoom = Math.max(1, data.levels[data.levels.length - 1].grid / 2);
  function pick() {
    // the finest grid whose cells are still at least half the rendered tile size on screen
    const cellPixels = function (grid) { return viewport.clientWidth * zoom / grid; };
    let index = 0;
    data.levels.forEach(function (level, i) { if (cellPixels(level.grid) >= data.tile_size / 2) { index = i; } });
    return index;
  }
  function update() {
    const side = viewport.clientWidth;
    x = Math.min(0, Math.max(side - side * zoom, x));
    y = Math.min(0, Math.max(side - side * zoom, y));
    world.style.transform = "translate(" + x + "px," + y + "px) scale(" + zoom + ")";
    const index = pick();
    if (index !== shown) {
      layers.forEach(function (layer, i) { layer.classList.toggle("shown", i === index); });
      shown = index;
    }
    status.textContent = "zoom " + zoom.toFixed(1) + "x, grid " + data.levels[index].grid;
  }
  function zoomAt(factor, pointX, pointY) {
    const next = Math.min(maxZoom, Math.max(1, zoom * factor));
    x = pointX - (pointX - x) * next / zoom;
    y = pointY - (pointY - y) * next / zoom;
    zoom = next;
    update();
  }
  viewport.addEventListener("wheel", function (event) {
    event.preventDefault();
    const box = viewport.getBoundingClientRect();
    zoomAt(event.deltaY < 0 ? 1.25 : 0.8, event.clientX - box.left, event.clientY - box.top);
  }, { passive: false });
  let drag = null;
  viewport.addEventListener("pointerdown", function (event) {
    drag = { x: event.clientX - x, y: event.clientY - y };
    viewport.classList.add("dragging");
    viewport.setPointerCapture(event.pointerId);
  });
  viewport.addEventListener("pointermove", function (event) {
    if (drag) { x = event.clientX - drag.x; y = event.clientY - drag.y; update(); return; }
    const text = event.target.dataset && event.target.dataset.text;
    if (!text) { tip.style.display = "none"; return; }
    const box = viewport.getBoundingClientRect();
    tip.textContent = text;
    tip.style.left = (event.clientX - box.left + 12) + "px";
    tip.style.top = (event.clientY - box.top + 12) + "px";
    tip.style.display = "block";
  });
  function stop() { drag = null; viewport.classList.remove("dragging"); }
  viewport.addEventListener("pointerup", stop);
  viewport.addEventListener("pointercancel", stop);
  viewport.addEventListener("pointerleave", function () { tip.style.display = "none"; });
  const middle = function () { return viewport.clientWidth / 2; };
  document.getElementById("in").onclick = function () { zoomAt(2, middle(), middle()); };
  document.getElementById("out").onclick = function () { zoomAt(0.5, middle(), middle()); };
  document.getElementById("reset").onclick = function () { zoom = 1; x = 0; y = 0; update(); };
  window.addEventListener("resize", update);
  update();
}());
</script>
</body>
</html>
"""


def tile_path(grid: int, row: int, column: int) -> str:
    """The site-relative path of one cell's image.

    Example:
        >>> tile_path(16, 3, 10)
        'tiles/16/3-10.png'
    """
    return f"tiles/{grid}/{row}-{column}.png"


def _summary(atlas: Atlas) -> str:
    sample = atlas.sample
    what = f", class {sample.label} only" if sample.label is not None else ""
    grids = ", ".join(str(level.grid) for level in atlas.levels)
    return (
        f"{atlas.model}, layer {atlas.layer}: {len(sample)} activation vectors from {sample.image_count} images{what}, "
        f"laid out with {atlas.settings.get('layout', '?')}; grids {grids}. Scroll or use + to zoom, drag to move, "
        "hover a cell for its count."
    )


def write_atlas_site(atlas: Atlas, out: str | os.PathLike, title: str | None = None) -> Path:
    """Write ``atlas`` as a static site in the folder ``out`` and return the path of its ``index.html``.

    The site: ``index.html`` (the atlas with its data embedded, so it opens from disk without a server: zoom
    with the wheel or the buttons, which switch to finer grids as cells grow, drag to move, hover for a
    cell's count), ``atlas.json`` (the same data: per level its grid and cells with row, column, count, seed,
    objective value and tile path), ``tiles/GRID/ROW-COLUMN.png`` (one image per cell) and ``atlas-GRID.png``
    (each level as one image). Tiles that an earlier atlas left in ``out/tiles`` and this one does not use
    are removed; under torchrun only rank 0 writes. ``title`` is the page's title (default: "Activation atlas
    of LAYER").

    Example:
        >>> write_atlas_site(atlas, "atlas-site")  # doctest: +SKIP
        PosixPath('atlas-site/index.html')
    """
    if not isinstance(atlas, Atlas):
        raise FeatvizError(f"write_atlas_site needs an Atlas (from activation_atlas), not {type(atlas).__name__}")
    if any(level.images is None for level in atlas.levels):
        raise FeatvizError("this atlas was made with render=False; make it with render=True to write a site")
    site = ensure_writable_dir(out)
    index = site / "index.html"
    if int(os.environ.get("RANK", "0") or 0) != 0:
        return index
    levels = []
    written = set()
    tile_size = 0
    for level in atlas.levels:
        assert level.images is not None and level.values is not None and level.seeds is not None
        tile_size = int(level.images.shape[-1])
        cells = []
        for (row, column), count, image, value, seed in zip(
            level.cells.tolist(), level.counts.tolist(), level.images, level.values.tolist(), level.seeds.tolist()
        ):
            path = tile_path(level.grid, row, column)
            metadata = {
                "featviz:objective": f"direction({atlas.layer}@centre, cossim_pow={atlas.settings.get('cossim_pow')})",
                "featviz:steps": str(atlas.settings.get("steps")), "featviz:seed": str(seed),
                "featviz:cell": f"grid {level.grid}, row {row}, column {column}, {count} samples",
            }
            save_png(image, site / path, metadata)
            written.add(path)
            cells.append({
                "row": row, "column": column, "count": count, "seed": seed,
                "value": round(float(value), 6) if math.isfinite(value) else None, "tile": path,
            })
        save_png(level.canvas(), site / f"atlas-{level.grid}.png")
        levels.append({"grid": level.grid, "cells": cells, "image": f"atlas-{level.grid}.png"})
    _remove_stale_tiles(site, written)
    data = {
        "format": SITE_FORMAT, "model": atlas.model, "layer": atlas.layer, "samples": len(atlas.sample),
        "images": atlas.sample.image_count, "map_size": list(atlas.sample.map_size), "settings": atlas.settings,
        "tile_size": tile_size, "levels": levels,
    }
    text = json.dumps(data, indent=1)
    write_text(site / "atlas.json", text + "\n")
    shown_title = title if title is not None else f"Activation atlas of {atlas.layer}"
    page = (
        _PAGE.replace("__TITLE__", html.escape(shown_title))
        .replace("__SUMMARY__", html.escape(_summary(atlas)))
        .replace("__DATA__", json.dumps(data).replace("</", "<\\/"))
    )
    return write_text(index, page)


def _remove_stale_tiles(site: Path, written: set[str]) -> None:
    tiles = site / "tiles"
    for folder in tiles.iterdir() if tiles.is_dir() else []:
        if not (folder.is_dir() and folder.name.isdigit()):
            continue
        for path in folder.iterdir():
            relative = f"tiles/{folder.name}/{path.name}"
            if _TILE_NAME.match(path.name) and path.is_file() and relative not in written:
                path.unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when now empty


__all__ = [
    "ActivationSample", "Atlas", "AtlasLevel", "activation_atlas", "embed_2d", "sample_activations", "write_atlas_site",
]
