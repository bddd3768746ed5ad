"""Model loading: `load_model` turns a name, a `Model` or any ``nn.Module`` into a frozen `Model`.

A `Model` carries its network's normalization, input size and class names. Names are registered with
`register_model`; ``PREFIX:NAME`` names come from the model sources in featviz/models/sources
(`register_source`, `list_sources`; `featviz models` lists them).

Example:
    >>> from featviz.models import load_model
    >>> model = load_model("efficientnet_lite0")
    >>> model.input_size, model.labels[1]
    ((224, 224), 'goldfish')
"""
from featviz.models.labels import imagenet_labels
from featviz.models.model import Model
from featviz.models.registry import list_models, list_sources, load_model, register_model, register_source
from featviz.models.weights import weights_fingerprint
from featviz.models import efficientnet_lite as _efficientnet_lite  # registers the built-in models
from featviz.models import sources as _sources  # registers every model source

__all__ = [
    "Model", "imagenet_labels", "list_models", "list_sources", "load_model", "register_model", "register_source",
    "weights_fingerprint",
]
