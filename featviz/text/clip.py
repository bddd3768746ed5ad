"""CLIP's own text tower: open_clip's tokenizer (its BPE vocabulary ships in its wheel) and text transformer.

The image tower becomes the featviz `Model`'s network, so its layers keep their names (``transformer.
resblocks.3``, ``layer4``); the rest of the CLIP model (token embedding, text transformer, final norm, text
projection, logit scale) is kept here. The image embedding is the image tower's output (``"@output"``).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from featviz.errors import FeatvizError
from featviz.models.model import Model, register_text_tower
from featviz.text.prompts import check_prompts
from featviz.text.tower import TextTower


class ClipTextTower(TextTower):
    """The text side of an open_clip CLIP model: ``encode(prompts)`` gives unit-norm text embeddings.

    ``clip`` is the whole open_clip model; its image tower is taken out (it lives on as the featviz Model's
    network) and the rest kept. ``architecture`` names the tokenizer (`open_clip.get_tokenizer`).

    Example:
        >>> model = featviz.load_model("open_clip:featviz-tiny-ViT", weights="random")
        >>> model.text.encode(["a photo of a dog", "a photo of a cat"]).shape
        torch.Size([2, 32])
    """

    image_layer = "@output"

    def __init__(self, clip: nn.Module, architecture: str) -> None:
        super().__init__()
        if not callable(getattr(clip, "encode_text", None)):
            raise FeatvizError(f"{type(clip).__name__} has no encode_text; pass an open_clip CLIP model")
        if hasattr(clip, "visual"):
            del clip.visual  # the featviz Model holds the image tower
        self.clip = clip
        self.architecture = architecture
        self._tokenizer = None

    @property
    def logit_scale(self) -> float:
        """CLIP's learned temperature, ``exp(logit_scale)`` (100 for OpenAI's models)."""
        return float(self.clip.logit_scale.detach().exp())

    def tokenize(self, prompts: Sequence[str]) -> Tensor:
        """The prompts as CLIP token ids, ``(N, context_length)``.

        Example:
            >>> clip = featviz.load_model("open_clip:featviz-tiny-ViT", weights="random")
            >>> clip.text.tokenize(["a dog"]).shape
            torch.Size([1, 77])
        """
        if self._tokenizer is None:
            import open_clip

            self._tokenizer = open_clip.get_tokenizer(self.architecture)
        return self._tokenizer(list(prompts))

    def encode(self, prompts: Sequence[str]) -> Tensor:
        prompts = check_prompts(prompts)
        device = next(self.clip.parameters()).device
        with torch.no_grad():
            embeddings = self.clip.encode_text(self.tokenize(prompts).to(device), normalize=True)
        return embeddings.float()



def clip_text_tower(model: Model) -> ClipTextTower | None:
    """CLIP's text tower for ``model`` when its ``text_source`` is the rest of an open_clip CLIP model (what the
    open_clip source keeps beside the image tower), else None; registered with
    `featviz.models.model.register_text_tower`, so ``model.text`` is made on first read.

    Example:
        >>> clip_text_tower(featviz.load_model("open_clip:featviz-tiny-RN", weights="random")).architecture
        'featviz-tiny-RN'
    """
    source = model.text_source
    if source is None or not callable(getattr(source, "encode_text", None)):
        return None
    return ClipTextTower(source, architecture=getattr(source, "featviz_architecture", None) or "ViT-B-32")


register_text_tower(clip_text_tower)

__all__ = ["ClipTextTower", "clip_text_tower"]
