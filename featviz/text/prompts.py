"""Prompts for a model's text tower: checking them, weighting them, and their unit-norm embeddings (with a
template ensemble), as text objectives, text directions and concept labels all read them."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor

from featviz.errors import FeatvizError
from featviz.text.tower import text_tower

PromptsLike = str | Sequence[str] | Mapping[str, float]

#: Templates averaged by ``text(..., templates=ENSEMBLE)``: a few of CLIP's ImageNet prompt templates.
ENSEMBLE = (
    "a photo of a {}.",
    "a bad photo of a {}.",
    "a photo of the large {}.",
    "a photo of the small {}.",
    "a bright photo of a {}.",
    "a close-up photo of a {}.",
    "a drawing of a {}.",
    "art of the {}.",
)


def weighted_prompts(prompts: PromptsLike, weights: Sequence[float] | None = None) -> dict[str, float]:
    """``prompts`` as ``{prompt: weight}``: one prompt (weight 1), a list (weights 1, or ``weights``), or a mapping.

    Example:
        >>> weighted_prompts({"a dog": 1.0, "a cat": -0.5})
        {'a dog': 1.0, 'a cat': -0.5}
    """
    if isinstance(prompts, Mapping):
        if weights is not None:
            raise FeatvizError("give weights either in the mapping {prompt: weight} or as weights=, not both")
        items = list(prompts.items())
    else:
        names = check_prompts(prompts)
        values = [1.0] * len(names) if weights is None else [float(weight) for weight in weights]
        if len(values) != len(names):
            raise FeatvizError(f"{len(names)} prompts but {len(values)} weights; give one weight per prompt")
        items = list(zip(names, values))
    check_prompts([prompt for prompt, _ in items])
    found: dict[str, float] = {}
    for prompt, weight in items:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight != weight:
            raise FeatvizError(f"the weight of prompt '{prompt}' must be a number, not {weight!r}")
        found[prompt] = found.get(prompt, 0.0) + float(weight)
    return found


def prompt_embeddings(model: Any, prompts: Sequence[str], templates: Sequence[str] | None = None) -> Tensor:
    """Unit-norm embeddings of ``prompts`` by ``model``'s text tower, ``(P, D)``; with ``templates`` (strings
    with one ``{}``), each prompt's is the normalized mean over its templated sentences (a prompt ensemble).

    Example:
        >>> clip = featviz.load_model("open_clip:featviz-tiny-ViT", weights="random")   # a tiny random CLIP
        >>> prompt_embeddings(clip, ["dog", "cat"], templates=ENSEMBLE).shape
        torch.Size([2, 32])
        >>> round(float(prompt_embeddings(clip, ["dog"]).norm()), 4)
        1.0
    """
    tower = text_tower(model)
    if not templates:
        return tower.encode(list(prompts))
    for template in templates:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise FeatvizError(f"a template must hold '{{}}' once, like 'a photo of a {{}}.', not {template!r}")
    sentences = [template.format(prompt) for prompt in prompts for template in templates]
    embeddings = tower.encode(sentences).view(len(prompts), len(templates), -1).mean(1)
    return F.normalize(embeddings, dim=-1)


def check_prompts(prompts: Sequence[str]) -> list[str]:
    """``prompts`` as a list of non-empty strings, or a FeatvizError.

    Example:
        >>> check_prompts(["a dog"])
        ['a dog']
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    found = list(prompts)
    if not found or not all(isinstance(prompt, str) and prompt.strip() for prompt in found):
        raise FeatvizError(f"prompts must be non-empty strings like 'a photo of a dog', got {found!r}")
    return found


__all__ = ["ENSEMBLE", "PromptsLike", "check_prompts", "prompt_embeddings", "weighted_prompts"]
