"""What a unit of the network responds to: channels, neurons, whole layers, directions, classes."""
from __future__ import annotations

import re
from typing import Any, Sequence

import torch
from torch import Tensor

from featviz.errors import FeatvizError, check_int
from featviz.hooks.capture import OUTPUT
from featviz.objectives.base import Constant, Objective, Unit
from featviz.objectives.checks import Activations, Shapes, check_layer_name, check_position, layer_shape, read
from featviz.objectives.shorthand import LAYER_PATTERN, register_shorthand

_COSINE_EPSILON = 1e-6
_COSINE_FLOOR = 0.1


def _position_name(x: int | None, y: int | None) -> str:
    if x is None and y is None:
        return "center"
    return f"{'center' if x is None else x},{'center' if y is None else y}"


class Channel(Unit):
    """A channel's mean over its spatial map; built by ``channel()``.

    Example:
        >>> Channel("blocks.4.0.conv_pwl", 12).name
        'blocks.4.0.conv_pwl:12'
    """

    fusable = True

    def __init__(self, layer: str, channel: int) -> None:
        layer = check_layer_name(layer)
        channel = check_int(channel, "channel", 0)
        super().__init__(layer, channel, False, None, None, f"{layer}:{channel}")


class Neuron(Unit):
    """A channel's value at one position (``x`` = column, ``y`` = row, None = centre); built by ``neuron()``.

    Example:
        >>> Neuron("blocks.4.0.conv_pwl", 12, x=3, y=1).name
        'blocks.4.0.conv_pwl:12@3,1'
    """

    fusable = True

    def __init__(self, layer: str, channel: int, x: int | None = None, y: int | None = None) -> None:
        layer = check_layer_name(layer)
        channel = check_int(channel, "channel", 0)
        x = check_int(x, "neuron x", 0, allow_none=True)
        y = check_int(y, "neuron y", 0, allow_none=True)
        super().__init__(layer, channel, True, x, y, f"{layer}:{channel}@{_position_name(x, y)}")


def channel(layer: str, channel: int) -> Objective:
    """Maximize the mean of one channel over its whole spatial map (lucid's ``channel``).

    ``layer`` is a dot path from ``network.named_modules()``; any layout works (NCHW, NHWC, tokens).

    Example:
        >>> goal = channel("blocks.4.0.conv_pwl", 12)
        >>> goal({"blocks.4.0.conv_pwl": torch.rand(2, 80, 14, 14)}).shape
        torch.Size([2])
    """
    return Channel(layer, channel)


def neuron(layer: str, channel: int, x: int | None = None, y: int | None = None) -> Objective:
    """Maximize one ``channel`` of ``layer`` at one position: column ``x``, row ``y`` (each defaults to the map's
    centre).

    On an ``H x W`` map the value read is ``activation[:, channel, y, x]``; the default centre is
    ``(H // 2, W // 2)``.

    Example:
        >>> acts = {"blocks.4.0.conv_pwl": torch.rand(1, 80, 3, 5)}
        >>> bool(neuron("blocks.4.0.conv_pwl", 12, x=4, y=2)(acts) == acts["blocks.4.0.conv_pwl"][:, 12, 2, 4])
        True
    """
    return Neuron(layer, channel, x, y)


class Layer(Objective):
    """The mean of a layer's squared activations (DeepDream); built by ``layer()`` / ``deepdream()``.

    Example:
        >>> Layer("blocks.4").name
        'blocks.4'
    """

    def __init__(self, layer: str) -> None:
        layer = check_layer_name(layer)
        super().__init__((layer,), layer)
        self.layer = layer

    def __call__(self, acts: Activations) -> Tensor:
        activation = read(acts, self.layer)
        return activation.square().mean(dim=tuple(range(1, activation.dim())))


def layer(layer: str) -> Objective:
    """Maximize the mean of the squared activations of a whole layer (DeepDream).

    Example:
        >>> layer("blocks.4")({"blocks.4": torch.full((2, 8, 4, 4), 3.0)})
        tensor([9., 9.])
    """
    return Layer(layer)


deepdream = layer  # lucid's name for the same objective, importable but not listed in __all__


def _direction_vector(vector: Any) -> Tensor:
    values = torch.as_tensor(vector).detach()
    if values.dim() != 1 or values.numel() == 0:
        raise FeatvizError(f"a direction vector must be 1-D with one entry per channel, got shape {tuple(values.shape)}")
    if not values.is_floating_point():
        values = values.double()
    if not torch.isfinite(values).all():
        raise FeatvizError("a direction vector must hold finite numbers; it contains NaN or infinity")
    return values.cpu().clone()


def _scaled_by_cosine(dot: Tensor, activation_norm: Tensor, vector_norm: float, cossim_pow: float) -> Tensor:
    """``dot * max(cos, 0.1) ** cossim_pow`` where ``cos = dot / (|a| |v|)``."""
    cosine = dot / (activation_norm * vector_norm + _COSINE_EPSILON)
    return dot * cosine.clamp(min=_COSINE_FLOOR).pow(cossim_pow)


class _DirectionBase(Objective):
    def __init__(self, layer: str, vector: Any, cossim_pow: float, name: str) -> None:
        layer = check_layer_name(layer)
        cossim_pow = float(cossim_pow)
        if cossim_pow < 0:
            raise FeatvizError(f"cossim_pow must be 0 or more (0: plain dot product), got {cossim_pow:g}")
        super().__init__((layer,), name)
        self.layer = layer
        self.vector = Constant(_direction_vector(vector))
        self.vector_norm = float(self.vector.source.norm())
        self.cossim_pow = cossim_pow

    def bind(self, model: Any, shapes: Shapes) -> None:
        shape = layer_shape(model, shapes, self.layer)
        if shape is None:
            return
        channels = shape[1]
        length = self.vector.source.numel()
        if length != channels:
            raise FeatvizError(
                f"direction vector has {length} entries but layer '{self.layer}' has {channels} channels; "
                f"give a vector of length {channels}"
            )


class Direction(_DirectionBase):
    """Mean over positions of ``dot(a, v) * max(cos(a, v), 0.1) ** cossim_pow``; built by ``direction()``.

    Example:
        >>> Direction("blocks.4", torch.ones(8)).name
        'direction(blocks.4)'
    """

    def __init__(self, layer: str, vector: Any, cossim_pow: float = 0.0) -> None:
        super().__init__(layer, vector, cossim_pow, f"direction({layer})")

    def __call__(self, acts: Activations) -> Tensor:
        activation = read(acts, self.layer)
        vector = self.vector.like(activation)
        if self.cossim_pow == 0.0:
            return activation.mean((-2, -1)) @ vector
        dot = torch.einsum("bchw,c->bhw", activation, vector)
        scaled = _scaled_by_cosine(dot, torch.linalg.vector_norm(activation, dim=1), self.vector_norm, self.cossim_pow)
        return scaled.mean((-2, -1))


def direction(layer: str, vector: Sequence[float] | Tensor, cossim_pow: float = 0.0) -> Objective:
    """Maximize a direction in a layer's channel space, averaged over all positions (lucid's ``direction``).

    At each position the activation vector ``a`` scores ``dot(a, v) * max(cos(a, v), 0.1) ** cossim_pow``;
    ``cossim_pow > 0`` rewards pointing the same way as ``v`` rather than only being large along it.

    Example:
        >>> goal = direction("blocks.4.0.conv_pwl", torch.randn(80), cossim_pow=1.0)
    """
    return Direction(layer, vector, cossim_pow)


class DirectionNeuron(_DirectionBase):
    """``dot(a, v) * max(cos(a, v), 0.1) ** cossim_pow`` at one position; built by ``direction_neuron()``.

    Example:
        >>> DirectionNeuron("blocks.4", torch.ones(8), x=1, y=2).name
        'direction(blocks.4@1,2)'
    """

    def __init__(self, layer: str, vector: Any, x: int | None = None, y: int | None = None, cossim_pow: float = 0.0) -> None:
        self.x = check_int(x, "neuron x", 0, allow_none=True)
        self.y = check_int(y, "neuron y", 0, allow_none=True)
        super().__init__(layer, vector, cossim_pow, f"direction({layer}@{_position_name(self.x, self.y)})")

    def __call__(self, acts: Activations) -> Tensor:
        activation = read(acts, self.layer)
        height, width = activation.shape[-2:]
        row = height // 2 if self.y is None else self.y
        column = width // 2 if self.x is None else self.x
        at_position = activation[:, :, row, column]
        vector = self.vector.like(at_position)
        dot = at_position @ vector
        if self.cossim_pow == 0.0:
            return dot
        return _scaled_by_cosine(dot, torch.linalg.vector_norm(at_position, dim=1), self.vector_norm, self.cossim_pow)

    def bind(self, model: Any, shapes: Shapes) -> None:
        super().bind(model, shapes)
        shape = layer_shape(model, shapes, self.layer)
        if shape is not None:
            check_position(self.x, self.y, self.layer, shape)


def direction_neuron(
    layer: str, vector: Sequence[float] | Tensor, x: int | None = None, y: int | None = None, cossim_pow: float = 0.0
) -> Objective:
    """Maximize the direction ``vector`` in ``layer``'s channel space at one position (column ``x``, row ``y``;
    default centre), scored like `direction` with its ``cossim_pow``.

    Example:
        >>> goal = direction_neuron("blocks.4.0.conv_pwl", torch.randn(80), x=7, y=7)
    """
    return DirectionNeuron(layer, vector, x, y, cossim_pow)


class ClassLogit(Unit):
    """One class's logit in the network's output (or another layer); built by ``class_logit()``.

    Example:
        >>> ClassLogit("goldfish").name
        'class:goldfish'
    """

    fusable = True

    def __init__(self, label: str | int, layer: str = OUTPUT) -> None:
        layer = check_layer_name(layer)
        if isinstance(label, str):
            if not label.strip():
                raise FeatvizError("a class label must not be empty; give a label name like 'goldfish' or an index")
            label = label.strip()
            index = None
        else:
            index = check_int(label, "class index", 0)
            label = index
        super().__init__(layer, index, False, None, None, f"class:{label}")
        self.label = label

    @property
    def channel(self) -> int:
        """The class index (a label name is resolved by ``bind``)."""
        if self._channel is None:
            raise FeatvizError(f"class '{self.label}' is a label name; call bind(model, shapes) first to resolve it to an index")
        return self._channel

    def bind(self, model: Any, shapes: Shapes) -> None:
        if isinstance(self.label, str):
            label_index = getattr(model, "label_index", None)
            if label_index is None:
                raise FeatvizError(f"class '{self.label}' needs a model with label names; give the class index instead")
            self._channel = int(label_index(self.label))
        shape = layer_shape(model, shapes, self.layer)
        if shape is not None:
            classes = shape[1]
        elif getattr(model, "labels", None):
            classes = len(model.labels)
        else:
            return
        if not 0 <= self._channel < classes:
            shown = self.label if isinstance(self.label, int) else f"'{self.label}' (index {self._channel})"
            raise FeatvizError(f"class {shown} is out of range for '{self.layer}' with {classes} classes; valid: 0-{classes - 1}")


def class_logit(label: str | int, layer: str = OUTPUT) -> Objective:
    """Maximize one class's logit; a ``label`` name is resolved through ``model.label_index`` at bind time, an int
    is the class index. ``layer`` is where the logits are read (default ``"@output"``, the network's output).

    Example:
        >>> goal = class_logit("goldfish")  # or class_logit(1)
        >>> goal.bind(model, {})            # resolves 'goldfish' to its index (renders bind for you)
        >>> goal.channel
        1
    """
    return ClassLogit(label, layer)


# Shorthand forms (featviz.objectives.shorthand): "LAYER:C", "LAYER:C@X,Y", "LAYER:A-B", "LAYER:A,B", "LAYER", "class:LABEL".
@register_shorthand("LAYER:CHANNEL", rf"(?P<layer>{LAYER_PATTERN}):(?P<channel>\d+)")
def _channel_form(match: re.Match) -> Objective:
    return channel(match["layer"], int(match["channel"]))


@register_shorthand("LAYER:CHANNEL@X,Y", rf"(?P<layer>{LAYER_PATTERN}):(?P<channel>\d+)@(?P<x>\d+),(?P<y>\d+)")
def _neuron_form(match: re.Match) -> Objective:
    return neuron(match["layer"], int(match["channel"]), x=int(match["x"]), y=int(match["y"]))


@register_shorthand("LAYER:A-B", rf"(?P<layer>{LAYER_PATTERN}):(?P<first>\d+)-(?P<last>\d+)")
def _range_form(match: re.Match) -> list[Objective]:
    name, first, last = match["layer"], int(match["first"]), int(match["last"])
    if first > last:
        raise FeatvizError(
            f"malformed objective '{match.string}': channel range {first}-{last} runs backwards; write {name}:{last}-{first}"
        )
    return [channel(name, index) for index in range(first, last + 1)]


@register_shorthand("LAYER:A,B,C", rf"(?P<layer>{LAYER_PATTERN}):(?P<channels>\d+(?:,\d+)+)", listed=False)
def _list_form(match: re.Match) -> list[Objective]:
    return [channel(match["layer"], int(index)) for index in match["channels"].split(",")]


@register_shorthand("LAYER", rf"(?P<layer>{LAYER_PATTERN})")
def _layer_form(match: re.Match) -> Objective:
    return layer(match["layer"])


@register_shorthand("class:LABEL", prefix="class:")
def _class_form(body: str) -> Objective | None:
    label = body.strip()
    return class_logit(int(label) if label.isdigit() else label) if label else None


__all__ = [
    "Channel", "Neuron", "Layer", "Direction", "DirectionNeuron", "ClassLogit",
    "channel", "neuron", "layer", "direction", "direction_neuron", "class_logit",
]
