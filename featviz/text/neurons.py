"""Zero-shot neuron search: which units of a layer a prompt points to (how the Multimodal Neurons article found
its Spider-Man and emotion neurons), with the classes each unit drives for models with class names."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from featviz.errors import FeatvizError, check_int
from featviz.hooks import OUTPUT
from featviz.text.directions import find_text_direction, fit_linear_map, reference_images
from featviz.text.prompts import weighted_prompts
from featviz.text.sentence import ClassTextTower

CLASSES_SHOWN = 3


@dataclass
class NeuronScore:
    """One ``unit``'s weight (``score``) along a prompt's text direction, the ``classes`` it drives most (models
    with labels) and, on a classifier's text tower, ``target``: the prompt's class, its rank (1 = the class this
    unit drives most) among the unit's classes and how many classes there are, so that a unit whose strongest classes are others still
    shows how much it drives the prompt's."""

    unit: int
    score: float
    classes: list[str] = field(default_factory=list)
    target: tuple[str, int, int] | None = None


def rank_neurons(
    model: Any, layer: str, prompts: Any, *, top: int = 10, templates: Sequence[str] | None = None
) -> list[NeuronScore]:
    """The ``top`` units of ``layer`` with the largest weight along the text direction of ``prompts`` (with
    ``templates``; see `featviz.text.find_text_direction`) in ``model``, best first.

    For a model with class names, each unit also lists the classes it drives most: its largest class weights
    where the layer is pooled straight into the classifier (``bn2``, ``global_pool`` on EfficientNet-Lite), else
    the largest weights of a ridge map from the layer's pooled activations to the logits, fitted on the shipped
    photos and crops. On a classifier's text tower each unit also gives the rank of the prompt's class (the
    largest weight of what the prompts resolve to) among the classes it drives: a unit usually drives a few
    classes more than any one prompt's, so this rank, not the list, shows how well it matches the prompt.

    Example:
        >>> clip = featviz.load_model("open_clip:featviz-tiny-RN", weights="random")   # a tiny random CLIP
        >>> found = rank_neurons(clip, "layer4", "a dog", top=3)
        >>> len(found), found[0].score >= found[1].score >= found[2].score, found[0].classes   # no class names
        (3, True, [])
    """
    top = check_int(top, "top", 1)
    direction = find_text_direction(model, layer, prompts, templates=templates)
    scores = direction.vector
    count = min(top, scores.numel())
    values, units = scores.topk(count)
    weights = None  # (units of the layer, classes): what each unit adds to each logit
    tower = getattr(model, "text", None)
    if isinstance(tower, ClassTextTower) and layer == tower.classifier:
        weights = torch.eye(len(model.labels))  # the classifier's unit k is class k's logit
    elif isinstance(tower, ClassTextTower) and layer in tower.exact_layers():
        # Pooled straight into the classifier: what a unit drives is its column of the class weights, exactly.
        weights = model.get_layer(tower.classifier).weight.detach().t().float().cpu()
    elif model.labels is not None:
        weights, _ = fit_linear_map(model, layer, OUTPUT, reference_images(model))
        if weights.shape[1] != len(model.labels):
            raise FeatvizError(
                f"{model.name} has {len(model.labels)} class names but its output has {weights.shape[1]} values"
            )
    if weights is None:
        return [NeuronScore(int(unit), float(value)) for unit, value in zip(units.tolist(), values.tolist())]
    weights = weights.float().cpu()[units.cpu()]
    strongest = weights.topk(min(CLASSES_SHOWN, weights.shape[1]), dim=1)
    target = _prompt_class(tower, prompts) if isinstance(tower, ClassTextTower) else None
    found = []
    for row, (unit, value) in enumerate(zip(units.tolist(), values.tolist())):
        # A unit drives the classes it adds to (positive weights); it does not rank a class it takes from.
        drives = [
            model.labels[index]
            for index, weight in zip(strongest.indices[row].tolist(), strongest.values[row].tolist())
            if weight > 0
        ]
        ranked = None
        if target is not None and weights[row, target] > 0:
            ranked = (model.labels[target], int((weights[row] > weights[row, target]).sum()) + 1, weights.shape[1])
        found.append(NeuronScore(int(unit), float(value), drives, ranked))
    return found


def _prompt_class(tower: ClassTextTower, prompts: Any) -> int | None:
    """The class index (of the model's labels) with the largest weight in what ``prompts`` resolve to on
    ``tower``, their weights applied; None when no class has a positive weight."""
    weighted = weighted_prompts(prompts)
    mixture = torch.tensor(list(weighted.values())) @ tower.distribution(list(weighted))
    if float(mixture.max()) <= 0:
        return None
    return int(tower.classes[int(mixture.argmax())])


def format_neurons(found: list[NeuronScore]) -> str:
    """The table `featviz neurons` prints for ``found`` (from `rank_neurons`): rank, unit, score and (when known)
    the rank of the prompt's class among the unit's classes and the classes each unit drives most.

    Example:
        >>> clip = featviz.load_model("open_clip:featviz-tiny-RN", weights="random")   # a tiny random CLIP
        >>> print(format_neurons(rank_neurons(clip, "layer4", "a dog", top=2)))
        rank  unit  score
        1     ...
        2     ...
    """
    with_classes = any(item.classes for item in found)
    target = next((item.target[0] for item in found if item.target is not None), None)
    rows = [
        ("rank", "unit", "score")
        + ((f"{target} among its classes",) if target is not None else ())
        + (("drives classes most",) if with_classes else ())
    ]
    for rank, item in enumerate(found, start=1):
        row = (str(rank), str(item.unit), f"{item.score:.4f}")
        if target is not None:
            row += (f"{_ordinal(item.target[1])} of {item.target[2]}" if item.target is not None else "",)
        rows.append(row + ((", ".join(item.classes),) if with_classes else ()))
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def _ordinal(rank: int) -> str:
    """``rank`` as an ordinal: 1st, 2nd, 3rd, 4th, 11th, 22nd."""
    suffix = "th" if 10 <= rank % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(rank % 10, "th")
    return f"{rank}{suffix}"


__all__ = ["NeuronScore", "format_neurons", "rank_neurons"]
