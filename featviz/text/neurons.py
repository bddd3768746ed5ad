"""Zero-shot neuron search: which units of a layer a prompt points to (how the Multimodal Neurons article found
its Spider-Man and emotion neurons), with the classes each unit drives for models with class names."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence


from featviz.errors import FeatvizError, check_int
from featviz.hooks import OUTPUT
from featviz.text.directions import find_text_direction, fit_linear_map, reference_images
from featviz.text.sentence import ClassTextTower

CLASSES_SHOWN = 3


@dataclass
class NeuronScore:
    """One ``unit``'s weight (``score``) along a prompt's text direction, and the ``classes`` it drives most
    (models with labels)."""

    unit: int
    score: float
    classes: list[str] = field(default_factory=list)


def rank_neurons(
    model: Any, layer: str, prompts: Any, *, top: int = 10, templates: Sequence[str] | None = None
) -> list[NeuronScore]:
    """The ``top`` units of ``layer`` with the largest weight along the text direction of ``prompts`` (with
    ``templates``; see `featviz.text.find_text_direction`) in ``model``, best first.

    For a model with class names, each unit also lists the classes it drives most: its largest class weights
    where the layer is pooled straight into the classifier (``bn2``, ``global_pool`` on EfficientNet-Lite), else
    the largest weights of a ridge map from the layer's pooled activations to the logits, fitted on the shipped
    photos and crops.

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
    drives = None
    tower = getattr(model, "text", None)
    if isinstance(tower, ClassTextTower) and layer == tower.classifier:
        drives = units[:, None]  # the classifier's unit k is class k's logit
    elif isinstance(tower, ClassTextTower) and layer in tower.exact_layers():
        # Pooled straight into the classifier: what a unit drives is its column of the class weights, exactly.
        weights = model.get_layer(tower.classifier).weight.detach().t().float().cpu()
        drives = weights[units].topk(min(CLASSES_SHOWN, weights.shape[1]), dim=1).indices
    elif model.labels is not None:
        weights, _ = fit_linear_map(model, layer, OUTPUT, reference_images(model))
        if weights.shape[1] != len(model.labels):
            raise FeatvizError(
                f"{model.name} has {len(model.labels)} class names but its output has {weights.shape[1]} values"
            )
        drives = weights[units].topk(min(CLASSES_SHOWN, weights.shape[1]), dim=1).indices
    return [
        NeuronScore(
            int(unit), float(value),
            [model.labels[int(index)] for index in drives[row]] if drives is not None else [],
        )
        for row, (unit, value) in enumerate(zip(units.tolist(), values.tolist()))
    ]


def format_neurons(found: list[NeuronScore]) -> str:
    """The table `featviz neurons` prints for ``found`` (from `rank_neurons`): rank, unit, score and (when known)
    the classes each unit drives.

    Example:
        >>> clip = featviz.load_model("open_clip:featviz-tiny-RN", weights="random")   # a tiny random CLIP
        >>> print(format_neurons(rank_neurons(clip, "layer4", "a dog", top=2)))
        rank  unit  score
        1     ...
        2     ...
    """
    with_classes = any(item.classes for item in found)
    rows = [("rank", "unit", "score") + (("drives classes",) if with_classes else ())]
    for rank, item in enumerate(found, start=1):
        row = (str(rank), str(item.unit), f"{item.score:.4f}")
        rows.append(row + ((", ".join(item.classes),) if with_classes else ()))
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


__all__ = ["NeuronScore", "format_neurons", "rank_neurons"]
