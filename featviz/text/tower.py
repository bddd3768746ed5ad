"""The text tower protocol: prompts in, vectors in the image embedding space of one model out.

A `Model` may carry a text tower as ``model.text``. Its ``image_layer`` names the layer of the image network
whose output is the image embedding (``"@output"`` for a CLIP image tower, the input of the classifier for an
ImageNet model), and ``encode(prompts)`` returns one unit-norm vector per prompt in that space. CLIP's tower is
its own text transformer (`featviz.text.clip`); a classifier's turns a prompt into a distribution over its classes
and embeds it as the mixture of their class weight vectors (`featviz.text.sentence`).
"""
from __future__ import annotations

from typing import Any, Sequence

from torch import Tensor, nn

from featviz.errors import FeatvizError


class TextTower(nn.Module):
    """Maps prompts into a model's image embedding space: ``encode(prompts) -> (N, D)`` unit-norm vectors.

    Subclasses set ``image_layer`` (the layer whose output is the image embedding, ``(B, D)``) and implement
    ``encode``; they may load their weights lazily, on the first ``encode``.

    Example:
        >>> clip = featviz.load_model("open_clip:featviz-tiny-RN", weights="random")   # RN50's is 1024-d
        >>> clip.text.encode(["a photo of a dog"]).shape, clip.text.image_layer
        (torch.Size([1, 32]), '@output')
    """

    image_layer: str = "@output"

    def encode(self, prompts: Sequence[str]) -> Tensor:
        """One unit-norm embedding per prompt, ``(len(prompts), D)``, float32, on the tower's device."""
        raise NotImplementedError


def text_tower(model: Any) -> TextTower:
    """``model.text``, or a FeatvizError saying which models have a text tower.

    Example:
        >>> text_tower(model).image_layer          # EfficientNet-Lite0's classifier tower
        'global_pool'
        >>> text_tower(featviz.load_model(nn.Sequential(nn.Conv2d(3, 8, 3))))   # no class names, no CLIP
        Traceback (most recent call last):
        featviz.errors.FeatvizError: Sequential has no text tower; text needs a CLIP model ...
    """
    tower = getattr(model, "text", None)
    if not isinstance(tower, TextTower):
        raise FeatvizError(
            f"{getattr(model, 'name', 'this model')} has no text tower; text needs a CLIP model "
            "(open_clip:ARCH with weights) or a classifier with class names (e.g. efficientnet_lite0, or "
            "load_model(network, labels=[...]); with pip install 'featviz[text]')"
        )
    return tower
