"""The objective protocol: what a render maximizes, and `Unit`, an objective that reads one channel of a layer.

The algebra (``+ - * /``, `stack`) is in `featviz.objectives.algebra`, the fused evaluation of many units in
`featviz.objectives.fused`, the checks against a model in `featviz.objectives.checks`.
"""
from __future__ import annotations

import abc
from typing import Any, Callable, Iterable

import torch
from torch import Tensor

from featviz.objectives.checks import Activations, Shapes, check_channel, check_position, layer_shape, read


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

        ``read_layer(name)`` returns a stand-in activation of that layer; composite objectives pass it to their
        parts. Objectives that name their layers upfront do nothing.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # The algebra's classes are defined in featviz.objectives.algebra, which builds on this module.
    def __add__(self, other: Any) -> Objective:
        from featviz.objectives import algebra

        return algebra.combine(self, other, 1.0) if algebra.is_operand(other) else NotImplemented

    def __radd__(self, other: Any) -> Objective:
        from featviz.objectives import algebra

        return algebra.combine(self, other, 1.0) if algebra.is_number(other) else NotImplemented

    def __sub__(self, other: Any) -> Objective:
        from featviz.objectives import algebra

        return algebra.combine(self, other, -1.0) if algebra.is_operand(other) else NotImplemented

    def __rsub__(self, other: Any) -> Objective:
        from featviz.objectives import algebra

        return algebra.combine(algebra.scale(self, -1.0), other, 1.0) if algebra.is_number(other) else NotImplemented

    def __mul__(self, other: Any) -> Objective:
        from featviz.objectives import algebra

        if isinstance(other, Objective):
            return algebra.Product(self, other)
        return algebra.scale(self, float(other)) if algebra.is_number(other) else NotImplemented

    def __rmul__(self, other: Any) -> Objective:
        from featviz.objectives import algebra

        return algebra.scale(self, float(other)) if algebra.is_number(other) else NotImplemented

    def __truediv__(self, other: Any) -> Objective:
        from featviz.objectives import algebra

        if isinstance(other, Objective):
            return algebra.Quotient(self, other)
        return algebra.scale(self, 1.0 / float(other)) if algebra.is_number(other) else NotImplemented

    def __rtruediv__(self, other: Any) -> Objective:
        from featviz.objectives import algebra

        return algebra.Quotient(float(other), self) if algebra.is_number(other) else NotImplemented

    def __neg__(self) -> Objective:
        from featviz.objectives import algebra

        return algebra.scale(self, -1.0)

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


