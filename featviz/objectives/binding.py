"""Binding an objective to a model: parse it, stack several, find a function's layers, check it with one dry
forward pass and learn each layer's layout."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence, Union

import torch

from featviz.errors import FeatvizError
from featviz.hooks import IMAGE, Layout, bind_layers, map_shape, survey_model
from featviz.objectives.algebra import stack
from featviz.objectives.base import Objective
from featviz.objectives.callables import FunctionObjective
from featviz.objectives.shorthand import parse

ObjectiveLike = Union[Objective, str, Callable[[Callable[[str], torch.Tensor]], torch.Tensor]]


@dataclass
class BoundObjective:
    """An objective checked against a model: the ``goals`` (one, or one per image), the ``target`` that scores
    a batch (``goals[0]``, or ``stack(goals)`` so that image ``i`` is scored by goal ``i``), the ``size``
    ``(height, width)`` the model sees the images at (their own size, or the model's input size for models
    that take no other size, such as fixed-size ViTs), and each layer's ``layouts`` entry (pass them to
    `featviz.hooks.ActivationCapture` to read the layers channels-first, as the objective expects).

    Example:
        >>> bound = bind_objective(model, "blocks.4.0.conv_pwl:3", size=(128, 128))
        >>> bound.names, bound.size
        (['blocks.4.0.conv_pwl:3'], (128, 128))
    """

    goals: list[Objective]
    target: Objective
    size: tuple[int, int]
    layouts: dict[str, Layout]

    @property
    def names(self) -> list[str]:
        """The goals' names."""
        return [goal.name for goal in self.goals]

    def goal_index(self, image: int) -> int:
        """Which goal scores image ``image`` (always 0 for a single objective)."""
        return 0 if len(self.goals) == 1 else image


def parse_objectives(objective: ObjectiveLike | Sequence[ObjectiveLike]) -> list[Objective]:
    """``objective`` as a list of objectives: a shorthand string (a range names several), an Objective, a
    function ``f(T)``, or a list of those, exactly as `featviz.render` reads them.

    Example:
        >>> [goal.name for goal in parse_objectives("blocks.4.0.conv_pwl:0-1")]
        ['blocks.4.0.conv_pwl:0', 'blocks.4.0.conv_pwl:1']
    """
    single = isinstance(objective, (str, Objective)) or (callable(objective) and not isinstance(objective, Sequence))
    items = [objective] if single else list(objective)  # type: ignore[arg-type]
    parsed: list[Objective] = []
    for item in items:
        if isinstance(item, str):
            parsed.extend(parse(item))
        elif isinstance(item, Objective):
            parsed.append(item)
        elif callable(item):
            parsed.append(FunctionObjective(item))
        else:
            raise FeatvizError(
                f"an objective must be a string like 'blocks.4.0.conv_pwl:3', an Objective or a function f(T), "
                f"not {type(item).__name__}"
            )
    if not parsed:
        raise FeatvizError("no objective given; pass e.g. 'blocks.4.0.conv_pwl:3' or objectives.channel(...)")
    return parsed


def _stand_in_reader(model: Any, size: tuple[int, int]) -> Callable[[str], torch.Tensor]:
    """``T(layer)`` for finding a function's layers: zeros of the shape ``T`` gives for one image, channels-first
    ``(1, C, H, W)``, or ``(1, C)`` for a vector layer (layout ``nc``: logits, pooled features)."""
    found = survey_model(model)

    def read_layer(layer: str) -> torch.Tensor:
        if layer == IMAGE:
            return torch.zeros(1, model.channels, *size, device=model.device, dtype=model.dtype)
        shape = found.shapes.get(layer)
        if shape is None:
            model.get_layer(layer)  # an unknown name raises with the closest names
            raise FeatvizError(f"layer '{layer}' did not run in the forward pass; pick layers the model's forward calls")
        layout = found.layout(layer, shape, found.size)
        read_shape = (1, shape[1]) if layout.kind == "nc" else (1, *map_shape(shape, layout)[1:])
        return torch.zeros(read_shape, device=model.device, dtype=model.dtype)

    return read_layer


def bind_objective(
    model: Any, objective: ObjectiveLike | Sequence[ObjectiveLike], size: Sequence[int] | None = None
) -> BoundObjective:
    """Parse ``objective`` and bind it to ``model`` at ``size`` (default: the model's input size), as
    `featviz.render` does before rendering: a function's layers are found, layer names, channel ranges,
    positions and class labels are checked (FeatvizError names what would be right) and each layer's layout is
    decided (`featviz.hooks.bind_layers`).

    Example:
        >>> bound = bind_objective(model, "class:goldfish")
        >>> bound.goals[0].channel
        1
    """
    goals = parse_objectives(objective)
    target = stack(goals) if len(goals) > 1 else goals[0]
    requested = (int(size[0]), int(size[1])) if size is not None else tuple(model.input_size)
    target.resolve_layers(model, _stand_in_reader(model, requested))
    if not target.layers:
        raise FeatvizError(f"objective '{target.name}' reads no layer; it must read at least one (T(layer) in a function)")
    binding = bind_layers(model, target.layers, requested)
    target.bind(model, binding.shapes)
    return BoundObjective(goals, target, binding.size, binding.layouts)
