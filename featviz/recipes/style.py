"""Style transfer in a decorrelated parameterization (Differentiable Image Parameterizations, Distill 2018).

Gatys et al.'s recipe: an image whose Gram matrices (channel co-activations, which ignore where things are) match a
style image's at several layers, and whose activations at one deeper layer match a content photo's. Distill's
point: optimized in pixels, this works on VGG but gives noisy, high-frequency results on other networks; optimized
in the Fourier, colour-decorrelated parameterization (``param="fft"``, the default) it works on them too. Pass
``param="pixel"`` to see the difference.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import torch
from torch import Tensor, nn

from featviz import param as param_module
from featviz.errors import FeatvizError
from featviz.hooks import ActivationCapture, bind_layers, survey_model
from featviz.models import Model, load_model
from featviz.objectives.checks import read
from featviz.dataset.photo import PhotoLike, load_photo, photo_size
from featviz.recipes.inversion import PhotoComparison, PhotoPair
from featviz.renderer.calls import old_call_forms
from featviz.renderer import Renderer, RenderResult, RenderSettings
from featviz.renderer.settings import settings_from

# EfficientNet-Lite's block outputs at strides 2, 4, 8 and 16 carry the style (from colours and strokes to small
# motifs); the content is the stride-16 output of the last block there, where shapes are kept but not textures.
EFFICIENTNET_LITE_LAYERS = {"style": ("blocks.0", "blocks.1", "blocks.2", "blocks.3"), "content": "blocks.4"}
DEFAULT_LAYERS = {name: EFFICIENTNET_LITE_LAYERS for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")}
_EPSILON = 1e-12
#: The render settings of `style_transfer` unless others are given.
STYLE_SETTINGS = RenderSettings(steps=512, param="fft", transforms="none")


class TransferLosses(NamedTuple):
    """What `transfer_losses` measures per image: ``style``, the mean over the style layers of the relative
    squared error between the image's Gram matrix and the style image's, and ``content``, the relative squared
    error between the image's activations and the content photo's at the content layer (each ``(B,)``)."""

    style: Tensor
    content: Tensor


def gram_matrix(activations: Tensor) -> Tensor:
    """``(B, C, C)`` Gram matrices of ``(B, C, H, W)`` activations: channel co-activations averaged over positions.

    Example:
        >>> gram_matrix(torch.ones(2, 4, 8, 8))[0, 0, 0]
        tensor(1.)
    """
    features = activations.flatten(2)
    return features @ features.transpose(1, 2) / features.shape[-1]


def _relative_error(value: Tensor, target: Tensor) -> Tensor:
    """``|value - target|^2 / |target|^2`` per batch element."""
    value, target = value.flatten(1), target.flatten(1)
    return (value - target).square().sum(1) / (target.square().sum(1) + _EPSILON)


class _StyleTransfer(PhotoComparison):
    """``-(style_weight * style loss + content_weight * content loss)`` per image view (see `TransferLosses`)."""

    def __init__(self, style_grams: dict[str, Tensor], content_layer: str, style_weight: float,
                 content_weight: float, pair: PhotoPair) -> None:
        layers = sorted({*style_grams, content_layer})
        super().__init__(layers, f"style({', '.join(style_grams)}) + content({content_layer})", pair)
        self.style_grams = style_grams
        self.content_layer = content_layer
        self.style_weight = style_weight
        self.content_weight = content_weight

    def compare(self, image_acts: dict[str, Tensor], photo_acts: dict[str, Tensor]) -> Tensor:
        style = sum(_relative_error(gram_matrix(read(image_acts, layer)), gram.to(image_acts[layer]))
                    for layer, gram in self.style_grams.items()) / len(self.style_grams)
        content = _relative_error(read(image_acts, self.content_layer), read(photo_acts, self.content_layer))
        return -(self.style_weight * style + self.content_weight * content)


def _layers(model: Model, style_layers: Sequence[str] | None, content_layer: str | None) -> tuple[list[str], str]:
    defaults = DEFAULT_LAYERS.get(model.name)
    if (style_layers is None or content_layer is None) and defaults is None:
        raise FeatvizError(f"{model.name} has no default style transfer layers; pass style_layers=[...] and "
                           "content_layer=... (see `featviz layers MODEL`)")
    styles = list(defaults["style"] if style_layers is None else ([style_layers] if isinstance(style_layers, str)
                                                                   else style_layers))
    content = defaults["content"] if content_layer is None else content_layer
    if not styles or not all(isinstance(name, str) and name for name in styles):
        raise FeatvizError(f"style_layers must be a list of layer names, not {style_layers!r}")
    if not isinstance(content, str) or not content:
        raise FeatvizError(f"content_layer must be a layer name, not {content_layer!r}")
    return styles, content


def _activations(model: Model, images: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
    """``layers``' channels-first activations of ``images`` (at their size, or the input size of a fixed-size model)."""
    found = survey_model(model)
    size = tuple(images.shape[-2:]) if found.takes_other_sizes else tuple(model.input_size)
    binding = bind_layers(model, layers, size)
    if tuple(images.shape[-2:]) != size:
        images = torch.nn.functional.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=True)
    with torch.no_grad(), ActivationCapture(model, layers, layouts=binding.layouts) as capture:
        return {name: value.float() for name, value in capture.run(images.to(model.device, model.dtype)).items()}


def _check_weight(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise FeatvizError(f"{name} must be a finite number >= 0, not {value!r}")
    return float(value)


@old_call_forms(["content", "style", "model"], defaults={"model": "efficientnet_lite0"})
def style_transfer(
    model: Model | nn.Module | str,
    style: PhotoLike,
    content: PhotoLike,
    *,
    style_layers: Sequence[str] | None = None,
    content_layer: str | None = None,
    style_weight: float = 1.0,
    content_weight: float = 1.0,
    style_size: int | Sequence[int] | None = None,
    settings: RenderSettings | None = None,
    **render: Any,
) -> RenderResult:
    """Paint the ``content`` photo in the style of the ``style`` image, optimizing in a decorrelated space.

    Both images are paths, PIL images, arrays or tensors (see `load_photo`). The content is loaded at ``size``
    (default: its shorter side becomes the model's input's shorter side, aspect ratio kept) and the style at
    ``style_size`` (default: the same shorter side, so that its strokes keep their scale). The image starts from
    the ``param`` parameterization's noise (``seed``) and maximizes ``-(style_weight * S + content_weight * C)``:
    ``S`` is the mean over ``style_layers`` of ``|G(image) - G(style)|^2 / |G(style)|^2`` with ``G`` the Gram
    matrix, ``C`` is ``|a - c|^2 / |c|^2`` between the image's and the content's activations at
    ``content_layer`` (see `transfer_losses`). On EfficientNet-Lite (the default model) the style layers are
    ``blocks.0`` to ``blocks.3`` and the content layer ``blocks.4``; other models need both given. ``param`` is
    "fft" (default, Distill's decorrelated Fourier space) or "pixel" (the baseline it improves on), or any other
    kind. ``transforms`` default to "none" (the content photo's activations are then computed once); random ones
    are applied to the content photo alike. These and ``size``, ``steps``, ``seed``, ``optimizer``, ``lr``,
    ``precision``, ``device`` and ``progress`` come from ``settings`` (a `featviz.RenderSettings`; default
    ``STYLE_SETTINGS``: 512 steps, "fft", transforms "none"; each field may also be given as a keyword).

    Example:
        >>> from skimage import data
        >>> result = style_transfer(model, data.immunohistochemistry(), data.chelsea(), size=32, steps=2,
        ...                         progress=False)     # by default: steps=512 at the model's size
        >>> result.images.shape                       # a 451 x 300 photo keeps its aspect
        torch.Size([1, 3, 32, 48])
    """
    settings = settings_from(settings, STYLE_SETTINGS, render, owner="style_transfer")
    seed, size = settings.seed, settings.size
    style_weight = _check_weight(style_weight, "style_weight")
    content_weight = _check_weight(content_weight, "content_weight")
    renderer = Renderer(model, **settings.renderer_options())
    prepared = renderer.model
    styles, content_name = _layers(prepared, style_layers, content_layer)
    photo = load_photo(content, photo_size(prepared, size), prepared.channels)
    side = min(photo.shape[-2:]) if style_size is None else style_size
    painting = load_photo(style, side, prepared.channels)
    grams = {name: gram_matrix(value) for name, value in _activations(prepared, painting, styles).items()}
    picture = param_module.create(settings.param or "fft", tuple(photo.shape[-2:]), channels=prepared.channels,
                                  seed=seed, device=renderer.device)
    pair = PhotoPair(renderer, photo, transforms="none" if settings.transforms is None else settings.transforms, seeds=[seed])
    goal = _StyleTransfer(grams, content_name, style_weight, content_weight, pair)
    return pair.render(goal, picture, steps=settings.steps, progress=settings.progress,
                       optimizer=settings.optimizer_factory())


def transfer_losses(
    images: Tensor,
    content: PhotoLike,
    style: PhotoLike,
    model: Model | nn.Module | str = "efficientnet_lite0",
    *,
    style_layers: Sequence[str] | None = None,
    content_layer: str | None = None,
    style_size: int | Sequence[int] | None = None,
) -> TransferLosses:
    """The style and content losses `style_transfer` minimizes, for any ``(B, C, H, W)`` images in ``[0, 1]``.

    The content photo is loaded at the images' size and the style image as `style_transfer` loads it (its
    shorter side the images' shorter side unless ``style_size``). ``style_layers`` and ``content_layer`` are
    the layers the two losses read, as in `style_transfer` (on EfficientNet-Lite, the default model, ``blocks.0``
    to ``blocks.3`` and ``blocks.4``; other models need both given). The style loss of the content photo itself is a
    useful reference: a good transfer lies far below it while its content loss stays well below 1 (a uniform
    grey image's is above 1).

    Example:
        >>> from skimage import data
        >>> from featviz.dataset.photo import load_photo
        >>> photo = load_photo(data.chelsea(), 32)
        >>> losses = transfer_losses(photo, photo, data.immunohistochemistry(), model)
        >>> losses.content, bool(losses.style > 0.1)       # the photo's own content, not the stain's style
        (tensor([0.]), True)
    """
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise FeatvizError(f"images must be a (B, C, H, W) tensor in [0, 1], not {getattr(images, 'shape', images)!r}")
    prepared = load_model(model)
    styles, content_name = _layers(prepared, style_layers, content_layer)
    photo = load_photo(content, tuple(images.shape[-2:]), prepared.channels)
    painting = load_photo(style, min(images.shape[-2:]) if style_size is None else style_size, prepared.channels)
    targets = _activations(prepared, painting, styles)
    photo_acts = _activations(prepared, photo, [content_name])
    image_acts = _activations(prepared, images.float(), sorted({*styles, content_name}))
    style_loss = sum(_relative_error(gram_matrix(image_acts[name]), gram_matrix(targets[name]).expand(len(images), -1, -1))
                     for name in styles) / len(styles)
    content_loss = _relative_error(image_acts[content_name], photo_acts[content_name].expand_as(image_acts[content_name]))
    return TransferLosses(style_loss.cpu(), content_loss.cpu())


__all__ = ["TransferLosses", "gram_matrix", "style_transfer", "transfer_losses"]
