"""Random, differentiable, batched augmentations applied to the images at every optimization step.

Every transform is a callable ``transform(images, source)`` taking float images ``(N, C, H, W)`` and a
``RandomSource`` (one generator per batch element). ``Compose`` fuses consecutive geometric transforms into
one resampling and resizes to the model's input size in the same pass.

Example:
    >>> from featviz.transforms import RandomSource, standard
    >>> augment = standard(output_size=(224, 224))
    >>> augment(torch.rand(2, 3, 128, 128), RandomSource.from_seed(0, batch=2)).shape
    torch.Size([2, 3, 224, 224])
"""
from featviz.transforms.affine import (AffineTransform, Jitter, Pad, RandomRotate, RandomScale, Resize, jitter, pad,
                                       random_rotate, random_scale, resample, resize)
from featviz.transforms.compose import PRESETS, Compose, create, maco, none, resolve, robust, standard
from featviz.transforms.crops import RandomCrops, random_crops
from featviz.transforms.noise import Noise, noise
from featviz.transforms.random import RandomSource

__all__ = [
    "resolve",
    "RandomSource", "Compose", "AffineTransform",
    "pad", "jitter", "random_scale", "random_rotate", "random_crops", "noise", "resize", "resample",
    "Pad", "Jitter", "RandomScale", "RandomRotate", "RandomCrops", "Noise", "Resize",
    "standard", "none", "maco", "robust", "create", "PRESETS",
]
