"""Model loading: `load_model(name)` returns a frozen `Model` with its normalization, input size and labels.

Example:
    >>> from featviz.models import load_model
    >>> model = load_model("efficientnet_lite0")
    >>> model.input_size, model.labels[1]
    ((224, 224), 'goldfish')
"""
from featviz.models.labels import imagenet_labels
from featviz.models.model import Model
from featviz.models.registry import list_models, load_model, register_model
from featviz.models import efficientnet_lite as _efficientnet_lite  # registers the built-in models

__all__ = ["Model", "imagenet_labels", "list_models", "load_model", "register_model"]
