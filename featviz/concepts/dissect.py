"""Concept labels for every unit of a layer: CLIP-Dissect (Oikarinen & Weng, ICLR 2023) with its soft-WPMI score.

For a folder of images, each unit's activation on each image (its mean over positions, CLIP-Dissect's default
pooling; ``pool="max"`` takes the maximum) is compared with how much each image looks like each concept:
``P[i, c]``, the cosine of image ``i``'s embedding with concept ``c``'s text embedding. On a CLIP model both come
from the model itself (the image tower's output and its text tower); on an ImageNet classifier with a text tower
(`featviz.text.sentence`) the image embedding is the classifier's input (the pooled penultimate features,
``global_pool`` on EfficientNet-Lite) and a concept is the tower's ``encode`` of it: the mixture of the class
weight vectors of the classes it resolves to (exactly one class's weights for a class name).

Soft-WPMI, with the paper's published defaults (its code's ``soft_wpmi``):

* each image's similarities become a distribution over the concepts, ``Q[i] = softmax(P[i] / temperature)``
  with ``temperature = 0.1`` (the paper's ``a = 10``);
* a unit's top ``top_k = 100`` images by activation, ranked ``j = 0 .. k-1``, each hold the unit's concept
  with probability ``p_j``, falling linearly from ``0.998`` (``j = 0``) towards ``0.97``:
  ``p_j = 0.998 - (j / k) (0.998 - 0.97)``;
* ``log p(c | unit) = sum_j log(1 - p_j + p_j Q[i_j, c] + 1e-7)``, and the concept's prior over the layer,
  ``log p(c) = log mean_units p(c | unit)``;
* ``score(unit, c) = log p(c | unit) - lambda log p(c)`` with ``lambda = 1``; the label is the best score.

Memory stays bounded for any folder: the pass over the images (`featviz.dataset.collect_activations` with
``per_image=True``, cached with ``cache_dir``) keeps two floats per image and unit, and ``Q`` is computed in
blocks, only for images in some unit's top k. Under torchrun (``WORLD_SIZE > 1``) each process passes over its
share of the images and the shares are gathered; every process then returns the same labels.
"""
from __future__ import annotations

import hashlib
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from featviz.concepts.vocabulary import MINIMUM_CONCEPTS, check_concepts, default_concepts, read_concepts
from featviz.dataset import ImageFolder, Processes, collect_activations, image_folder
from featviz.device import resolve_device
from featviz.errors import FeatvizError, check_int
from featviz.hooks import IMAGE, OUTPUT
from featviz.io import atomic_path, cache_folder
from featviz.models import Model, load_model, weights_fingerprint
from featviz.objectives.dictionary import Dictionary
from featviz.text.prompts import prompt_embeddings
from featviz.text import sentence
from featviz.text.encoder import embed_sentences
from featviz.text.tower import text_tower

TOP_K = 100
TEMPERATURE = 0.1
PRIOR_WEIGHT = 1.0
INCLUSION = (0.998, 0.97)
FLOOR = 1e-7
RUNNERS_UP = 3
POOLS = ("mean", "max")
EXAMPLES_KEPT = 9  # top examples kept by the pass: collect_activations' default, so that its cache is shared
PAIRS_PER_BLOCK = 4096
ENCODE_BATCH = 256


@dataclass
class UnitLabel:
    """A unit's concept label: the best concept, its soft-WPMI score, and the next best concepts with theirs.

    Example:
        >>> UnitLabel(281, "cat", 2.43, [("kitten", 1.08), ("petal", 0.85)])
        UnitLabel(unit=281, concept='cat', score=2.43, runners_up=[('kitten', 1.08), ('petal', 0.85)])
    """

    unit: int
    concept: str
    score: float
    runners_up: list[tuple[str, float]] = field(default_factory=list)


def _check_fraction_pair(inclusion: Any) -> tuple[float, float]:
    try:
        start, end = (float(value) for value in inclusion)
    except (TypeError, ValueError):
        raise FeatvizError(
            f"inclusion must be a pair (first, last) of probabilities like (0.998, 0.97), not {inclusion!r}"
        ) from None
    if not (0 < end <= start <= 1):
        raise FeatvizError(f"inclusion must satisfy 0 < last <= first <= 1, like (0.998, 0.97); got {inclusion!r}")
    return start, end


def _check_positive(value: Any, what: str, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
            not (value >= 0 if allow_zero else value > 0):
        raise FeatvizError(f"{what} must be a number {'>= 0' if allow_zero else '> 0'}, not {value!r}")
    return float(value)


def soft_wpmi(
    activations: Tensor,
    image_embeddings: Tensor,
    concept_embeddings: Tensor,
    *,
    top_k: int = TOP_K,
    temperature: float = TEMPERATURE,
    prior_weight: float = PRIOR_WEIGHT,
    inclusion: tuple[float, float] = INCLUSION,
) -> Tensor:
    """Soft-WPMI scores ``(units, concepts)`` of ``activations`` ``(images, units)`` against ``image_embeddings``
    ``(images, D)`` and ``concept_embeddings`` ``(concepts, D)`` (see the module docstring; both embeddings are
    normalized here). ``top_k`` is cut to the number of images; ``temperature`` (> 0) sharpens each image's
    softmax over the concepts, ``prior_weight`` (lambda, >= 0) weighs the concept's prior over the layer, and
    ``inclusion`` is the pair ``(first, last)`` of probabilities that the top images hold the unit's concept,
    falling linearly with rank. Computed on ``activations``' device in blocks of unit-image pairs, so that no
    ``images x concepts`` matrix is ever held.

    Example:
        >>> scores = soft_wpmi(torch.randn(500, 8), torch.randn(500, 32), torch.randn(20, 32), top_k=50)
        >>> scores.shape
        torch.Size([8, 20])
    """
    top_k = check_int(top_k, "top_k")
    temperature = _check_positive(temperature, "temperature")
    prior_weight = _check_positive(prior_weight, "prior_weight", allow_zero=True)
    start, end = _check_fraction_pair(inclusion)
    if activations.dim() != 2 or image_embeddings.dim() != 2 or concept_embeddings.dim() != 2:
        raise FeatvizError(
            "soft_wpmi takes 2-d tensors: activations (images, units), embeddings (images, D) and (concepts, D)"
        )
    images, units = activations.shape
    if image_embeddings.shape[0] != images:
        raise FeatvizError(f"{images} images of activations but {image_embeddings.shape[0]} image embeddings")
    if image_embeddings.shape[1] != concept_embeddings.shape[1]:
        raise FeatvizError(
            f"image embeddings are {image_embeddings.shape[1]}-d but concept embeddings "
            f"{concept_embeddings.shape[1]}-d; they must live in one space"
        )
    if images == 0 or units == 0:
        raise FeatvizError("soft_wpmi needs at least one image and one unit")
    device = activations.device
    k = min(top_k, images)
    ranked = activations.float().nan_to_num(nan=-math.inf).topk(k, dim=0).indices.t()  # (units, k)
    inclusions = start - torch.arange(k, device=device, dtype=torch.float32) / k * (start - end)
    embeddings = F.normalize(image_embeddings.to(device, torch.float32), dim=1)
    concepts = F.normalize(concept_embeddings.to(device, torch.float32), dim=1)

    pair_images = ranked.reshape(-1)
    pair_units = torch.arange(units, device=device).repeat_interleave(k)
    pair_ranks = torch.arange(k, device=device).repeat(units)
    order = pair_images.argsort(stable=True)  # an image's pairs are neighbours: its Q row is computed about once
    pair_images, pair_units, pair_ranks = pair_images[order], pair_units[order], pair_ranks[order]
    log_conditional = torch.zeros(units, concepts.shape[0], device=device)
    for first in range(0, pair_images.numel(), PAIRS_PER_BLOCK):
        block = slice(first, first + PAIRS_PER_BLOCK)
        needed, where = pair_images[block].unique(return_inverse=True)
        terms = torch.softmax(embeddings[needed] @ concepts.t() / temperature, dim=1)[where]
        inclusion_block = inclusions[pair_ranks[block]].unsqueeze(1)
        terms.mul_(inclusion_block).add_(1 - inclusion_block + FLOOR).log_()  # log(1 - p + p Q + floor), in place
        log_conditional.index_add_(0, pair_units[block], terms)
    log_prior = torch.logsumexp(log_conditional, dim=0) - math.log(units)
    return log_conditional - prior_weight * log_prior


def concept_embeddings(
    model: Any, concepts: Sequence[str], templates: Sequence[str] | None = None, progress: bool = False
) -> Tensor:
    """Unit-norm embeddings ``(concepts, D)`` of ``concepts`` in ``model``'s image embedding space, float32 on CPU.

    A CLIP model embeds each concept with its own text tower, as written (CLIP-Dissect's default) or put into
    ``templates`` and averaged; results are cached under ``$FEATVIZ_CACHE/concepts``. A classifier's text tower
    (`featviz.text.sentence.ClassTextTower`) makes each concept its distribution's mixture of class vectors (the
    sentence embeddings cached by `featviz.text.encoder.embed_sentences`). ``progress`` shows a bar while a long
    list is embedded the first time.

    Example:
        >>> clip = featviz.load_model("open_clip:featviz-tiny-ViT", weights="random")
        >>> concept_embeddings(clip, ["dog", "cat"]).shape
        torch.Size([2, 32])
    """
    tower = text_tower(model)
    concepts = check_concepts(concepts)
    if isinstance(tower, sentence.ClassTextTower):
        # Each concept's mixture of class vectors; its sentence embedding is cached per sentence by the tower, and
        # the mixture, read from the classifier's weights, costs a product.
        embed_sentences(concepts if not templates else [t.format(c) for c in concepts for t in templates],
                                 progress=progress)
        return prompt_embeddings(model, concepts, templates).float().cpu()
    chosen_templates = tuple(templates) if templates else ()
    digest = hashlib.sha256()
    digest.update(f"{type(tower).__name__}|{weights_fingerprint(tower)}|{chosen_templates}\n".encode())
    digest.update("\n".join(concepts).encode())
    path = cache_folder("concepts") / f"embeddings-{digest.hexdigest()[:24]}.pt"
    if path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - an unreadable cache file is recomputed and replaced
            pass
    from tqdm.auto import tqdm

    starts = range(0, len(concepts), ENCODE_BATCH)
    parts = [
        prompt_embeddings(model, concepts[start:start + ENCODE_BATCH], chosen_templates or None).float().cpu()
        for start in tqdm(starts, desc="embedding concepts", unit="batch", disable=not progress or len(starts) < 2)
    ]
    embeddings = F.normalize(torch.cat(parts), dim=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        torch.save(embeddings, temporary)
    return embeddings


def resolve_concepts(concepts: Sequence[str] | str | os.PathLike | None) -> list[str]:
    """The concept list that ``concepts`` names: the default one for None, a concept file's for a path, else the
    list itself, checked.

    Example:
        >>> len(resolve_concepts(None)) > 3000, resolve_concepts(["dog", "cat"])
        (True, ['dog', 'cat'])
    """
    if concepts is None:
        return default_concepts()
    if isinstance(concepts, (str, os.PathLike)):
        return read_concepts(concepts)
    return check_concepts(concepts)


def known_concepts(model: Any, concepts: Sequence[str], templates: Sequence[str] | None = None) -> list[str]:
    """``concepts`` less those that ``model``'s classifier tower says name something no class is (a proper name it
    does not hold, or a prompt nearer to one of its outside phrases than to any class: `featviz.text.sentence`),
    with one warning that counts them and names a few. With ``templates`` (strings with one ``{}``, as
    `label_units` embeds concepts) a concept is left out only when every one of its sentences names no class. On a
    CLIP model, or with any other tower, all of them.

    Such a concept's embedding is a blend of unrelated classes ("terrorist" becomes missile 0.42, Afghan hound
    0.12...), so it could only win a label by accident. A concept that is a flat blend of near classes ("dog",
    a blend of breeds) stays. Raises FeatvizError when fewer than 2 remain.

    Example:
        >>> known_concepts(featviz.load_model("efficientnet_lite0"), ["espresso", "cat", "terrorist"])
        ['espresso', 'cat']
    """
    tower = text_tower(model)
    if not isinstance(tower, sentence.ClassTextTower):
        return list(concepts)
    prompts = [template.format(concept) for concept in concepts for template in templates] if templates else concepts
    per_concept = len(templates) if templates else 1
    resolved = tower.resolve(list(prompts))
    outside = [
        concept for index, concept in enumerate(concepts)
        if all(item.why for item in resolved[index * per_concept:(index + 1) * per_concept])
    ]
    if not outside:
        return list(concepts)
    left_out = set(outside)
    kept = [concept for concept in concepts if concept not in left_out]
    shown = ", ".join(outside[:5]) + (", ..." if len(outside) > 5 else "")
    if len(kept) < MINIMUM_CONCEPTS:
        raise FeatvizError(
            f"{len(outside)} of {len(concepts)} concepts name something no class of {tower.model_name} is ({shown}); "
            "a classifier's concepts must be things its classes are, give at least 2 such"
        )
    warnings.warn(
        f"{len(outside)} of {len(concepts)} concepts name something no class of {tower.model_name} is ({shown}) and "
        "are left out of its labels", ConceptsLeftOutWarning, stacklevel=3,
    )
    return kept


class ConceptsLeftOutWarning(UserWarning):
    """Concepts a classifier's labels leave out: they name something none of its classes is."""


def per_image_pass(
    model: Model,
    folder: ImageFolder,
    layers: Sequence[str],
    *,
    batch_size: int = 32,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> tuple[list[str], dict[str, dict[str, Tensor]]]:
    """Every image's mean and maximum over positions of every unit of ``layers``: ``(paths, {layer: {"mean":
    (images, units), "max": ...}})``, from `collect_activations` (``per_image=True``, ``batch_size`` images at a
    time, cached in ``cache_dir``; ``progress`` shows a progress bar).

    Under torchrun (``WORLD_SIZE > 1``) process ``r`` of ``n`` passes over images ``r, r + n, ...`` (each shard
    cached on its own) and the shares are gathered, in the folder's order, on every process.

    Example:
        >>> from featviz.dataset import ImageFolder, shipped_photo_paths
        >>> paths, values = per_image_pass(model, ImageFolder(shipped_photo_paths(), 64), ["global_pool"])
        >>> values["global_pool"]["mean"].shape
        torch.Size([15, 1280])
    """
    processes = Processes(model.device)
    try:
        if processes.world == 1:
            shares = [_pass(model, folder, layers, batch_size, cache_dir, progress)]
        else:
            mine = folder.paths[processes.rank::processes.world]
            share = None
            if mine:
                shard = ImageFolder(mine, size=folder.size, channels=folder.channels)
                share = _pass(model, shard, layers, batch_size, cache_dir, progress and processes.rank == 0)
            gathered: list[Any] = [None] * processes.world
            processes.distributed.all_gather_object(gathered, share)
            shares = [found for found in gathered if found is not None]
    finally:
        processes.close()
    paths = [path for found in shares for path in found[0]]
    if not paths:
        raise FeatvizError(f"none of the {len(folder)} images under '{folder.root}' could be read; pass valid images")
    position = {str(path): index for index, path in enumerate(folder.paths)}
    order = torch.tensor(sorted(range(len(paths)), key=lambda index: position.get(paths[index], index)))
    values = {
        layer: {reduce: torch.cat([found[1][index][reduce] for found in shares])[order] for reduce in POOLS}
        for index, layer in enumerate(layers)
    }
    return [paths[index] for index in order.tolist()], values


def _pass(model: Model, folder: ImageFolder, layers: Sequence[str], batch_size: int, cache_dir: Any, progress: bool):
    stats = collect_activations(
        model, folder, list(layers), batch_size=batch_size, cache_dir=cache_dir, k=EXAMPLES_KEPT, progress=progress,
        per_image=True,
    )
    first = stats[layers[0]]
    # by position in ``layers``, not by layer: a dictionary given as a layer is another object once gathered
    return list(first.image_paths), [{reduce: stats[layer].per_image(reduce) for reduce in POOLS} for layer in layers]


def label_units(
    model: Model | str,
    layer: str,
    images: Any,
    concepts: Sequence[str] | str | os.PathLike | None = None,
    *,
    top_k: int = TOP_K,
    temperature: float = TEMPERATURE,
    prior_weight: float = PRIOR_WEIGHT,
    inclusion: tuple[float, float] = INCLUSION,
    runners_up: int = RUNNERS_UP,
    pool: str = "mean",
    templates: Sequence[str] | None = None,
    batch_size: int = 32,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> list[UnitLabel]:
    """Label every unit of ``layer`` with the concept whose image similarities best match its activations.
    ``layer`` may be a `featviz.objectives.Dictionary` of a layer: its features are then the units.

    CLIP-Dissect's soft-WPMI (module docstring) with its published defaults: ``top_k`` 100 images per unit,
    ``temperature`` 0.1 (a = 10), ``prior_weight`` (lambda) 1, ``inclusion`` probabilities 0.998 falling to
    0.97, ``pool`` ``"mean"`` over positions. ``model`` needs a text tower: a CLIP model, or a classifier with
    class names and ``featviz[text]``. ``images`` is a folder, a list of image files, an `ImageFolder` or
    ``"shipped"``; ``concepts`` a list, a concept file, or None for `default_concepts`. ``templates`` (strings
    with one ``{}``) put each concept into sentences (default: CLIP as written; a classifier's tower its own
    templates). ``cache_dir`` keeps the pass over the images for later calls; it reads ``batch_size`` images at a
    time, and ``progress`` shows progress bars for it and for embedding the concepts. ``device`` defaults to the
    model's (the CPU for a model given by name; ``"cuda"`` means cuda:LOCAL_RANK under torchrun). Returns one
    `UnitLabel` per unit, in unit order, each with its ``runners_up`` next best concepts.

    Example:
        >>> model = featviz.load_model("open_clip:featviz-tiny-ViT", weights="random")
        >>> labels = label_units(model, "transformer.resblocks.1", "shipped", ["dog", "cat", "sky"], top_k=3)
        >>> len(labels), labels[0].concept in ("dog", "cat", "sky")
        (64, True)
    """
    top_k = check_int(top_k, "top_k")
    runners_up = check_int(runners_up, "runners_up", 0)
    if pool not in POOLS:
        raise FeatvizError(f"pool must be 'mean' or 'max' (over positions), not {pool!r}")
    _check_positive(temperature, "temperature")
    _check_positive(prior_weight, "prior_weight", allow_zero=True)
    _check_fraction_pair(inclusion)
    dictionary = layer if isinstance(layer, Dictionary) else None
    if dictionary is None and (not isinstance(layer, str) or not layer):
        raise FeatvizError(f"layer must be a layer name like 'blocks.5.0' (see `featviz layers MODEL`), not {layer!r}")
    if layer == IMAGE:
        raise FeatvizError(f"'{IMAGE}' is the input image, not a layer with units; pick a layer of the network")
    chosen = resolve_concepts(concepts)
    default_device = model.device if isinstance(model, Model) else None
    model = load_model(model, device=resolve_device(device, default=default_device, per_process=True))
    image_layer = text_tower(model).image_layer
    chosen = known_concepts(model, chosen, templates)
    if dictionary is not None:
        dictionary.check_model(model)  # a dictionary fitted on another model fails here, before any work
        model.get_layer(dictionary.layer)
    elif layer != OUTPUT:
        model.get_layer(layer)  # an unknown layer fails here, with the closest names, before any work
    folder = image_folder(model, images)
    layers = list(dict.fromkeys([layer, image_layer]))
    _, values = per_image_pass(model, folder, layers, batch_size=batch_size, cache_dir=cache_dir, progress=progress)
    activations = values[layer][pool]
    count = activations.shape[0]
    if count < 2 * top_k:
        warnings.warn(
            f"only {count} images for top_k={top_k}: each unit's top images are "
            f"{'all' if count <= top_k else 'over half'} of them, so labels say little; use a folder of many more "
            "images or a smaller top_k", stacklevel=2,
        )
    embeddings = concept_embeddings(model, chosen, templates, progress=progress)
    scores = soft_wpmi(
        activations.to(model.device), values[image_layer]["mean"], embeddings,
        top_k=top_k, temperature=temperature, prior_weight=prior_weight, inclusion=inclusion,
    ).cpu()
    best_scores, best = scores.topk(min(1 + runners_up, len(chosen)), dim=1)
    return [
        UnitLabel(
            unit, chosen[int(indices[0])], float(found[0]),
            [(chosen[int(index)], float(value)) for index, value in zip(indices[1:].tolist(), found[1:].tolist())],
        )
        for unit, (indices, found) in enumerate(zip(best, best_scores))
    ]


def format_labels(labels: Sequence[UnitLabel]) -> str:
    """The table `featviz label` prints for ``labels``: unit, label, score and the runners-up with their scores.

    Example:
        >>> print(format_labels([UnitLabel(0, "dog", 2.5, [("puppy", 2.1)])]))
        unit  label  score   runners-up
        0     dog    2.5000  puppy 2.1000
    """
    rows = [("unit", "label", "score", "runners-up")]
    for item in labels:
        others = ", ".join(f"{concept} {score:.4f}" for concept, score in item.runners_up)
        rows.append((str(item.unit), item.concept, f"{item.score:.4f}", others))
    widths = [max(len(row[index]) for row in rows) for index in range(4)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


__all__ = [
    "ConceptsLeftOutWarning", "UnitLabel", "concept_embeddings", "format_labels", "known_concepts", "label_units",
    "per_image_pass", "resolve_concepts", "soft_wpmi",
]
