"""What a module's library declares about its input, and the `Model` built from that declaration.

A model source reads a `ModuleConfig` off a module object (timm's ``pretrained_cfg``, open_clip's
``preprocess_cfg``, ...); `model_from_config` fills what is missing with featviz's defaults for a plain module
(224 x 224, no normalization, channels from the first ``nn.Conv2d``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from torch import nn

from featviz.errors import FeatvizError
from featviz.models.model import Model

DEFAULT_INPUT_SIZE = (224, 224)


@dataclass(frozen=True)
class ModuleConfig:
    """The input a library declares for a module: the network to wrap and whatever of its input it knows.

    ``network`` is the part that takes images (for a CLIP model, its image tower); every other field is None
    when the library does not say. ``channels`` is the declared channel count, used only when the network
    has no ``nn.Conv2d`` to read it from; ``labels`` are the class names of its outputs, ``layouts`` activation
    layouts by layer name, ``text`` the model's text tower and ``text_source`` what a registered factory makes one
    from (see `Model`).

    Example:
        >>> network = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
        >>> config = ModuleConfig(network, input_size=(256, 256), channels=3, mean=(0.5,), std=(0.5,))
        >>> model_from_config(config, name="mine").input_size
        (256, 256)
    """

    network: nn.Module
    input_size: int | tuple[int, int] | None = None
    channels: int | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    labels: Sequence[str] | None = None
    layouts: Mapping[str, Any] | None = None
    text: nn.Module | None = None
    text_source: nn.Module | None = None


def size_pair(size: int | Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` from an int, a ``(size,)``, a ``(height, width)`` or a ``(channels, height, width)``.

    Example:
        >>> size_pair(224), size_pair((3, 240, 260))
        ((224, 224), (240, 260))
    """
    if isinstance(size, int):
        return size, size
    values = tuple(int(value) for value in size)
    return (values[0], values[0]) if len(values) == 1 else (values[-2], values[-1])


def detect_channels(network: nn.Module) -> int | None:
    """The ``in_channels`` of the first ``nn.Conv2d`` in ``network`` (definition order), or None.

    Example:
        >>> detect_channels(nn.Sequential(nn.Conv2d(1, 4, 3)))
        1
    """
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    return None


def model_from_config(config: ModuleConfig, *, name: str, channels: int | None = None) -> Model:
    """A `Model` of ``config.network`` with what ``config`` declares, and featviz's defaults for what it does not.

    Defaults: 224 x 224 input, mean 0 and std 1 (no normalization), no class names. Channels come from the
    ``channels`` argument, else the network's first ``nn.Conv2d``, else ``config.channels``; with none of them
    a FeatvizError asks for ``channels=``. To override other fields, ``dataclasses.replace`` the config.

    Example:
        >>> model_from_config(ModuleConfig(nn.Sequential(nn.Conv2d(1, 4, 3))), name="tiny").channels
        1
    """
    network = config.network
    if channels is None:
        channels = detect_channels(network) or config.channels
    if channels is None:
        raise FeatvizError(
            f"cannot tell how many input channels {name} takes (it has no Conv2d and declares none); pass channels="
        )
    return Model(
        network,
        name=name,
        input_size=DEFAULT_INPUT_SIZE if config.input_size is None else config.input_size,
        channels=channels,
        mean=(0.0,) if config.mean is None else config.mean,
        std=(1.0,) if config.std is None else config.std,
        labels=config.labels,
        layouts=config.layouts,
        text=config.text,
        text_source=config.text_source,
    )
