"""Binding an objective to a model: parse it, stack several, check it with one dry forward pass."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch

from featviz.errors import FeatvizError
from featviz.hooks.capture import IMAGE, ActivationCapture
from featviz.objectives.base import Objective, stack
from featviz.objectives.parse import parse

ObjectiveLike = Union[Objective, str]


@dataclass
class BoundObjective:
    """An objective checked against a model: the ``goals`` (one, or one per image), the ``target`` that scores
    a batch (``goals[0]``, or ``stack(goals)`` so that image ``i`` is scored by goal ``i``), and the ``size``
    ``(height, width)`` the model sees the images at (their own size, or the model's input size for models
    that take no other size, such as ViTs).

    Example:
        >>> bound = bind_objective(model, "blocks.4.0.conv_pwl:3", size=(128, 128))
        >>> bound.names, bound.size
        (['blocks.4.0.conv_pwl:3'], (128, 128))
    """

    goals: list[Objective]
    target: Objective
    size: tuple[int, int]

    @property
    def names(self) -> list[str]:
        """The goals' names."""
        return [goal.name for goal in self.goals]

    def goal_index(self, image: int) -> int:
        """Which goal scores image ``image`` (always 0 for a single objective)."""
        return 0 if len(self.goals) == 1 else image


def parse_objectives(objective: ObjectiveLike | Sequence[ObjectiveLike]) -> list[Objective]:
    """``objective`` as a list of objectives: a shorthand string (a range names several), an Objective, or a
    list of either, exactly as `featviz.render` reads them.

    Example:
        >>> [goal.name for goal in parse_objectives("blocks.4.0.conv_pwl:0-1")]
        ['blocks.4.0.conv_pwl:0', 'blocks.4.0.conv_pwl:1']
    """
    items = [objective] if isinstance(objective, (str, Objective)) else list(objective)
    parsed: list[Objective] = []
    for item in items:
        if isinstance(item, str):
            parsed.extend(parse(item))
        elif isinstance(item, Objective):
            parsed.append(item)
        else:
            raise FeatvizError(f"an objective must be a string like 'blocks.4.0.conv_pwl:3' or an Objective, not {type(item).__name__}")
    if not parsed:
        raise FeatvizError("no objective given; pass e.g. 'blocks.4.0.conv_pwl:3' or objectives.channel(...)")
    return parsed


def _dry_shapes(model, layers: frozenset[str], probe: torch.Tensor) -> dict[str, torch.Size]:
    with torch.no_grad(), ActivationCapture(model, layers) as capture:
        activations = capture.run(probe)
    shapes = {name: value.shape for name, value in activations.items()}
    shapes[IMAGE] = probe.shape
    return shapes


def bind_objective(
    model, objective: ObjectiveLike | Sequence[ObjectiveLike], size: Sequence[int] | None = None
) -> BoundObjective:
    """Parse ``objective`` and bind it to ``model`` with one dry forward pass of a grey image of ``size``
    (default: the model's input size), as `featviz.render` does before rendering: layer names, channel
    ranges, positions and class labels are checked and FeatvizError names what would be right. A model that
    fails at ``size`` (fixed-size ViTs) is bound at its input size, which the images are then resized to.

    Example:
        >>> bound = bind_objective(model, "class:goldfish")
        >>> bound.goals[0].channel
        1
    """
    goals = parse_objectives(objective)
    target = stack(goals) if len(goals) > 1 else goals[0]
    height, width = (int(size[0]), int(size[1])) if size is not None else model.input_size
    probe = torch.full((1, model.channels, height, width), 0.5, device=model.device, dtype=model.dtype)
    seen = (height, width)
    try:
        shapes = _dry_shapes(model, target.layers, probe)
    except FeatvizError:
        raise
    except Exception:
        seen = tuple(model.input_size)
        shapes = _dry_shapes(model, target.layers, probe.new_full((1, model.channels, *seen), 0.5))
    target.bind(model, shapes)
    return BoundObjective(goals, target, seen)
