"""The objective protocol: what a render maximizes, and `Unit`, an objective that reads one channel of a layer.

The algebra that ``+ - * /`` build (flat weighted sums, products, quotients) is here, beside `Objective`;
`stack` is in `featviz.objectives.algebra`, the fused evaluation of a stack of units in `featviz.objectives.fused`,
the checks against a model in `featviz.objectives.checks`.
"""
from __future__ import annotations

import abc
import numbers
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor

from featviz.objectives.checks import Activations, Shapes, check_channel, check_position, layer_shape, read

_NAME_TERMS = 6  # a sum's name lists at most this many terms


class Objective(abc.ABC):
    """What a render maximizes: one value per batch element, higher is better.

    ``layers`` names the activations it reads (``"@image"``: the images in [0, 1] before transforms,
    ``"@output"``: the network's output); calling it on ``{layer: activation}`` returns a ``(B,)`` tensor;
    ``bind(model, shapes)`` checks channels, positions and labels against the model once before a render;
    ``name`` is a short description. Objectives combine with numbers and with each other through
    ``+ - * /``; sums stay flat, so ``sum()`` over thousands of objectives is evaluated in one loop.

    Example:
        >>> from featviz.objectives import channel, total_variation
        >>> goal = channel("blocks.4.0.conv_pwl", 12) - 0.01 * total_variation()
        >>> goal.name
        'blocks.4.0.conv_pwl:12 - 0.01*total_variation(@image)'
        >>> sorted(goal.layers)
        ['@image', 'blocks.4.0.conv_pwl']
        >>> activations, images = torch.rand(4, 112, 8, 8), torch.rand(4, 3, 128, 128)
        >>> goal({"blocks.4.0.conv_pwl": activations, "@image": images}).shape
        torch.Size([4])
    """

    #: True when the value of element j depends on element j's activations only (not on the rest of
    #: the batch, nor on j's position in it); `stack` then evaluates it on each element's slice only.
    elementwise: bool = True

    def __init__(self, layers: Iterable[str], name: str) -> None:
        self._layers = frozenset(layers)
        self._name = name

    @property
    def layers(self) -> frozenset[str]:
        """The activation names this objective reads."""
        return self._layers

    @property
    def name(self) -> str:
        """A short description, e.g. ``"blocks.4.0.conv_pwl:12"`` or ``"class:goldfish"``."""
        return self._name

    @abc.abstractmethod
    def __call__(self, acts: Activations) -> Tensor:
        """The objective's value for each batch element: a ``(B,)`` tensor, higher is better."""

    def bind(self, model: Any, shapes: Shapes) -> None:
        """Check this objective against ``model`` and the activation ``shapes`` of one dry forward pass.

        Raises FeatvizError naming the valid range or the closest layer names. ``model`` may be None when
        nothing needs resolving through it (no class label names).

        Example:
            >>> from featviz.objectives import channel
            >>> channel("blocks.4.0.conv_pwl", 500).bind(model, {"blocks.4.0.conv_pwl": (1, 112, 14, 14)})
            Traceback (most recent call last):
            featviz.errors.FeatvizError: channel 500 is out of range for layer 'blocks.4.0.conv_pwl' with 112 channels; valid: 0-111
        """
        for layer_name in self.layers:
            layer_shape(model, shapes, layer_name)

    def resolve_layers(self, model: Any, read_layer: Callable[[str], Tensor]) -> None:
        """Find the layers this objective reads when they are only known by running it (`FunctionObjective`).

        ``read_layer(name)`` returns a stand-in of what a function's ``T(name)`` returns for one image (zeros of
        its shape); composite objectives pass it to their parts. Objectives that name their layers upfront do nothing.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # ``+ - * /`` build the flat sums, products and quotients defined below.
    def __add__(self, other: Any) -> Objective:
        return combine(self, other, 1.0) if is_operand(other) else NotImplemented

    def __radd__(self, other: Any) -> Objective:
        return combine(self, other, 1.0) if is_number(other) else NotImplemented

    def __sub__(self, other: Any) -> Objective:
        return combine(self, other, -1.0) if is_operand(other) else NotImplemented

    def __rsub__(self, other: Any) -> Objective:
        return combine(scale(self, -1.0), other, 1.0) if is_number(other) else NotImplemented

    def __mul__(self, other: Any) -> Objective:
        if isinstance(other, Objective):
            return Product(self, other)
        return scale(self, float(other)) if is_number(other) else NotImplemented

    def __rmul__(self, other: Any) -> Objective:
        return scale(self, float(other)) if is_number(other) else NotImplemented

    def __truediv__(self, other: Any) -> Objective:
        if isinstance(other, Objective):
            return Quotient(self, other)
        return scale(self, 1.0 / float(other)) if is_number(other) else NotImplemented

    def __rtruediv__(self, other: Any) -> Objective:
        return Quotient(float(other), self) if is_number(other) else NotImplemented

    def __neg__(self) -> Objective:
        return scale(self, -1.0)

    def __pos__(self) -> Objective:
        return self


class Unit(Objective):
    """An objective that reads one channel of one layer: its spatial mean, or its value at one position.

    ``channel()``, ``neuron()`` and ``class_logit()`` build them; sums and stacks of those on the same
    layer are evaluated with one gather (`featviz.objectives.fused`); a subclass is always called. ``point`` is
    False for a spatial mean; for a position, ``x`` (column) and ``y`` (row) are None for the map's centre.
    ``name`` is the objective's name (its shorthand).

    Example:
        >>> from featviz.objectives import channel, neuron
        >>> isinstance(channel("blocks.4.0.conv_pwl", 3), Unit), neuron("blocks.4.0.conv_pwl", 3, x=1, y=2).point
        (True, True)
    """

    def __init__(self, layer: str, channel: int | None, point: bool, x: int | None, y: int | None, name: str) -> None:
        super().__init__((layer,), name)
        self.layer = layer
        self._channel = channel
        self.point = point
        self.x = x
        self.y = y

    @property
    def channel(self) -> int:
        """The channel this unit reads."""
        return self._channel  # type: ignore[return-value]

    def position(self, height: int, width: int) -> tuple[int, int]:
        """``(row, column)`` this unit reads on a ``height`` x ``width`` map (the centre for None)."""
        return (height // 2 if self.y is None else self.y, width // 2 if self.x is None else self.x)

    def __call__(self, acts: Activations) -> Tensor:
        activation = read(acts, self.layer)
        if not self.point:
            return activation[:, self.channel].mean((-2, -1))
        row, column = self.position(activation.shape[-2], activation.shape[-1])
        return activation[:, self.channel, row, column]

    def bind(self, model: Any, shapes: Shapes) -> None:
        shape = layer_shape(model, shapes, self.layer)
        if shape is None:
            return
        check_channel(self.channel, self.layer, shape)
        if self.point:
            check_position(self.x, self.y, self.layer, shape)


class Constant:
    """A constant tensor that follows the activations to their device (and dtype), converted once.

    Objectives are plain callables rather than modules, so their constants move lazily: the first call on a
    new device or dtype converts the original once and keeps the result.

    Example:
        >>> weights = Constant(torch.tensor([0.5, 2.0]))
        >>> activations = torch.rand(2, 8, dtype=torch.float64)
        >>> weights.like(activations)  # on activations' device, in their dtype
        tensor([0.5000, 2.0000], dtype=torch.float64)
    """

    __slots__ = ("source", "_converted")

    def __init__(self, tensor: Tensor) -> None:
        self.source = tensor.detach()
        self._converted = self.source

    def on(self, device: torch.device) -> Tensor:
        """The tensor on ``device``, in its own dtype (for indices)."""
        if self._converted.device != device or self._converted.dtype != self.source.dtype:
            self._converted = self.source.to(device)
        return self._converted

    def like(self, reference: Tensor) -> Tensor:
        """The tensor on ``reference``'s device and in its dtype."""
        converted = self._converted
        if converted.device != reference.device or converted.dtype != reference.dtype:
            converted = self._converted = self.source.to(device=reference.device, dtype=reference.dtype)
        return converted


def fusable(item: Objective) -> bool:
    """Whether ``item`` is one of the library's own units, whose value a gather computes exactly.

    A class opts in by setting ``fusable = True`` in its own body; subclasses do not inherit it.

    Example:
        >>> from featviz.objectives.units import Channel
        >>> class ClampedChannel(Channel):                    # a subclass is called, never gathered
        ...     def __call__(self, acts):
        ...         return super().__call__(acts).clamp(max=4.0)
        >>> fusable(Channel("blocks.4", 3)), fusable(ClampedChannel("blocks.4", 3))
        (True, False)
    """
    return isinstance(item, Unit) and type(item).__dict__.get("fusable", False) is True


class ChannelGroup:
    """Weighted spatial means of several ``channels`` of one ``layer`` (one entry of ``weights`` each), computed
    with one gather.

    Example:
        >>> ChannelGroup("blocks.4", [1, 5], [1.0, -0.5])({"blocks.4": torch.rand(2, 8, 4, 4)}).shape
        torch.Size([2])
    """

    def __init__(self, layer: str, channels: list[int], weights: list[float]) -> None:
        self.layer = layer
        self.count = len(channels)
        self.channels = Constant(torch.tensor(channels, dtype=torch.long))
        self.weights = Constant(torch.tensor(weights, dtype=torch.float64))

    def __call__(self, acts: Activations) -> Tensor:
        activation = read(acts, self.layer)
        channels = self.channels.on(activation.device)
        if 2 * self.count >= activation.shape[1]:
            means = activation.mean((-2, -1)).index_select(1, channels)
        else:
            means = activation.index_select(1, channels).mean((-2, -1))
        return means @ self.weights.like(means)


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
