"""Objective algebra: weighted sums (kept flat), products, quotients, and `stack` (one objective per image)."""
from __future__ import annotations

import numbers
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from featviz.errors import FeatvizError
from featviz.objectives.base import Constant, Objective
from featviz.objectives.checks import Activations, Shapes, read
from featviz.objectives.fused import ChannelGroup, UnitGather, fusable

_NAME_TERMS = 6  # a sum's name lists at most this many terms


class Sum(Objective):
    """A weighted sum of objectives plus a constant, kept flat: ``sum(w_i * o_i) + constant`` (``terms`` o_i,
    ``weights`` w_i).

    Built by ``+``, ``-``, unary ``-`` and multiplication or division by numbers; adding to a sum appends
    to its term list instead of nesting, so sums of any length evaluate (and bind) in one loop. Channel
    terms of the same layer are evaluated together with one gather.

    Example:
        >>> from featviz.objectives import channel
        >>> total = sum(channel("blocks.4.0.conv_pwl", c) for c in range(80))
        >>> len(total.terms)
        80
    """

    def __init__(self, terms: tuple[Objective, ...], weights: tuple[float, ...], constant: float = 0.0) -> None:
        # Layers, name and evaluation plan are computed on first use: building a sum of n terms one
        # addition at a time must stay cheap.
        self.terms = terms
        self.weights = weights
        self.constant = constant
        self._layers_cache: frozenset[str] | None = None
        self._name_cache: str | None = None
        self._elementwise: bool | None = None
        self._plan: _SumPlan | None = None

    @property
    def layers(self) -> frozenset[str]:
        if self._layers_cache is None:
            self._layers_cache = frozenset().union(*(term.layers for term in self.terms))
        return self._layers_cache

    @property
    def name(self) -> str:
        if self._name_cache is None:
            self._name_cache = _sum_name(self.terms, self.weights, self.constant)
        return self._name_cache

    @property
    def elementwise(self) -> bool:  # type: ignore[override]
        if self._elementwise is None:
            self._elementwise = all(term.elementwise for term in self.terms)
        return self._elementwise

    def __call__(self, acts: Activations) -> Tensor:
        plan = self._plan if self._plan is not None else self._make_plan()
        contributions = [group(acts) for group in plan.groups]
        if len(plan.terms) == 1:
            value = plan.terms[0](acts)
            weight = plan.term_weights[0]
            contributions.append(value if weight == 1.0 else value * weight)
        elif plan.terms:
            values = torch.stack([term(acts) for term in plan.terms])
            contributions.append(plan.weight_tensor.like(values) @ values)
        total = contributions[0]
        for contribution in contributions[1:]:
            total = total + contribution
        return total + self.constant if self.constant else total

    def bind(self, model: Any, shapes: Shapes) -> None:
        for term in self.terms:
            term.bind(model, shapes)
        self._plan = None  # binding may resolve channels (class labels) the plan reads

    def resolve_layers(self, model: Any, read_layer: Callable[[str], Tensor]) -> None:
        for term in self.terms:
            term.resolve_layers(model, read_layer)
        self._layers_cache = None

    def _make_plan(self) -> _SumPlan:
        by_layer: dict[str, list[int]] = {}
        for index, term in enumerate(self.terms):
            if fusable(term) and not term.point:  # type: ignore[attr-defined]
                by_layer.setdefault(term.layer, []).append(index)
        grouped: set[int] = set()
        groups = []
        for layer_name, indices in by_layer.items():
            if len(indices) > 1:
                channels = [self.terms[i].channel for i in indices]  # type: ignore[attr-defined]
                groups.append(ChannelGroup(layer_name, channels, [self.weights[i] for i in indices]))
                grouped.update(indices)
        rest = [i for i in range(len(self.terms)) if i not in grouped]
        self._plan = _SumPlan(groups, [self.terms[i] for i in rest], [self.weights[i] for i in rest])
        return self._plan


class Product(Objective):
    """The element-wise product of two objectives (``a * b``: ``left * right``).

    Example:
        >>> from featviz.objectives import channel
        >>> (channel("conv_head", 1) * channel("conv_head", 2)).name
        'conv_head:1 * conv_head:2'
    """

    def __init__(self, left: Objective, right: Objective) -> None:
        super().__init__(left.layers | right.layers, f"{_wrap(left.name)} * {_wrap(right.name)}")
        self.left = left
        self.right = right
        self.elementwise = left.elementwise and right.elementwise

    def __call__(self, acts: Activations) -> Tensor:
        return self.left(acts) * self.right(acts)

    def resolve_layers(self, model: Any, read_layer: Callable[[str], Tensor]) -> None:
        self.left.resolve_layers(model, read_layer)
        self.right.resolve_layers(model, read_layer)
        self._layers = self.left.layers | self.right.layers

    def bind(self, model: Any, shapes: Shapes) -> None:
        self.left.bind(model, shapes)
        self.right.bind(model, shapes)


class Quotient(Objective):
    """The element-wise quotient of an objective (or a number) by an objective (``a / b``, ``2 / b``:
    ``numerator / denominator``).

    Example:
        >>> from featviz.objectives import channel
        >>> (channel("conv_head", 1) / channel("conv_head", 2)).name
        'conv_head:1 / conv_head:2'
    """

    def __init__(self, numerator: Objective | float, denominator: Objective) -> None:
        numerator_layers = numerator.layers if isinstance(numerator, Objective) else frozenset()
        numerator_name = numerator.name if isinstance(numerator, Objective) else _format_number(numerator)
        super().__init__(numerator_layers | denominator.layers, f"{_wrap(numerator_name)} / {_wrap(denominator.name)}")
        self.numerator = numerator
        self.denominator = denominator
        self.elementwise = denominator.elementwise and (not isinstance(numerator, Objective) or numerator.elementwise)

    def __call__(self, acts: Activations) -> Tensor:
        numerator = self.numerator(acts) if isinstance(self.numerator, Objective) else self.numerator
        return numerator / self.denominator(acts)

    def resolve_layers(self, model: Any, read_layer: Callable[[str], Tensor]) -> None:
        self.denominator.resolve_layers(model, read_layer)
        layers = self.denominator.layers
        if isinstance(self.numerator, Objective):
            self.numerator.resolve_layers(model, read_layer)
            layers = layers | self.numerator.layers
        self._layers = layers

    def bind(self, model: Any, shapes: Shapes) -> None:
        if isinstance(self.numerator, Objective):
            self.numerator.bind(model, shapes)
        self.denominator.bind(model, shapes)


class Stack(Objective):
    """N objectives rendered at once, one per image: element ``j`` of the batch gets objective ``j % N``.

    The batch holds ``N * K`` elements in view-major order (``k * N + b`` is view ``k`` of image ``b``).
    Built by ``stack()``.

    Example:
        >>> from featviz.objectives import channel
        >>> gallery = stack([channel("blocks.4.0.conv_pwl", c) for c in range(64)])
        >>> activations = {"blocks.4.0.conv_pwl": torch.rand(64 * 2, 112, 4, 4)}   # K = 2 views of 64 images
        >>> gallery(activations).shape
        torch.Size([128])
    """

    elementwise = False  # which objective applies depends on the element's position in the batch

    def __init__(self, objectives: Sequence[Objective]) -> None:
        objectives = tuple(objectives)
        if not objectives:
            raise FeatvizError("stack() needs at least one objective; pass a list like [channel('layer', 0), ...]")
        for item in objectives:
            if not isinstance(item, Objective):
                raise FeatvizError(f"stack() takes objectives, got {type(item).__name__}; parse strings with parse() first")
        layers = frozenset().union(*(item.layers for item in objectives))
        super().__init__(layers, _stack_name(objectives))
        self.objectives = objectives
        self._gather = UnitGather.build(objectives)
        self._batch_layer = min(layers) if layers else None

    def __call__(self, acts: Activations) -> Tensor:
        count = len(self.objectives)
        if self._batch_layer is None:
            raise FeatvizError("stack() of objectives that read no layer cannot tell the batch size")
        batch = read(acts, self._batch_layer).shape[0]
        if batch % count:
            raise FeatvizError(
                f"a stack of {count} objectives needs a batch of a multiple of {count} elements "
                f"(one per objective, times the views), got {batch}"
            )
        if self._gather is not None:
            return self._gather(acts, batch // count)
        values = []
        for index, item in enumerate(self.objectives):
            if item.elementwise:
                values.append(item({name: read(acts, name)[index::count] for name in item.layers}))
            else:
                values.append(item(acts)[index::count])
        # values[b][k] belongs at k * N + b: stacking on dim 1 gives a (K, N) grid in exactly that order.
        return torch.stack(values, dim=1).reshape(-1)

    def bind(self, model: Any, shapes: Shapes) -> None:
        for item in self.objectives:
            item.bind(model, shapes)
        if self._gather is not None:
            self._gather = UnitGather(self.objectives)  # type: ignore[arg-type]  # channels may have been resolved

    def resolve_layers(self, model: Any, read_layer: Callable[[str], Tensor]) -> None:
        for item in self.objectives:
            item.resolve_layers(model, read_layer)
        self._layers = frozenset().union(*(item.layers for item in self.objectives))
        self._batch_layer = min(self._layers) if self._layers else None


def stack(objectives: Sequence[Objective]) -> Objective:
    """Render N objectives at once, one per batch element: element ``j`` is scored by objective ``j % N``.

    The batch holds ``N * K`` elements in view-major order (index ``k * N + b`` is view ``k`` of image
    ``b``). Units (channels, neurons) of one layer are evaluated with a single gather, so a gallery of 64
    channels costs about as much as one; other objectives are evaluated on their own elements only.

    Example:
        >>> from featviz.objectives import channel
        >>> gallery = stack([channel("blocks.4.0.conv_pwl", c) for c in range(16)])
        >>> activations = {"blocks.4.0.conv_pwl": torch.rand(16, 112, 4, 4)}     # one view of 16 images
        >>> values = gallery(activations)
        >>> torch.allclose(values[3], activations["blocks.4.0.conv_pwl"][3, 3].mean())   # image 3: channel 3
        True
    """
    return Stack(objectives)


class _SumPlan:
    """How a Sum evaluates: grouped channel terms plus the remaining terms with their weights."""

    def __init__(self, groups: list[ChannelGroup], terms: list[Objective], weights: list[float]) -> None:
        self.groups = groups
        self.terms = terms
        self.term_weights = weights
        self.weight_tensor = Constant(torch.tensor(weights, dtype=torch.float64))


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number an objective can be combined with."""
    return isinstance(value, numbers.Real)


def is_operand(value: Any) -> bool:
    """Whether ``value`` can be added to or subtracted from an objective: an objective or a number."""
    return isinstance(value, Objective) or is_number(value)


def _format_number(value: float) -> str:
    return f"{value:g}"


def _wrap(name: str) -> str:
    return f"({name})" if " " in name else name


def _parts(item: Objective) -> tuple[tuple[Objective, ...], tuple[float, ...], float]:
    if isinstance(item, Sum):
        return item.terms, item.weights, item.constant
    return (item,), (1.0,), 0.0


def scale(item: Objective, factor: float) -> Sum:
    """``factor * item`` as a flat Sum."""
    terms, weights, constant = _parts(item)
    return Sum(terms, tuple(weight * factor for weight in weights), constant * factor)


def combine(left: Objective, right: Objective | float, factor: float) -> Sum:
    """``left + factor * right`` as one flat Sum (tuple concatenation only: no per-term Python work)."""
    terms, weights, constant = _parts(left)
    if not isinstance(right, Objective):
        return Sum(terms, weights, constant + factor * float(right))
    right_terms, right_weights, right_constant = _parts(right)
    if factor != 1.0:
        right_weights = tuple(weight * factor for weight in right_weights)
    return Sum(terms + right_terms, weights + right_weights, constant + factor * right_constant)


def _sum_name(terms: Sequence[Objective], weights: Sequence[float], constant: float) -> str:
    pieces = []
    shown = len(terms) if len(terms) <= _NAME_TERMS else _NAME_TERMS // 2
    for term, weight in zip(terms[:shown], weights[:shown]):
        magnitude = abs(weight)
        body = term.name if magnitude == 1.0 else f"{_format_number(magnitude)}*{_wrap(term.name)}"
        pieces.append(("-" if weight < 0 else "+", body))
    if shown < len(terms):
        pieces.append(("", f"... ({len(terms)} terms)"))
    if constant:
        pieces.append(("-" if constant < 0 else "+", _format_number(abs(constant))))
    if not pieces:
        return "0"
    sign, body = pieces[0]
    text = f"-{body}" if sign == "-" else body
    for sign, body in pieces[1:]:
        text += f" {sign} {body}" if sign else f" {body}"
    return text


def _stack_name(objectives: Sequence[Objective]) -> str:
    if len(objectives) <= 4:
        return "stack(" + ", ".join(item.name for item in objectives) + ")"
    shown = ", ".join(item.name for item in objectives[:2])
    return f"stack({shown}, ... {len(objectives)} objectives)"
