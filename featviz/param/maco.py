"""MACO (Fel et al. 2023, "Unlocking Feature Visualization for Deeper Networks with MAgnitude-Constrained
Optimization"): the spectrum's magnitude is fixed and only its phase is optimized."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from featviz.errors import FeatvizError
from featviz.param.arguments import SizeLike, check_size
from featviz.param.base import Parameterization, register_parameterization
from featviz.param.spectrum import power_law

_VARIANCE_FLOOR = 1e-12


@register_parameterization("maco", order=3)
class Maco(Parameterization):
    """Images whose spectrum magnitude is fixed and whose phase is optimized (MACO).

    ``size``, ``batch``, ``channels``, ``seed``, ``alpha``, ``device`` and ``dtype`` are the arguments every
    parameterization shares (see `Parameterization`).

    Each channel's real-FFT spectrum is ``magnitude * exp(i * phase)``: ``magnitude`` is a buffer of shape
    ``(C, H, W // 2 + 1)`` and ``phase`` (same shape, per batch element) is the only parameter, drawn
    uniformly in ``[-pi, pi)``. Since the magnitude is the one of natural images, every image has their
    energy distribution across frequencies and the optimization can only move structure around, which keeps
    images natural-looking even for deep networks. After ``torch.fft.irfft2`` each image channel is
    standardized (zero mean, unit deviation), mixed by the colour decorrelation (``decorrelate``,
    ``color_sqrt``) and passed through a sigmoid.

    The paper takes the magnitude from ImageNet's mean spectrum, which cannot be downloaded here: by default
    the magnitude follows the analytic ``1 / f**decay`` law of natural images; ``maco_magnitude(images, size)``
    measures it on your own images (any channel count) instead. ``decay`` is unused when ``magnitude`` is
    given. With ``alpha`` the alpha channel uses the mean magnitude of the colour channels.

    ``default_lr`` is 0.1: Adam moves each phase by about the learning rate (in radians) per step. Measured on
    efficientnet_lite0 channels (96 px, jitter, 96 to 256 steps), 0.1 reached the highest activations: 0.05
    was slower, 0.5 and above kept scrambling the phases and ended lower (the paper's 1.0 is for NAdam).

    Example:
        >>> image = Maco(64, batch=2, seed=0)
        >>> image().shape, image.magnitude.shape
        (torch.Size([2, 3, 64, 64]), torch.Size([3, 64, 33]))
    """

    default_lr: float = 0.1

    def __init__(self, size: SizeLike, *, magnitude: Tensor | None = None, decay: float = 1.0,
                 decorrelate: bool = True, color_sqrt: Tensor | None = None, **shared: Any) -> None:
        super().__init__(size, **shared)
        height, width = self.size
        self._pixels = height * width
        bins = (height, width // 2 + 1)
        law = power_law(height, width, decay)
        if magnitude is None:
            colors = law.expand(self.channels, *bins)
        else:
            colors = _check_magnitude(magnitude, self.channels, bins)
        if self.alpha:
            colors = torch.cat([colors, colors.mean(dim=0, keepdim=True)])
        self.register_buffer("magnitude", self.place(colors.contiguous()))
        shape = (self.out_channels, *bins)
        self.phase = nn.Parameter(
            self.draw(lambda generator: (torch.rand(shape, generator=generator) * 2 - 1) * math.pi)
        )
        self.decorrelate_colors(decorrelate, color_sqrt)

    def components(self) -> Tensor:
        spectrum = torch.complex(self.magnitude * torch.cos(self.phase), self.magnitude * torch.sin(self.phase))
        image = torch.fft.irfft2(spectrum, s=self.size, norm="ortho")
        # layer_norm over each flattened image channel: a fused, fast standardization
        return F.layer_norm(image.flatten(2), (self._pixels,), eps=_VARIANCE_FLOOR).view(image.shape)


def maco_magnitude(images: Tensor, size: SizeLike) -> Tensor:
    """The mean amplitude spectrum of ``images`` ``(N, C, h, w)`` resized to ``size``: ``(C, H, W // 2 + 1)``.

    Pass it as ``magnitude=`` to ``Maco`` to give its images the frequency content of your own data (any
    channel count, e.g. multispectral). Images are resized with antialiased bilinear interpolation.

    Example:
        >>> magnitude = maco_magnitude(torch.rand(8, 13, 100, 120), 64)
        >>> image = Maco(64, channels=13, magnitude=magnitude)
    """
    height, width = check_size(size)
    if not isinstance(images, Tensor) or images.dim() != 4 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise FeatvizError(f"images must be a float tensor of shape (N, C, H, W), got {shape}")
    if images.shape[0] < 1 or images.shape[2] < 1 or images.shape[3] < 1:
        raise FeatvizError(f"images of shape {tuple(images.shape)} are empty; give at least one image")
    if not torch.isfinite(images).all():
        raise FeatvizError("images contain NaN or infinite values; give finite pixel values")
    if images.shape[2:] != (height, width):
        images = F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return torch.fft.rfft2(images, norm="ortho").abs().mean(dim=0)


def _check_magnitude(magnitude: Tensor, channels: int, bins: tuple[int, int]) -> Tensor:
    expected = (channels, *bins)
    if not isinstance(magnitude, Tensor) or tuple(magnitude.shape) not in (expected, bins):
        shape = tuple(magnitude.shape) if isinstance(magnitude, Tensor) else type(magnitude).__name__
        raise FeatvizError(
            f"magnitude has shape {shape}; give {expected} (or {bins} for all channels), "
            "e.g. maco_magnitude(images, size)"
        )
    magnitude = magnitude.detach().to(device="cpu", dtype=torch.float64)
    if not torch.isfinite(magnitude).all() or (magnitude < 0).any():
        raise FeatvizError("magnitude must hold finite values >= 0 (an amplitude spectrum)")
    return magnitude.expand(expected)


__all__ = ["Maco", "maco_magnitude"]
