"""`load_model`: one entry point for registered names, ``timm:``/``torchvision:``/``open_clip:`` names and modules."""
from __future__ import annotations

import os
from typing import Callable, Sequence

import torch
from torch import nn

from featviz.errors import FeatvizError, closest
from featviz.models.model import Model
from featviz.models.weights import WeightsChoice, load_weights_file, resolve_weights_argument

ModelBuilder = Callable[[WeightsChoice], Model]

PREFIXES = ("timm", "torchvision", "open_clip")
NAME_SYNTAX = "timm:NAME, torchvision:NAME or open_clip:ARCH/PRETRAINED"

_REGISTRY: dict[str, ModelBuilder] = {}


def _registry_key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register a builder under ``name`` for `load_model`; the builder takes a `WeightsChoice`, returns a `Model`.

    The builder receives None (load the default pretrained weights), ``"random"`` (keep random init) or a
    ``pathlib.Path`` to a checkpoint. Names are matched ignoring case, and ``-`` equals ``_``.

    Example:
        >>> @register_model("tiny_net")
        ... def tiny_net(weights=None):
        ...     return Model(nn.Conv2d(3, 4, 3), name="tiny_net", input_size=(32, 32), channels=3,
        ...                  mean=[0.0], std=[1.0])
        >>> load_model("tiny_net").name
        'tiny_net'
    """
    key = _registry_key(name)
    if not key or ":" in key:
        raise FeatvizError(f"model name '{name}' cannot be registered; use a non-empty name without ':'")
    if key in _REGISTRY:
        raise FeatvizError(f"model name '{name}' is already registered; choose another name")

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        _REGISTRY[key] = builder
        return builder

    return decorate


def list_models() -> list[str]:
    """The registered model names, sorted (``timm:``, ``torchvision:`` and ``open_clip:`` names work too).

    Example:
        >>> list_models()[:3]
        ['efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2']
    """
    return sorted(_REGISTRY)


def _unknown_name(name: str) -> FeatvizError:
    hint = closest(_registry_key(name), list(_REGISTRY))
    import timm
    import torchvision

    prefixed = [f"timm:{name}"] if timm.is_model(name) else []
    if name in torchvision.models.list_models():
        prefixed.append(f"torchvision:{name}")
    found = prefixed + hint
    close = "; closest: " + ", ".join(found) if found else ""
    return FeatvizError(f"unknown model '{name}'{close}; use a registered name (`featviz models`) or {NAME_SYNTAX}")


def _from_name(name: str, weights: WeightsChoice) -> Model:
    from featviz.models import sources

    prefix, colon, rest = name.partition(":")
    if not colon:
        builder = _REGISTRY.get(_registry_key(name))
        if builder is None:
            raise _unknown_name(name)
        return builder(weights)
    prefix = prefix.strip().lower().replace("-", "_")
    rest = rest.strip()
    builders = {"timm": sources.from_timm, "torchvision": sources.from_torchvision, "open_clip": sources.from_open_clip}
    if prefix not in builders:
        hint = closest(prefix, PREFIXES)
        close = f"; closest: {hint[0]}:{rest}" if hint else ""
        raise FeatvizError(f"unknown model source '{prefix}:' in '{name}'{close}; use {NAME_SYNTAX}")
    if not rest:
        raise FeatvizError(f"model name '{name}' lacks the part after '{prefix}:'; use {NAME_SYNTAX}")
    return builders[prefix](rest, weights)


def _resolve_device(device: str | torch.device) -> torch.device:
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise FeatvizError(f"unknown device '{device}'; use cpu, cuda, cuda:N or mps") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise FeatvizError(f"device '{device}' is not available here (no CUDA GPU); use device='cpu'")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise FeatvizError(
            f"device '{device}' does not exist; valid: cuda:0..cuda:{torch.cuda.device_count() - 1}"
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise FeatvizError(f"device '{device}' is not available here; use device='cpu'")
    return resolved


def load_model(
    source: str | nn.Module,
    weights: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    input_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    labels: Sequence[str] | None = None,
) -> Model:
    """Load a model for feature visualization: frozen, in eval mode, on ``device`` in ``dtype``.

    ``source`` is a registered name (default ``efficientnet_lite0``; see `list_models`), ``timm:NAME``,
    ``torchvision:NAME``, ``open_clip:ARCH/PRETRAINED`` (image tower; ``open_clip:ARCH`` is random init), or an
    ``nn.Module`` (224 x 224, no normalization, channels from its first Conv2d). ``weights``: None for the
    default pretrained weights (a download for timm/torchvision/open_clip, which fails at once without a
    network), ``"random"``, or a checkpoint path. ``input_size``, ``channels``, ``mean``, ``std`` and ``labels``
    override what the source says.

    Example:
        >>> model = load_model("efficientnet_lite0")
        >>> model.label_index("goldfish")
        1
        >>> load_model("timm:resnet18", weights="random").input_size
        (224, 224)
    """
    choice = resolve_weights_argument(weights)
    resolved_device = _resolve_device(device)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise FeatvizError(f"dtype must be a floating-point torch.dtype (torch.float32, ...), not {dtype!r}")
    if isinstance(source, Model):
        model = source
        if choice not in (None, "random"):
            load_weights_file(model.network, choice, model_name=model.name)
    elif isinstance(source, nn.Module):
        from featviz.models.sources import from_module

        model = from_module(source, choice, channels=channels)
    elif isinstance(source, str):
        model = _from_name(source.strip(), choice)
    else:
        raise FeatvizError(
            f"a model must be a name or a torch.nn.Module, not {type(source).__name__}; e.g. 'efficientnet_lite0'"
        )
    overrides = (input_size, channels, mean, std, labels)
    if any(value is not None for value in overrides):
        final_channels = model.channels if channels is None else channels
        model = Model(
            model.network,
            name=model.name,
            input_size=model.input_size if input_size is None else input_size,
            channels=final_channels,
            mean=model.mean.flatten().tolist() if mean is None else mean,
            std=model.std.flatten().tolist() if std is None else std,
            labels=model.labels if labels is None else labels,
        )
    return model.to(device=resolved_device, dtype=dtype)
