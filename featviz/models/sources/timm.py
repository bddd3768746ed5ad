"""The ``timm:`` source: any timm model by name (``timm:resnet18``, ``timm:resnet18.a1_in1k``), and timm objects.

Input size, channels and mean/std come from the model's ``pretrained_cfg``, except that the size the module was
built for (``img_size=``, which the ``pretrained_cfg`` does not follow) wins; class names are ImageNet's when
the model has 1000 outputs. Pretrained weights are read from the Hugging Face or torch.hub cache when they are
there (no network request); otherwise the download starts only after `featviz.models.weights.downloading`
has seen the host answer.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

from torch import nn

from featviz.errors import FeatvizError, suggestion
from featviz.models import weights as weights_module
from featviz.models.config import ModuleConfig, model_from_config, size_pair
from featviz.models.labels import imagenet_labels
from featviz.models.model import Model
from featviz.models.registry import register_source
from featviz.models.weights import WeightsChoice, load_weights_file

IMAGENET_CLASSES = 1000


def has_timm_model(name: str) -> bool:
    """Whether timm has an architecture called ``name``.

    Example:
        >>> has_timm_model("resnet18"), has_timm_model("efficientnet_lite9")
        (True, False)
    """
    import timm

    return timm.is_model(name)


def built_input_size(module: nn.Module) -> tuple[int, int] | None:
    """The ``(height, width)`` that ``module``, a timm model, was built for (``img_size=``, kept by its
    ``patch_embed`` or the model itself), or None when it keeps none (a CNN, which takes any size).

    A ViT built with ``strict_img_size`` takes only this size; one built with ``dynamic_img_size=True`` takes
    others too, which `featviz.hooks.survey_model` finds by running it.

    Example:
        >>> import timm
        >>> built_input_size(timm.create_model("vit_tiny_patch16_224", img_size=64))
        (64, 64)
    """
    patch_embed = getattr(module, "patch_embed", None)
    for owner in (patch_embed, module):
        size = getattr(owner, "img_size", None) if isinstance(owner, nn.Module) else None
        if isinstance(size, int) or (
            isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(side, int) for side in size)
        ):
            return size_pair(size)
    return None


def read_timm_config(module: nn.Module) -> ModuleConfig | None:
    """What ``module``, a timm model, declares in its ``pretrained_cfg`` (or ``default_cfg``), or None for other
    modules; the input size is the one it was built for (`built_input_size`) when it keeps one.

    Example:
        >>> import timm
        >>> read_timm_config(timm.create_model("vit_tiny_patch16_224")).mean
        (0.5, 0.5, 0.5)
    """
    declared = getattr(module, "pretrained_cfg", None) or getattr(module, "default_cfg", None)
    if dataclasses.is_dataclass(declared) and not isinstance(declared, type):
        declared = dataclasses.asdict(declared)
    if not isinstance(declared, Mapping) or not any(key in declared for key in ("input_size", "mean", "std")):
        return None
    size = declared.get("input_size")
    return ModuleConfig(
        module,
        input_size=built_input_size(module) or (size_pair(size) if size else None),
        channels=int(size[0]) if size and len(size) == 3 else None,
        mean=declared.get("mean"),
        std=declared.get("std"),
        labels=imagenet_labels() if getattr(module, "num_classes", None) == IMAGENET_CLASSES else None,
    )


@register_source("timm", syntax="timm:NAME", has_model=has_timm_model, read_config=read_timm_config,
                 description="any timm model; NAME may carry a pretrained tag, e.g. timm:resnet18.a1_in1k")
def build_timm(name: str, weights: WeightsChoice) -> Model:
    """The timm model ``name`` (``timm:NAME``) as a `Model`, with the default pretrained weights, ``"random"`` or a
    file (``weights``).

    Example:
        >>> build_timm("resnet18", "random").input_size
        (224, 224)
    """
    import timm

    model_name = f"timm:{name}"
    architecture, _, tag = name.partition(".")
    if not timm.is_model(architecture):
        raise FeatvizError(f"unknown timm model '{name}'{suggestion(name, timm.list_models())}")
    if tag:
        tags = [full.partition(".")[2] for full in timm.list_pretrained(f"{architecture}.*")]
        if tag not in tags:
            raise FeatvizError(
                f"timm model {architecture} has no pretrained tag '{tag}'{suggestion(tag, tags)}; "
                f"or use timm:{architecture} for its default weights"
            )
    if weights is None:
        network = _pretrained(name, model_name)
    else:
        network = timm.create_model(name, pretrained=False)
        if weights != "random":
            load_weights_file(network, weights, model_name=model_name)
    return model_from_config(read_timm_config(network) or ModuleConfig(network), name=model_name)


def _pretrained(name: str, model_name: str) -> nn.Module:
    import timm

    config = timm.models.get_pretrained_cfg(name)
    hub_id = config.hf_hub_id if config is not None else None
    url = config.url if config is not None else None
    if not hub_id and not url:
        raise FeatvizError(
            f"timm has no pretrained weights for {name}; pass weights=PATH with a checkpoint or weights='random'"
        )
    cached = None
    if hub_id:
        filename = config.hf_hub_filename or "pytorch_model.bin"
        candidates = [filename]
        if filename == "pytorch_model.bin":
            candidates.insert(0, "model.safetensors")
        elif filename.endswith((".bin", ".pth")):
            candidates.insert(0, filename[:-4] + ".safetensors")
        cached = weights_module.huggingface_cached_file(hub_id, candidates)
    if cached is None and url:
        cached = weights_module.torch_hub_cached_file(url)
    if cached is not None:
        # Reading the cached file directly keeps timm from asking the hub whether a newer revision exists.
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": cached})
    if hub_id:
        host, cache = weights_module.huggingface_host(), "huggingface"
    else:
        host, cache = weights_module.host_of(url), "torch"
    with weights_module.downloading(model_name, host, cache):
        return timm.create_model(name, pretrained=True)
