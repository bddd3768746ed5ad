"""Sparse concept directions: for each of a few concepts, a sparse linear combination of a layer's units that tells
it apart from the others, and renders of those directions (the emotion neurons of the Multimodal Neurons
article, where each emotion is a handful of neurons).

Training data, by default the article's: each concept is a few prompts, and a prompt's sample is its text
direction in the layer (`featviz.text.directions.text_directions`: the zero-shot weights over the layer's units
that the model's text tower gives it; CLIP's own text transformer, or a classifier's class tower, which makes a
prompt the mixture of the weight vectors of the classes it resolves to, `featviz.text.sentence`). This
needs no labelled images, and it describes what the units mean through the model's own image-text alignment;
its held-out accuracy says whether prompts of a concept not seen in the fit land on the same units. A concept
may instead be a folder of images; a sample is then an image's activations averaged over positions, and the
direction says which units tell the photos apart (confounds of the photos included). All concepts use one kind.

For each concept an L1-penalized logistic regression (scikit-learn, liblinear), one concept against the rest
with classes weighted equally, is fitted at the weakest penalty whose weights have at most ``units`` non-zero
entries (found by bisection on the penalty). The concepts are told apart by the largest of their logits;
``accuracy`` is that rule's accuracy on held-out prompts (or images), by cross-validation over prompts:
stratified folds that keep a prompt's templated sentences together.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from featviz import objectives
from featviz.dataset import image_folder
from featviz.device import resolve_device
from featviz.errors import FeatvizError, check_int, suggestion
from featviz.hooks import ActivationCapture, bind_layers
from featviz.models import Model, load_model
from featviz.renderer import RenderResult, render
from featviz.text.directions import text_directions
from featviz.text.sentence import check_templates

__all__ = [
    "ConceptDirection", "ConceptDirections", "contrasted_directions", "render_concept_directions",
    "sparse_concept_directions",
]

TEXT, IMAGES = "text", "images"
STRENGTH_RANGE = (-3.0, 2.0)  # log10 of scikit-learn's C, the inverse of the L1 penalty, on scaled samples
BISECTIONS = 12


@dataclass
class ConceptDirection:
    """One concept's sparse direction: ``vector`` ``(C,)`` is zero except at ``units`` (largest weight magnitude
    first, with ``weights``); the concept's logit for a sample ``x`` is ``x · vector + bias``. ``strength`` is
    the chosen ``C`` (inverse L1 penalty).

    Example:
        >>> found["water"].units, found["water"].weights  # doctest: +SKIP
        ([611, 87, 1203], [1.92, 0.88, -0.41])
    """

    concept: str
    vector: Tensor
    units: list[int]
    weights: list[float]
    bias: float
    strength: float


@dataclass
class ConceptDirections:
    """The sparse directions of a set of concepts in ``layer`` (``directions``, in the concepts' order).

    ``accuracy`` is the held-out accuracy of telling the concepts apart by the largest logit (cross-validated
    over ``folds`` folds of prompts or images) and ``chance`` that of always answering the most common concept;
    ``train_accuracy`` is the final fit's on all samples. ``source`` is ``"text"`` or ``"images"``, ``samples``
    the number of samples per concept and ``max_units`` the sparsity asked for. ``method`` is how the text
    samples' directions were found (``"exact"`` or ``"fitted"``, see `featviz.text.find_text_direction`;
    None for image samples); ``extra`` is a free dictionary for anything else to keep with the directions
    (empty as `sparse_concept_directions` makes them).

    Example:
        >>> print(found)  # doctest: +SKIP
        water: 3 units (611 +1.92, 87 +0.88, 1203 -0.41)
        ...
        held-out accuracy 0.88 (chance 0.25), 4 folds of text samples
    """

    layer: str
    directions: dict[str, ConceptDirection]
    accuracy: float
    chance: float
    train_accuracy: float
    source: str
    samples: dict[str, int]
    folds: int
    max_units: int
    method: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def concepts(self) -> list[str]:
        """The concepts, in order."""
        return list(self.directions)

    @property
    def vectors(self) -> Tensor:
        """All directions as rows, ``(concepts, C)``."""
        return torch.stack([direction.vector for direction in self.directions.values()])

    def __getitem__(self, concept: str) -> ConceptDirection:
        if concept not in self.directions:
            raise FeatvizError(f"no concept '{concept}' here{suggestion(concept, self.directions)}")
        return self.directions[concept]

    def __str__(self) -> str:
        lines = []
        for name, direction in self.directions.items():
            shown = ", ".join(f"{unit} {weight:+.3g}" for unit, weight in zip(direction.units, direction.weights))
            lines.append(f"{name}: {len(direction.units)} unit{'' if len(direction.units) == 1 else 's'} ({shown})")
        lines.append(
            f"held-out accuracy {self.accuracy:.2f} (chance {self.chance:.2f}), {self.folds} folds of {self.source} samples"
        )
        return "\n".join(lines)


def _sklearn() -> Any:
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedGroupKFold
    except ImportError:
        raise FeatvizError("sparse concept directions need scikit-learn; run pip install scikit-learn") from None
    return LogisticRegression, StratifiedGroupKFold


def _concept_sources(concepts: Any) -> tuple[str, dict[str, Any]]:
    """``(kind, {concept: prompts or image source})`` from a mapping, or from a folder with a subfolder per concept."""
    if isinstance(concepts, (str, os.PathLike)):
        root = Path(concepts).expanduser()
        if not root.is_dir():
            raise FeatvizError(
                f"concept folder '{root}' does not exist; give a folder with one subfolder of images per concept, or "
                "a mapping {concept: [prompts]}"
            )
        folders = sorted(child for child in root.iterdir() if child.is_dir() and not child.name.startswith("."))
        concepts = {child.name: child for child in folders}
    if not isinstance(concepts, Mapping):
        raise FeatvizError(
            "concepts must map each concept to its prompts, e.g. {'water': ['a lake', 'the sea'], 'fire': [...]}, "
            f"or to a folder of its images; not {type(concepts).__name__}"
        )
    if len(concepts) < 2:
        raise FeatvizError(f"give at least 2 concepts to tell apart, got {len(concepts)}")
    kinds: dict[str, str] = {}
    cleaned: dict[str, Any] = {}
    for name, value in concepts.items():
        if not isinstance(name, str) or not name.strip():
            raise FeatvizError(f"concept names must be non-empty strings, not {name!r}")
        if isinstance(value, (str, os.PathLike)):
            kinds[name] = IMAGES
            cleaned[name] = value
        else:
            try:
                prompts = list(value)
            except TypeError:
                raise FeatvizError(
                    f"concept '{name}' must have a list of prompts or a folder of images, not {type(value).__name__}"
                ) from None
            if not all(isinstance(prompt, str) and prompt.strip() for prompt in prompts):
                raise FeatvizError(f"the prompts of concept '{name}' must be non-empty strings, got {prompts!r}")
            kinds[name] = TEXT
            cleaned[name] = list(dict.fromkeys(" ".join(prompt.split()) for prompt in prompts))
    if len(set(kinds.values())) > 1:
        text = sorted(name for name, kind in kinds.items() if kind == TEXT)
        raise FeatvizError(
            f"concepts {', '.join(text)} are prompts but the others are image folders; give every concept the same "
            "kind of samples"
        )
    return next(iter(kinds.values())), cleaned


def _text_samples(
    model: Model, layer: str, prompts: dict[str, list[str]], templates: Sequence[str] | None
) -> tuple[Tensor, list[int], list[int], str]:
    """Text directions of every (prompt, template) sentence, scaled so that an entry is about 1 in size."""
    sentences, labels, groups = [], [], []
    for label, (name, items) in enumerate(prompts.items()):
        if len(items) < 2:
            raise FeatvizError(
                f"concept '{name}' has {len(items)} prompt; give at least 2 (some are held out to measure accuracy)"
            )
        for prompt in items:
            prompt_number = len(set(groups))  # a prompt's templated sentences share a group, hence a fold
            for template in templates or ("{}",):
                sentences.append(template.format(prompt))
                labels.append(label)
                groups.append(prompt_number)
    found = text_directions(model, layer, sentences)
    vectors = found.vectors.double() * math.sqrt(found.vectors.shape[1])
    return vectors, labels, groups, found.method


def _image_samples(
    model: Model, layer: str, folders: dict[str, Any], size: int | None, batch_size: int, progress: bool
) -> tuple[Tensor, list[int], list[int]]:
    """Each image's activations averaged over positions, per unit standardized later."""
    read = {name: image_folder(model, source, size, name=f"images of concept '{name}'") for name, source in folders.items()}
    sides = {folder.size for folder in read.values()}
    if len(sides) > 1:
        raise FeatvizError(f"the concepts' images are read at different sizes {sorted(sides)}; read them all at one size")
    side = sides.pop()
    layouts = bind_layers(model, [layer], (side, side)).layouts
    features, labels = [], []
    with torch.no_grad(), ActivationCapture(model, [layer], layouts=layouts) as capture:
        for label, (name, folder) in enumerate(read.items()):
            count = 0
            for _, images in folder.batches(batch_size):
                activation = capture.run(images.to(model.device, model.dtype))[layer]
                features.append(activation.flatten(2).mean(2).double().cpu())
                count += images.shape[0]
            if count < 2:
                raise FeatvizError(f"concept '{name}' has {count} readable image; give at least 2 (some are held out)")
            labels += [label] * count
    samples = torch.cat(features)
    return samples, labels, list(range(samples.shape[0]))


def _l1_penalty() -> dict[str, Any]:
    """The L1 penalty in this scikit-learn's words: ``l1_ratio=1`` from 1.8 on (``penalty`` is deprecated there)."""
    import sklearn

    major, minor = (int(part) for part in sklearn.__version__.split(".")[:2])
    return {"l1_ratio": 1.0} if (major, minor) >= (1, 8) else {"penalty": "l1"}


def _sparse_fit(inputs: Any, targets: Any, units: int, seed: int) -> tuple[Any, float, float]:
    """The L1 logistic regression of ``targets`` (0/1) on ``inputs`` at the weakest penalty with at most ``units``
    non-zero weights: ``(weights, bias, C)``."""
    import numpy as np

    LogisticRegression, _ = _sklearn()

    def fit(log_strength: float) -> tuple[Any, float]:
        classifier = LogisticRegression(
            **_l1_penalty(), solver="liblinear", C=10.0 ** log_strength, class_weight="balanced", max_iter=2000,
            random_state=seed,
        )
        classifier.fit(inputs, targets)
        return classifier.coef_[0].copy(), float(classifier.intercept_[0])

    low, high = STRENGTH_RANGE
    weights, bias = fit(high)
    if np.count_nonzero(weights) <= units:
        return weights, bias, 10.0 ** high
    best = None
    for _ in range(BISECTIONS):
        middle = (low + high) / 2
        found = fit(middle)
        if np.count_nonzero(found[0]) <= units:
            low, best = middle, found
        else:
            high, weights, bias = middle, found[0], found[1]
    if best is not None and np.count_nonzero(best[0]) > 0:
        return best[0], best[1], 10.0 ** low
    # No penalty gives between 1 and `units` weights (ties switch several on at once): keep the largest `units`.
    kept = np.zeros_like(weights)
    order = np.argsort(-np.abs(weights))[:units]
    kept[order] = weights[order]
    return kept, bias, 10.0 ** high


def _fit_all(inputs: Any, labels: Any, concepts: int, units: int, seed: int) -> tuple[Any, Any, list[float]]:
    """One sparse fit per concept against the rest: weights ``(concepts, C)``, biases and strengths."""
    import numpy as np

    fits = [_sparse_fit(inputs, (labels == index).astype(int), units, seed) for index in range(concepts)]
    return np.stack([fit[0] for fit in fits]), np.array([fit[1] for fit in fits]), [fit[2] for fit in fits]


def sparse_concept_directions(
    model: Model | nn.Module | str,
    layer: str,
    concepts: Mapping[str, Sequence[str] | str | os.PathLike] | str | os.PathLike,
    *,
    units: int = 8,
    templates: Sequence[str] | None = None,
    folds: int = 5,
    seed: int = 0,
    size: int | None = None,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> ConceptDirections:
    """For each concept, a sparse direction over ``layer``'s units (at most ``units`` non-zero) that tells it apart
    from the other concepts; see the module docstring for the method and why text directions are the default.

    ``concepts`` maps each concept to its prompts (``{"water": ["a lake", "the sea", ...], ...}``; each prompt put
    into every one of ``templates``, strings holding ``{}`` once, when given) or to a folder (or list) of its
    images, read at ``size`` pixels (default: the model's input size); or it is one folder with a subfolder of
    images per concept. Prompts need a model with a text tower (CLIP, or a classifier such as
    ``efficientnet_lite0`` with ``featviz[text]``). ``folds`` (at most the fewest prompts or images of a concept)
    cross-validates the held-out accuracy; ``seed`` fixes the folds. Images are read ``batch_size`` at a time,
    with a progress bar when ``progress``. ``device`` defaults to the model's. Needs scikit-learn.

    Example:
        >>> import featviz
        >>> model = featviz.load_model("open_clip:featviz-tiny-ViT", weights="random")
        >>> found = sparse_concept_directions(model, "transformer.resblocks.1", {
        ...     "water": ["water", "a lake of water", "water in a glass"],
        ...     "fire": ["fire", "a camp fire", "fire and flames"]}, units=4, folds=3)
        >>> all(len(direction.units) <= 4 for direction in found.directions.values())
        True
    """
    import numpy as np

    _, StratifiedGroupKFold = _sklearn()
    units = check_int(units, "units", 1)
    folds = check_int(folds, "folds", 2)
    seed = check_int(seed, "seed", 0)
    if not isinstance(layer, str) or not layer or layer.startswith("@"):
        raise FeatvizError(f"layer must be a layer of the network like 'blocks.6' (see `featviz layers MODEL`), not {layer!r}")
    if templates is not None:
        templates = check_templates(templates)
    kind, sources = _concept_sources(concepts)
    default_device = model.device if isinstance(model, Model) else None
    model = load_model(model, device=resolve_device(device, default=default_device))
    model.get_layer(layer)  # an unknown layer fails here, with the closest names
    method = None
    if kind == TEXT:
        samples, labels, groups, method = _text_samples(model, layer, sources, templates)
    else:
        samples, labels, groups = _image_samples(model, layer, sources, size, batch_size, progress)
    inputs = samples.numpy()
    labels_array = np.array(labels)
    scale = np.ones(inputs.shape[1])
    if kind == IMAGES:  # units differ in scale on photos: standardize, and fold the scale back into the weights
        scale = inputs.std(0)
        scale[scale == 0] = 1.0
    centre = inputs.mean(0) if kind == IMAGES else np.zeros(inputs.shape[1])
    standardized = (inputs - centre) / scale

    names = list(sources)
    per_concept = np.bincount(labels_array, minlength=len(names))
    group_counts = [len({groups[index] for index in np.flatnonzero(labels_array == label)}) for label in range(len(names))]
    splits = min(folds, min(group_counts))
    correct = 0
    splitter = StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed)
    for kept, held in splitter.split(standardized, labels_array, groups):
        weights, biases, _ = _fit_all(standardized[kept], labels_array[kept], len(names), units, seed)
        predicted = (standardized[held] @ weights.T + biases).argmax(1)
        correct += int((predicted == labels_array[held]).sum())
    weights, biases, strengths = _fit_all(standardized, labels_array, len(names), units, seed)
    train_accuracy = float(((standardized @ weights.T + biases).argmax(1) == labels_array).mean())

    raw = weights / scale  # weights on the raw samples: x · (w / s) + (b - c · (w / s)) = ((x - c) / s) · w + b
    raw_biases = biases - raw @ centre
    directions = {}
    for index, name in enumerate(names):
        vector = torch.from_numpy(raw[index]).float()
        chosen = [int(unit) for unit in np.argsort(-np.abs(raw[index]), kind="stable") if raw[index][unit] != 0]
        directions[name] = ConceptDirection(
            name, vector, chosen, [float(raw[index][unit]) for unit in chosen], float(raw_biases[index]), strengths[index]
        )
    return ConceptDirections(
        layer=layer, directions=directions, accuracy=correct / len(labels), chance=float(per_concept.max() / len(labels)),
        train_accuracy=train_accuracy, source=kind, samples={name: int(count) for name, count in zip(names, per_concept)},
        folds=splits, max_units=units, method=method,
    )


def contrasted_directions(vectors: Tensor) -> Tensor:
    """Each row of ``vectors`` ``(concepts, C)`` minus the mean of the other rows: row ``i`` dotted with a sample
    is by how much concept ``i``'s logit exceeds the mean of the others' (biases aside).

    Example:
        >>> contrasted_directions(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        tensor([[ 1.0000, -0.5000],
                [-0.5000,  1.0000],
                [-0.5000, -0.5000]])
    """
    count = vectors.shape[0]
    if count < 2:
        raise FeatvizError(f"contrasting needs at least 2 concept directions, got {count}")
    return (vectors - vectors.sum(0) / count) * count / (count - 1)


def render_concept_directions(
    model: Model | nn.Module | str,
    found: ConceptDirections,
    *,
    steps: int = 512,
    size: int | Sequence[int] | None = None,
    seed: int = 0,
    cossim_pow: float = 0.0,
    layer: str | None = None,
    contrast: bool = True,
    device: str | torch.device | None = None,
    progress: bool = True,
    **options: Any,
) -> RenderResult:
    """Render each concept's sparse direction (`featviz.objectives.direction`), all in one batch, in the
    concepts' order; image ``i`` uses seed ``seed + i``. With ``contrast`` (the default) image ``i`` maximizes
    concept ``i``'s direction minus the mean of the other concepts' directions: the margin of its
    logit over theirs, which is what the largest-logit rule tells the concepts apart by. A one-vs-rest direction
    on its own only has to tell its concept from the others, and its positive units may draw something else (a
    fruit direction of EfficientNet-Lite0 rendered dogs; see docs/concepts/sparse-directions.md).
    ``contrast=False`` renders each direction as fitted. ``layer`` renders the directions at another layer with
    the same channels (default: the layer they were fitted in), e.g. the spatial layer that a pooled one
    averages (EfficientNet-Lite's ``global_pool`` is the mean of ``bn2``; its pre-activation ``bn2.drop`` has no
    ReLU6 cap, but there a negative weight asks for negative values the classifier never sees, see
    docs/concepts/sparse-directions.md). ``cossim_pow`` multiplies each dot product by
    ``max(cos, 0.1) ** cossim_pow`` (0, the default: the plain dot product; see `featviz.objectives.direction`). ``steps``, ``size``, ``device`` and ``progress`` are `featviz.render`'s,
    and so are the other ``options`` (``param``, ``transforms``, ...).

    Example:
        >>> result = render_concept_directions(model, found, steps=256, size=128)  # doctest: +SKIP
        >>> result.save("concepts.png")  # doctest: +SKIP
    """
    if not isinstance(found, ConceptDirections):
        raise FeatvizError(f"found must be what sparse_concept_directions returns, not {type(found).__name__}")
    vectors = contrasted_directions(found.vectors) if contrast else found.vectors
    goals = [objectives.direction(layer or found.layer, vector, cossim_pow=cossim_pow) for vector in vectors]
    return render(model, goals, steps=steps, size=size, seed=seed, device=device, progress=progress, **options)
