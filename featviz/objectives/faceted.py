"""Faceted feature visualization (Goh et al., "Multimodal Neurons in Artificial Neural Networks", Distill 2021).

A unit of a late layer often responds to several kinds of image (its facets). A linear probe fitted on lower
layers ``g`` to tell one kind of image from others (`featviz.concepts.train_probe`) steers the render towards
that facet: for each probe layer, the objective adds ``wᵀ (g ⊙ relu(∂f/∂g))``, the probe's weights applied to
the part of ``g`` that the objective ``f`` currently draws on (the gradient, held constant, acts as a filter).
"""
from __future__ import annotations

import math
import os
import weakref
from typing import Any, Callable, Sequence

import torch
from torch import Tensor
from torch.autograd.graph import GradientEdge, get_gradient_edge

from featviz.errors import FeatvizError, check_int
from featviz.models.probe import Probe, load_probe
from featviz.objectives.algebra import stack
from featviz.objectives.base import Constant, Objective
from featviz.objectives.callables import FunctionObjective
from featviz.objectives.checks import Activations, Shapes, layer_shape, read
from featviz.objectives.shorthand import parse

# Operations that only re-index or convert an activation on its way from the captured layer output to the
# channels-first tensor an objective reads (layouts, autocast's float copy, a copy made before an in-place change).
_RELAYING_NODES = (
    "PermuteBackward", "TransposeBackward", "ViewBackward", "UnsafeViewBackward", "ReshapeAliasBackward",
    "SliceBackward", "SelectBackward", "UnsqueezeBackward", "SqueezeBackward", "ToCopyBackward", "CloneBackward",
    "AsStridedBackward", "AliasBackward", "ExpandBackward",
)
_MAX_RELAYS = 8


def _strength_range(strength: Any) -> tuple[float, float]:
    values = strength if isinstance(strength, (tuple, list)) else (strength, strength)
    try:
        low, high = (float(value) for value in values)
    except (TypeError, ValueError):
        raise FeatvizError(
            f"facet strength must be a number or a (low, high) pair of numbers, e.g. (0.0, 8.0), not {strength!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise FeatvizError(f"facet strength must be finite, got ({low:g}, {high:g})")
    return low, high


class Facet(Objective):
    """``f + s_i * mean over probe layers of wᵀ (g ⊙ relu(stopgrad ∂f/∂g))``; built by ``facet()``.

    ``f`` is the wrapped objective, ``g`` each probe layer's channels-first activation, ``w`` the probe's
    weights for that layer (one per channel, applied at every position and summed over positions), and ``s_i``
    image ``i``'s strength. The gradient is that of the batch's summed ``f``, taken inside each evaluation
    without building a graph of its own, and detached.

    Example:
        >>> from featviz.concepts import Probe
        >>> probe = Probe.from_weights(model, {"blocks.4.2": torch.ones(112)}, name="bright")
        >>> Facet(objectives.channel("blocks.5.3", 17), probe, strength=(0.0, 8.0), images=4).name
        'facet(blocks.5.3:17, bright, 0-8)'
    """

    elementwise = False  # the strength depends on the element's position in the batch

    def __init__(self, objective: Objective, probe: Probe, strength: tuple[float, float], images: int | None) -> None:
        low, high = strength
        shown = f"{low:g}" if low == high else f"{low:g}-{high:g}"
        super().__init__(objective.layers | frozenset(probe.layers), f"facet({objective.name}, {probe.name}, {shown})")
        self.objective = objective
        self.probe = probe
        self.strength = (low, high)
        self.images = images
        self.probe_layers: tuple[str, ...] = tuple(probe.layers)
        self._weights = {layer: Constant(probe.weights[layer].view(1, -1, 1, 1)) for layer in self.probe_layers}
        self._relays: dict[str, tuple[str, ...]] = {}  # probe layer -> relaying steps above its captured output
        self._strength_cache: dict[tuple[Any, ...], Tensor] = {}
        self._checked: weakref.ref | None = None  # the model the probe was last found to belong to

    def resolve_layers(self, model: Any, read_layer: Callable[[str], Tensor]) -> None:
        self._check_model(model)  # before the probe's layers are looked up in a model they may not belong to
        self.objective.resolve_layers(model, read_layer)
        self._layers = self.objective.layers | frozenset(self.probe_layers)

    def bind(self, model: Any, shapes: Shapes) -> None:
        self.objective.bind(model, shapes)
        self._check_model(model)
        for layer in self.probe_layers:
            shape = layer_shape(model, shapes, layer)
            channels = self.probe.weights[layer].numel()
            if shape is not None and shape[1] != channels:
                raise FeatvizError(
                    f"the probe has {channels} weights for layer '{layer}' but the layer has {shape[1]} channels; "
                    "use a probe fitted on this model"
                )

    def _check_model(self, model: Any) -> None:
        """The probe's `check_model`, once per model object."""
        if model is None or (self._checked is not None and self._checked() is model):
            return
        self.probe.check_model(model)
        self._checked = weakref.ref(model)

    def strengths(self, batch: int) -> Tensor:
        """Each batch element's strength: image ``i`` of ``B`` gets ``low + (high - low) * i / (B - 1)``.

        The batch holds ``views * B`` elements in view-major order; ``B`` is ``images``, or the number of
        objectives of a wrapped `stack`, or the whole batch.

        Example:
            >>> from featviz.concepts import Probe
            >>> probe = Probe.from_weights(model, {"blocks.4.2": torch.ones(112)})
            >>> Facet(objectives.channel("blocks.5.3", 0), probe, (0.0, 3.0), images=4).strengths(8)
            tensor([0., 1., 2., 3., 0., 1., 2., 3.], dtype=torch.float64)
        """
        images = self.images or len(getattr(self.objective, "objectives", ())) or batch
        if batch % images:
            raise FeatvizError(
                f"{self.name} was told the batch holds {images} images, but {batch} elements are not a whole "
                f"number of views of {images} images; pass images=<images per batch>"
            )
        low, high = self.strength
        index = torch.arange(batch, dtype=torch.float64) % images
        return low + (high - low) * index / max(images - 1, 1)

    def __call__(self, acts: Activations) -> Tensor:
        value = self.objective(acts)
        activations = [read(acts, layer) for layer in self.probe_layers]
        filters = self._filters(value, activations)
        facet_value = 0.0
        for layer, activation, gradient_filter in zip(self.probe_layers, activations, filters):
            weights = self._weights[layer].like(activation)
            facet_value = facet_value + (activation * gradient_filter * weights).sum((1, 2, 3))
        key = (value.shape[0], value.device, value.dtype)
        strengths = self._strength_cache.get(key)
        if strengths is None:
            strengths = self._strength_cache[key] = self.strengths(value.shape[0]).to(device=value.device, dtype=value.dtype)
        return value + strengths * facet_value / len(self.probe_layers)

    def _filters(self, value: Tensor, activations: list[Tensor]) -> list[Tensor]:
        """``relu(∂ sum(f) / ∂g)`` for every probe layer, detached.

        The objective reads each layer as a tensor derived from the captured layer output (its channels-first
        view, a float copy under autocast); ``f`` depends on that output, not on the derived tensor, so the
        gradient is taken at the output's place in the graph and carried to the derived tensor's shape.
        """
        if not value.requires_grad:
            raise FeatvizError(
                f"{self.name} needs the objective's gradient, which is only there with gradients enabled (in a "
                "render); to measure the objective alone, use the facet's .objective"
            )
        for layer, activation in zip(self.probe_layers, activations):
            if not activation.requires_grad:
                raise self._not_upstream(layer)
        edges = [self._edge(layer, activation) for layer, activation in zip(self.probe_layers, activations)]
        found = None
        if all(edge is not None for edge in edges):
            found = torch.autograd.grad(value.sum(), edges, retain_graph=True, allow_unused=True)
        if found is None or any(gradient is None for gradient in found):
            self._relays = {layer: self._find_relays(value, layer, activation)
                            for layer, activation in zip(self.probe_layers, activations)}
            edges = [self._edge(layer, activation) for layer, activation in zip(self.probe_layers, activations)]
            found = torch.autograd.grad(value.sum(), edges, retain_graph=True, allow_unused=True)
        filters = []
        for layer, activation, edge, gradient in zip(self.probe_layers, activations, edges, found):
            if gradient is None:
                raise self._not_upstream(layer)
            if self._relays.get(layer):
                gradient = _carry(gradient, edge, activation)
            filters.append(torch.relu(gradient).detach())
        return filters

    def _edge(self, layer: str, activation: Tensor) -> GradientEdge | None:
        """Where ``activation``'s captured layer output sits in the graph: past the relaying steps found on an
        earlier call, when this graph has the same ones (None when it has not)."""
        edge = get_gradient_edge(activation)
        for expected in self._relays.get(layer, ()):
            following = _single_input(edge.node) if type(edge.node).__name__ == expected else None
            if following is None:
                return None
            edge = GradientEdge(*following)
        return edge

    def _find_relays(self, value: Tensor, layer: str, activation: Tensor) -> tuple[str, ...]:
        """The relaying steps (their node names) between ``activation`` and the tensor ``value`` depends on."""
        candidates = [get_gradient_edge(activation)]
        names: list[str] = []
        node = activation.grad_fn
        while node is not None and len(names) < _MAX_RELAYS and type(node).__name__.rstrip("0123456789") in _RELAYING_NODES:
            following = _single_input(node)
            if following is None:
                break
            names.append(type(node).__name__)
            candidates.append(GradientEdge(*following))
            node = following[0]
        found = torch.autograd.grad(value.sum(), candidates, retain_graph=True, allow_unused=True)
        for depth, gradient in enumerate(found):
            if gradient is not None:
                return tuple(names[:depth])
        raise self._not_upstream(layer)

    def _not_upstream(self, layer: str) -> FeatvizError:
        return FeatvizError(
            f"{self.name}: the objective does not depend on probe layer '{layer}'; fit the probe on layers that "
            f"come before the objective's layers ({', '.join(sorted(self.objective.layers))})"
        )


def _single_input(node: Any) -> tuple[Any, int] | None:
    inputs = [(following, index) for following, index in node.next_functions if following is not None]
    return inputs[0] if len(inputs) == 1 else None


def _carry(gradient: Tensor, edge: GradientEdge, activation: Tensor) -> Tensor:
    """``gradient`` (at ``edge``) re-indexed the way ``activation`` was derived from the tensor at ``edge``.

    The derivation is linear (views, copies, casts), so applying it to ``gradient`` is the transpose of its
    backward: differentiate the backward, ``u -> Lᵀ u``, with respect to ``u``, in direction ``gradient``.
    """
    direction = torch.zeros_like(activation, requires_grad=True)
    with torch.enable_grad():
        (transposed,) = torch.autograd.grad(activation, edge, grad_outputs=direction, create_graph=True)
        (carried,) = torch.autograd.grad(transposed, direction, grad_outputs=gradient.to(transposed.dtype))
    return carried


def facet(
    objective: Objective | str | Callable,
    probe: Probe | str | os.PathLike,
    strength: float | Sequence[float] = 20.0,
    *,
    images: int | None = None,
) -> Objective:
    """Steer ``objective`` towards the facet a linear ``probe`` detects (faceted feature visualization).

    Maximizes ``f + s * mean over the probe's layers of wᵀ (g ⊙ relu(∂f/∂g))`` where ``f`` is ``objective``
    (an Objective, a shorthand string or a function ``f(T)``), ``g`` a probe layer's activation (captured, not
    detached, while ``f`` is computed), ``w`` the probe's weights on it and ``∂f/∂g`` the gradient of the
    batch's summed ``f``, held constant. ``probe`` is a `featviz.concepts.Probe` or the path of a saved one
    (checked against the model when the render binds the objective); its layers must come before the
    objective's. ``strength`` is ``s`` for every image, or ``(low, high)``: image ``i`` of ``B`` gets ``low +
    (high - low) * i / (B - 1)`` (the first image ``low``, the last ``high``). With K views per image pass
    ``images=B``; a wrapped `stack` of N objectives counts N images. To facet many units in one render, facet
    their stack (one gradient for the batch) rather than stacking faceted units. Composes with ``+ - * /``,
    penalties and batch objectives like any objective.

    Example:
        >>> from featviz.concepts import Probe, load_probe
        >>> Probe.from_weights(model, {"blocks.4.2": torch.ones(112)}, name="bright").save("bright.pt")
        PosixPath('bright.pt')
        >>> probe = load_probe("bright.pt", model)  # or train_probe(model, layers, facet_folder, other_folder)
        >>> goal = facet("blocks.5.3:17", probe, strength=(0.0, 8.0)) - 0.01 * objectives.total_variation()
        >>> featviz.render(model, goal, batch=2, size=64, steps=2, progress=False).images.shape
        torch.Size([2, 3, 64, 64])
    """
    if isinstance(probe, (str, os.PathLike)):
        probe = load_probe(probe)
    if not isinstance(probe, Probe):
        raise FeatvizError(
            f"facet() takes a featviz.concepts.Probe or the path of a saved probe, not {type(probe).__name__}"
        )
    if isinstance(objective, str):
        parsed = parse(objective)
        objective = parsed[0] if len(parsed) == 1 else stack(parsed)
    elif not isinstance(objective, Objective) and callable(objective):
        objective = FunctionObjective(objective)
    if not isinstance(objective, Objective):
        raise FeatvizError(
            f"facet() takes an objective (an Objective, a string like 'blocks.5.3:17' or a function f(T)), "
            f"not {type(objective).__name__}"
        )
    count = check_int(images, "images", 0, allow_none=True)
    if count == 0:
        raise FeatvizError("images must be at least 1 (the number of distinct images in the batch), got 0")
    return Facet(objective, probe, _strength_range(strength), count)


__all__ = ["Facet", "facet"]
