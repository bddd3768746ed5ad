"""Feature accentuation (Hamblin, Fel et al. 2024, "Feature Accentuation: Revealing 'What' Features Respond to in
Natural Images"): feature visualization seeded with a photo instead of noise.

The image starts as the photo itself in the Fourier parameterization (its own spectrum: ``Fourier(init_image=...)``)
and is optimized to raise a unit while staying close to the photo in an intermediate layer's activations, so the
unit's feature grows where the photo already has it. The paper's implementation (the Faccent library) balances
the two terms by their gradients at the start: the regularizer's weight is ``balance`` times the ratio of the
objective's gradient magnitude to the regularizer's, the latter measured under the light pixel noise (std 0.02)
its views add, with ``balance`` 1 by default. This recipe does the same, on the image's pixels. The importance
map (MACO's accumulated absolute gradient, `featviz.render(..., importance=True)`) shows where the feature lives.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from featviz.errors import FeatvizError
from featviz.hooks import IMAGE, ActivationCapture, RedirectedReLU, bind_layers, survey_model
from featviz.models import Model
from featviz.objectives import Objective
from featviz.objectives.algebra import stack
from featviz.objectives.binding import ObjectiveLike, bind_objective, parse_objectives
from featviz.objectives.checks import read
from featviz.param import Fourier
from featviz.dataset.photo import PhotoLike, load_photo, photo_size
from featviz.recipes.inversion import OnImages, PhotoComparison, PhotoPair
from featviz.renderer.calls import old_call_forms
from featviz.renderer import Renderer, RenderResult, RenderSettings
from featviz.renderer.settings import settings_from

# the stride-8 output of EfficientNet-Lite, like the paper's mixed3a of InceptionV1 (also stride 8)
DEFAULT_REGULARIZATION_LAYERS = {name: "blocks.2" for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")}
# Faccent's views add Gaussian pixel noise of this deviation; the regularizer's starting gradient is measured with it
BALANCE_NOISE = 0.02

#: The render settings of `accentuate` unless others are given.
ACCENTUATION_SETTINGS = RenderSettings(steps=128, transforms="standard")


class _Distance(PhotoComparison):
    """The mean squared difference between the images' and the photos' activations at one layer, per image view,
    times each image's weight."""

    def __init__(self, layer: str, weights: Tensor, pair: PhotoPair) -> None:
        shown = ", ".join(f"{float(weight):.3g}" for weight in weights)
        super().__init__([layer], f"{shown}*distance({layer})" if len(weights) == 1 else f"[{shown}]*distance({layer})",
                         pair)
        self.layer = layer
        self.weights = weights

    def compare(self, image_acts: dict[str, Tensor], photo_acts: dict[str, Tensor]) -> Tensor:
        difference = read(image_acts, self.layer) - read(photo_acts, self.layer)
        distances = difference.square().flatten(1).mean(1)
        weights = self.weights.to(distances).repeat(distances.shape[0] // len(self.weights))
        return distances * weights


def _balance_weights(model: Model, goals: list[Objective], photo: Tensor, layer: str, seed: int) -> Tensor:
    """Per goal, ``|d objective / d photo| / |d distance / d photo|`` summed over pixels, the distance taken at the
    photo plus `BALANCE_NOISE` Gaussian noise: the weights that give both terms gradients of the same size at
    the start."""
    size = tuple(photo.shape[-2:]) if survey_model(model).takes_other_sizes else tuple(model.input_size)
    bound = bind_objective(model, goals, size=size)
    layers = sorted({*bound.target.layers, layer} - {IMAGE})
    layouts = bind_layers(model, layers, size).layouts
    count = len(goals)
    images = torch.nn.functional.interpolate(photo, size=size, mode="bicubic", align_corners=False, antialias=True) \
        if tuple(photo.shape[-2:]) != size else photo
    images = images.expand(count, -1, -1, -1).to(model.device, model.dtype)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed)).to(images) * BALANCE_NOISE
    with ActivationCapture(model, layers, layouts=layouts) as capture:
        for redirect in (False, True):  # a unit silent on the photo gets gradients through its redirected ReLUs
            start = images.clone().requires_grad_(True)
            with RedirectedReLU() if redirect else contextlib.nullcontext():
                acts = capture.run(start)
                if IMAGE in bound.target.layers:
                    acts[IMAGE] = start
                bound.target(acts).sum().backward()
            objective_gradient = start.grad.abs().flatten(1).sum(1)
            if bool((objective_gradient > 0).all()):
                break
        with torch.no_grad():
            reference = capture.run(images)[layer] if layer != IMAGE else images
        noisy = (images + noise).clamp(0, 1).requires_grad_(True)
        value = capture.run(noisy)[layer] if layer != IMAGE else noisy
        (value - reference).square().flatten(1).mean(1).sum().backward()
        distance_gradient = noisy.grad.abs().flatten(1).sum(1)
    for goal, gradient in zip(goals, objective_gradient):
        if not gradient > 0:
            raise FeatvizError(f"the objective '{goal.name}' does not change with this photo (zero gradient); "
                               "choose another unit, or another photo")
    if not bool((distance_gradient > 0).all()):
        raise FeatvizError(f"the regularization layer '{layer}' does not change with the photo; choose another layer")
    return (objective_gradient / distance_gradient).detach().float().cpu()


@old_call_forms(["image", "model", "objective"])
def accentuate(
    model: Model | nn.Module | str,
    objective: ObjectiveLike | Sequence[ObjectiveLike],
    image: PhotoLike,
    *,
    regularization_layer: str | None = None,
    balance: float = 1.0,
    decay: float = 1.3,
    importance: bool = True,
    settings: RenderSettings | None = None,
    **render: Any,
) -> RenderResult:
    """Accentuate in a photo what ``objective`` responds to: the photo, changed just enough to raise the unit.

    ``image`` is the photo (path, PIL image, array or tensor; see `load_photo`), loaded at ``size`` (default: its
    shorter side becomes the model's input's shorter side, aspect ratio kept). ``objective`` is anything
    `featviz.render` takes ("blocks.5:12", "class:tabby", an Objective, a function ``f(T)``; a list renders one
    accentuation per objective). The image is a `featviz.param.Fourier` parameterization (``decay``) initialized
    with the photo's own spectrum and optimized for ``steps`` steps to maximize ``objective - w * D``, where ``D``
    is the mean squared difference between the image's and the photo's activations at
    ``regularization_layer`` (default ``blocks.2`` on EfficientNet-Lite; ``"@image"``, the pixels, on other
    models), both seen through the same random ``transforms`` ("standard" default). ``w`` is ``balance`` (1 by
    default, as in the paper's Faccent library) times the ratio of the two terms' starting gradient magnitudes
    (see the module; one ``w`` per objective): 0 gives an unconstrained accentuation, larger values stay closer
    to the photo. With
    ``importance`` (default) the result carries MACO's importance map (``result.importance``, saved with
    ``result.save(path, importance=True)``): where in the photo the optimization changed what the unit sees.
    ``seed`` seeds the parameterization, the random transforms (objective ``i``'s use ``seed + i``) and the
    balance's pixel noise. ``size``, ``steps``, ``transforms``, ``seed``, ``optimizer``, ``lr``, ``precision``,
    ``device`` and ``progress`` come from ``settings`` (a `featviz.RenderSettings`; default
    ``ACCENTUATION_SETTINGS``: 128 steps, "standard"; each field may also be given as a keyword); its ``param``
    must be None or "fft", the Fourier image started from the photo.

    Example:
        >>> from skimage import data
        >>> result = accentuate(model, "class:tabby", data.chelsea(), size=32, steps=2,
        ...                     progress=False)         # by default: steps=128 at the model's size
        >>> result.images.shape, result.importance.shape     # a 451 x 300 photo keeps its aspect
        (torch.Size([1, 3, 32, 48]), torch.Size([1, 32, 48]))
    """
    settings = settings_from(settings, ACCENTUATION_SETTINGS, render, owner="accentuate")
    seed, size = settings.seed, settings.size
    if settings.param not in (None, "fft", "fourier"):
        raise FeatvizError(
            f"accentuate optimizes a Fourier image started from the photo; param must be None or 'fft', not {settings.param!r}"
        )
    if isinstance(balance, bool) or not isinstance(balance, (int, float)) or not math.isfinite(balance) or balance < 0:
        raise FeatvizError(f"balance must be a finite number >= 0 (0: no regularization), not {balance!r}")
    if not isinstance(importance, bool):
        raise FeatvizError(f"importance must be True or False, not {importance!r}")
    goals = parse_objectives(objective)
    renderer = Renderer(model, **settings.renderer_options())
    prepared = renderer.model
    layer = regularization_layer if regularization_layer is not None else \
        DEFAULT_REGULARIZATION_LAYERS.get(prepared.name, IMAGE)
    if not isinstance(layer, str) or not layer:
        raise FeatvizError(f"regularization_layer must be a layer name or '@image', not {regularization_layer!r}")
    photo = load_photo(image, photo_size(prepared, size), prepared.channels)
    picture = Fourier(tuple(photo.shape[-2:]), batch=len(goals), channels=prepared.channels, decay=decay, seed=seed,
                      init_image=photo, device=renderer.device)
    transforms = "standard" if settings.transforms is None else settings.transforms
    pair = PhotoPair(renderer, photo, transforms=transforms, seeds=[seed + index for index in range(len(goals))])
    target = OnImages(stack(goals) if len(goals) > 1 else goals[0], pair)
    goal = target
    if balance > 0:
        goal = target - _Distance(layer, balance * _balance_weights(prepared, goals, photo, layer, seed), pair)
    return pair.render(goal, picture, steps=settings.steps, progress=settings.progress, importance=importance,
                       optimizer=settings.optimizer_factory())


__all__ = ["accentuate"]
