"""Penalties on the image (or any layer): total variation, L1, L2, blur. All are POSITIVE; subtract them.

Example:
    >>> from featviz.objectives import channel
    >>> goal = channel("blocks.4.0.conv_pwl", 12) - 0.05 * total_variation() - 0.01 * l1(constant=0.5)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from featviz.errors import FeatvizError
from featviz.hooks.capture import IMAGE
from featviz.objectives.base import Objective
from featviz.objectives.checks import Activations, check_layer_name, read


def _element_mean(values: Tensor) -> Tensor:
    """Mean over every dimension but the batch."""
    return values.mean(dim=tuple(range(1, values.dim())))


class TotalVariation(Objective):
    """Mean absolute difference between vertical plus horizontal neighbours; built by ``total_variation()``.

    Example:
        >>> TotalVariation().name
        'total_variation(@image)'
    """

    def __init__(self, layer: str = IMAGE) -> None:
        layer = check_layer_name(layer)
        super().__init__((layer,), f"total_variation({layer})")
        self.layer = layer

    def __call__(self, acts: Activations) -> Tensor:
        image = read(acts, self.layer)
        height, width = image.shape[-2:]
        if height < 2 and width < 2:
            return _element_mean(image) * 0.0
        differences = []
        if height > 1:
            differences.append(_element_mean((image[..., 1:, :] - image[..., :-1, :]).abs()))
        if width > 1:
            differences.append(_element_mean((image[..., :, 1:] - image[..., :, :-1]).abs()))
        return differences[0] + differences[1] if len(differences) == 2 else differences[0]


def total_variation(layer: str = IMAGE) -> Objective:
    """Penalize noise: the mean absolute difference between vertically plus horizontally adjacent values.

    The values are those of ``layer``: the images (``"@image"``, the default) or any layer of the network.

    Positive (0 for a flat image), and a mean rather than a sum, so its weight does not depend on the
    image size; subtract it: ``goal - 0.05 * total_variation()``.

    Example:
        >>> total_variation()({"@image": torch.full((2, 3, 8, 8), 0.5)})
        tensor([0., 0.])
    """
    return TotalVariation(layer)


class L1(Objective):
    """Mean absolute deviation from ``constant``; built by ``l1()``.

    Example:
        >>> L1(constant=0.5).name
        'l1(@image)'
    """

    def __init__(self, layer: str = IMAGE, constant: float = 0.0) -> None:
        layer = check_layer_name(layer)
        super().__init__((layer,), f"l1({layer})")
        self.layer = layer
        self.constant = float(constant)

    def __call__(self, acts: Activations) -> Tensor:
        values = read(acts, self.layer)
        if self.constant:
            values = values - self.constant
        return _element_mean(values.abs())


def l1(layer: str = IMAGE, constant: float = 0.0) -> Objective:
    """Penalize the mean absolute deviation of the values from ``constant`` (positive; subtract it).

    The values are those of ``layer``: the images (``"@image"``, the default) or any layer of the network.

    Example:
        >>> l1(constant=0.5)({"@image": torch.ones(1, 3, 4, 4)})
        tensor([0.5000])
    """
    return L1(layer, constant)


class L2(Objective):
    """Root mean square deviation from ``constant``; built by ``l2()``.

    Example:
        >>> L2().name
        'l2(@image)'
    """

    def __init__(self, layer: str = IMAGE, constant: float = 0.0, epsilon: float = 1e-6) -> None:
        layer = check_layer_name(layer)
        epsilon = float(epsilon)
        if epsilon < 0:
            raise FeatvizError(f"epsilon must be 0 or more (it keeps the gradient finite at 0), got {epsilon:g}")
        super().__init__((layer,), f"l2({layer})")
        self.layer = layer
        self.constant = float(constant)
        self.epsilon = epsilon

    def __call__(self, acts: Activations) -> Tensor:
        values = read(acts, self.layer)
        if self.constant:
            values = values - self.constant
        return (_element_mean(values.square()) + self.epsilon).sqrt()


def l2(layer: str = IMAGE, constant: float = 0.0, epsilon: float = 1e-6) -> Objective:
    """Penalize ``sqrt(mean((x - constant) ** 2) + epsilon)`` (positive; subtract it).

    The values are those of ``layer``: the images (``"@image"``, the default) or any layer of the network.

    Example:
        >>> l2(constant=0.5)({"@image": torch.ones(1, 3, 4, 4)})
        tensor([0.5000])
    """
    return L2(layer, constant, epsilon)


class Blur(Objective):
    """Half the mean squared distance to a detached 3x3-blurred copy; built by ``blur()``.

    Example:
        >>> Blur().name
        'blur(@image)'
    """

    def __init__(self, layer: str = IMAGE) -> None:
        layer = check_layer_name(layer)
        super().__init__((layer,), f"blur({layer})")
        self.layer = layer

    def __call__(self, acts: Activations) -> Tensor:
        image = read(acts, self.layer)
        with torch.no_grad():
            blurred = F.avg_pool2d(image, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return 0.5 * _element_mean((image - blurred).square())


def blur(layer: str = IMAGE) -> Objective:
    """Penalize ``0.5 * mean((x - blur3x3(x)) ** 2)`` with the blurred copy detached (positive; subtract it).

    The values are those of ``layer``: the images (``"@image"``, the default) or any layer of the network.

    Its gradient pulls every value towards the mean of its 3x3 neighbourhood (edges use only the
    neighbours that exist), which smooths the image a little each step.

    Example:
        >>> from featviz.objectives import channel
        >>> goal = channel("blocks.4.0.conv_pwl", 12) - 1.0 * blur()
        >>> blur()({"@image": torch.full((1, 3, 8, 8), 0.5)})      # a flat image is its own blur
        tensor([0.])
    """
    return Blur(layer)


__all__ = ["TotalVariation", "L1", "L2", "Blur", "total_variation", "l1", "l2", "blur"]
