"""Models from other libraries (timm, torchvision, open_clip) and from a plain ``nn.Module``.

Each builder takes the name after the prefix and a `WeightsChoice` and returns a `Model`. Pretrained weights
come from the library's cache when they are there (read straight from disk, no network request); otherwise
the download starts only after `featviz.models.weights.require_download` has seen the host answer.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator, Sequence

import torch
from torch import nn

from featviz.errors import FeatvizError, suggestion
from featviz.models.labels import imagenet_labels
from featviz.models.model import Model
from featviz.models import weights as weights_module
from featviz.models.weights import WeightsChoice, load_weights_file

DEFAULT_INPUT_SIZE = (224, 224)
IMAGENET_CLASSES = 1000


def _size_pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    values = tuple(int(value) for value in size)
    return (values[0], values[0]) if len(values) == 1 else (values[-2], values[-1])


def from_timm(name: str, weights: WeightsChoice = None) -> Model:
    """A timm model (``timm:NAME``, NAME may carry a pretrained tag, e.g. ``resnet18.a1_in1k``) as a `Model`.

    Input size, channels and mean/std come from timm's pretrained config; labels are ImageNet's when the model
    has 1000 outputs.

    Example:
        >>> from_timm("resnet18", "random").input_size
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
        network = _timm_pretrained(name, model_name)
    else:
        network = timm.create_model(name, pretrained=False)
        if weights != "random":
            load_weights_file(network, weights, model_name=model_name)
    config = network.pretrained_cfg
    channels, height, width = config.get("input_size", (3, *DEFAULT_INPUT_SIZE))
    labels = imagenet_labels() if getattr(network, "num_classes", None) == IMAGENET_CLASSES else None
    return Model(
        network,
        name=model_name,
        input_size=(height, width),
        channels=channels,
        mean=config.get("mean", (0.0,)),
        std=config.get("std", (1.0,)),
        labels=labels,
    )


def _timm_pretrained(name: str, model_name: str) -> nn.Module:
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


def from_torchvision(name: str, weights: WeightsChoice = None) -> Model:
    """A torchvision model (``torchvision:NAME``, e.g. ``resnet18``) as a `Model`.

    Pretrained means the architecture's DEFAULT weights; input size, mean/std and class names come from their
    metadata (also for random init, from the same metadata, offline).

    Example:
        >>> from_torchvision("resnet18", "random").labels[1]
        'goldfish'
    """
    import torchvision

    model_name = f"torchvision:{name}"
    available = torchvision.models.list_models()
    if name not in available:
        raise FeatvizError(f"unknown torchvision model '{name}'{suggestion(name, available)}")
    default_weights = torchvision.models.get_model_weights(name).DEFAULT
    if weights is None:
        url = default_weights.url
        if weights_module.torch_hub_cached_file(url) is not None:
            network = torchvision.models.get_model(name, weights=default_weights)
        else:
            with weights_module.downloading(model_name, weights_module.host_of(url), "torch"):
                network = torchvision.models.get_model(name, weights=default_weights)
    else:
        network = torchvision.models.get_model(name, weights=None)
        if weights != "random":
            load_weights_file(network, weights, model_name=model_name)
    preprocess = default_weights.transforms()
    crop = getattr(preprocess, "crop_size", DEFAULT_INPUT_SIZE)
    mean = getattr(preprocess, "mean", (0.0,))
    std = getattr(preprocess, "std", (1.0,))
    return Model(
        network,
        name=model_name,
        input_size=_size_pair(crop),
        channels=3,
        mean=mean,
        std=std,
        labels=default_weights.meta.get("categories"),
    )


def from_open_clip(spec: str, weights: WeightsChoice = None) -> Model:
    """The image tower (``model.visual``) of an open_clip model: ``ARCH/PRETRAINED``, or ``ARCH`` (random init).

    Input size and mean/std come from open_clip's config (the pretrained tag's when given); no class names.
    ``weights`` may override the tag: ``"random"``, or a path to a full CLIP checkpoint or an image-tower one.

    Example:
        >>> from_open_clip("ViT-S-32-alt").input_size
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
        clip = _open_clip_pretrained(architecture, tag, tag_config, model_name, options)
    else:
        with _quiet_logging():  # open_clip warns on every random init
            clip = open_clip.create_model(architecture, pretrained=None, **options)
    network = clip.visual
    if weights not in (None, "random"):
        load_weights_file(network, weights, model_name=model_name, convert=_image_tower_state)
    preprocess = open_clip.get_model_preprocess_cfg(clip)
    return Model(
        network,
        name=model_name,
        input_size=_size_pair(network.image_size),
        channels=3,
        mean=tag_config.get("mean", preprocess["mean"]),
        std=tag_config.get("std", preprocess["std"]),
        labels=None,
    )


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


def _open_clip_pretrained(architecture: str, tag: str, tag_config: dict, model_name: str, options: dict) -> nn.Module:
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


def from_module(network: nn.Module, weights: WeightsChoice = None, *, channels: int | None = None) -> Model:
    """Wrap a plain ``nn.Module``: 224 x 224 input, no normalization (mean 0, std 1), no class names.

    Channels come from the first Conv2d unless given. ``weights`` None or ``"random"`` keep the module's own
    parameters; a path loads a checkpoint into it. The module itself is frozen and set to eval mode.

    Example:
        >>> from_module(nn.Sequential(nn.Conv2d(1, 4, 3))).channels
        1
    """
    name = type(network).__name__
    if channels is None:
        channels = detect_channels(network)
        if channels is None:
            raise FeatvizError(f"cannot tell how many input channels {name} takes (it has no Conv2d); pass channels=")
    if weights not in (None, "random"):
        load_weights_file(network, weights, model_name=name)
    return Model(network, name=name, input_size=DEFAULT_INPUT_SIZE, channels=channels, mean=(0.0,), std=(1.0,))
