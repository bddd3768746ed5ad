"""The ``open_clip:`` source: the image tower (``model.visual``) of an open_clip model, by name or as an object.

``open_clip:ARCH/PRETRAINED`` loads a pretrained tag, ``open_clip:ARCH`` is random init. Input size and
mean/std come from the tower's ``preprocess_cfg`` (or its ``image_mean``/``image_std``), else open_clip's
defaults; an open_clip model object passed to `load_model` is read the same way. Pretrained weights are
read from the Hugging Face or CLIP cache when they are there; otherwise the download starts only after
`featviz.models.weights.downloading` has seen the host answer.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from typing import Iterator

import torch
from torch import nn

from featviz.errors import FeatvizError, suggestion
from featviz.models import weights as weights_module
from featviz.models.config import ModuleConfig, model_from_config, size_pair
from featviz.models.model import Model
from featviz.models.registry import register_source
from featviz.models.weights import WeightsChoice, load_weights_file


def has_open_clip_model(name: str) -> bool:
    """Whether open_clip has an architecture called ``name`` (the part before ``/``).

    Example:
        >>> has_open_clip_model("ViT-B-32"), has_open_clip_model("resnet18")
        (True, False)
    """
    import open_clip

    return name.partition("/")[0] in open_clip.list_models()


def _from_open_clip(module: nn.Module) -> bool:
    return any(cls.__module__.startswith("open_clip.") for cls in type(module).__mro__)


def read_open_clip_config(module: nn.Module) -> ModuleConfig | None:
    """The image tower of an open_clip model (or the tower itself) with its input size and mean/std, else None.

    A model with ``.visual`` and ``encode_image`` gives its tower ``.visual``; towers (VisionTransformer,
    ModifiedResNet, TimmModel) are taken as they are. Mean/std: the tower's ``preprocess_cfg``, else its
    ``image_mean``/``image_std``, else open_clip's defaults (OpenAI's CLIP values).

    Example:
        >>> read_open_clip_config(open_clip.create_model("ViT-S-32-alt")).input_size
        (224, 224)
    """
    if not _from_open_clip(module):
        return None
    tower = module.visual if hasattr(module, "visual") and callable(getattr(module, "encode_image", None)) else module
    if not isinstance(tower, nn.Module) or getattr(tower, "image_size", None) is None:
        return None
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    declared = getattr(tower, "preprocess_cfg", None) or {}
    return ModuleConfig(
        tower,
        input_size=size_pair(tower.image_size),
        channels=3,
        mean=declared.get("mean") or getattr(tower, "image_mean", None) or OPENAI_DATASET_MEAN,
        std=declared.get("std") or getattr(tower, "image_std", None) or OPENAI_DATASET_STD,
    )


@register_source("open_clip", syntax="open_clip:ARCH/PRETRAINED", has_model=has_open_clip_model,
                 read_config=read_open_clip_config,
                 description="the image tower of an open_clip model; open_clip:ARCH alone is random init")
def build_open_clip(spec: str, weights: WeightsChoice) -> Model:
    """The image tower of ``open_clip:ARCH/PRETRAINED`` (or ``ARCH``, random init) as a `Model` without labels.

    ``weights`` may override the tag: ``"random"``, or a path to a full CLIP checkpoint or an image-tower one.

    Example:
        >>> build_open_clip("ViT-S-32-alt", None).input_size
        (224, 224)
    """
    import open_clip

    architecture, _, tag = spec.partition("/")
    model_name = f"open_clip:{spec}"
    architectures = open_clip.list_models()
    if architecture not in architectures:
        raise FeatvizError(f"unknown open_clip architecture '{architecture}'{suggestion(architecture, architectures)}")
    tag_config: dict = {}
    if tag:
        tag_config = open_clip.get_pretrained_cfg(architecture, tag)
        if not tag_config:
            tags = open_clip.list_pretrained_tags_by_model(architecture)
            known = suggestion(tag, tags) or ("; known: " + ", ".join(tags) if tags else "; it has no pretrained tags")
            raise FeatvizError(f"unknown open_clip pretrained tag '{tag}' for {architecture}{known}")
    options = {
        "pretrained_image": False,
        "pretrained_text": False,
        "force_quick_gelu": bool(tag_config.get("quick_gelu", False)),
    }
    if tag and weights is None:
        clip = _pretrained(architecture, tag, tag_config, model_name, options)
    else:
        with _quiet_logging():  # open_clip warns on every random init
            clip = open_clip.create_model(architecture, pretrained=None, **options)
    config = read_open_clip_config(clip)
    if weights not in (None, "random"):
        load_weights_file(config.network, weights, model_name=model_name, convert=_image_tower_state)
    config = dataclasses.replace(config, mean=tag_config.get("mean", config.mean), std=tag_config.get("std", config.std))
    return model_from_config(config, name=model_name)


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _image_tower_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    prefix = "visual."
    if any(key.startswith(prefix) for key in state):
        return {key[len(prefix):]: tensor for key, tensor in state.items() if key.startswith(prefix)}
    return state


def _pretrained(architecture: str, tag: str, tag_config: dict, model_name: str, options: dict) -> nn.Module:
    import open_clip

    hub = tag_config.get("hf_hub", "")
    url = tag_config.get("url", "")
    cached = None
    if hub:
        repo_id, filename = os.path.split(hub)  # "org/name/" or "org/name/file"
        filenames = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename.endswith((".bin", ".pth")):
            filenames.insert(0, filename[:-4] + ".safetensors")
        cached = weights_module.huggingface_cached_file(repo_id, filenames)
    if cached is None and url:
        path = os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(url))
        cached = path if os.path.isfile(path) else None
    if cached is not None:
        return open_clip.create_model(architecture, pretrained=cached, **options)
    if hub:
        host, cache = weights_module.huggingface_host(), "huggingface"
    else:
        host, cache = weights_module.host_of(url), "clip"
    with weights_module.downloading(model_name, host, cache):
        return open_clip.create_model(architecture, pretrained=tag, **options)
