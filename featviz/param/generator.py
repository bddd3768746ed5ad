"""Generator parameterization: images are the output of a generator network ``g(latent)``, and either the
latent or the network's weights are optimized (Structured Dreaming fine-tuned all of StyleGAN2's weights)."""
from __future__ import annotations

import copy
import math
import operator
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from featviz.errors import FeatvizError
from featviz.param.arguments import SizeLike
from featviz.param.base import Parameterization, register_parameterization

OPTIMIZED = ("latent", "weights")

# the built-in generator: a spatial latent this many times coarser than the image, upsampled by 2 per stage
_BUILT_IN_STAGES = 3
_BUILT_IN_LATENT_CHANNELS = 16
_BUILT_IN_WIDTH = 32
# its weights are one fixed draw, the same in every render, so that only the latent depends on the seed
_BUILT_IN_WEIGHTS_SEED = 0
_LEAKY_SLOPE = 0.2


@register_parameterization("generator")
class Generator(Parameterization):
    """Images made by a generator network: ``generator(latent)`` returns ``(B, C, h, w)`` images with values in
    ``output_range`` (``(-1, 1)`` for StyleGAN-like generators, ``(0, 1)`` for others), mapped linearly to
    ``[0, 1]`` (and clamped there) and resized bilinearly to ``size`` when ``(h, w)`` differs.

    ``size``, ``batch``, ``channels``, ``seed``, ``alpha``, ``device`` and ``dtype`` are the arguments every
    parameterization shares (see `Parameterization`).

    ``optimize="latent"`` (default) optimizes the latent, ``(B, *latent_shape)``, drawn standard normal per
    element from its seed (``seed + i`` for element ``i``); the generator's weights are then constants
    (buffers). ``optimize="weights"`` optimizes the generator's weights with the latent fixed; the batch's
    images then share one set of weights. Either way the generator is deep-copied (the caller's is never
    changed), moved to ``device`` and ``dtype`` and put in eval mode. Without ``generator`` a small built-in
    one is used: a spatial latent 8 times coarser than the image, three stages of upsampling, 3x3 convolution
    and leaky ReLU, a 1x1 convolution and tanh, with fixed random weights (optimized with ``"weights"``,
    it is a deep image prior). ``default_lr`` (Adam) is 0.05 for the latent and 0.0005 for weights (for which
    ``featviz.recipes.dream``'s ClampSGD then takes Structured Dreaming's 2e-4).

    Example:
        >>> network = nn.Sequential(nn.Linear(8, 3 * 16 * 16), nn.Tanh(), nn.Unflatten(1, (3, 16, 16)))
        >>> image = Generator(64, generator=network, latent_shape=8, batch=2, seed=0)
        >>> image().shape, image.latent.shape
        (torch.Size([2, 3, 64, 64]), torch.Size([2, 8]))
    """

    default_lr: float = 0.05

    def __init__(self, size: SizeLike, *, generator: nn.Module | None = None,
                 latent_shape: int | Sequence[int] | None = None, optimize: str = "latent",
                 output_range: Sequence[float] = (-1.0, 1.0), **shared: Any) -> None:
        super().__init__(size, **shared)
        if optimize not in OPTIMIZED:
            raise FeatvizError(f"optimize must be 'latent' or 'weights', got {optimize!r}")
        self.optimize = optimize
        self.output_range = _check_output_range(output_range)
        if generator is None:
            if latent_shape is not None:
                raise FeatvizError("latent_shape is for your own generator; the built-in generator sets its own "
                                   "(leave latent_shape out, or pass generator=your network)")
            network, latent_shape = _built_in_generator(self.size, self.out_channels)
        elif isinstance(generator, nn.Module):
            if latent_shape is None:
                raise FeatvizError("give latent_shape, the shape of one latent your generator takes "
                                   "(e.g. latent_shape=512 for StyleGAN2)")
            network = copy.deepcopy(generator)
        else:
            raise FeatvizError(f"generator must be an nn.Module mapping latents to images, "
                               f"got {type(generator).__name__}")
        shape = _check_latent_shape(latent_shape)
        self.network = network.to(device=self._device, dtype=self._dtype).eval()
        latent = self.draw(lambda random: torch.randn(shape, generator=random))
        if optimize == "latent":
            _weights_into_buffers(self.network)
            self.latent = nn.Parameter(latent)
        else:
            if not any(True for _ in self.network.parameters()):
                raise FeatvizError("optimize='weights' needs a generator with parameters; this one has none")
            self.network.requires_grad_(True)
            self.register_buffer("latent", latent)
            self.default_lr = 0.0005
        with torch.no_grad():
            _check_output(self.network(self.latent), self.batch, self.out_channels)

    def components(self) -> Tensor:
        """The generator's images, resized to ``size``, with values in ``output_range`` (before the mapping)."""
        images = self.network(self.latent)
        if tuple(images.shape[-2:]) != self.size:
            shrinking = images.shape[-2] > self.size[0] or images.shape[-1] > self.size[1]
            images = F.interpolate(images, size=self.size, mode="bilinear", align_corners=False, antialias=shrinking)
        return images

    def forward(self) -> Tensor:
        low, high = self.output_range
        return ((self.components() - low) / (high - low)).clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, optimize={self.optimize}, output_range={self.output_range}"


class _UpsamplingGenerator(nn.Module):
    """The built-in generator: a coarse spatial latent, upsampled stage by stage to exactly ``size``."""

    def __init__(self, size: tuple[int, int], out_channels: int) -> None:
        super().__init__()
        sizes = [size]
        for _ in range(_BUILT_IN_STAGES):
            sizes.insert(0, (math.ceil(sizes[0][0] / 2), math.ceil(sizes[0][1] / 2)))
        self.latent_size = sizes[0]
        self.stage_sizes = sizes[1:]
        widths = [_BUILT_IN_LATENT_CHANNELS] + [_BUILT_IN_WIDTH] * _BUILT_IN_STAGES
        self.stages = nn.ModuleList(nn.Conv2d(widths[index], widths[index + 1], 3, padding=1)
                                    for index in range(_BUILT_IN_STAGES))
        self.to_image = nn.Conv2d(_BUILT_IN_WIDTH, out_channels, 1)

    def forward(self, latent: Tensor) -> Tensor:
        features = latent
        for stage, stage_size in zip(self.stages, self.stage_sizes):
            features = F.interpolate(features, size=stage_size, mode="nearest")
            features = F.leaky_relu(stage(features), _LEAKY_SLOPE)
        return torch.tanh(self.to_image(features))


def _built_in_generator(size: tuple[int, int], out_channels: int) -> tuple[nn.Module, tuple[int, ...]]:
    network = _UpsamplingGenerator(size, out_channels)
    random = torch.Generator().manual_seed(_BUILT_IN_WEIGHTS_SEED)
    with torch.no_grad():
        for layer in (*network.stages, network.to_image):
            fan_in = layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
            # He initialization keeps activations at unit scale through the leaky ReLUs; the image layer gets
            # half that so tanh starts in its linear range
            gain = 0.5 if layer is network.to_image else math.sqrt(2.0 / (1.0 + _LEAKY_SLOPE**2))
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=random) * gain / math.sqrt(fan_in))
            layer.bias.zero_()
    return network, (_BUILT_IN_LATENT_CHANNELS, *network.latent_size)


def _weights_into_buffers(network: nn.Module) -> None:
    """Turn every parameter of ``network`` into a buffer of the same name: constants that ``parameters()``
    does not list, which still follow ``.to()`` and ``state_dict()``."""
    for module in network.modules():
        for name, parameter in list(module._parameters.items()):
            if parameter is not None:
                del module._parameters[name]
                module.register_buffer(name, parameter.detach())


def _check_latent_shape(latent_shape: int | Sequence[int]) -> tuple[int, ...]:
    try:
        shape = (operator.index(latent_shape),) if not isinstance(latent_shape, Sequence) else tuple(
            operator.index(side) for side in latent_shape)
    except TypeError:
        shape = ()
    if not shape or min(shape) < 1:
        raise FeatvizError(f"latent_shape must be an int or a sequence of ints >= 1 (one latent's shape), "
                           f"got {latent_shape!r}")
    return shape


def _check_output_range(output_range: Sequence[float]) -> tuple[float, float]:
    try:
        low, high = (float(bound) for bound in output_range)
    except (TypeError, ValueError):
        low, high = math.nan, math.nan
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise FeatvizError(f"output_range must be the (low, high) range of the generator's values, such as (-1, 1) "
                           f"or (0, 1); got {output_range!r}")
    return low, high


def _check_output(images: Any, batch: int, channels: int) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise FeatvizError(f"the generator must return float images (B, C, H, W) from a batch of latents, got {shape}")
    if images.shape[0] != batch or images.shape[1] != channels:
        raise FeatvizError(f"the generator returned images of shape {tuple(images.shape)} for {batch} latents; "
                           f"expected ({batch}, {channels}, H, W): one image per latent, with {channels} channels")


__all__ = ["Generator"]
