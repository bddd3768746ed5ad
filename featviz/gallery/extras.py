"""What a gallery's unit pages show beside its renders, for multimodal models and probes: top words (zero-shot),
a concept label, faceted renders and a conditional-probability plot.

Each of these is a *part* of a unit's record with a key that fingerprints its settings: the record's ``parts``
maps each part it holds to its key (``{"render": ..., "words": "3f2a...", "facet:faces": "...", ...}``). A
build gives a unit every requested part whose key it lacks, for units rendered earlier too, so adding words or
labels to a finished gallery renders nothing again, and a build killed part-way resumes like the renders do
(a batch's records are saved only after all its files are written). Work done once per layer (the words' text
directions, the passes over images) is cached in the site's ``.featviz-cache`` folder: under torchrun rank 0
fills the words' cache and the other ranks read it, and all ranks share the labels' pass over the images.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from featviz import objectives
from featviz.concepts.conditional import conditional_probability
from featviz.concepts.dissect import label_units
from featviz.dataset import image_folder
from featviz.errors import FeatvizError
from featviz.gallery.paths import unit_paths
from featviz.gallery.words import WordScores, WordsLike, read_words, resolves_words, word_scores, words_key
from featviz.io import write_text
from featviz.models.probe import load_probe
from featviz.objectives import facet
from featviz.objectives.dictionary import Dictionary
from featviz.renderer import Renderer, save_png
from featviz.text import text_tower

DEFAULT_FACET_STRENGTH = 5.0  # the article's typical strength (text facets used 7)
WORDS, LABEL, STORY, FACET = "words", "label", "story", "facet:"


def _digest(*values: Any) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


@dataclass
class FacetSpec:
    """One facet of a gallery: its name (the probe's), the probe and the part's key."""

    name: str
    probe: Any
    key: str


@dataclass
class Extras:
    """The parts a build adds to each unit, read from `build_gallery`'s options by `extras_from_options`.

    ``words`` is the word list for top words (None: no words) and ``resolves`` whether the model's text tower says
    what each word became (a classifier's; the pages then show it, and its labels leave out concepts no class is);
    ``label_source`` the ``(source, description)``
    of the images that concept labels are computed on (None: no labels) and ``concepts`` the labels' concepts (None:
    the default list); ``facets`` the probes to render facets with, at ``facet_strength``; ``story_source`` the
    ``(source, description)`` of the images for conditional-probability plots (None: no plots).
    """

    words: list[str] | None = None
    resolves: bool = False
    label_source: tuple[Any, str] | None = None
    concepts: list[str] | None = None
    facets: list[FacetSpec] = field(default_factory=list)
    facet_strength: float = DEFAULT_FACET_STRENGTH
    story_source: tuple[Any, str] | None = None

    def wanted(self) -> dict[str, str]:
        """Each requested part and its key."""
        parts: dict[str, str] = {}
        if self.words is not None:
            parts[WORDS] = _digest(words_key(self.words), "resolved") if self.resolves else words_key(self.words)
        if self.label_source is not None:
            # A classifier's labels leave out the concepts no class is (`featviz.concepts.dissect.known_concepts`).
            known = ("known",) if self.resolves else ()
            parts[LABEL] = _digest(self.label_source[1], self.concepts, *known)
        for spec in self.facets:
            parts[FACET + spec.name] = spec.key
        if self.story_source is not None:
            parts[STORY] = _digest(self.story_source[1])
        return parts

    def missing(self, record: Mapping[str, Any] | None) -> set[str]:
        """The requested parts that ``record`` lacks (or holds with other settings)."""
        have = record.get("parts") if isinstance(record, Mapping) else None
        have = have if isinstance(have, Mapping) else {}
        return {part for part, key in self.wanted().items() if have.get(part) != key}

    def __bool__(self) -> bool:
        return bool(self.wanted())


def extras_from_options(
    model: Any,
    words: WordsLike,
    labels: Any,
    facets: Sequence[str | os.PathLike] | str | os.PathLike | None,
    facet_strength: float,
    story: Any,
    image_source: tuple[Any, str] | None,
    read_source: Any,
    settings_key: Any,
) -> Extras:
    """Check the multimodal options of `build_gallery` and load what they name (word list, probes).

    ``model`` is the loaded model, checked for a text tower when an option needs one. ``words`` is read by
    `featviz.gallery.words.read_words`. ``labels`` and ``story`` are None/False (off), True (``image_source``,
    the gallery's ``images`` as ``(source, description)``, or None without) or an image source (``read_source``
    turns it into ``(source, description)``). ``facets`` is one probe path or several, each loaded for ``model``
    and named by its probe; ``facet_strength`` (a number) steers every facet. ``settings_key`` is the render
    settings a facet render depends on.
    """
    extras = Extras(words=read_words(words))
    if extras.words is not None or labels not in (None, False):
        text_tower(model)  # FeatvizError now, before any render, for a model without a text tower
        extras.resolves = resolves_words(model)

    def source_of(option: Any, name: str) -> tuple[Any, str] | None:
        if option is None or option is False:
            return None
        if option is True:
            if image_source is None:
                raise FeatvizError(
                    f"{name}=True (--{name} alone) reads the gallery's images (--images), but none were given; give "
                    f"images, or a folder of images to {name}"
                )
            return image_source
        return read_source(option)

    extras.label_source = source_of(labels, "labels")
    if extras.label_source is not None:
        text_tower(model)  # labels compare images with concepts through the text tower
        extras.concepts = extras.words if words not in (None, False, True) else None
    extras.story_source = source_of(story, "story")
    if extras.story_source is not None:
        if story_labels(model, extras.story_source[0]) == "concepts":
            text_tower(model)  # without class names or subfolders, images are labelled by their closest concept

    if facets is not None:
        paths = [facets] if isinstance(facets, (str, os.PathLike)) else list(facets)
        strength = facet_strength
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not strength == strength:
            raise FeatvizError(f"facet_strength must be a number (the article used about 5), not {facet_strength!r}")
        extras.facet_strength = float(strength)
        names: dict[str, Path] = {}
        for item in paths:
            path = Path(item).expanduser()
            probe = load_probe(path, model)
            name = str(getattr(probe, "name", "") or path.stem)
            if name in names:
                raise FeatvizError(
                    f"probes '{names[name]}' and '{path}' are both named '{name}'; give each facet a probe with its "
                    "own name"
                )
            names[name] = path
            key = _digest(_file_digest(path), extras.facet_strength, settings_key)
            extras.facets.append(FacetSpec(name, probe, key))
    return extras


@dataclass
class LayerData:
    """What the parts of one layer's units are sliced from: ``words``, the layer's word scores (None without
    words), ``resolved``, what each word became on a classifier (`featviz.gallery.words.word_resolutions`; None
    without words or on CLIP), and ``labels``, each unit's concept label as record fields."""

    words: WordScores | None = None
    resolved: dict[str, dict[str, Any]] | None = None
    labels: dict[int, dict[str, Any]] = field(default_factory=dict)


def _label_record(label: Any) -> dict[str, Any]:
    """A `featviz.concepts.UnitLabel` as plain JSON fields."""
    runners = []
    for item in getattr(label, "runners_up", None) or []:
        if isinstance(item, (tuple, list)) and len(item) == 2:
            runners.append([str(item[0]), float(item[1])])
        elif hasattr(item, "concept"):
            runners.append([str(item.concept), float(getattr(item, "score", float("nan")))])
        else:
            runners.append([str(item), None])
    return {"concept": str(label.concept), "concept_score": float(label.score), "concept_runners_up": runners}


def prepare_words(model: Any, layer: str | Dictionary, extras: Extras, cache_dir: Path) -> WordScores | None:
    """``model``'s word scores in ``layer`` for the words of ``extras`` (cached in ``cache_dir``), or None when
    ``extras`` has no words. For a `featviz.objectives.Dictionary`, a word's score on a feature is its text
    direction in the dictionary's layer dotted with the feature's unit-length decoder row (as a channel's score
    is the direction's component along that channel)."""
    if extras.words is None:
        return None
    if not isinstance(layer, Dictionary):
        return word_scores(model, layer, extras.words, cache_dir=cache_dir)
    found = word_scores(model, layer.layer, extras.words, cache_dir=cache_dir)
    rows = layer.decoder * layer.scale  # the features' directions in the layer's own units
    rows = rows / rows.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return WordScores(layer.name, found.words, found.scores @ rows.T, found.method, found.r2)


def label_top_k(images: int) -> int:
    """CLIP-Dissect's top images per unit for a folder of ``images``: 5% of them, at least 3 and at most its 100.

    Example:
        >>> label_top_k(15), label_top_k(50000)
        (3, 100)
    """
    return max(3, min(100, images // 20))


def prepare_labels(model: Any, layer: str | Dictionary, extras: Extras, cache_dir: Path) -> dict[int, dict[str, Any]]:
    """Every unit's concept label in ``layer`` of ``model`` as record fields (`featviz.concepts.label_units` on the
    images and concepts of ``extras``, with how many images there were; an empty dict without labels; its pass over
    the images is cached in ``cache_dir``). Under torchrun every process must call it: the processes share the pass."""
    if extras.label_source is None:
        return {}
    folder = image_folder(model, extras.label_source[0])
    found = label_units(
        model, layer, folder, concepts=extras.concepts, top_k=label_top_k(len(folder)), cache_dir=cache_dir,
    )
    return {int(label.unit): {**_label_record(label), "concept_images": len(folder)} for label in found}


def story_labels(model: Any, source: Any) -> str:
    """How the conditional-probability plots label images: by subfolder when ``source`` is a folder with image
    subfolders, else by the model's prediction when it has class names, else by the closest concept."""
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        if any(child.is_dir() and not child.name.startswith(".") for child in Path(source).iterdir()):
            return "folders"
    return "predicted" if getattr(model, "labels", None) else "concepts"


def add_parts(
    records: dict[int, dict[str, Any]],
    missing: dict[int, set[str]],
    layer: str | Dictionary,
    extras: Extras,
    data: LayerData,
    renderer: Renderer,
    model: Any,
    site_dir: Path,
    render_options: Mapping[str, Any],
) -> None:
    """Give each unit's record in ``records`` (unit -> record of ``layer``, a layer or a dictionary; changed in
    place) the parts it misses (``missing[unit]``), writing their files into ``site_dir`` first.

    ``extras`` says which parts are wanted; top words and concept labels are sliced from ``data``, facets are
    rendered with ``renderer``, and conditional-probability plots pass over their images with ``model``.
    ``render_options`` holds the facet renders' ``seed`` (a batch starting at unit ``u0`` uses ``seed + u0``
    plus the element's index, like the positive images), ``size`` and ``steps``.
    """
    wanted = extras.wanted()
    units = sorted(records)
    source, layer = layer, getattr(layer, "name", layer)  # a dictionary's page is named after it
    for spec in extras.facets:
        part = FACET + spec.name
        pending = [unit for unit in units if part in missing[unit]]
        if pending:
            _render_facet(records, pending, source, spec, extras.facet_strength, renderer, site_dir, render_options)
    for unit in units:
        record, needs = records[unit], missing[unit]
        done = dict(record.get("parts") or {})
        if WORDS in needs and data.words is not None:
            record["top_words"] = [list(pair) for pair in data.words.top_words(unit)]
            if data.resolved is not None:
                record["top_words_resolved"] = {word: data.resolved[word] for word, _ in record["top_words"]}
            else:
                record.pop("top_words_resolved", None)
            record["words_method"] = data.words.method
            record["words_r2"] = data.words.r2
        if LABEL in needs and extras.label_source is not None:
            if unit not in data.labels:
                raise FeatvizError(f"the concept labels of layer '{layer}' have no unit {unit}; delete {site_dir}/.featviz-cache")
            record.update(data.labels[unit])
        if STORY in needs and extras.story_source is not None:
            found = conditional_probability(
                model, source, unit, extras.story_source[0], labels=story_labels(model, extras.story_source[0]),
                concepts=extras.concepts, cache_dir=site_dir / ".featviz-cache",
            )
            path = unit_paths(layer, unit).conditional
            write_text(site_dir / path, found.svg())
            record.setdefault("images", {})["conditional"] = path
        for part in needs:
            if part in wanted:
                done[part] = wanted[part]
        record["parts"] = done


def _render_facet(
    records: dict[int, dict[str, Any]], units: list[int], layer: str, spec: FacetSpec, strength: float,
    renderer: Renderer, site_dir: Path, options: Mapping[str, Any],
) -> None:
    seed = int(options["seed"]) + units[0]
    if isinstance(layer, Dictionary):
        goals = [objectives.dictionary_feature(layer, unit) for unit in units]
        layer = layer.name
    else:
        goals = [objectives.channel(layer, unit) for unit in units]
    goal = facet(objectives.stack(goals), spec.probe, strength=strength)
    try:
        result = renderer.render(
            goal, seed=seed, size=options["size"], steps=options["steps"], batch=len(units), progress=False
        )
    except FeatvizError as error:
        raise FeatvizError(f"facet '{spec.name}' on layer '{layer}': {error}") from None
    for index, unit in enumerate(units):
        path = unit_paths(layer, unit).facet(spec.name)
        metadata = result.metadata(index)
        # each image is what the unit's own facet objective renders alone with this seed (the filter is per image)
        metadata["featviz:objective"] = f"facet({layer}:{unit}, {spec.name}, {strength:g})"
        save_png(result.images[index], site_dir / path, metadata)
        record = records[unit]
        record.setdefault("images", {}).setdefault("facets", {})[spec.name] = path
        record["facet_strength"] = strength
        record["facet_seed"] = seed + index


__all__ = [
    "DEFAULT_FACET_STRENGTH", "Extras", "FacetSpec", "LayerData", "add_parts", "extras_from_options", "label_top_k",
    "prepare_labels", "prepare_words", "story_labels",
]
