"""CPPN parameterization: a small network maps each pixel's coordinates to its colour."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from featviz.errors import check_int
from featviz.param.arguments import SizeLike
from featviz.param.base import Parameterization, register_parameterization

# Statistics of atan(x) for x ~ N(0, 1), by numerical integration: atan(x) has mean 0 and deviation 0.6706;
# atan(x)**2 has mean 0.4497 and deviation 0.3961. Normalizing by them keeps every layer's activations at
# zero mean and unit deviation at initialization, however deep the network.
_ATAN_DEVIATION = 0.6706
_ATAN_SQUARED_MEAN = 0.4497
_ATAN_SQUARED_DEVIATION = 0.3961

# Output weights are this fraction of a hidden layer's, so images start close to grey (sigmoid(0) = 0.5)
# while each seed still gives a different faint pattern and every weight gets a gradient from the first step.
_OUTPUT_GAIN = 0.1


def composite_atan(x: Tensor) -> Tensor:
    """The CPPN activation: ``atan(x)`` and ``atan(x)**2``, each normalized, concatenated along dimension 1.

    Doubles the channels of ``x`` ``(B, C, N)``; for standard normal inputs both halves have zero mean and
    unit deviation. ``CPPN`` computes the same thing folded into its next layer's weights (no concatenation).

    Example:
        >>> composite_atan(torch.randn(2, 24, 100)).shape
        torch.Size([2, 48, 100])
    """
    angle = torch.atan(x)
    return torch.cat([angle / _ATAN_DEVIATION, (angle * angle - _ATAN_SQUARED_MEAN) / _ATAN_SQUARED_DEVIATION], dim=1)


def coordinate_grid(height: int, width: int) -> Tensor:
    """Pixel-centre coordinates ``(x, y, radius)`` as a ``(3, H * W)`` tensor, row-major over the image.

    The longer side spans ``[-sqrt(3), sqrt(3)]`` (unit deviation, like the activations), the shorter one
    proportionally so patterns are not stretched; the radius is divided by ``sqrt(2)`` for the same reason.

    Example:
        >>> coordinate_grid(4, 8).shape
        torch.Size([3, 32])
    """
    extent = math.sqrt(3.0) / max(height, width)
    vertical = (torch.arange(height, dtype=torch.float64) * 2 + 1 - height) * extent
    horizontal = (torch.arange(width, dtype=torch.float64) * 2 + 1 - width) * extent
    y, x = torch.meshgrid(vertical, horizontal, indexing="ij")
    radius = torch.sqrt(x * x + y * y) / math.sqrt(2.0)
    return torch.stack([x, y, radius]).reshape(3, height * width).to(torch.float32)


@register_parameterization("cppn", order=2)
class CPPN(Parameterization):
    """Images drawn by a compositional pattern-producing network (a per-pixel MLP on the pixel coordinates).

    ``size``, ``batch``, ``channels``, ``seed``, ``alpha``, ``device`` and ``dtype`` are the arguments every
    parameterization shares (see `Parameterization`).

    Each image is its own network: ``layers`` hidden layers of ``width`` units (1x1 convolutions) with the
    ``composite_atan`` activation, then a linear layer to the channels and a sigmoid. The whole batch is
    evaluated in one pass with batched matrix products (weights ``(B, out, in)``), and element ``i`` only
    depends on its own weights. Being a smooth function of the coordinates, a CPPN has no preferred
    resolution: the same network renders at any size. Hidden weights start normal with variance
    ``1 / fan_in``, biases at zero; colour decorrelation is not used (the network mixes channels itself).

    ``default_lr`` is 0.005, ten times less than the others (tensorflow/lucid's choice too): every weight
    changes every pixel through all the layers, so Adam's per-weight step of about the learning rate moves
    the whole image at once. Measured on efficientnet_lite0 channels (96 px, 96 steps), 0.0025 to 0.005
    gave the highest activations, 0.01 clearly less, and at 0.025 the image saturated to a flat colour.

    Example:
        >>> image = CPPN(64, batch=2, seed=0, layers=8, width=24)
        >>> image().shape
        torch.Size([2, 3, 64, 64])
    """

    default_lr: float = 0.005

    def __init__(self, size: SizeLike, *, layers: int = 8, width: int = 24, **shared: Any) -> None:
        super().__init__(size, **shared)
        self.layers = check_int(layers, "layers")
        self.width = check_int(width, "width")
        height, image_width = self.size
        self.register_buffer("coordinates", self.place(coordinate_grid(height, image_width)))

        fan_ins = [3] + [2 * self.width] * self.layers
        fan_outs = [self.width] * self.layers + [self.out_channels]
        gains = [1.0] * self.layers + [_OUTPUT_GAIN]
        sizes = [fan_out * fan_in for fan_in, fan_out in zip(fan_ins, fan_outs)]
        deviations = torch.cat(
            [torch.full((size,), gain / math.sqrt(fan_in)) for size, fan_in, gain in zip(sizes, fan_ins, gains)]
        )
        flat = self.draw(lambda generator: torch.randn(sum(sizes), generator=generator) * deviations)
        chunks = flat.split(sizes, dim=1)
        self.weights = nn.ParameterList(
            nn.Parameter(chunk.reshape(self.batch, fan_out, fan_in).clone())
            for chunk, fan_in, fan_out in zip(chunks, fan_ins, fan_outs)
        )
        self.biases = nn.ParameterList(
            nn.Parameter(self.place(torch.zeros(self.batch, fan_out, 1))) for fan_out in fan_outs
        )

    def components(self) -> Tensor:
        hidden = torch.baddbmm(self.biases[0], self.weights[0], self.coordinates.expand(self.batch, -1, -1))
        for weight, bias in zip(self.weights[1:], self.biases[1:]):
            hidden = self._layer(hidden, weight, bias)
        return hidden.view(self.batch, self.out_channels, *self.size)

    def _layer(self, hidden: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        # weight @ composite_atan(hidden) + bias, with the activation's normalization folded into the (tiny)
        # weights and bias instead of concatenating and rescaling the (large) activations
        angle = torch.atan(hidden)
        angle_weight = weight[:, :, : self.width] / _ATAN_DEVIATION
        square_weight = weight[:, :, self.width :] / _ATAN_SQUARED_DEVIATION
        bias = bias - _ATAN_SQUARED_MEAN * square_weight.sum(dim=2, keepdim=True)
        return torch.baddbmm(bias, angle_weight, angle).baddbmm_(square_weight, angle * angle)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, layers={self.layers}, width={self.width}"


__all__ = ["CPPN"]
