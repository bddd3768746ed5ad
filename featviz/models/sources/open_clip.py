"""The ``open_clip:`` source: a CLIP model of open_clip, by name or as an object: its image tower (``visual``)
is the network, with its layer names, and its text side becomes the model's text tower (`featviz.text.clip`).

``open_clip:ARCH/PRETRAINED`` loads a pretrained tag, ``open_clip:ARCH`` is random init,
``open_clip:local-dir:PATH`` an open_clip folder (its ``open_clip_config.json`` and weights). ``weights=PATH``
reads an open_clip checkpoint or safetensors file (the whole CLIP, or its image tower alone) or one of OpenAI's
JIT ``.pt`` archives. The tiny configurations ``featviz-tiny-ViT`` and ``featviz-tiny-RN`` (random init,
open_clip's vocabulary, widths of 16-64) are registered for tests and examples. Input size and
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
import zipfile
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from featviz.errors import FeatvizError, suggestion
from featviz.models import weights as weights_module
from featviz.models.config import ModuleConfig, model_from_config, size_pair
from featviz.models.model import Model
from featviz.models.registry import register_source
from featviz.models.weights import WeightsChoice, first_line, load_state_dict_checked, read_state_dict


TINY_CONFIGS = Path(__file__).resolve().parent.parent / "clip_configs"
LOCAL_DIR = "local-dir:"


def _open_clip() -> Any:
    """open_clip, with featviz's tiny configurations registered (once)."""
    import open_clip

    if "featviz-tiny-ViT" not in open_clip.list_models():
        open_clip.add_model_config(TINY_CONFIGS)
    return open_clip


def has_open_clip_model(name: str) -> bool:
    """Whether open_clip has an architecture called ``name`` (the part before ``/``).

    Example:
        >>> has_open_clip_model("ViT-B-32"), has_open_clip_model("resnet18")
        (True, False)
    """
    return name.partition("/")[0] in _open_clip().list_models()


def _from_open_clip(module: nn.Module) -> bool:
    return any(cls.__module__.startswith("open_clip.") for cls in type(module).__mro__)


def read_open_clip_config(module: nn.Module) -> ModuleConfig | None:
    """The image tower of ``module``, an open_clip model (or the tower itself), with its input size and mean/std;
    None for a module that is not open_clip's.

    A model with ``.visual`` and ``encode_image`` gives its tower ``.visual``; towers (VisionTransformer,
    ModifiedResNet, TimmModel) are taken as they are. Mean/std: the tower's ``preprocess_cfg``, else its
    ``image_mean``/``image_std``, else open_clip's defaults (OpenAI's CLIP values).

    Example:
        >>> import open_clip
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
    text_source = None
    if tower is not module:
        del module.visual  # the Model holds the image tower; featviz.text makes CLIP's text tower from the rest
        text_source = module
    return ModuleConfig(
        tower,
        input_size=size_pair(tower.image_size),
        channels=3,
        mean=declared.get("mean") or getattr(tower, "image_mean", None) or OPENAI_DATASET_MEAN,
        std=declared.get("std") or getattr(tower, "image_std", None) or OPENAI_DATASET_STD,
        text_source=text_source,
    )


@register_source("open_clip", syntax="open_clip:ARCH/PRETRAINED", has_model=has_open_clip_model,
                 read_config=read_open_clip_config,
                 description="a CLIP model of open_clip (image tower + text); open_clip:ARCH alone is random init")
def build_open_clip(spec: str, weights: WeightsChoice) -> Model:
    """``open_clip:SPEC``, where ``spec`` is ``ARCH/PRETRAINED`` (or ``ARCH``, random init, or ``local-dir:PATH``),
    as a `Model` whose network is the image tower and whose ``text`` is CLIP's text tower.

    ``weights`` may override the tag: ``"random"``, or a path to an open_clip checkpoint (whole CLIP or image
    tower), a safetensors file, or an OpenAI JIT archive.

    Example:
        >>> model = build_open_clip("featviz-tiny-ViT", "random")
        >>> model.text.encode(["a dog"]).shape
        torch.Size([1, 32])
    """
    open_clip = _open_clip()
    model_name = f"open_clip:{spec}"
    if spec.startswith(LOCAL_DIR):
        clip, architecture, tag_config = _local_dir(spec, model_name), spec, {}
    else:
        architecture, _, tag = spec.partition("/")
        architectures = open_clip.list_models()
        if architecture not in architectures:
            raise FeatvizError(f"unknown open_clip architecture '{architecture}'{suggestion(architecture, architectures)}")
        tag_config = {}
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
        if isinstance(weights, Path) and _is_jit_archive(weights):
            clip = _openai_archive(weights, model_name)
        elif tag and weights is None:
            clip = _pretrained(architecture, tag, tag_config, model_name, options)
        else:
            with _quiet_logging():  # open_clip warns on every random init
                clip = open_clip.create_model(architecture, pretrained=None, **options)
            if isinstance(weights, Path):
                clip = _load_checkpoint(clip, weights, model_name)
    clip.featviz_architecture = architecture
    config = read_open_clip_config(clip)
    if getattr(clip, "featviz_image_tower_only", False):
        config = dataclasses.replace(config, text_source=None)
    config = dataclasses.replace(config, mean=tag_config.get("mean", config.mean), std=tag_config.get("std", config.std))
    return model_from_config(config, name=model_name)


def _is_jit_archive(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (OpenAI's CLIP releases are): a zip with ``constants.pkl``."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def _openai_archive(path: Path, model_name: str) -> nn.Module:
    try:
        return _open_clip().load_openai_model(str(path), precision="fp32", device="cpu")
    except Exception as error:  # noqa: BLE001 - open_clip raises many types for one unreadable archive
        raise FeatvizError(
            f"cannot read OpenAI CLIP archive {path} for {model_name} ({first_line(error)}); pass one of OpenAI's "
            "ViT-*/RN* .pt files or an open_clip checkpoint"
        ) from None


def _load_checkpoint(clip: nn.Module, path: Path, model_name: str) -> nn.Module:
    """Load an open_clip checkpoint of the whole CLIP, or of its image tower alone (the text tower then stays
    random and is dropped)."""
    state = read_state_dict(path)
    if any(key.startswith("visual.") for key in state) and any(not key.startswith("visual.") for key in state):
        load_state_dict_checked(clip, state, source=f"file {path}", model_name=model_name)
        return clip
    load_state_dict_checked(clip.visual, _image_tower_state(state), source=f"file {path}", model_name=model_name)
    clip.featviz_image_tower_only = True
    return clip


def _local_dir(spec: str, model_name: str) -> nn.Module:
    folder = Path(spec[len(LOCAL_DIR):]).expanduser()
    if not folder.is_dir():
        raise FeatvizError(
            f"'{folder}' is not a folder; open_clip:local-dir:PATH takes a folder with open_clip_config.json and "
            "its weights (open_clip_model.safetensors or open_clip_pytorch_model.bin)"
        )
    try:
        with _quiet_logging():
            return _open_clip().create_model(f"{LOCAL_DIR}{folder}")
    except Exception as error:  # noqa: BLE001 - open_clip raises many types for one unreadable folder
        raise FeatvizError(
            f"cannot load {model_name} ({first_line(error)}); the folder needs open_clip_config.json and "
            "open_clip_model.safetensors or open_clip_pytorch_model.bin"
        ) from None


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
    open_clip = _open_clip()

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
