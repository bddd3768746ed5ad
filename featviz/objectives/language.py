"""Text objectives: how close the image embedding is to what prompts say, on any model with a text tower.

On CLIP the image embedding is the image tower's output and prompts go through CLIP's text transformer; on an
ImageNet classifier the embedding is the classifier's input and prompts go through a sentence encoder mapped
into that space (`featviz.text`). Either way a step costs one projection: the prompts are encoded once, when
the objective is bound to the model.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from featviz.errors import FeatvizError
from featviz.objectives.base import Constant, Objective
from featviz.objectives.checks import Activations, Shapes, check_layer_name, read
from featviz.objectives.shorthand import register_shorthand
from featviz.objectives.units import direction
from featviz.text.directions import find_text_direction
from featviz.text.prompts import ENSEMBLE, PromptsLike, prompt_embeddings, weighted_prompts
from featviz.text.sentence import ClassTextTower
from featviz.text.tower import text_tower


class Text(Objective):
    """``sum_i w_i * cos(image embedding, embedding of prompt i)``; built by ``text()``.

    Example:
        >>> Text({"a dog": 1.0, "a cat": -0.5}).name
        'text:a dog|a cat:-0.5'
    """

    def __init__(self, prompts: Mapping[str, float], templates: Sequence[str] | None = None) -> None:
        self.prompts = dict(prompts)
        self.templates = tuple(templates) if templates else None
        shown = "|".join(prompt if weight == 1.0 else f"{prompt}:{weight:g}" for prompt, weight in self.prompts.items())
        super().__init__((), f"text:{shown}")
        self.layer: str | None = None
        self._directions: Constant | None = None
        self._weights = Constant(torch.tensor(list(self.prompts.values()), dtype=torch.float64))

    def resolve_layers(self, model: Any, read_layer: Callable[[str], Tensor]) -> None:
        self.layer = text_tower(model).image_layer
        self._layers = frozenset({self.layer})

    def bind(self, model: Any, shapes: Shapes) -> None:
        if self.layer is None:
            self.resolve_layers(model, lambda name: torch.empty(0))
        embeddings = prompt_embeddings(model, list(self.prompts), self.templates)
        warn_flat = getattr(text_tower(model), "warn_flat", None)  # a classifier's tower: prompts naming no class
        if warn_flat is not None:
            warn_flat(list(self.prompts))
        width = shapes[self.layer][1] if self.layer in shapes else embeddings.shape[1]
        if embeddings.shape[1] != width:
            raise FeatvizError(
                f"the text tower makes {embeddings.shape[1]}-d embeddings but layer '{self.layer}' has {width} "
                "channels; the tower does not belong to this model"
            )
        self._directions = Constant(embeddings.detach().cpu())

    def __call__(self, acts: Activations) -> Tensor:
        if self._directions is None or self.layer is None:
            raise FeatvizError(f"objective '{self.name}' needs a model's text tower; render it, or bind it first")
        embedding = read(acts, self.layer).flatten(2).mean(2)
        similarity = F.normalize(embedding, dim=1) @ self._directions.like(embedding).t()
        return similarity @ self._weights.like(similarity)


def text(
    prompts: PromptsLike, *, weights: Sequence[float] | None = None, templates: Sequence[str] | None = None
) -> Objective:
    """Maximize the cosine similarity of the image embedding with a prompt's (CLIP's text feature visualization).

    ``prompts`` is one prompt, a list (averaged: weights 1 each, or ``weights``) or a mapping ``{prompt:
    weight}``; negative weights push away from a prompt. ``templates`` (e.g. `ENSEMBLE`) turns each prompt into
    several sentences whose embeddings are averaged. Works on any model with a text tower: CLIP
    (``open_clip:...``) and ImageNet classifiers such as ``efficientnet_lite0``. Shorthand:
    ``"text:a dog|a cat:-0.5"``.

    Example:
        >>> from featviz.objectives import total_variation
        >>> goal = text("a photo of a dog") - 0.5 * text("a photo of a cat") - 0.05 * total_variation()
        >>> clip = featviz.load_model("open_clip:featviz-tiny-ViT", weights="random")   # a tiny random CLIP
        >>> featviz.render(clip, goal, steps=2, progress=False).images.shape
        torch.Size([1, 3, 64, 64])

        With real CLIP weights (OpenAI's ``RN50.pt``, or the hub cache after one download):

        >>> result = featviz.render(featviz.load_model("open_clip:RN50", weights="RN50.pt"), goal)   # doctest: +SKIP
    """
    return Text(weighted_prompts(prompts, weights), templates)


class TextDirectionObjective(Objective):
    """A prompt's text direction in a layer's channel space, maximized like `direction` (dot product times
    cosine to the ``cossim_pow``); the direction is found when the objective is bound (`featviz.text.
    text_direction`, with ``templates`` when given). Built by ``text_direction()``.

    Example:
        >>> TextDirectionObjective("layer4", {"a spider": 1.0}).name
        'text@layer4:a spider'
    """

    def __init__(self, layer: str, prompts: Mapping[str, float], cossim_pow: float = 1.0,
                 templates: Sequence[str] | None = None) -> None:
        layer = check_layer_name(layer)
        shown = "|".join(prompt if weight == 1.0 else f"{prompt}:{weight:g}" for prompt, weight in prompts.items())
        super().__init__((layer,), f"text@{layer}:{shown}")
        self.layer = layer
        self.prompts = dict(prompts)
        self.cossim_pow = float(cossim_pow)
        self.templates = tuple(templates) if templates else None
        self.found: Any = None
        self._direction: Objective | None = None

    def bind(self, model: Any, shapes: Shapes) -> None:
        self.found = find_text_direction(model, self.layer, self.prompts, templates=self.templates)
        warn_flat = getattr(text_tower(model), "warn_flat", None)
        if warn_flat is not None:
            warn_flat(list(self.prompts))
        self._direction = direction(self.layer, self.found.vector, cossim_pow=self.cossim_pow)
        self._direction.bind(model, shapes)

    def __call__(self, acts: Activations) -> Tensor:
        if self._direction is None:
            raise FeatvizError(f"objective '{self.name}' needs a model's text tower; render it, or bind it first")
        return self._direction(acts)


def text_direction(
    layer: str, prompts: PromptsLike, *, cossim_pow: float = 1.0, weights: Sequence[float] | None = None,
    templates: Sequence[str] | None = None,
) -> Objective:
    """Maximize the direction in ``layer``'s channel space that ``prompts`` point to (exact where the network is
    linear from the layer to the embedding, fitted elsewhere; see `featviz.text.text_direction`), averaged over
    positions with lucid's ``cossim_pow`` weighting. ``prompts`` and ``weights`` as for `text`; ``templates``
    turn each prompt into several sentences whose embeddings are averaged. Shorthand: ``"text@LAYER:PROMPT"``.

    Example:
        >>> clip = featviz.load_model("open_clip:featviz-tiny-RN", weights="random")    # a tiny random CLIP ResNet
        >>> result = featviz.render(clip, text_direction("layer4", "a photo of a spider"), steps=2, progress=False)
        >>> result.objectives
        ['text@layer4:a photo of a spider']
        >>> result = featviz.render("open_clip:RN50/openai", text_direction("layer4", "a photo of a spider"))  # doctest: +SKIP
    """
    return TextDirectionObjective(layer, weighted_prompts(prompts, weights), cossim_pow, templates)


@register_shorthand("text:PROMPT", prefix="text:")
def parse_text(body: str) -> Objective:
    """The objective of the shorthand ``text:PROMPT|PROMPT:WEIGHT|...``, whose ``body`` follows ``text:``: prompts
    separated by ``|``, each with an optional ``:WEIGHT`` at its end (default 1).

    Example:
        >>> parse_text("a dog|a cat:-0.5").prompts
        {'a dog': 1.0, 'a cat': -0.5}
    """
    found: dict[str, float] = {}
    for part in body.split("|"):
        prompt, colon, tail = part.rpartition(":")
        weight = 1.0
        if colon:
            try:
                weight = float(tail)
            except ValueError:
                prompt = part
            else:
                if weight != weight:
                    raise FeatvizError(f"malformed text objective 'text:{body}': the weight of '{prompt}' is not a number")
        else:
            prompt = part
        prompt = prompt.strip()
        if not prompt:
            raise FeatvizError(
                f"malformed text objective 'text:{body}': expected text:PROMPT or text:PROMPT|PROMPT:WEIGHT, "
                "e.g. text:a dog|a cat:-0.5"
            )
        found[prompt] = found.get(prompt, 0.0) + weight
    return Text(found)


@register_shorthand("text@LAYER:PROMPT", prefix="text@")
def parse_text_direction(body: str) -> Objective:
    """The objective of the shorthand ``text@LAYER:PROMPT|PROMPT:WEIGHT``, whose ``body`` follows ``text@``.

    Example:
        >>> parse_text_direction("layer4:a spider").name
        'text@layer4:a spider'
    """
    layer, colon, prompts = body.partition(":")
    if not colon or not layer.strip():
        raise FeatvizError(f"malformed text direction 'text@{body}': expected text@LAYER:PROMPT, e.g. text@layer4:a spider")
    return TextDirectionObjective(layer.strip(), parse_text(prompts).prompts)


__all__ = [
    "ENSEMBLE", "Text", "TextDirectionObjective", "parse_text", "parse_text_direction", "prompt_report", "text",
    "text_direction", "text_prompts",
]


def text_prompts(goals: Any) -> list[str]:
    """The prompts of the text objectives (`Text`, `TextDirectionObjective`) inside ``goals`` (an objective, or a
    list of them), in order, each once.

    Example:
        >>> text_prompts([featviz.objectives.parse("text:a lemon|a lime:0.5")[0], "blocks.4:3"])
        ['a lemon', 'a lime']
    """
    found: dict[str, None] = {}
    seen: set[int] = set()

    def visit(value: Any) -> None:
        if id(value) in seen or isinstance(value, (str, bytes, Tensor)):
            return
        seen.add(id(value))
        if isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
            return
        if isinstance(value, (Text, TextDirectionObjective)):
            found.update(dict.fromkeys(value.prompts))
        for item in getattr(value, "__dict__", {}).values():
            if isinstance(item, (list, tuple, Objective)):
                visit(item)

    visit(goals)
    return list(found)


def prompt_report(model: Any, goals: Any) -> list[str]:
    """What each text prompt of ``goals`` became on ``model`` (`ClassTextTower.report`'s lines); empty for a model
    whose text tower is not a classifier's (CLIP keeps its own text).

    Example:
        >>> for line in prompt_report(model, featviz.objectives.parse("text:a photo of a lemon|crane:0.5")):
        ...     print(line)
        text:a photo of a lemon → lemon 1.00
        text:crane → crane bird 0.50, crane 0.50
    """
    tower = getattr(model, "text", None)
    prompts = text_prompts(goals)
    if not isinstance(tower, ClassTextTower) or not prompts:
        return []
    return tower.report(prompts)
