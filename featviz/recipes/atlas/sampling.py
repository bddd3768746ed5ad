"""Step 1 of an atlas: a bounded, uniform sample of a layer's activation vectors over a folder of images (shared
among torchrun processes), optionally only where a class is predicted and supported."""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from featviz.dataset import ImageFolder, image_folder
from featviz.dataset.processes import Processes
from featviz.device import resolve_device
from featviz.errors import FeatvizError, check_int
from featviz.hooks import IMAGE, OUTPUT, ActivationCapture, bind_layers, channels_first, leaf_output
from featviz.models import Model, load_model
from featviz.renderer.calls import old_call_forms

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


def resolve_label(model: Model, label: str | int | None) -> int | None:
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


def gather(processes: Processes, value: Any) -> list[Any]:
    """``value`` from every process, in rank order."""
    if processes.world == 1:
        return [value]
    gathered: list[Any] = [None] * processes.world
    processes.distributed.all_gather_object(gathered, value)
    return gathered


def sample_layer(
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
    parts = gather(processes, (reservoir.state(), read))
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
    with torch.enable_grad(), leaf_output(model.get_layer(layer), layer, "a class atlas") as leaf:
        with ActivationCapture(model, [OUTPUT], layouts=layouts) as capture:
            logits = capture.run(images)[OUTPUT].flatten(1)
        gradient = leaf.gradient(logits[:, label].sum())
    if gradient is None:
        raise FeatvizError(f"the class output does not depend on layer '{layer}'; pick a layer before the output")
    activation = channels_first(leaf.tensor.detach(), layout).float()
    attribution = (activation * channels_first(gradient, layout).float()).sum(1)
    ranked = logits.detach().topk(min(top, logits.shape[1]), dim=1).indices
    chosen = (ranked == label).any(1).tolist()
    return activation.cpu(), attribution.cpu(), chosen


@old_call_forms(["model", "layer", "images", "samples", "positions"])
def sample_activations(
    model: ModelLike,
    layer: str,
    images: ImagesLike,
    *,
    samples: int = 20000,
    positions: int = 4,
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
        folder = image_folder(loaded, images, image_size)
        return sample_layer(
            loaded, layer, folder, samples, positions, resolve_label(loaded, label), top, batch_size, seed, workers,
            progress, processes,
        )
    finally:
        processes.close()


__all__ = ["ActivationSample", "sample_activations"]
