"""Chains of transforms with runs of geometric ones fused into one resampling, and the named presets."""
from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

from featviz.errors import FeatvizError, suggestion
from featviz.transforms.affine import (AffineTransform, Size, check_images, image_size, jitter, pad, random_rotate,
                                       random_scale, resample, resize_matrix)
from featviz.transforms.crops import random_crops
from featviz.transforms.pixel_noise import noise
from featviz.transforms.random import RandomSource

# what a chain calls: transform(images, source)
SourcedTransform = Callable[[Tensor, RandomSource], Tensor]
# what users may give: that, or any one-argument callable images -> images
Transform = SourcedTransform | Callable[[Tensor], Tensor]


class Compose:
    """Apply ``transforms`` in order, fusing each run of consecutive geometric transforms (pad, jitter, scale,
    rotate, crops, resize) into ONE bilinear ``F.grid_sample``: one interpolation and one kernel per run.

    The last geometric run also resizes to ``output_size`` (default: the size of the images passed in), so the
    result always has that size even though scales and crops are random per image, without a separate
    resizing pass. Inside a run, samples from outside the run's input read the ``fill`` of the run's first
    transform that has one (pad, scale, rotate), or the nearest edge pixel when none has. ``views`` is the
    product of the transforms' views (random crops multiply the batch, in view-major order). Any callable
    ``transform(images, source)``, or any one-argument callable ``images -> images`` (``lambda x: x.flip(-1)``,
    torchvision transforms), may appear in the chain; which of the two each one is, is read once from its
    signature (``takes_source``). Those that are not ``AffineTransform`` run on their own; one that changes the size
    after the last geometric run costs one more resampling back to the output size (place it before the
    geometric transforms to avoid that). One-argument callables draw their randomness, if any, from torch's
    global generator rather than the per-element ``RandomSource``. Differentiable with respect to the images;
    works on any device and floating dtype.

    Example:
        >>> chain = Compose([pad(12), jitter(8), random_scale(), random_rotate(), jitter(4)], output_size=(224, 224))
        >>> chain(torch.rand(2, 3, 128, 128), RandomSource([0, 1])).shape
        torch.Size([2, 3, 224, 224])
    """

    def __init__(self, transforms: Sequence[Transform], output_size: int | Sequence[int] | None = None) -> None:
        self.transforms: tuple[Transform, ...] = tuple(transforms)
        for transform in self.transforms:
            if not callable(transform):
                raise FeatvizError(f"Compose takes callables transform(images, source) or transform(images); "
                                   f"got {transform!r}")
        self.output_size: Size | None = None if output_size is None else image_size(output_size, "output_size")
        self.views: int = 1
        for transform in self.transforms:
            self.views *= getattr(transform, "views", 1)
        self._steps = self._plan()

    def _plan(self) -> list[tuple[tuple[SourcedTransform, ...], bool, bool]]:
        """Steps ``(members, fused, final)``: a run of affine transforms (``fused``) or one other callable, called
        as ``(images, source)``; ``final`` marks the run that ends in the output resize (an empty run first when
        nothing is affine)."""
        steps: list[tuple[tuple[SourcedTransform, ...], bool, bool]] = []
        for transform in self.transforms:
            if isinstance(transform, AffineTransform):
                if steps and steps[-1][1]:
                    steps[-1] = (steps[-1][0] + (transform,), True, False)
                else:
                    steps.append(((transform,), True, False))
            elif takes_source(transform):
                steps.append(((transform,), False, False))
            else:
                steps.append(((_ignoring_source(transform),), False, False))
        fused_indices = [index for index, step in enumerate(steps) if step[1]]
        if fused_indices:
            last = fused_indices[-1]
            steps[last] = (steps[last][0], True, True)
        else:
            steps.insert(0, ((), True, True))
        return steps

    def __call__(self, images: Tensor, source: RandomSource) -> Tensor:
        target = self.output_size or tuple(check_images(images)[2:])
        for members, fused, final in self._steps:
            if not fused:
                images = members[0](images, source)
            else:
                images = self._run(images, members, source, target if final else None)
        size = tuple(check_images(images)[2:])
        if size != target:  # a callable after the last geometric run changed the size
            images = resample(images, resize_matrix(size, target), target)
        return images

    @staticmethod
    def _run(images: Tensor, members: tuple[AffineTransform, ...], source: RandomSource,
             target: Size | None) -> Tensor:
        count, _, height, width = check_images(images)
        size = (height, width)
        for member in members:
            size = member.size_after(*size)
        resize_needed = target is not None and size != target
        if not resize_needed and len(members) <= 1:
            return members[0](images, source) if members else images
        matrices: Tensor | None = None
        views = 1
        size = (height, width)
        for member in members:
            member_matrices, size = member.geometry(size[0], size[1], count * views, source)
            if matrices is None:
                matrices = member_matrices
            else:
                if member.views > 1 and matrices.shape[0] > 1:
                    matrices = matrices.repeat(member.views, 1, 1)
                matrices = torch.matmul(matrices, member_matrices)
            views *= member.views
        if resize_needed:
            scaling = resize_matrix(size, target)
            matrices = scaling if matrices is None else torch.matmul(matrices, scaling)
            size = target
        fill = next((member.fill for member in members if member.fill is not None), None)
        return resample(images, matrices, size, views=views, fill=fill)

    def __repr__(self) -> str:
        return f"Compose([{', '.join(map(repr, self.transforms))}], output_size={self.output_size})"


def takes_source(transform: Callable) -> bool:
    """Whether ``transform`` is called as ``transform(images, source)`` (True) or ``transform(images)`` (False).

    Read from its signature, never by trying: two required positional parameters mean ``(images, source)``;
    one, or none with ``*args`` (torchvision's v2 transforms), or a signature that cannot be read (builtins)
    mean images only. An ``nn.Module`` is judged by its ``forward``. FeatvizError when it cannot take images
    (more than two required positional parameters, none at all, or required keyword-only ones).

    Example:
        >>> takes_source(jitter(4)), takes_source(lambda images: images.flip(-1))
        (True, False)
    """
    target = transform.forward if isinstance(transform, nn.Module) else transform
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return False
    parameters = list(signature.parameters.values())
    positional = [parameter for parameter in parameters
                  if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)]
    required = [parameter for parameter in positional if parameter.default is parameter.empty]
    required_keywords = [parameter for parameter in parameters
                         if parameter.kind is parameter.KEYWORD_ONLY and parameter.default is parameter.empty]
    takes_images = positional or any(parameter.kind is parameter.VAR_POSITIONAL for parameter in parameters)
    if len(required) > 2 or not takes_images or required_keywords:
        raise FeatvizError(f"transform {transform!r} has the signature {signature}; a transform takes (images) or "
                           f"(images, source)")
    return len(required) == 2


def _ignoring_source(transform: Callable[[Tensor], Tensor]) -> SourcedTransform:
    return lambda images, source: transform(images)


#: The transforms presets by name, as `register_preset` registers them (`create`, `resolve`, ``--transforms``).
PRESETS: dict[str, Callable[..., Compose]] = {}


def register_preset(name: str) -> Callable[[Callable[..., Compose]], Callable[..., Compose]]:
    """Register the decorated ``preset(output_size=None, **options) -> Compose`` as the transforms preset ``name``,
    which `create`, `resolve` and the command line's ``--transforms`` then accept.

    Example:
        >>> @register_preset("flip-only")
        ... def flip_only(output_size=None):
        ...     return Compose([lambda images: images.flip(-1)], output_size)
        >>> create("flip-only", output_size=64).output_size
        (64, 64)
        >>> _ = PRESETS.pop("flip-only")     # the example's preset, removed again
    """
    if not isinstance(name, str) or not name or name in PRESETS:
        raise FeatvizError(f"transforms preset {name!r} is already registered or not a name; choose another name")

    def register(preset: Callable[..., Compose]) -> Callable[..., Compose]:
        PRESETS[name] = preset
        return preset

    return register


@register_preset("none")
def none(output_size: int | Sequence[int] | None = None) -> Compose:
    """No augmentation: only resize to ``output_size`` when the images have another size.

    Example:
        >>> none((224, 224))(torch.rand(1, 3, 128, 128), RandomSource([0])).shape
        torch.Size([1, 3, 224, 224])
    """
    return Compose([], output_size)


@register_preset("standard")
def standard(output_size: int | Sequence[int] | None = None) -> Compose:
    """Lucid's standard robustness set: pad 12 (grey), jitter 8, scale 0.90-1.10, rotate +-10 degrees, jitter 4.

    The result is resized to ``output_size`` (the model's input; None keeps the size) in the same resampling.

    Example:
        >>> standard((224, 224))(torch.rand(1, 3, 128, 128), RandomSource([0])).shape
        torch.Size([1, 3, 224, 224])
    """
    return Compose([pad(12, fill=0.5), jitter(8), random_scale(0.9, 1.1), random_rotate(10.0), jitter(4)], output_size)


@register_preset("maco")
def maco(output_size: int | Sequence[int] | None = None) -> Compose:
    """MACO's set: 6 random crops per image (a quarter to all of its area), resized, plus light Gaussian noise.

    The result is resized to ``output_size`` (the model's input; None keeps the size) in the same resampling.

    Example:
        >>> maco((224, 224))(torch.rand(2, 3, 256, 256), RandomSource([0, 1])).shape      # 6 views x 2 images
        torch.Size([12, 3, 224, 224])
    """
    return Compose([random_crops(count=6, area=(0.25, 1.0)), noise(0.02)], output_size)


@register_preset("robust")
def robust(output_size: int | Sequence[int] | None = None) -> Compose:
    """A heavier set for models that need more robustness, such as CLIP: pad 16, jitter 16, scale 0.8-1.2,
    rotate +-20 degrees, jitter 8.

    The result is resized to ``output_size`` (the model's input; None keeps the size) in the same resampling.

    Example:
        >>> robust((224, 224))(torch.rand(1, 3, 224, 224), RandomSource([0])).shape
        torch.Size([1, 3, 224, 224])
    """
    return Compose([pad(16, fill=0.5), jitter(16), random_scale(0.8, 1.2), random_rotate(20.0), jitter(8)],
                   output_size)


@register_preset("facet")
def facet(output_size: int | Sequence[int] | None = None) -> Compose:
    """The set of the Multimodal Neurons article's faceted renders: pad 2 (grey), ten jitters of 4, scale
    0.67-1.025, rotate twice by +-10 degrees (+-20 in all, most often near 0, as the article's list of angles), jitter 2.

    The result is resized to ``output_size`` (the model's input; None keeps the size) in the same resampling.

    Example:
        >>> facet((128, 128))(torch.rand(1, 3, 128, 128), RandomSource([0])).shape
        torch.Size([1, 3, 128, 128])
    """
    return Compose([pad(2, fill=0.5), *[jitter(4)] * 10, random_scale(0.67, 1.025), random_rotate(10.0),
                    random_rotate(10.0), jitter(2)], output_size)


def create(name: str, output_size: int | Sequence[int] | None = None, **options: Any) -> Compose:
    """The preset called ``name`` (one of ``PRESETS``: none, standard, robust, maco, facet, dream) resized to
    ``output_size``, with the preset's own ``options`` (``views=`` for dream); the command line's ``--transforms``.

    Example:
        >>> create("standard", output_size=224).views
        1
        >>> create("dream", output_size=224, views=8).views
        8
    """
    if not isinstance(name, str) or name not in PRESETS:
        raise FeatvizError(f"unknown transforms preset {name!r}; valid: {', '.join(sorted(PRESETS))}"
                           f"{suggestion(str(name), PRESETS)}")
    return PRESETS[name](output_size, **options)


def resolve(transforms: str | Compose | Transform | Iterable[Transform] | None,
            output_size: int | Sequence[int] | None = None) -> Compose:
    """A Compose from what users pass as ``transforms``: None (the "standard" preset), a preset name, a
    Compose (used as it is), one transform or a list of transforms (composed with ``output_size``). A
    transform is ``transform(images, source)`` or any one-argument callable ``images -> images``.

    Example:
        >>> resolve([pad(4), jitter(4), lambda images: images.flip(-1)], output_size=(128, 128)).output_size
        (128, 128)
    """
    if transforms is None or isinstance(transforms, str):
        return create(transforms or "standard", output_size=output_size)
    if isinstance(transforms, Compose):
        return transforms
    if callable(transforms):
        return Compose([transforms], output_size=output_size)
    if not isinstance(transforms, Iterable):
        raise FeatvizError(f"transforms must be a preset name ({', '.join(sorted(PRESETS))}), a Compose, a transform "
                           f"or a list of transforms; got {transforms!r}")
    return Compose(list(transforms), output_size=output_size)


__all__ = ["PRESETS", "Compose", "create", "register_preset", "resolve", "takes_source"]
