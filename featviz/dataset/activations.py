"""One pass of a model over an image folder: per unit, the images that excite it most and a histogram.

For every requested layer and every unit (channel) of it, `collect_activations` keeps bounded state however
many images the folder holds:

* the top-k images by the unit's maximum over positions of its channels-first activation map, each with the
  value, the ``(y, x)`` of that maximum and the map's size (so `crop_around` can cut the spot out);
* a histogram of the unit's per-image mean activation;
* with ``per_image=True``, every image's mean and maximum of every unit (``images x units`` floats each, what
  concept labels and conditional-probability plots in `featviz.concepts` read).

Histogram range: each unit starts with ``bins`` equal bins over its first batch's range (padded by 5 %, or by
``max(5 % of |value|, 1e-3)`` around the middle of a bin when that range is a single value). A later value
outside the range grows it by doubling the bin width, extending on the side of the outlier, and adding
neighbouring bins in pairs; repeated until every value fits. Counts stay exact (each old bin falls entirely
inside one new bin) and memory stays ``units x bins`` per layer. Bins at either end may be empty; displays
should trim them (the gallery site does).

A layer module that runs more than once in one forward pass is read at its first call, as `featviz.hooks`
reads it for rendering, and the forward pass stops as soon as every requested layer has run.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Sequence

import torch
from PIL import Image
from torch import nn

from featviz.dataset.folder import PIL_MODES, ImageFolder, centre_square, image_folder
from featviz.errors import FeatvizError, check_int
from featviz.imagefile import open_image
from featviz.hooks import IMAGE, OUTPUT, ActivationCapture, Layout, bind_layers
from featviz.models import Model, load_model, weights_fingerprint
from featviz.io import atomic_path, ensure_writable_dir

CACHE_FORMAT = 1
INITIAL_PADDING = 0.05
MINIMUM_PADDING = 1e-3


@dataclass(frozen=True)
class TopExample:
    """One of the images that excite a unit most: its file, the unit's maximum, where on the map and the map size.

    Example:
        >>> from featviz.dataset import shipped_photo_paths
        >>> stats = collect_activations(model, ImageFolder(shipped_photo_paths(), 64), ["blocks.4.0.conv_pwl"])
        >>> best = stats["blocks.4.0.conv_pwl"].top_examples(3)[0]
        >>> Path(best.path).name, round(best.value, 2), best.position, best.map_size
        ('flower.jpg', 5.88, (0, 1), (4, 4))
    """

    path: str
    value: float
    position: tuple[int, int]
    map_size: tuple[int, int]

    def crop(self, size: int, crop_fraction: float = 0.5, channels: int = 3) -> Image.Image:
        """The ``size x size`` crop of this image around the spot where the unit fires most (see `crop_around`).

        Example:
            >>> from featviz.dataset import shipped_photo_paths
            >>> stats = collect_activations(model, ImageFolder(shipped_photo_paths(), 64), ["blocks.4.0.conv_pwl"])
            >>> best = stats["blocks.4.0.conv_pwl"].top_examples(3)[0]
            >>> best.crop(96).size
            (96, 96)
        """
        return crop_around(self.path, self.position, self.map_size, size, crop_fraction, channels)


class Histogram(NamedTuple):
    """``counts[i]`` images had a per-image mean activation in ``[edges[i], edges[i + 1])``."""

    counts: list[int]
    edges: list[float]


class UnitStats:
    """Dataset statistics of every unit of one layer: top-k examples and a per-image-mean histogram per unit.

    Made by `collect_activations`. Tensors are indexed by unit first: ``top_values``, ``top_images`` and
    ``top_positions`` ``(units, k[, 2])`` hold each unit's k largest per-image maxima, which image they are in and
    where on the ``map_size`` activation map (row, column); ``histogram_counts`` ``(units, bins)`` counts the
    images whose per-unit mean falls in each bin, from ``histogram_low`` in steps of ``histogram_width`` (per
    unit). ``image_count`` images were read at ``image_size`` pixels with ``channels`` channels. ``paths`` holds
    only the images some unit ranks in its top k; ``top_images`` indexes it. Values are in descending order along
    the second dimension; a folder smaller than k gives fewer columns. A pass with ``per_image=True`` also keeps
    every image's per-unit mean and maximum over positions (`per_image`; ``image_means`` and ``image_maxima``),
    ``(images, units)`` in the order of ``image_paths``.

    Example:
        >>> from featviz.dataset import shipped_photo_paths
        >>> folder = ImageFolder(shipped_photo_paths(), 64)   # the 15 shipped photos at 64 px
        >>> stats = collect_activations(model, folder, ["blocks.4.0.conv_pwl"])["blocks.4.0.conv_pwl"]
        >>> stats
        UnitStats(layer='blocks.4.0.conv_pwl', units=112, k=9, map_size=(4, 4), images=15)
    """

    def __init__(
        self,
        layer: str,
        paths: list[str],
        top_values: torch.Tensor,
        top_images: torch.Tensor,
        top_positions: torch.Tensor,
        map_size: tuple[int, int],
        histogram_counts: torch.Tensor,
        histogram_low: torch.Tensor,
        histogram_width: torch.Tensor,
        image_count: int,
        image_size: int,
        channels: int = 3,
        image_paths: list[str] | None = None,
        image_means: torch.Tensor | None = None,
        image_maxima: torch.Tensor | None = None,
    ) -> None:
        self.layer = layer
        self.paths = paths
        self.top_values = top_values
        self.top_images = top_images
        self.top_positions = top_positions
        self.map_size = (int(map_size[0]), int(map_size[1]))
        self.histogram_counts = histogram_counts
        self.histogram_low = histogram_low
        self.histogram_width = histogram_width
        self.image_count = int(image_count)
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.image_paths = image_paths
        self.image_means = image_means
        self.image_maxima = image_maxima

    @property
    def units(self) -> int:
        """The number of units (channels) of the layer."""
        return int(self.top_values.shape[0])

    def __repr__(self) -> str:
        return (
            f"UnitStats(layer={self.layer!r}, units={self.units}, k={self.top_values.shape[1]}, "
            f"map_size={self.map_size}, images={self.image_count})"
        )

    def _check_unit(self, unit: int) -> int:
        if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < self.units:
            raise FeatvizError(f"unit {unit!r} is out of range for layer '{self.layer}'; valid: 0..{self.units - 1}")
        return unit

    def top_examples(self, unit: int) -> list[TopExample]:
        """The images that excite ``unit`` most, best first.

        Example:
            >>> from featviz.dataset import shipped_photo_paths
            >>> stats = collect_activations(model, ImageFolder(shipped_photo_paths(), 64), ["blocks.4.0.conv_pwl"])
            >>> [round(example.value, 2) for example in stats["blocks.4.0.conv_pwl"].top_examples(0)[:3]]
            [6.74, 3.33, 3.2]
        """
        unit = self._check_unit(unit)
        return [
            TopExample(self.paths[int(image)], float(value), (int(position[0]), int(position[1])), self.map_size)
            for value, image, position in zip(
                self.top_values[unit].tolist(), self.top_images[unit].tolist(), self.top_positions[unit].tolist()
            )
        ]

    def per_image(self, reduce: str = "mean") -> torch.Tensor:
        """Every image's value of every unit, ``(images, units)`` float32 in ``image_paths`` order: the unit's
        ``"mean"`` or ``"max"`` over positions. Needs a pass with ``per_image=True``.

        Example:
            >>> from featviz.dataset import shipped_photo_paths
            >>> folder = ImageFolder(shipped_photo_paths(), 64)
            >>> found = collect_activations(model, folder, ["blocks.4.0.conv_pwl"], per_image=True)
            >>> found["blocks.4.0.conv_pwl"].per_image("mean").shape
            torch.Size([15, 112])
        """
        found = {"mean": self.image_means, "max": self.image_maxima}
        if reduce not in found:
            raise FeatvizError(f"reduce must be 'mean' or 'max' (over positions), not {reduce!r}")
        values = found[reduce]
        if values is None:
            raise FeatvizError(
                f"these statistics of layer '{self.layer}' hold no per-image values; run collect_activations(..., "
                "per_image=True)"
            )
        return values

    def histogram(self, unit: int) -> Histogram:
        """The histogram of ``unit``'s per-image mean activation over the folder.

        Example:
            >>> from featviz.dataset import shipped_photo_paths
            >>> stats = collect_activations(model, ImageFolder(shipped_photo_paths(), 64), ["blocks.4.0.conv_pwl"])
            >>> counts, edges = stats["blocks.4.0.conv_pwl"].histogram(0)
            >>> sum(counts), len(counts), len(edges)
            (15, 32, 33)
        """
        unit = self._check_unit(unit)
        bins = self.histogram_counts.shape[1]
        edges = self.histogram_low[unit] + self.histogram_width[unit] * torch.arange(bins + 1, dtype=torch.float64)
        return Histogram(self.histogram_counts[unit].tolist(), edges.tolist())

    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild these statistics, as tensors and plain values (for `torch.save`)."""
        return {
            "layer": self.layer, "paths": list(self.paths), "top_values": self.top_values,
            "top_images": self.top_images, "top_positions": self.top_positions, "map_size": list(self.map_size),
            "histogram_counts": self.histogram_counts, "histogram_low": self.histogram_low,
            "histogram_width": self.histogram_width, "image_count": self.image_count, "image_size": self.image_size,
            "channels": self.channels,
            **({"image_paths": list(self.image_paths), "image_means": self.image_means,
                "image_maxima": self.image_maxima} if self.image_means is not None else {}),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "UnitStats":
        """Rebuild statistics saved with `state`.

        Example:
            >>> from featviz.dataset import shipped_photo_paths
            >>> stats = collect_activations(model, ImageFolder(shipped_photo_paths(), 64), ["blocks.4.0.conv_pwl"])
            >>> state = stats["blocks.4.0.conv_pwl"].state()
            >>> UnitStats.from_state(state).top_examples(0) == stats["blocks.4.0.conv_pwl"].top_examples(0)
            True
        """
        return cls(**state)


class _RunningHistogram:
    """Per-unit histograms with a range that grows by doubling the bin width (see the module docstring)."""

    def __init__(self, bins: int) -> None:
        self.bins = bins
        self.counts: torch.Tensor | None = None
        self.low: torch.Tensor | None = None
        self.width: torch.Tensor | None = None

    def add(self, values: torch.Tensor) -> None:
        """Count ``values`` of shape ``(B, units)`` (float64, CPU); non-finite values are ignored."""
        finite = torch.isfinite(values)
        smallest = torch.where(finite, values, float("inf")).amin(0)
        largest = torch.where(finite, values, float("-inf")).amax(0)
        if self.counts is None:
            self._start(smallest, largest)
        self._grow_to_fit(smallest, largest)
        units = values.shape[1]
        safe = torch.where(finite, values, self.low)
        index = ((safe - self.low) / self.width).floor_().clamp_(0, self.bins - 1).long()
        index += torch.arange(units) * self.bins
        self.counts += torch.bincount(index[finite], minlength=units * self.bins).view(units, self.bins)

    def _start(self, smallest: torch.Tensor, largest: torch.Tensor) -> None:
        empty = ~torch.isfinite(smallest)
        smallest = smallest.masked_fill(empty, 0.0)
        largest = largest.masked_fill(empty, 0.0)
        span = largest - smallest
        padding = torch.where(
            span > 0, span * INITIAL_PADDING, (smallest.abs() * INITIAL_PADDING).clamp(min=MINIMUM_PADDING)
        )
        self.low = smallest - padding
        # A unit with one value so far gets it in the middle of a bin rather than on the central edge.
        self.width = torch.where(span > 0, (span + 2 * padding) / self.bins, 2 * padding / (self.bins - 1))
        self.counts = torch.zeros((smallest.shape[0], self.bins), dtype=torch.int64)

    def _grow_to_fit(self, smallest: torch.Tensor, largest: torch.Tensor) -> None:
        assert self.counts is not None and self.low is not None and self.width is not None
        half = self.bins // 2
        while True:
            high = self.low + self.width * self.bins
            grow_left = smallest < self.low
            grow_right = (largest > high) & ~grow_left
            grow = grow_left | grow_right
            if not bool(grow.any()):
                return
            pairs = self.counts.view(-1, half, 2).sum(2)
            zeros = torch.zeros_like(pairs)
            self.counts = torch.where(
                grow_left[:, None],
                torch.cat([zeros, pairs], 1),
                torch.where(grow_right[:, None], torch.cat([pairs, zeros], 1), self.counts),
            )
            self.low = torch.where(grow_left, self.low - self.width * self.bins, self.low)
            self.width = torch.where(grow, self.width * 2, self.width)


class _LayerAccumulator:
    """The running top-k and histogram of one layer during the pass."""

    def __init__(self, layer: str, k: int, bins: int, per_image: bool = False) -> None:
        self.layer = layer
        self.k = k
        self.top_values: torch.Tensor | None = None  # (units, <=k) float32
        self.top_images: torch.Tensor | None = None  # (units, <=k) int64, index into the pass's path list
        self.top_spots: torch.Tensor | None = None  # (units, <=k) int64, flat y * width + x
        self.map_size: tuple[int, int] | None = None
        self.histogram = _RunningHistogram(bins)
        self.image_means: list[torch.Tensor] | None = [] if per_image else None
        self.image_maxima: list[torch.Tensor] = []

    def update(
        self,
        maxima: torch.Tensor,
        spots: torch.Tensor,
        means: torch.Tensor,
        map_size: tuple[int, int],
        first_image: int,
    ) -> None:
        batch, units = maxima.shape
        if self.top_values is None:
            self.map_size = map_size
            self.top_values = torch.empty((units, 0), dtype=torch.float32)
            self.top_images = torch.empty((units, 0), dtype=torch.int64)
            self.top_spots = torch.empty((units, 0), dtype=torch.int64)
        elif map_size != self.map_size or units != self.top_values.shape[0]:
            raise FeatvizError(
                f"layer '{self.layer}' changed shape during the pass ({self.top_values.shape[0]} units on "
                f"{self.map_size} before, {units} on {map_size} now); use a fixed image size"
            )
        images = torch.arange(first_image, first_image + batch, dtype=torch.int64).expand(units, batch)
        values = torch.cat([self.top_values, maxima.t().nan_to_num(nan=float("-inf"))], 1)
        # A stable sort keeps earlier images ahead of later ones with the same value: deterministic ties.
        order = values.argsort(dim=1, descending=True, stable=True)[:, : self.k]
        self.top_values = values.gather(1, order)
        self.top_images = torch.cat([self.top_images, images], 1).gather(1, order)
        self.top_spots = torch.cat([self.top_spots, spots.t()], 1).gather(1, order)
        self.histogram.add(means)
        if self.image_means is not None:
            self.image_means.append(means.float())
            self.image_maxima.append(maxima)

    def finish(self, all_paths: list[str], image_size: int, channels: int) -> UnitStats:
        assert self.top_values is not None and self.top_images is not None and self.top_spots is not None
        assert self.map_size is not None
        used, compact = torch.unique(self.top_images, sorted=True, return_inverse=True)
        width = self.map_size[1]
        positions = torch.stack([self.top_spots // width, self.top_spots % width], dim=2)
        histogram = self.histogram
        assert histogram.counts is not None and histogram.low is not None and histogram.width is not None
        return UnitStats(
            layer=self.layer,
            paths=[all_paths[index] for index in used.tolist()],
            top_values=self.top_values.contiguous(),
            top_images=compact.contiguous(),
            top_positions=positions.contiguous(),
            map_size=self.map_size,
            histogram_counts=histogram.counts,
            histogram_low=histogram.low,
            histogram_width=histogram.width,
            image_count=len(all_paths),
            image_size=image_size,
            channels=channels,
            **({"image_paths": list(all_paths), "image_means": torch.cat(self.image_means),
                "image_maxima": torch.cat(self.image_maxima)} if self.image_means is not None else {}),
        )


def _reduce(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Per image and unit of a ``(B, C, H, W)`` map: the max over positions, its flat position, the mean over
    positions; and the map size."""
    height, width = int(maps.shape[2]), int(maps.shape[3])
    flat = maps.flatten(2)
    maxima, spots = flat.max(dim=2)
    means = flat.mean(dim=2, dtype=torch.float64)
    return maxima.float().cpu(), spots.cpu(), means.cpu(), (height, width)


def _cache_key(
    model: nn.Module, folder: ImageFolder, layers: Sequence[str], k: int, bins: int, per_image: bool = False
) -> str:
    files = hashlib.sha256()
    for stamp in folder.stamps:
        files.update(f"{stamp.relative_path}\0{stamp.size}\0{stamp.mtime_ns}\n".encode())
    network = getattr(model, "network", model)
    return json.dumps(
        {
            "format": CACHE_FORMAT, "model": str(getattr(model, "name", type(network).__name__)),
            "weights": weights_fingerprint(model), "layers": sorted(_layer_key(layer) for layer in layers),
            "size": folder.size,
            "channels": folder.channels, "root": str(folder.root), "files": files.hexdigest(), "k": k, "bins": bins,
            **({"per_image": True} if per_image else {}),
        },
        sort_keys=True,
    )


def _layer_key(layer: Any) -> str:
    """A layer's name, or for a dictionary (anything with ``layer``, ``maps`` and ``digest``) its layer and digest."""
    return layer if isinstance(layer, str) else f"{layer.layer}|dictionary:{layer.digest()}"


def _is_feature_map(layer: Any) -> bool:
    return all(hasattr(layer, name) for name in ("layer", "maps", "digest")) and isinstance(layer.layer, str)


def _load_cache(path: Path, key: str) -> dict[str, UnitStats] | None:
    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("key") != key:
            return None
        return {layer: UnitStats.from_state(state) for layer, state in saved["layers"].items()}
    except Exception as error:  # noqa: BLE001 - a damaged cache is recomputed, never fatal
        warnings.warn(f"ignoring unreadable activation cache '{path}' ({type(error).__name__}: {error})", stacklevel=3)
        return None


def collect_activations(
    model: Model | nn.Module | str,
    folder: ImageFolder | str | os.PathLike,
    layers: Iterable[str],
    batch_size: int = 32,
    cache_dir: str | os.PathLike | None = None,
    device: torch.device | str | None = None,
    *,
    k: int = 9,
    bins: int = 32,
    workers: int | None = None,
    progress: bool = False,
    per_image: bool = False,
) -> dict[str, UnitStats]:
    """Run ``model`` once over every image of ``folder`` and return each layer's `UnitStats`.

    ``model`` is a featviz `Model`, a name or any ``nn.Module`` (wrapped by `featviz.load_model`, which never
    changes it); it takes images in ``[0, 1]`` and normalizes them itself. Layers are dot paths
    of its network or ``"@output"`` (the network's output, e.g. class logits), or `featviz.objectives.Dictionary`
    objects: their units are the dictionary's features (the codes of its layer's map), and the result is keyed
    by the object itself. ``folder`` is an
    `ImageFolder` or a folder path (read at the model's square input size). Images go to ``device``
    (default: the model's) in the model's dtype, ``batch_size`` at a time; ``progress`` shows a progress bar.
    ``workers`` threads decode images while the model runs
    (default: up to 4). With ``cache_dir``, the result is saved there under a hash of the model name, its
    weights fingerprint, the layers, image size and channels, every file's path, size and mtime, ``k`` and
    ``bins``; a later call with the same inputs loads it without running the model. ``per_image`` also keeps
    every image's per-unit mean and maximum (`UnitStats.per_image`; ``images x units`` floats per layer).

    Example:
        >>> from featviz.dataset import shipped_photo_paths
        >>> folder = ImageFolder(shipped_photo_paths(), 64)
        >>> stats = collect_activations(model, folder, ["blocks.4.0.conv_pwl"], cache_dir="cache")
        >>> Path(stats["blocks.4.0.conv_pwl"].top_examples(3)[0].path).name
        'flower.jpg'
        >>> len(list(Path("cache").iterdir()))   # a second call with the same inputs reads this file
        1
    """
    if isinstance(layers, str):
        layers = [layers]
    layer_names = list(dict.fromkeys(layers))
    if not layer_names:
        raise FeatvizError("no layers given; pass at least one layer name (list them with `featviz layers MODEL`)")
    for name in layer_names:
        if not isinstance(name, str) and not _is_feature_map(name):
            raise FeatvizError(f"layer names must be strings (or dictionaries of a layer's features), not {name!r}")
    batch_size = check_int(batch_size, "batch_size")
    k = check_int(k, "k")
    bins = check_int(bins, "bins", minimum=2)
    if bins % 2:
        raise FeatvizError(f"bins must be even (the histogram grows by merging bin pairs), not {bins}; try {bins + 1}")
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    workers = check_int(workers, "workers", minimum=0)
    model = load_model(model, device=device)
    folder = image_folder(model, folder)
    if IMAGE in layer_names:
        raise FeatvizError(f"'{IMAGE}' is the input image, not a layer; pick layers of the network")
    captured = list(dict.fromkeys(name if isinstance(name, str) else name.layer for name in layer_names))
    for name in layer_names:
        if not isinstance(name, str):
            name.check_model(model, name.layer)  # a dictionary fitted on another model is refused
    for name in captured:
        if name != OUTPUT:
            model.get_layer(name)  # an unknown name fails now, with the closest names, cached or not
    cache_path = None
    if cache_dir is not None:
        key = _cache_key(model, folder, layer_names, k, bins, per_image)
        digest = hashlib.sha256(key.encode()).hexdigest()
        cache_path = ensure_writable_dir(cache_dir) / f"activations-{digest[:24]}.pt"
        cached = _load_cache(cache_path, key)
        if cached is not None and all(_layer_key(name) in cached for name in layer_names):
            return {name: cached[_layer_key(name)] for name in layer_names}
    binding = bind_layers(model, captured, (folder.size, folder.size))
    result = _run_pass(
        model, folder, layer_names, binding.layouts, batch_size, k, bins, workers, progress,
        model.device, per_image,
    )
    if cache_path is not None:
        with atomic_path(cache_path) as temporary:
            torch.save(
                {"key": key, "layers": {_layer_key(name): stats.state() for name, stats in result.items()}}, temporary
            )
    return result


def _run_pass(
    model: Model,
    folder: ImageFolder,
    layer_names: list[str],
    layouts: dict[str, Layout],
    batch_size: int,
    k: int,
    bins: int,
    workers: int,
    progress: bool,
    device: torch.device,
    per_image: bool = False,
) -> dict[str, UnitStats]:
    from tqdm.auto import tqdm

    accumulators = {
        name: _LayerAccumulator(name if isinstance(name, str) else name.name, k, bins, per_image)
        for name in layer_names
    }
    captured = list(dict.fromkeys(name if isinstance(name, str) else name.layer for name in layer_names))
    all_paths: list[str] = []
    bar = tqdm(total=len(folder), unit="image", desc="dataset pass", disable=not progress)
    try:
        # closing(): the decoding threads stop at once if the pass raises, not when the generator is collected.
        with torch.no_grad(), ActivationCapture(model, captured, layouts=layouts) as capture, \
                contextlib.closing(folder.batches(batch_size, workers=workers)) as batches:
            for paths, images in batches:
                activations = capture.run(images.to(device=device, dtype=model.dtype, non_blocking=True))
                first_image = len(all_paths)
                all_paths.extend(str(path) for path in paths)
                for name, accumulator in accumulators.items():
                    activation = activations[name] if isinstance(name, str) else name.maps(activations[name.layer])
                    accumulator.update(*_reduce(activation), first_image=first_image)
                bar.update(len(paths))
    finally:
        bar.close()
    if not all_paths:
        raise FeatvizError(
            f"none of the {len(folder)} images under '{folder.root}' could be read; pass a folder of valid images"
        )
    return {name: layer.finish(all_paths, folder.size, folder.channels) for name, layer in accumulators.items()}


def crop_around(
    image_path: str | os.PathLike,
    position: tuple[int, int],
    map_size: tuple[int, int],
    size: int,
    crop_fraction: float = 0.5,
    channels: int = 3,
) -> Image.Image:
    """The ``size x size`` crop of the image at ``image_path`` (read with ``channels`` channels) around the spot
    that ``position`` on an activation map looks at.

    The map covers the centred square that `ImageFolder` fed the model, so map cell ``(y, x)`` of a
    ``(height, width)`` map is centred at ``((y + 0.5) / height, (x + 0.5) / width)`` of that square. The crop
    is a square of side ``crop_fraction`` times the square's side, cut from the full-resolution original
    (upright), centred on that spot and shifted to stay inside the image, then resized to ``size``.

    Example:
        >>> from featviz.dataset import shipped_photo_paths
        >>> stats = collect_activations(model, ImageFolder(shipped_photo_paths(), 64), ["blocks.4.0.conv_pwl"])
        >>> best = stats["blocks.4.0.conv_pwl"].top_examples(3)[0]
        >>> crop_around(best.path, best.position, best.map_size, size=128, crop_fraction=0.4).size
        (128, 128)
    """
    size = check_int(size, "crop size")
    if isinstance(crop_fraction, bool) or not isinstance(crop_fraction, (int, float)) or not 0 < crop_fraction <= 1:
        raise FeatvizError(
            f"crop_fraction must be in (0, 1] (the share of the image side to keep), not {crop_fraction!r}"
        )
    height, width = (int(value) for value in map_size)
    y, x = (int(value) for value in position)
    if height < 1 or width < 1 or not (0 <= y < height and 0 <= x < width):
        raise FeatvizError(
            f"position {(y, x)} is outside an activation map of size {(height, width)}; "
            f"valid: y in 0..{height - 1}, x in 0..{width - 1}"
        )
    mode = PIL_MODES.get(channels)
    if mode is None:
        raise FeatvizError(f"channels must be one of {', '.join(map(str, PIL_MODES))}, not {channels!r}")
    image = open_image(image_path, mode)
    left, top, side = centre_square(*image.size)
    centre_y = top + (y + 0.5) / height * side
    centre_x = left + (x + 0.5) / width * side
    crop_side = crop_fraction * side
    box_left = min(max(centre_x - crop_side / 2, 0.0), image.width - crop_side)
    box_top = min(max(centre_y - crop_side / 2, 0.0), image.height - crop_side)
    return image.resize(
        (size, size),
        Image.Resampling.BICUBIC,
        box=(box_left, box_top, box_left + crop_side, box_top + crop_side),
        reducing_gap=3.0,
    )
