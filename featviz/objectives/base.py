"""Objectives: what a render maximizes, their algebra (+ - * /) and `stack` (one objective per image)."""
from __future__ import annotations

import abc
import numbers
import operator
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

from featviz.errors import FeatvizError, suggestion
from featviz.hooks.capture import IMAGE
from featviz.hooks.capture import RESERVED as RESERVED_LAYERS
from featviz.hooks.layout import channel_count, channels_first, spatial_size

Activations = Mapping[str, Tensor]
Shapes = Mapping[str, Sequence[int]]

_NAME_TERMS = 6  # a sum's name lists at most this many terms


class Objective(abc.ABC):
    """What a render maximizes: one value per batch element, higher is better.

    ``layers`` names the activations it reads (``"@image"``: the images in [0, 1] before transforms,
    ``"@output"``: the network's output); calling it on ``{layer: activation}`` returns a ``(B,)`` tensor;
    ``bind(model, shapes)`` checks channels, positions and labels against the model once before a render;
    ``name`` is a short description. Objectives combine with numbers and with each other through
    ``+ - * /``; sums stay flat, so ``sum()`` over thousands of objectives is evaluated in one loop.

    Example:
        >>> goal = channel("blocks.4.0.conv_pwl", 12) - 0.01 * total_variation()
        >>> goal.name
        'blocks.4.0.conv_pwl:12 - 0.01*total_variation(@image)'
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
            >>> channel("blocks.4.0.conv_pwl", 500).bind(model, {"blocks.4.0.conv_pwl": (1, 80, 14, 14)})
            FeatvizError: channel 500 is out of range for layer 'blocks.4.0.conv_pwl' with 80 channels; valid: 0-79
        """
        for layer_name in self.layers:
            layer_shape(model, shapes, layer_name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def __add__(self, other: Any) -> Objective:
        if isinstance(other, Objective) or _is_number(other):
            return _combine(self, other, 1.0)
        return NotImplemented

    def __radd__(self, other: Any) -> Objective:
        if _is_number(other):
            return _combine(self, other, 1.0)
        return NotImplemented

    def __sub__(self, other: Any) -> Objective:
        if isinstance(other, Objective) or _is_number(other):
            return _combine(self, other, -1.0)
        return NotImplemented

    def __rsub__(self, other: Any) -> Objective:
        if _is_number(other):
            return _combine(_scale(self, -1.0), other, 1.0)
        return NotImplemented

    def __mul__(self, other: Any) -> Objective:
        if isinstance(other, Objective):
            return Product(self, other)
        if _is_number(other):
            return _scale(self, float(other))
        return NotImplemented

    def __rmul__(self, other: Any) -> Objective:
        if _is_number(other):
            return _scale(self, float(other))
        return NotImplemented

    def __truediv__(self, other: Any) -> Objective:
        if isinstance(other, Objective):
            return Quotient(self, other)
        if _is_number(other):
            return _scale(self, 1.0 / float(other))
        return NotImplemented

    def __rtruediv__(self, other: Any) -> Objective:
        if _is_number(other):
            return Quotient(float(other), self)
        return NotImplemented

    def __neg__(self) -> Objective:
        return _scale(self, -1.0)

    def __pos__(self) -> Objective:
        return self


class Unit(Objective):
    """An objective that reads one channel of one layer: its spatial mean, or its value at one position.

    ``channel()``, ``neuron()`` and ``class_logit()`` build them; sums and stacks of units on the same
    layer are evaluated with one gather instead of one evaluation per unit, so subclasses must keep
    ``__call__``'s meaning. ``point`` is False for a spatial mean; for a position, ``x`` (column) and ``y``
    (row) are None for the map's centre.

    Example:
        >>> isinstance(channel("blocks.4.0.conv_pwl", 3), Unit)
        True
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
        activation = unit_map(acts, self.layer)
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


class Sum(Objective):
    """A weighted sum of objectives plus a constant, kept flat: ``sum(w_i * o_i) + constant``.

    Built by ``+``, ``-``, unary ``-`` and multiplication or division by numbers; adding to a sum appends
    to its term list instead of nesting, so sums of any length evaluate (and bind) in one loop. Channel
    terms of the same layer are evaluated together with one gather.

    Example:
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

    def _make_plan(self) -> _SumPlan:
        by_layer: dict[str, list[int]] = {}
        for index, term in enumerate(self.terms):
            if isinstance(term, Unit) and not term.point:
                by_layer.setdefault(term.layer, []).append(index)
        grouped: set[int] = set()
        groups = []
        for layer_name, indices in by_layer.items():
            if len(indices) > 1:
                channels = [self.terms[i].channel for i in indices]  # type: ignore[attr-defined]
                groups.append(_ChannelGroup(layer_name, channels, [self.weights[i] for i in indices]))
                grouped.update(indices)
        rest = [i for i in range(len(self.terms)) if i not in grouped]
        self._plan = _SumPlan(groups, [self.terms[i] for i in rest], [self.weights[i] for i in rest])
        return self._plan


class Product(Objective):
    """The element-wise product of two objectives (``a * b``).

    Example:
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

    def bind(self, model: Any, shapes: Shapes) -> None:
        self.left.bind(model, shapes)
        self.right.bind(model, shapes)


class Quotient(Objective):
    """The element-wise quotient of an objective (or a number) by an objective (``a / b``, ``2 / b``).

    Example:
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

    def bind(self, model: Any, shapes: Shapes) -> None:
        if isinstance(self.numerator, Objective):
            self.numerator.bind(model, shapes)
        self.denominator.bind(model, shapes)


class Stack(Objective):
    """N objectives rendered at once, one per image: element ``j`` of the batch gets objective ``j % N``.

    The batch holds ``N * K`` elements in view-major order (``k * N + b`` is view ``k`` of image ``b``).
    Built by ``stack()``.

    Example:
        >>> gallery = stack([channel("blocks.4.0.conv_pwl", c) for c in range(64)])
        >>> gallery(activations).shape  # activations hold 64 * K elements
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
        self._gather = _UnitGather.build(objectives)
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
            self._gather = _UnitGather(self.objectives)  # type: ignore[arg-type]  # channels may have been resolved


def stack(objectives: Sequence[Objective]) -> Objective:
    """Render N objectives at once, one per batch element: element ``j`` is scored by objective ``j % N``.

    The batch holds ``N * K`` elements in view-major order (index ``k * N + b`` is view ``k`` of image
    ``b``). Units (channels, neurons) of one layer are evaluated with a single gather, so a gallery of 64
    channels costs about as much as one; other objectives are evaluated on their own elements only.

    Example:
        >>> gallery = stack([channel("blocks.4.0.conv_pwl", c) for c in range(16)])
        >>> values = gallery(activations)  # activations hold 16 * K elements; shape (16 * K,)
    """
    return Stack(objectives)


class _SumPlan:
    """How a Sum evaluates: grouped channel terms plus the remaining terms with their weights."""

    def __init__(self, groups: list[_ChannelGroup], terms: list[Objective], weights: list[float]) -> None:
        self.groups = groups
        self.terms = terms
        self.term_weights = weights
        self.weight_tensor = Constant(torch.tensor(weights, dtype=torch.float64))


class _ChannelGroup:
    """Weighted spatial means of several channels of one layer, computed with one gather."""

    def __init__(self, layer: str, channels: list[int], weights: list[float]) -> None:
        self.layer = layer
        self.count = len(channels)
        self.channels = Constant(torch.tensor(channels, dtype=torch.long))
        self.weights = Constant(torch.tensor(weights, dtype=torch.float64))

    def __call__(self, acts: Activations) -> Tensor:
        activation = unit_map(acts, self.layer)
        channels = self.channels.on(activation.device)
        if 2 * self.count >= activation.shape[1]:
            means = activation.mean((-2, -1)).index_select(1, channels)
        else:
            means = activation.index_select(1, channels).mean((-2, -1))
        return means @ self.weights.like(means)


class _UnitGather:
    """A stack of units of one layer (all spatial means, or all positions) read with one gather."""

    def __init__(self, units: Sequence[Unit]) -> None:
        self.units = units
        self.layer = units[0].layer
        self.point = units[0].point
        self.elements = Constant(torch.arange(len(units)))
        self._channels: Constant | None = None  # read on first use: class labels resolve at bind time
        self._positions: dict[tuple[int, int, torch.device], tuple[Tensor, Tensor]] = {}

    @classmethod
    def build(cls, objectives: Sequence[Objective]) -> _UnitGather | None:
        """The gather for ``objectives`` when all are plain units of one layer and one kind, else None."""
        first = objectives[0]
        if not isinstance(first, Unit):
            return None
        for item in objectives:
            if not isinstance(item, Unit) or item.layer != first.layer or item.point != first.point:
                return None
        return cls(objectives)  # type: ignore[arg-type]

    def __call__(self, acts: Activations, views: int) -> Tensor:
        activation = unit_map(acts, self.layer)
        device = activation.device
        grid = activation.unflatten(0, (views, len(self.units)))  # (K, N, C, H, W)
        if self._channels is None:
            self._channels = Constant(torch.tensor([unit.channel for unit in self.units], dtype=torch.long))
        elements, channels = self.elements.on(device), self._channels.on(device)
        if not self.point:
            return grid[:, elements, channels].mean((-2, -1)).reshape(-1)
        rows, columns = self._rows_columns(grid.shape[-2], grid.shape[-1], device)
        return grid[:, elements, channels, rows, columns].reshape(-1)

    def _rows_columns(self, height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor]:
        key = (height, width, device)
        found = self._positions.get(key)
        if found is None:
            rows, columns = zip(*(unit.position(height, width) for unit in self.units))
            found = (torch.tensor(rows, device=device), torch.tensor(columns, device=device))
            self._positions[key] = found
        return found


class Constant:
    """A constant tensor that follows the activations to their device (and dtype), converted once.

    Objectives are plain callables rather than modules, so their constants move lazily: the first call on a
    new device or dtype converts the original once and keeps the result.

    Example:
        >>> weights = Constant(torch.tensor([0.5, 2.0]))
        >>> weights.like(activations)  # on activations' device, in their dtype
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


def read(acts: Activations, layer: str) -> Tensor:
    """``acts[layer]``, or a FeatvizError naming the captured layers when it is missing.

    Example:
        >>> read({"conv_head": activation}, "conv_head").shape
        torch.Size([2, 1280, 7, 7])
    """
    try:
        return acts[layer]
    except KeyError:
        raise FeatvizError(
            f"no activation for layer '{layer}' was captured{suggestion(layer, acts)}; "
            "capture the objective's layers (objective.layers)"
        ) from None


def unit_map(acts: Activations, layer: str) -> Tensor:
    """The activation of ``layer`` as a ``(B, C, H, W)`` view (images are always NCHW).

    Example:
        >>> unit_map({"blocks.5": torch.zeros(2, 197, 384)}, "blocks.5").shape
        torch.Size([2, 384, 14, 14])
    """
    return channels_first(read(acts, layer), "nchw" if layer == IMAGE else None)


def layer_shape(model: Any, shapes: Shapes, layer: str) -> Sequence[int] | None:
    """The dry-forward shape of ``layer``; None for a reserved name (``@image``, ``@output``) left out.

    Raises FeatvizError with the closest layer names of the model when a regular layer is missing.

    Example:
        >>> layer_shape(model, {"conv_head": (1, 1280, 7, 7)}, "conv_head")
        (1, 1280, 7, 7)
    """
    shape = shapes.get(layer)
    if shape is not None:
        return shape
    if layer in RESERVED_LAYERS:
        return None
    candidates = set(shapes) - RESERVED_LAYERS
    network = getattr(model, "network", model)
    if isinstance(network, nn.Module):
        candidates.update(name for name, _ in network.named_modules() if name)
    raise FeatvizError(f"layer '{layer}' is not in the model{suggestion(layer, candidates)}; list layers with `featviz layers MODEL`")


def layout_shape(layer: str, shape: Sequence[int]) -> tuple[int, int, int]:
    """``(channels, height, width)`` of the channels-first map of ``layer``'s activation shape."""
    layout = "nchw" if layer == IMAGE else None
    height, width = spatial_size(shape, layout)
    return channel_count(shape, layout), height, width


def check_channel(channel: int, layer: str, shape: Sequence[int]) -> None:
    """Raise FeatvizError when ``channel`` is not a channel of ``layer`` (activation ``shape``).

    Example:
        >>> check_channel(500, "blocks.4.0.conv_pwl", (1, 80, 14, 14))
        FeatvizError: channel 500 is out of range for layer 'blocks.4.0.conv_pwl' with 80 channels; valid: 0-79
    """
    channels = layout_shape(layer, shape)[0]
    if not 0 <= channel < channels:
        raise FeatvizError(f"channel {channel} is out of range for layer '{layer}' with {channels} channels; valid: 0-{channels - 1}")


def check_position(x: int | None, y: int | None, layer: str, shape: Sequence[int]) -> None:
    """Raise FeatvizError when column ``x`` or row ``y`` lies outside ``layer``'s map (None = centre).

    Example:
        >>> check_position(5, 0, "blocks.4.0.conv_pwl", (1, 80, 3, 5))
        FeatvizError: neuron x=5 is out of range for layer 'blocks.4.0.conv_pwl' with a 3x5 map (height x width); valid x: 0-4
    """
    _, height, width = layout_shape(layer, shape)
    for axis, value, size in (("x", x, width), ("y", y, height)):
        if value is not None and not 0 <= value < size:
            raise FeatvizError(
                f"neuron {axis}={value} is out of range for layer '{layer}' with a {height}x{width} map "
                f"(height x width); valid {axis}: 0-{size - 1}"
            )


def check_layer_name(layer: Any) -> str:
    """``layer`` if it is a non-empty string, else a FeatvizError."""
    if not isinstance(layer, str) or not layer:
        raise FeatvizError(f"a layer name must be a non-empty string like 'blocks.4.0.conv_pwl', got {layer!r}")
    return layer


def check_index(what: str, value: Any, allow_none: bool = False) -> int | None:
    """``value`` as a non-negative int (None passes when ``allow_none``), else a FeatvizError."""
    if value is None and allow_none:
        return None
    try:
        index = operator.index(value)
    except TypeError:
        index = -1
    if isinstance(value, bool) or index < 0:
        raise FeatvizError(f"{what} must be a non-negative integer, got {value!r}")
    return index


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real)


def _format_number(value: float) -> str:
    return f"{value:g}"


def _wrap(name: str) -> str:
    return f"({name})" if " " in name else name


def _parts(item: Objective) -> tuple[tuple[Objective, ...], tuple[float, ...], float]:
    if isinstance(item, Sum):
        return item.terms, item.weights, item.constant
    return (item,), (1.0,), 0.0


def _scale(item: Objective, factor: float) -> Sum:
    terms, weights, constant = _parts(item)
    return Sum(terms, tuple(weight * factor for weight in weights), constant * factor)


def _combine(left: Objective, right: Objective | float, factor: float) -> Sum:
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
