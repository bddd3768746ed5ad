"""`load_model`: the one function that turns a model name, a `Model` or any ``nn.Module`` into a `Model`.

Two registries feed it: `register_model` for plain names (``efficientnet_lite0``) and `register_source` for
``PREFIX:NAME`` names of other libraries; each module in ``featviz/models/sources`` registers one source.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from featviz.device import resolve_device
from featviz.errors import FeatvizError, closest
from featviz.models.config import ModuleConfig, model_from_config
from featviz.models.model import Model
from featviz.models.weights import WeightsChoice, first_line, load_weights_file, resolve_weights_argument

ModelBuilder = Callable[[WeightsChoice], Model]
SourceBuilder = Callable[[str, WeightsChoice], Model]
ConfigReader = Callable[[nn.Module], ModuleConfig | None]

_REGISTRY: dict[str, ModelBuilder] = {}
_SOURCES: dict[str, ModelSource] = {}


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
    """The registered model names, sorted (names of the model sources, ``PREFIX:NAME``, work too).

    Example:
        >>> list_models()[:3]
        ['efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2']
    """
    return sorted(_REGISTRY)


@dataclass(frozen=True)
class ModelSource:
    """A library that `load_model` takes ``PREFIX:NAME`` names of, registered with `register_source`.

    ``prefix`` is the part before the colon, ``syntax`` and ``description`` what `featviz models` prints for it;
    ``build(name_after_prefix, weights)`` returns a `Model`; ``has_model(name)`` says whether the library
    knows a bare name (for "closest:" hints); ``read_config(module)`` returns what the library declares about
    one of its module objects (a `ModuleConfig`), or None for a module that is not the library's.

    Example:
        >>> [source.syntax for source in list_sources()]
        ['open_clip:ARCH/PRETRAINED', 'timm:NAME', 'torchvision:NAME']
    """

    prefix: str
    syntax: str
    description: str
    build: SourceBuilder
    has_model: Callable[[str], bool] | None = None
    read_config: ConfigReader | None = None


def register_source(
    prefix: str,
    *,
    syntax: str,
    description: str,
    has_model: Callable[[str], bool] | None = None,
    read_config: ConfigReader | None = None,
) -> Callable[[SourceBuilder], SourceBuilder]:
    """Register a builder for ``PREFIX:NAME`` model names (``prefix``: PREFIX); decorate ``build(name_after_prefix,
    weights) -> Model``.

    ``syntax`` (``"timm:NAME"``) and ``description`` appear in `featviz models`, in the MODEL help of the
    command line and in error messages. ``has_model`` and ``read_config`` are optional, see `ModelSource`.
    Prefixes are matched ignoring case, and ``-`` equals ``_``. See docs/how-to/add-a-model-source.md.

    Example:
        >>> networks = {"tiny": lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())}    # "mylib"
        >>> @register_source("mylib", syntax="mylib:NAME", description="any mylib network")
        ... def build_mylib(name: str, weights: WeightsChoice) -> Model:
        ...     return model_from_config(ModuleConfig(networks[name](), input_size=(64, 64)), name=f"mylib:{name}")
        >>> load_model("mylib:tiny").layer_names()
        ['0', '1']
    """
    key = _registry_key(prefix)
    if not key.isidentifier():
        raise FeatvizError(f"model source prefix '{prefix}' cannot be registered; use letters, digits and '_'")
    if key in _SOURCES:
        raise FeatvizError(f"model source '{prefix}' is already registered; choose another prefix")
    if not syntax.startswith(f"{key}:"):
        raise FeatvizError(f"the syntax of model source '{key}' must start with '{key}:', not '{syntax}'")

    def decorate(build: SourceBuilder) -> SourceBuilder:
        _SOURCES[key] = ModelSource(key, syntax, description, build, has_model, read_config)
        return build

    return decorate


def list_sources() -> list[ModelSource]:
    """The registered model sources, in registration order (the modules of featviz/models/sources by name).

    Example:
        >>> [source.prefix for source in list_sources()]
        ['open_clip', 'timm', 'torchvision']
    """
    return list(_SOURCES.values())


def sources_syntax() -> str:
    """Every source's name syntax as one phrase, for help texts and error messages.

    Example:
        >>> sources_syntax()
        'open_clip:ARCH/PRETRAINED, timm:NAME or torchvision:NAME'
    """
    syntaxes = [source.syntax for source in _SOURCES.values()]
    if len(syntaxes) < 2:
        return "".join(syntaxes)
    return ", ".join(syntaxes[:-1]) + " or " + syntaxes[-1]


def _unknown_name(name: str) -> FeatvizError:
    found = [
        f"{source.prefix}:{name}" for source in _SOURCES.values() if source.has_model and source.has_model(name)
    ]
    found += closest(_registry_key(name), list(_REGISTRY))
    close = "; closest: " + ", ".join(found) if found else ""
    return FeatvizError(
        f"unknown model '{name}'{close}; use a registered name (`featviz models`) or {sources_syntax()}"
    )


def _from_name(name: str, weights: WeightsChoice) -> Model:
    prefix, colon, rest = name.partition(":")
    if not colon:
        builder = _REGISTRY.get(_registry_key(name))
        if builder is None:
            raise _unknown_name(name)
        return builder(weights)
    key = _registry_key(prefix)
    rest = rest.strip()
    source = _SOURCES.get(key)
    if source is None:
        hint = closest(key, list(_SOURCES))
        close = f"; closest: {hint[0]}:{rest}" if hint else ""
        raise FeatvizError(f"unknown model source '{key}:' in '{name}'{close}; use {sources_syntax()}")
    if not rest:
        raise FeatvizError(f"model name '{name}' lacks the part after '{key}:'; use {source.syntax}")
    return source.build(rest, weights)


def _read_module_config(network: nn.Module) -> ModuleConfig:
    for source in _SOURCES.values():
        config = source.read_config(network) if source.read_config else None
        if config is not None:
            return config
    return ModuleConfig(network)


def _private_copy(value: nn.Module, name: str) -> nn.Module:
    try:
        return copy.deepcopy(value)
    except Exception as error:  # deepcopy raises whatever an attribute's __deepcopy__ or pickling raises
        raise FeatvizError(
            f"cannot copy {name} ({first_line(error)}); load_model works on a copy so that yours stays unchanged: "
            "make it copyable with copy.deepcopy, or pass a featviz Model already frozen, in eval mode and on the "
            "device (it is used as is)"
        ) from None


def _first_tensor_device(network: nn.Module) -> torch.device:
    tensor = next(itertools.chain(network.parameters(), network.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def _on(tensor: torch.Tensor, device: torch.device, dtype: torch.dtype) -> bool:
    if tensor.is_floating_point() and tensor.dtype != dtype:
        return False
    if tensor.device.type != device.type:
        return False
    if device.index is None and device.type == "cuda":
        return tensor.device.index == torch.cuda.current_device()
    return device.index is None or tensor.device.index == device.index


def _ready_as_is(model: Model, device: torch.device, dtype: torch.dtype) -> bool:
    return (
        not any(module.training for module in model.modules())
        and not any(parameter.requires_grad for parameter in model.parameters())
        and all(_on(tensor, device, dtype) for tensor in itertools.chain(model.parameters(), model.buffers()))
    )


def _with_overrides(model: Model, given: dict, channels: int | None) -> Model:
    if not given and channels is None:
        return model
    declared = ModuleConfig(
        model.network, input_size=model.input_size, channels=model.channels,
        mean=model.mean.flatten().tolist(), std=model.std.flatten().tolist(), labels=model.labels,
        layouts=model.layouts, text_source=model.text_source,
    )
    chosen_channels = model.channels if channels is None else channels
    result = model_from_config(dataclasses.replace(declared, **given), name=model.name, channels=chosen_channels)
    if model.given_text is not None:  # a tower made from the old labels on first read is made again from the new
        result.text = model.given_text
    return result


def load_model(
    source: str | nn.Module,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    *,
    input_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    labels: Sequence[str] | None = None,
    layouts: Mapping[str, Any] | None = None,
) -> Model:
    """Turn a model name, a `Model` or any ``nn.Module`` into a `Model`: frozen, in eval mode, on ``device``.

    ``source`` is a registered name (`list_models`), a source name (``timm:NAME`` and the others `featviz models`
    lists), a `Model`, or an ``nn.Module``, whose input size, channels, mean/std and class names are read from
    what its library declares (timm's ``pretrained_cfg``, an open_clip model's image tower and preprocess
    config); other modules get 224 x 224, no normalization and channels from their first Conv2d. A `Model` or
    module is never changed: it is deep-copied first, except a `Model` that needs no change (frozen, eval, on
    ``device`` in ``dtype``, no weights or overrides), which is returned as is. ``weights``: None for the
    default pretrained weights (a download for source names, which fails at once without a network),
    ``"random"``, or a checkpoint path. ``device`` (see `featviz.device.resolve_device`) and ``dtype`` default
    to the given `Model`'s or module's own device and the `Model`'s dtype; else the CPU and float32.
    ``input_size``, ``channels``, ``mean``, ``std``, ``labels`` and ``layouts`` (activation layouts by layer
    name, see `Model`) override what the source says.

    Example:
        >>> load_model("efficientnet_lite0").label_index("goldfish")
        1
        >>> load_model("timm:resnet18", weights="random").input_size
        (224, 224)
        >>> my_network = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
        >>> model = load_model(my_network, input_size=(64, 64), dtype=torch.float64)
        >>> model.dtype, next(my_network.parameters()).dtype      # a copy: my_network itself is unchanged
        (torch.float64, torch.float32)
    """
    choice = resolve_weights_argument(weights)
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise FeatvizError(f"dtype must be a floating-point torch.dtype (torch.float32, ...), not {dtype!r}")
    overrides = {"input_size": input_size, "mean": mean, "std": std, "labels": labels, "layouts": layouts}
    given = {field: value for field, value in overrides.items() if value is not None}
    if isinstance(source, Model):
        resolved_device = resolve_device(device, default=source.device)
        final_dtype = dtype or source.dtype
        unchanged = not isinstance(choice, Path) and not given and channels is None
        if unchanged and _ready_as_is(source, resolved_device, final_dtype):
            return source
        model = _private_copy(source, source.name)
        if isinstance(choice, Path):
            load_weights_file(model.network, choice, model_name=model.name)
        model = _with_overrides(model, given, channels)
        model.eval()
        model.requires_grad_(False)
    elif isinstance(source, nn.Module):
        name = type(source).__name__
        resolved_device = resolve_device(device, default=_first_tensor_device(source))
        final_dtype = dtype or torch.float32
        network = _private_copy(source, name)
        if isinstance(choice, Path):
            load_weights_file(network, choice, model_name=name)
        config = dataclasses.replace(_read_module_config(network), **given)
        model = model_from_config(config, name=name, channels=channels)
    elif isinstance(source, str):
        resolved_device = resolve_device(device)
        final_dtype = dtype or torch.float32
        model = _with_overrides(_from_name(source.strip(), choice), given, channels)
    else:
        raise FeatvizError(
            f"a model must be a name, a featviz Model or a torch.nn.Module, not {type(source).__name__}; "
            "e.g. 'efficientnet_lite0'"
        )
    return model.to(device=resolved_device, dtype=final_dtype)
