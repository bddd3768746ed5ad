"""Zero-shot neuron search: which units of a layer a prompt points to (how the Multimodal Neurons article found
its Spider-Man and emotion neurons), with the classes each unit drives for models with class names."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence


from featviz.errors import FeatvizError, check_int
from featviz.hooks import OUTPUT
from featviz.text.directions import fit_linear_map, reference_images, text_direction

CLASSES_SHOWN = 3


@dataclass
class NeuronScore:
    """One unit's weight along a prompt's text direction, and the classes it drives most (models with labels)."""

    unit: int
    score: float
    classes: list[str] = field(default_factory=list)


def rank_neurons(
    model: Any, layer: str, prompts: Any, *, top: int = 10, templates: Sequence[str] | None = None
) -> list[NeuronScore]:
    """The ``top`` units of ``layer`` with the largest weight along the prompts' text direction, best first.

    For a model with class names, each unit also lists the classes it drives most: the largest weights of a
    ridge map from the layer's pooled activations to the logits, fitted on the shipped photos and crops.

    Example:
        >>> [(found.unit, round(found.score, 3)) for found in rank_neurons(model, "layer4", "a dog", top=3)]
        [(1734, 0.118), (77, 0.102), (1901, 0.097)]
    """
    top = check_int(top, "top", 1)
    direction = text_direction(model, layer, prompts, templates=templates)
    scores = direction.vector
    count = min(top, scores.numel())
    values, units = scores.topk(count)
    drives = None
    if model.labels is not None:
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
    """The table `featviz neurons` prints: rank, unit, score and (when known) the classes each unit drives.

    Example:
        >>> print(format_neurons(rank_neurons(model, "layer4", "a dog", top=2)))
    """
    with_classes = any(item.classes for item in found)
    rows = [("rank", "unit", "score") + (("drives classes",) if with_classes else ())]
    for rank, item in enumerate(found, start=1):
        row = (str(rank), str(item.unit), f"{item.score:.4f}")
        rows.append(row + ((", ".join(item.classes),) if with_classes else ()))
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


__all__ = ["NeuronScore", "format_neurons", "rank_neurons"]
