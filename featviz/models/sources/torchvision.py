"""The ``torchvision:`` source: any torchvision model by name (``torchvision:resnet18``) with its DEFAULT weights.

Input size, mean/std and class names come from the weights' metadata, offline (also for random init).
A torchvision model passed as an object declares nothing, so it is wrapped like any plain module.
"""
from __future__ import annotations

from featviz.errors import FeatvizError, suggestion
from featviz.models import weights as weights_module
from featviz.models.config import DEFAULT_INPUT_SIZE, ModuleConfig, model_from_config, size_pair
from featviz.models.model import Model
from featviz.models.registry import register_source
from featviz.models.weights import WeightsChoice, load_weights_file


def has_torchvision_model(name: str) -> bool:
    """Whether torchvision has a model called ``name``.

    Example:
        >>> has_torchvision_model("resnet18")
        True
    """
    import torchvision

    return name in torchvision.models.list_models()


@register_source("torchvision", syntax="torchvision:NAME", has_model=has_torchvision_model,
                 description="any torchvision model, pretrained with its DEFAULT weights")
def build_torchvision(name: str, weights: WeightsChoice) -> Model:
    """The torchvision model ``name`` (``torchvision:NAME``) as a `Model`, with its DEFAULT weights, ``"random"``
    or a file (``weights``).

    Example:
        >>> build_torchvision("resnet18", "random").labels[1]
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
    config = ModuleConfig(
        network,
        input_size=size_pair(getattr(preprocess, "crop_size", DEFAULT_INPUT_SIZE)),
        channels=3,
        mean=getattr(preprocess, "mean", None),
        std=getattr(preprocess, "std", None),
        labels=default_weights.meta.get("categories"),
    )
    return model_from_config(config, name=model_name)
