"""Checks an objective makes against a model: layer names, channels, positions, indices; and reading activations.

Activations reach objectives channels-first, ``(B, C, H, W)`` (`featviz.hooks` reads every layout that way),
and the shapes ``bind`` sees are those of one image, ``(1, C, H, W)``.
"""
from __future__ import annotations

import operator
from typing import Any, Mapping, Sequence

from torch import Tensor, nn

from featviz.errors import FeatvizError, suggestion
from featviz.hooks.capture import RESERVED as RESERVED_LAYERS

Activations = Mapping[str, Tensor]
Shapes = Mapping[str, Sequence[int]]


def read(acts: Activations, layer: str) -> Tensor:
    """``acts[layer]``, a ``(B, C, H, W)`` map, or a FeatvizError naming the captured layers when it is missing.

    Example:
        >>> import torch
        >>> read({"conv_head": torch.rand(2, 1280, 7, 7)}, "conv_head").shape
        torch.Size([2, 1280, 7, 7])
        >>> read({"conv_head": torch.rand(2, 1280, 7, 7)}, "conv_hed")
        Traceback (most recent call last):
        featviz.errors.FeatvizError: no activation for layer 'conv_hed' was captured...
    """
    try:
        return acts[layer]
    except KeyError:
        raise FeatvizError(
            f"no activation for layer '{layer}' was captured{suggestion(layer, acts)}; "
            "capture the objective's layers (objective.layers)"
        ) from None


def layer_shape(model: Any, shapes: Shapes, layer: str) -> Sequence[int] | None:
    """The channels-first shape ``(1, C, H, W)`` of ``layer`` in ``shapes`` (layer name -> shape, from a dry
    forward); None for a reserved name (``@image``, ``@output``) left out. Raises FeatvizError with the closest
    of ``model``'s layer names when a regular layer is missing.

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


def check_channel(channel: int, layer: str, shape: Sequence[int]) -> None:
    """Raise FeatvizError when ``channel`` is not a channel of ``layer`` (channels-first ``shape``).

    Example:
        >>> check_channel(500, "blocks.4.0.conv_pwl", (1, 112, 14, 14))
        Traceback (most recent call last):
        featviz.errors.FeatvizError: channel 500 is out of range for layer 'blocks.4.0.conv_pwl' with 112 channels; valid: 0-111
    """
    channels = shape[1]
    if not 0 <= channel < channels:
        raise FeatvizError(f"channel {channel} is out of range for layer '{layer}' with {channels} channels; valid: 0-{channels - 1}")


def check_position(x: int | None, y: int | None, layer: str, shape: Sequence[int]) -> None:
    """Raise FeatvizError when column ``x`` or row ``y`` lies outside ``layer``'s map of channels-first ``shape``
    (None = centre).

    Example:
        >>> check_position(5, 0, "blocks.4.0.conv_pwl", (1, 112, 3, 5))
        Traceback (most recent call last):
        featviz.errors.FeatvizError: neuron x=5 is out of range for layer 'blocks.4.0.conv_pwl' with a 3x5 map (height x width); valid x: 0-4
    """
    height, width = shape[2], shape[3]
    for axis, value, size in (("x", x, width), ("y", y, height)):
        if value is not None and not 0 <= value < size:
            raise FeatvizError(
                f"neuron {axis}={value} is out of range for layer '{layer}' with a {height}x{width} map "
                f"(height x width); valid {axis}: 0-{size - 1}"
            )


def check_layer_name(layer: Any) -> str:
    """``layer`` if it is a non-empty string, else a FeatvizError.

    Example:
        >>> check_layer_name("blocks.4")
        'blocks.4'
    """
    if not isinstance(layer, str) or not layer:
        raise FeatvizError(f"a layer name must be a non-empty string like 'blocks.4.0.conv_pwl', got {layer!r}")
    return layer


