"""Build a gallery: render every unit of some layers (positive, negative, a diversity set of 4) in batches, add
its dataset examples, and write the static site. Resumable, and shardable over processes with torchrun.

Seeds: the units of a layer are cut into fixed batches of ``batch`` consecutive requested units. A batch whose
first unit is ``u0`` renders its positive images with seed ``seed + u0`` (element ``j`` uses ``seed + u0 + j``,
so consecutive units get ``seed + unit``), its negative images with the same seeds, and its diversity sets with
seed ``seed + 4 * u0`` (set ``j`` uses ``seed + 4 * (u0 + j)`` plus 0..3). Every record names its seeds, and
each image equals a single render of its own objective with that seed. Batches never depend on the number of
processes, so a build sharded over N processes makes the same images as one process.

Safety: a batch's records are saved to the manifest only after all its files are written; every file is
written under a temporary name and renamed. A build killed at any moment resumes where it stopped.

Multimodal parts (top words, concept labels, facets, conditional probabilities; `featviz.gallery.extras`) are
added per unit in the same batches, to new units and to units rendered by an earlier build alike.
"""
from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from featviz import objectives
from featviz.dataset import UnitStats, collect_activations, image_folder, image_source
from featviz.dataset.processes import Processes
from featviz.errors import FeatvizError, check_int
from featviz.gallery.extras import (
    DEFAULT_FACET_STRENGTH, LABEL, WORDS, Extras, LayerData, add_parts, extras_from_options, prepare_labels,
    prepare_words,
)
from featviz.gallery.manifest import MANIFEST_NAME, Manifest, shard_paths
from featviz.gallery.paths import DIVERSITY, unit_paths
from featviz.gallery.pictures import write_unit_examples
from featviz.gallery.site import write_site
from featviz.gallery.words import WordsLike, word_resolutions, write_search_table
from featviz.device import resolve_device
from featviz.hooks import IMAGE, ActivationCapture, bind_layers, survey_model
from featviz.hooks.memory import check_render_memory
from featviz.io import check_writable_dir, ensure_writable_dir, write_text
from featviz.models import Model, load_model, weights_fingerprint
from featviz.objectives import Objective
from featviz.objectives.dictionary import Dictionary, load_dictionary
from featviz.objectives.base import Constant
from featviz.objectives.checks import read
from featviz.renderer import Renderer, RenderSettings, save_png
from featviz.renderer.calls import old_call_forms
from featviz.renderer.settings import settings_from

CACHE_FOLDER = ".featviz-cache"
DEFAULT_DIVERSITY_WEIGHT = 2.0
_UNIT_PART = re.compile(r"(\d+)(?:-(\d+))?")
_STALE_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
SITE_FOLDERS = ("images", "units", "layers", "assets", "search", CACHE_FOLDER)


@dataclass
class GallerySummary:
    """What `build_gallery` did: of the ``total`` units requested, ``rendered`` were rendered now and ``skipped``
    had nothing left to do, and ``annotated`` units rendered by an earlier build got their missing multimodal
    parts (all counted over the ``world_size`` processes); ``seconds`` is the wall time, ``layers`` each layer's
    channel count, ``site_dir`` the site folder and ``index`` its index.html (None on processes other than rank
    0 of a sharded build).

    Example:
        >>> summary = build_gallery(model, ["blocks.4.0.conv_pwl"], units="0-1", steps=8, size=64, out="site",
        ...                         progress=False)
        >>> print(summary)
        rendered 2 units, skipped 0 already done, in ...; open site/index.html
    """

    site_dir: Path
    index: Path | None
    rendered: int
    skipped: int
    total: int
    seconds: float
    world_size: int = 1
    layers: dict[str, int] = field(default_factory=dict)
    annotated: int = 0

    def __str__(self) -> str:
        processes = f" on {self.world_size} processes" if self.world_size > 1 else ""
        where = f"; open {self.index}" if self.index is not None else ""
        added = f", added multimodal parts to {self.annotated} rendered before" if self.annotated else ""
        return (
            f"rendered {self.rendered} unit{'' if self.rendered == 1 else 's'}{added}, skipped {self.skipped} already "
            f"done, in {_duration(self.seconds)}{processes}{where}"
        )


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {seconds:02d}s" if hours else f"{minutes}m {seconds:02d}s"


def parse_units(text: str) -> list[int]:
    """The unit numbers that ``text`` names: ``"0-63"``, ``"0,5,9"`` or a mix like ``"0-3,8,10-12"`` (sorted,
    duplicates dropped; spaces ignored).

    Example:
        >>> parse_units("0-3,8,2")
        [0, 1, 2, 3, 8]
    """
    if not isinstance(text, str):
        raise FeatvizError(f"units must be a string like '0-63' or '0,5,9', not {type(text).__name__}")
    found: set[int] = set()
    for part in text.replace(" ", "").split(","):
        match = _UNIT_PART.fullmatch(part)
        if match is None:
            raise FeatvizError(f"malformed units '{text}': expected ranges and numbers like 0-63, 0,5,9 or 0-3,8")
        first = int(match[1])
        last = int(match[2]) if match[2] is not None else first
        if last < first:
            raise FeatvizError(f"malformed units '{text}': range {first}-{last} runs backwards; write {last}-{first}")
        found.update(range(first, last + 1))
    return sorted(found)


def _unit_request(units: str | Sequence[int] | None) -> list[int] | None:
    if units is None:
        return None
    if isinstance(units, str):
        return parse_units(units)
    numbers = []
    for unit in units:
        if isinstance(unit, bool) or not isinstance(unit, int) or unit < 0:
            raise FeatvizError(f"units must be ints >= 0 (or a string like '0-63'), not {unit!r}")
        numbers.append(int(unit))
    if not numbers:
        raise FeatvizError("units is empty; give unit numbers like '0-63', or None for every unit of each layer")
    return sorted(set(numbers))


def _layer_list(layers: str | Sequence[str]) -> list[str]:
    names = layers.split(",") if isinstance(layers, str) else list(layers)
    cleaned = []
    for name in names:
        if not isinstance(name, str):
            raise FeatvizError(f"layer names must be strings like 'blocks.4.0.conv_pwl', not {name!r}")
        name = name.strip()
        if name and name not in cleaned:
            cleaned.append(name)
    if not cleaned:
        raise FeatvizError("no layers given; pass layer names like blocks.2.0.conv_pwl,blocks.4.0.conv_pwl")
    return cleaned


class _PerImageConstant(Objective):
    """A fixed value per image of the batch, repeated over its views: weights other objectives per image.

    Example:
        >>> weights = _PerImageConstant("conv1", [2.0, 2.0, 0.5, 0.5])
        >>> goal = weights * objectives.diversity("conv1", images=4, group=2)  # set 0 weighted 2, set 1 weighted 0.5
    """

    elementwise = False  # the value depends on the element's position in the batch

    def __init__(self, layer: str, values: Sequence[float]) -> None:
        super().__init__((layer,), "weights")
        self.layer = layer
        self.values = Constant(torch.tensor(list(values), dtype=torch.float64))
        self.count = len(values)

    def __call__(self, acts: Any) -> torch.Tensor:
        activation = read(acts, self.layer)
        return self.values.like(activation).repeat(activation.shape[0] // self.count)


def _layer_channels(
    model: Model, layers: list[str], size: tuple[int, int], features: dict[str, Dictionary] | None = None
) -> dict[str, int]:
    """Each layer's channel count (a dictionary page's: its feature count) from one dry forward at the render size;
    FeatvizError naming close layers, or for a dictionary fitted on another model or on a layer of another size."""
    features = features or {}
    if IMAGE in layers:
        raise FeatvizError(f"'{IMAGE}' is the input image, not a layer; pick layers of the network")
    for dictionary in features.values():
        dictionary.check_model(model)
    binding = bind_layers(model, [features[name].layer if name in features else name for name in layers], size)
    channels = {}
    for name in layers:
        if name in features:
            features[name]._check_channels(binding.shapes[features[name].layer][1])
            channels[name] = features[name].concepts
        else:
            channels[name] = binding.shapes[name][1]
    return channels


def _remove_stale_temporaries(site_dir: Path) -> None:
    """Delete the temporary files (``.NAME.XXXXXXXX.tmp``, see `featviz.io.atomic_path`) that a process killed
    mid-write left in the site's own files and folders; nothing else in ``site_dir`` is touched."""
    candidates = list(site_dir.glob(".*.tmp"))
    for folder in SITE_FOLDERS:
        if (site_dir / folder).is_dir():
            candidates += (site_dir / folder).rglob(".*.tmp")
    for path in candidates:
        if _STALE_TEMPORARY.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)


def _check_memory(model: Model, render_size: tuple[int, int], set_size: tuple[int, int], batch: int) -> None:
    """FeatvizError naming ``size``, ``diversity_size`` or ``batch`` when a batch's renders cannot fit in memory:
    the positive and negative images of ``batch`` units, then their diversity sets of 4."""
    found = survey_model(model)
    for name, side, images in (("size", render_size, 2 * batch), ("diversity_size", set_size, 4 * batch)):
        check_render_memory(
            found, device=model.device, image_size=side, images=images, views=1, channels=model.channels,
            network_size=side if found.takes_other_sizes else tuple(model.input_size), network_dtype=model.dtype,
            option=name,
        )


def _check_settings(site_dir: Path, settings: dict[str, Any]) -> None:
    """FeatvizError when a manifest in ``site_dir`` was made with other settings (a resume must not mix them)."""
    for path in [site_dir / MANIFEST_NAME, *shard_paths(site_dir)]:
        if not path.exists():
            continue
        previous = Manifest(path).info.get("settings")
        if not isinstance(previous, dict):
            continue
        changed = [key for key in settings if key in previous and previous[key] != settings[key]]
        if changed:
            was = ", ".join(f"{key}={previous[key]!r}" for key in changed)
            now = ", ".join(f"{key}={settings[key]!r}" for key in changed)
            raise FeatvizError(
                f"the gallery in '{site_dir}' was built with {was} (now {now}); use the same settings to resume it, "
                "or choose another output folder"
            )


@dataclass
class _Batch:
    layer: str
    units: list[int]
    render: list[int] = field(default_factory=list)  # the units without a record yet
    missing: dict[int, set[str]] = field(default_factory=dict)  # each unit's missing multimodal parts


def _plan(
    layer_units: dict[str, list[int]], batch: int, manifest: Manifest, extras: Extras
) -> tuple[list[_Batch], int]:
    """Fixed batches of ``batch`` requested units per layer, keeping only the units with something to do (a render
    or a multimodal part); and the count of units with nothing to do."""
    batches, skipped = [], 0
    for layer, units in layer_units.items():
        for start in range(0, len(units), batch):
            work = _Batch(layer, [])
            for unit in units[start:start + batch]:
                record = manifest.get(layer, unit) if extras else None
                done = manifest.is_done(layer, unit)
                missing = extras.missing(record if done else None) if extras else set()
                if done and not missing:
                    continue
                work.units.append(unit)
                work.missing[unit] = missing
                if not done:
                    work.render.append(unit)
            skipped += len(units[start:start + batch]) - len(work.units)
            if work.units:
                batches.append(work)
    return batches, skipped


@dataclass
class _Settings:
    steps: int
    size: tuple[int, int]
    diversity_size: tuple[int, int]
    seed: int
    diversity_weight: float
    examples: int
    example_size: int
    crop_size: int
    features: dict[str, Dictionary] = field(default_factory=dict)  # page name -> dictionary, for dictionary pages
    options: dict[str, Any] = field(default_factory=dict)  # param, transforms and optimizer of every render


def _unit_goal(layer: str, unit: int, features: dict[str, Dictionary]) -> Objective:
    """The objective of ``unit`` of the page ``layer``: a channel, or a dictionary's feature."""
    if layer in features:
        return objectives.dictionary_feature(features[layer], unit)
    return objectives.channel(layer, unit)


def _process_batch(
    renderer: Renderer, model: Model, work: _Batch, settings: _Settings, site_dir: Path, stats: UnitStats | None,
    manifest: Manifest, extras: Extras, layer_data: LayerData | None,
) -> list[dict[str, Any]]:
    """Render the batch's new units, then give every unit of the batch its missing multimodal parts."""
    records: dict[int, dict[str, Any]] = {}
    if work.render:
        rendered = _render_batch(renderer, _Batch(work.layer, work.render), settings, site_dir, stats)
        records.update(zip(work.render, rendered))
    for unit in work.units:
        if unit not in records:
            records[unit] = manifest.get(work.layer, unit) or {"layer": work.layer, "unit": unit}
    if extras and any(work.missing.values()):
        options = {"seed": settings.seed, "size": settings.size, "steps": settings.steps}
        add_parts(
            records, work.missing, settings.features.get(work.layer, work.layer), extras, layer_data or LayerData(),
            renderer, model, site_dir, options,
        )
    return [records[unit] for unit in work.units]


def _render_batch(
    renderer: Renderer, work: _Batch, settings: _Settings, site_dir: Path, stats: UnitStats | None,
) -> list[dict[str, Any]]:
    """Render one batch of units of one layer and write its files; return one manifest record per unit."""
    model = renderer.model
    layer, units = work.layer, work.units
    count = len(units)
    seed = settings.seed + units[0]
    diversity_seed = settings.seed + DIVERSITY * units[0]
    common = {**settings.options, "steps": settings.steps, "progress": False}
    goals = [_unit_goal(layer, unit, settings.features) for unit in units]
    source_layer = settings.features[layer].layer if layer in settings.features else layer
    positive = renderer.render(goals, seed=seed, size=settings.size, **common)
    negative = renderer.render([-goal for goal in goals], seed=seed, size=settings.size, **common)

    reached = positive.history[-1].tolist()
    weights = [settings.diversity_weight * max(value, 0.0) for value in reached]
    per_image = [goal for goal in goals for _ in range(DIVERSITY)]
    image_weights = _PerImageConstant(source_layer, [weight for weight in weights for _ in range(DIVERSITY)])
    sets = objectives.diversity(source_layer, images=DIVERSITY * count, group=DIVERSITY)
    diverse = renderer.render(
        objectives.stack(per_image) + image_weights * sets, seed=diversity_seed, size=settings.diversity_size,
        batch=DIVERSITY * count, **common,
    )
    seconds = (positive.seconds + negative.seconds + diverse.seconds) / count

    peaks = None
    if stats is not None:
        binding = bind_layers(model, [source_layer], settings.size)
        with torch.no_grad(), ActivationCapture(model, [source_layer], layouts=binding.layouts) as capture:
            activation = capture.run(positive.images.to(model.device, model.dtype))[source_layer]
        if layer in settings.features:
            activation = settings.features[layer].maps(activation)
        rows = torch.arange(count, device=activation.device)
        peaks = activation[rows, torch.tensor(units, device=activation.device)].flatten(1).amax(1).tolist()

    records = []
    for index, unit in enumerate(units):
        paths = unit_paths(layer, unit)
        save_png(positive.images[index], site_dir / paths.positive, positive.metadata(index))
        save_png(negative.images[index], site_dir / paths.negative, negative.metadata(index))
        set_seed = diversity_seed + DIVERSITY * index
        set_objective = f"{goals[index].name} + {weights[index]:.6g}*diversity({source_layer}, images={DIVERSITY})"
        for image_index, path in enumerate(paths.diversity):
            metadata = {
                "featviz:objective": set_objective, "featviz:steps": str(settings.steps),
                "featviz:seed": str(set_seed + image_index),
            }
            save_png(diverse.images[DIVERSITY * index + image_index], site_dir / path, metadata)
        record: dict[str, Any] = {
            "layer": layer, "unit": unit, "objective": goals[index].name, "steps": settings.steps,
            "seed": seed + index, "activation": reached[index],
            "render_seconds": seconds, "negative_activation": -float(negative.history[-1, index]),
            "diversity_seed": set_seed, "diversity_weight": weights[index],
            "size": f"{settings.size[0]}x{settings.size[1]}",
            "diversity_size": f"{settings.diversity_size[0]}x{settings.diversity_size[1]}",
            "images": {"positive": paths.positive, "negative": paths.negative, "diversity": list(paths.diversity)},
        }
        if stats is not None and peaks is not None:
            best = float(stats.top_values[unit, 0]) if stats.top_values.shape[1] else math.nan
            record["activation_max"] = peaks[index]
            record["dataset_max"] = best
            record["relative_to_dataset_max"] = peaks[index] / best if best > 0 else None
            record.update(write_unit_examples(
                site_dir, stats, unit, example_size=settings.example_size, crop_size=settings.crop_size,
                count=settings.examples, shared_images=True,
            ))
        records.append(record)
    return records


def _dataset_stats(
    model: Model, source: Any, layers: list[str], site_dir: Path, processes: Processes, progress: bool,
    features: dict[str, Dictionary] | None = None,
) -> dict[str, UnitStats]:
    """One pass over the images (rank 0 first, the other ranks then read its cache)."""
    folder = image_folder(model, source, name="dataset images")
    cache = site_dir / CACHE_FOLDER
    features = features or {}
    wanted = [features.get(name, name) for name in layers]  # a dictionary page passes over its dictionary
    stats = None
    if processes.rank == 0:
        ensure_writable_dir(cache)
        if not (cache / ".gitignore").exists():
            write_text(cache / ".gitignore", "*\n")
        stats = collect_activations(model, folder, wanted, cache_dir=cache, progress=progress)
    processes.barrier()
    if stats is None:
        stats = collect_activations(model, folder, wanted, cache_dir=cache)
    return {name: stats[item] for name, item in zip(layers, wanted)}


def _layer_data(
    model: Model, plan: list[_Batch], extras: Extras, site_dir: Path, processes: Processes,
    features: dict[str, Dictionary] | None = None,
) -> dict[str, LayerData]:
    """Each planned layer's word scores and concept labels (rank 0 first, the other ranks then read its cache)."""
    needed: dict[str, set[str]] = {}
    for work in plan:
        for missing in work.missing.values():
            needed.setdefault(work.layer, set()).update(missing)
    needed = {layer: parts for layer, parts in needed.items() if parts}
    if not needed:
        return {}
    cache = site_dir / CACHE_FOLDER
    data = {layer: LayerData() for layer in needed}
    if processes.rank == 0:
        ensure_writable_dir(cache)
        if not (cache / ".gitignore").exists():
            write_text(cache / ".gitignore", "*\n")
    for turn in (0, 1):  # rank 0 fills the words' cache, then the other ranks read it
        if (processes.rank == 0) == (turn == 0):
            resolved = None
            if extras.words is not None and any(WORDS in parts for parts in needed.values()):
                resolved = word_resolutions(model, extras.words, cache_dir=cache)  # one call for every layer
            for layer, parts in needed.items():
                if WORDS in parts:
                    data[layer].words = prepare_words(model, (features or {}).get(layer, layer), extras, cache)
                    data[layer].resolved = resolved
        processes.barrier()
    for layer, parts in needed.items():
        if LABEL in parts:
            # every rank: they share the pass
            data[layer].labels = prepare_labels(model, (features or {}).get(layer, layer), extras, cache)
    return data


def _write_search_tables(
    model: Model, site_dir: Path, records: list[dict[str, Any]], layers: list[str], extras: Extras,
    features: dict[str, Dictionary] | None = None,
) -> None:
    """Each layer's search table (words this build ranks, what they became on a classifier, and the concept labels
    its records hold)."""
    if extras.words is None and extras.label_source is None:
        return
    resolved = None
    if extras.words is not None:
        resolved = word_resolutions(model, extras.words, cache_dir=site_dir / CACHE_FOLDER)  # cached by _layer_data
    by_layer: dict[str, dict[int, dict[str, Any]]] = {}
    for record in records:
        by_layer.setdefault(record["layer"], {})[record["unit"]] = record
    for layer in layers:
        units = by_layer.get(layer, {})
        if not units:
            continue
        words = None
        if extras.words is not None:
            scores = prepare_words(model, (features or {}).get(layer, layer), extras, site_dir / CACHE_FOLDER)
            words = scores.top_units(sorted(units)) if scores is not None else None
        labelled: dict[str, list[list[float | int]]] = {}
        for unit, record in units.items():
            concept, score = record.get("concept"), record.get("concept_score")
            if isinstance(concept, str) and concept:
                labelled.setdefault(concept, []).append([unit, round(float(score), 4) if score is not None else 0.0])
        for pairs in labelled.values():
            pairs.sort(key=lambda pair: -pair[1])
        count = len(extras.words) if extras.words is not None else len(labelled)
        write_search_table(site_dir, layer, words, labelled, word_count=count, resolved=resolved)


def _ordered_records(records: list[dict[str, Any]], layers: list[str]) -> list[dict[str, Any]]:
    """Records of the requested layers first, in request order, then any others; units in numeric order."""
    rank = {layer: index for index, layer in enumerate(layers)}
    return sorted(records, key=lambda record: (rank.get(record["layer"], len(rank)), record["unit"]))


def _done_count(site_dir: Path, layer_units: dict[str, list[int]]) -> int:
    """Requested units recorded in the manifest or any rank's shard (for rank 0's progress bar)."""
    manifest = Manifest(site_dir / MANIFEST_NAME, read_also=shard_paths(site_dir))
    return sum(manifest.is_done(layer, unit) for layer, units in layer_units.items() for unit in units)


@old_call_forms(["model", "layers", "units", "images", "steps", "size", "seed", "out", "batch", "device", "progress"])
def build_gallery(
    model: Model | nn.Module | str,
    layers: str | Sequence[str] | None,
    *,
    units: str | Sequence[int] | None = None,
    images: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    out: str | os.PathLike = "gallery",
    batch: int = 16,
    weights: str | os.PathLike | None = None,
    diversity_weight: float = DEFAULT_DIVERSITY_WEIGHT,
    diversity_size: int | None = None,
    examples: int = 6,
    example_size: int = 224,
    crop_size: int = 112,
    thumbnail_size: int = 64,
    title: str | None = None,
    words: WordsLike = None,
    labels: bool | str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    facets: Sequence[str | os.PathLike] | str | os.PathLike | None = None,
    facet_strength: float = DEFAULT_FACET_STRENGTH,
    story: bool | str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    dictionary: Dictionary | str | os.PathLike | None = None,
    settings: RenderSettings | None = None,
    **render: Any,
) -> GallerySummary:
    """Render a Microscope-style gallery of ``units`` of each of ``layers`` into the static site ``out``.

    Every render uses ``settings`` (a `featviz.RenderSettings`: steps, size, seed, param, transforms,
    optimizer, lr, precision, device, progress; default 512 steps at the model's input size; its fields may
    also be given as keywords: ``steps=128, size=96``). Per unit: the positive and the negative visualization
    of its channel (``size`` pixels), a diversity set of 4 (``diversity_size`` pixels, default ``size``; the
    channel plus ``diversity_weight`` x the unit's positive activation x the diversity among the 4), and, with
    ``images`` (a folder, a list of files, or ``"shipped"`` for the photos inside scikit-image and
    scikit-learn), its ``examples`` top dataset images with the crop where it fires most and its activation
    histogram. ``units`` is None (every channel), a string like ``"0-63"`` or ``"0,5,9"``, or a list.
    ``batch`` units render in one forward pass, seeded from ``seed`` (a batch starting at unit ``u0`` uses
    ``seed + u0``; see the module docstring). ``weights`` (None for the default pretrained weights,
    ``"random"`` or a checkpoint path) goes to `featviz.load_model`. Dataset examples are saved
    ``example_size`` pixels square and their crops ``crop_size``; the layer pages and the index show
    thumbnails of at most ``thumbnail_size`` pixels; ``title`` heads the site (default: ``"MODEL: feature
    visualizations"``). Finished units are listed in ``out/manifest.json``; running again skips them. Under
    torchrun (WORLD_SIZE > 1) each process renders its share of the batches and rank 0 merges the manifests
    and writes the site; ``device="cuda"`` means cuda:LOCAL_RANK.

    Multimodal options (see docs/gallery.md; each is added to units rendered earlier too, without rendering
    them again): ``words`` (models with a text tower: True for `featviz.concepts.default_concepts`, a list of
    words or a file with one a line) gives every unit its top words by zero-shot ranking and each layer page a
    search box that finds units by a word of the list; ``labels`` (True for ``images``, or another image
    source) labels each unit with a concept (`featviz.concepts.label_units`; the concepts are ``words`` when it
    is a list or file, else the default list); ``facets`` (paths of probes saved by `featviz.concepts`)
    renders each unit's positive image once more per probe, steered towards its facet with
    ``facet_strength``; ``story`` (True or an image source) adds each unit's conditional-probability plot.

    ``dictionary`` (a `featviz.objectives.Dictionary` or the path of one, from `featviz.concepts.dictionary`)
    adds a page named after it whose units are its features: each is rendered through
    `featviz.objectives.dictionary_feature` and ranked on the images by its code; ``layers`` may then be None.

    Example:
        >>> summary = build_gallery(model, ["blocks.2.0.conv_pwl", "blocks.4.0.conv_pwl"], units="0-1",
        ...                         images="shipped", steps=8, size=64, out="gallery", progress=False)  # steps=512
        >>> summary.index
        PosixPath('gallery/index.html')
        >>> build_gallery("efficientnet_lite0", "blocks.6", units="0-15", images="shipped", words=True,
        ...               labels=True, out="gallery")  # doctest: +SKIP
    """
    started = time.perf_counter()
    settings = settings_from(settings, RenderSettings(), render, owner="build_gallery")
    steps, size, seed = settings.steps, settings.size, settings.seed
    device, progress = settings.device, settings.progress
    if not (settings.transforms is None or isinstance(settings.transforms, str)):
        raise FeatvizError("a gallery's transforms must be a preset name such as 'standard' (its manifest records it)")
    features: dict[str, Dictionary] = {}
    if dictionary is not None:
        if not isinstance(dictionary, Dictionary):
            dictionary = load_dictionary(dictionary)
        features[dictionary.name] = dictionary
    layer_names = (_layer_list(layers) if layers is not None and (layers or not features) else []) + list(features)
    requested = _unit_request(units)
    batch = check_int(batch, "batch", 1)
    examples = check_int(examples, "examples", 1)
    example_size = check_int(example_size, "example_size", 8)
    crop_size = check_int(crop_size, "crop_size", 8)
    thumbnail_size = check_int(thumbnail_size, "thumbnail_size", 8)
    if size is not None:
        size = check_int(size, "size", 8)
    if diversity_size is not None:
        diversity_size = check_int(diversity_size, "diversity_size", 8)
    weight_is_number = isinstance(diversity_weight, (int, float)) and not isinstance(diversity_weight, bool)
    if not weight_is_number or not diversity_weight >= 0:
        raise FeatvizError(f"diversity_weight must be a number >= 0 (0 turns diversity off), not {diversity_weight!r}")
    site_dir = check_writable_dir(out)  # created once every option is checked: a mistake leaves no empty folder
    source = image_source(images)

    default_device = model.device if isinstance(model, Model) else None
    resolved_device = resolve_device(device, default=default_device, per_process=True)
    processes = Processes(resolved_device)
    try:
        loaded = load_model(model, weights=weights, device=resolved_device)
        renderer = Renderer(loaded, autocast=settings.autocast)
        model = renderer.model
        render_size = (size, size) if size is not None else tuple(model.input_size)
        set_size = (diversity_size, diversity_size) if diversity_size is not None else render_size
        _check_memory(model, render_size, set_size, batch)
        channels = _layer_channels(model, layer_names, render_size, features)
        layer_units: dict[str, list[int]] = {}
        for layer in layer_names:
            wanted = list(range(channels[layer])) if requested is None else requested
            if wanted and wanted[-1] >= channels[layer]:
                raise FeatvizError(
                    f"unit {wanted[-1]} is out of range for layer '{layer}' with {channels[layer]} channels; "
                    f"valid: 0-{channels[layer] - 1}"
                )
            layer_units[layer] = wanted
        options = settings.render_options()
        plan_settings = _Settings(
            steps, render_size, set_size, seed, float(diversity_weight), examples, example_size, crop_size, features,
            {name: options[name] for name in ("param", "transforms", "optimizer")},
        )
        recorded = {
            "model": model.name, "weights": weights_fingerprint(model)[:16], "steps": steps,
            "size": list(render_size), "diversity_size": list(set_size), "seed": seed,
            "diversity_weight": float(diversity_weight), "images": source[1] if source else None,
            "examples": examples if source else None,
        }
        # recorded when not the defaults, so that galleries made before these options resume as they were
        recorded.update({
            name: getattr(settings, name) for name in ("param", "transforms", "optimizer", "lr", "precision")
            if getattr(settings, name) != getattr(RenderSettings(), name)
        })
        _check_settings(site_dir, recorded)
        extras = extras_from_options(
            loaded, words, labels, facets, facet_strength, story, source, image_source,
            settings_key=[steps, list(render_size), seed],
        )
        ensure_writable_dir(site_dir)

        if processes.world == 1:
            manifest = Manifest(site_dir / MANIFEST_NAME, read_also=shard_paths(site_dir))
        else:
            manifest = Manifest.shard(site_dir, processes.rank)
        info = {"model": model.name, "settings": recorded}
        known = manifest.info.get("layers") if isinstance(manifest.info.get("layers"), dict) else {}
        info["layers"] = {**known, **channels}
        total = sum(len(units) for units in layer_units.values())
        plan, skipped = _plan(layer_units, batch, manifest, extras)
        mine = plan[processes.rank::processes.world]
        if processes.rank == 0:
            _remove_stale_temporaries(site_dir)
        processes.barrier()  # every rank has read the manifests before anyone writes

        stats = None
        if source is not None and any(work.render for work in plan):
            stats = _dataset_stats(model, source[0], layer_names, site_dir, processes, progress, features)
        layer_data = _layer_data(loaded, plan, extras, site_dir, processes, features)

        show = progress and processes.rank == 0
        bar = tqdm(total=total, initial=skipped, unit="unit", desc=f"gallery of {model.name}", disable=not show)
        rendered = annotated = 0
        try:
            for work in mine:
                layer_stats = stats[work.layer] if stats else None
                for record in _process_batch(
                    renderer, loaded, work, plan_settings, site_dir, layer_stats, manifest, extras,
                    layer_data.get(work.layer),
                ):
                    manifest.add(record)
                manifest.info.update(info)
                manifest.save()
                rendered += len(work.render)
                annotated += len(work.units) - len(work.render)
                if processes.world == 1:
                    bar.update(len(work.units))
                elif show:
                    bar.update(_done_count(site_dir, layer_units) - bar.n)
            rendered, annotated = processes.total([rendered, annotated])
            processes.barrier()  # every shard is saved
            bar.update(total - bar.n)
        finally:
            bar.close()

        index = None
        if processes.rank == 0:
            merged = Manifest.merge(site_dir)
            earlier = merged.info.get("layers") if isinstance(merged.info.get("layers"), dict) else {}
            merged.info.update(info)
            merged.info["layers"] = {**earlier, **info["layers"]}
            merged.save()
            _write_search_tables(loaded, site_dir, merged.records(), layer_names, extras, features)
            index = write_site(
                site_dir, _ordered_records(merged.records(), layer_names), model.name, title=title,
                layer_units=merged.info["layers"], thumbnail_size=thumbnail_size,
            )
        processes.barrier()
        return GallerySummary(
            site_dir=site_dir, index=index, rendered=rendered, skipped=skipped, total=total,
            seconds=time.perf_counter() - started, world_size=processes.world, layers=channels, annotated=annotated,
        )
    finally:
        processes.close()
