"""Objectives written as functions, as lucid and lucent users write them: ``f(T) -> (B,)``.

``T(layer)`` returns that layer's activation channels-first, ``(B, C, H, W)``, and a vector layer (one whose
output has no positions: an ``nn.Linear``, pooled features) as ``(B, C)``, as lucent does; ``T("@image")`` gives
the images and ``T("@output")`` a classifier's logits as ``(B, classes)``. A function must return one value per
image, ``(B,)`` (size-1 dimensions after the batch are dropped); any other shape is refused, so that a
broadcasting slip such as a ``(B, C, 1, 1) * (C,)`` product is never optimized silently. The layers a function
reads are found by calling it once on stand-in activations before the render (the dry forward), so nothing
needs declaring.
`wrap_objective` turns a factory of such functions into a factory of objectives, as lucid's decorator does.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from torch import Tensor

from featviz.errors import FeatvizError
from featviz.objectives.base import Objective
from featviz.objectives.checks import Activations, read

ReadLayer = Callable[[str], Tensor]
ObjectiveFunction = Callable[[ReadLayer], Tensor]


class FunctionObjective(Objective):
    """An objective computed by ``function(T)``, where ``T(layer)`` reads a layer's ``(B, C, H, W)`` activation,
    or ``(B, C)`` for a vector layer (logits, pooled features).

    The function returns one value per batch element, ``(B,)``; any other shape raises a FeatvizError. Its layers
    are found when the objective is bound (`featviz.render` does that), by calling it on stand-in activations.

    Example:
        >>> goal = FunctionObjective(lambda T: T("blocks.4.0.conv_pwl")[:, 12].mean((1, 2)), name="my channel")
        >>> result = featviz.render(model, goal - 0.01 * objectives.total_variation(), steps=2, size=64, progress=False)
        >>> result.objectives
        ['my channel - 0.01*total_variation(@image)']
    """

    elementwise = False  # a function may look at the whole batch

    def __init__(self, function: ObjectiveFunction, name: str | None = None) -> None:
        if not callable(function):
            raise FeatvizError(f"an objective function must be callable as f(T), not {type(function).__name__}")
        super().__init__((), name or getattr(function, "__name__", "function"))
        self.function = function
        self._resolved = False
        self._vectors: frozenset[str] = frozenset()  # layers T reads as (B, C)

    def resolve_layers(self, model: Any, read_layer: ReadLayer) -> None:
        found: list[str] = []
        vectors: set[str] = set()

        def recording(layer: str) -> Tensor:
            if not isinstance(layer, str):
                raise FeatvizError(f"T(layer) takes a layer name like 'blocks.4.0.conv_pwl', not {layer!r}")
            value = read_layer(layer)
            found.append(layer)
            if value.dim() == 2:
                vectors.add(layer)
            return value

        self._layers = frozenset()
        self._evaluate(recording)
        self._layers = frozenset(found)
        self._vectors = frozenset(vectors)
        self._resolved = True

    def __call__(self, acts: Activations) -> Tensor:
        if not self._resolved:
            raise FeatvizError(
                f"objective '{self.name}' has not been bound to a model yet; render it, or call "
                "featviz.objectives.binding.bind_objective(model, objective) first"
            )

        def read_layer(layer: str) -> Tensor:
            value = read(acts, layer)
            # Activations arrive channels-first, a vector layer as (B, C, 1, 1); T gives it as (B, C).
            return value.flatten(1) if layer in self._vectors else value

        return self._evaluate(read_layer)

    def _evaluate(self, read_layer: ReadLayer) -> Tensor:
        batches: list[int] = []

        def reading(layer: str) -> Tensor:
            value = read_layer(layer)
            batches.append(value.shape[0])
            return value

        value = self.function(reading)
        if not isinstance(value, Tensor) or value.dim() == 0:
            shown = "a 0-d tensor" if isinstance(value, Tensor) else type(value).__name__
            raise FeatvizError(
                f"objective function '{self.name}' returned {shown}; return one value per image, shape (B,), "
                "e.g. T(layer)[:, channel].mean((1, 2))"
            )
        batch = batches[0] if batches else value.shape[0]
        if value.shape[0] != batch or any(size != 1 for size in value.shape[1:]):
            raise FeatvizError(
                f"objective function '{self.name}' returned shape {tuple(value.shape)} for {batch} image(s); return "
                "one value per image, shape (B,): reduce a map with T(layer)[:, channel].mean((1, 2)) and a vector "
                "layer, which T gives as (B, C), with (T(layer) * weights).sum(-1)"
            )
        return value.reshape(batch)


def wrap_objective(factory: Callable[..., ObjectiveFunction] | None = None):
    """Decorate ``factory``, a function that returns ``f(T)``, so that calling it returns an `Objective` (lucid's
    decorator).

    Works with and without parentheses; the objective is named after the call.

    Example:
        >>> @wrap_objective()
        ... def clamped_channel(layer, n, ceiling=5.0):
        ...     def inner(T):
        ...         return T(layer)[:, n].clamp(max=ceiling).mean((1, 2))
        ...     return inner
        >>> from featviz.objectives import channel
        >>> goal = clamped_channel("blocks.4.0.conv_pwl", 12) + 0.5 * channel("blocks.4.0.conv_pwl", 3)
        >>> goal.name
        "clamped_channel('blocks.4.0.conv_pwl', 12) + 0.5*blocks.4.0.conv_pwl:3"
    """

    def decorate(function: Callable[..., ObjectiveFunction]) -> Callable[..., Objective]:
        @functools.wraps(function)
        def build(*args: Any, **kwargs: Any) -> Objective:
            shown = [repr(value) for value in args] + [f"{key}={value!r}" for key, value in kwargs.items()]
            return FunctionObjective(function(*args, **kwargs), name=f"{function.__name__}({', '.join(shown)})")

        return build

    if factory is None:
        return decorate
    return decorate(factory)


__all__ = ["FunctionObjective", "wrap_objective"]
