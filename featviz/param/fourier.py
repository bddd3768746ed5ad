"""Fourier parameterization (the default): a spectrum scaled by 1/f, turned into an image by an inverse FFT."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from featviz.param.arguments import SizeLike, check_init_scale
from featviz.param.base import Parameterization, register_parameterization
from featviz.param.spectrum import power_law

# Divides the spectrum so that images start closer to grey and small optimizer steps stay small; the
# same constant as tensorflow/lucid's Fourier images.
_SPECTRUM_DIVISOR = 4.0


@register_parameterization("fft", aliases=("fourier",), order=0)
class Fourier(Parameterization):
    """Images optimized in frequency space: ``sigmoid(mix(irfft2(spectrum / f**decay)))``.

    ``size``, ``batch``, ``channels``, ``seed``, ``alpha``, ``device`` and ``dtype`` are the arguments every
    parameterization shares (see `Parameterization`).

    The parameters are the real and imaginary parts of each channel's real-FFT spectrum, shape
    ``(B, C, H, W // 2 + 1, 2)``. Each frequency ``f`` (cycles per pixel, floored at the lowest nonzero
    frequency so the constant term stays finite) is scaled by ``1 / f**decay`` (precomputed buffer ``scale``),
    so a step of the optimizer changes every frequency's amplitude in proportion to its strength in natural
    images (their spectrum falls as ``1/f``). That whitens the gradient: low frequencies are no longer drowned
    by high-frequency noise, and images come out smooth and natural. ``torch.fft.irfft2`` with ``norm="ortho"``
    turns the spectrum into an image; colour decorrelation (``decorrelate``, ImageNet statistics for 3
    channels or ``color_sqrt``) and a sigmoid follow. The spectrum starts as normal noise of standard
    deviation ``init_scale``, so images start grey; with ``init_image`` (``(C, H, W)`` or ``(B, C, H, W)`` in
    ``[0, 1]`` at ``size``) it is that image's own spectrum instead, so the first image is that image (values
    clipped to ``[0.001, 0.999]``), as feature accentuation starts.

    ``default_lr`` is 0.05, the Adam learning rate tensorflow/lucid uses with this parameterization; on
    efficientnet_lite0 channels (96 px, 96 to 256 steps) larger rates gained little activation and added
    high-frequency noise, smaller ones were slower. ``decay`` defaults to 1.3 rather than lucid's 1.0: over
    24 efficientnet_lite0 channels at 224 px (512 steps) it reached the same activation under held-out
    transforms with less high-frequency energy on 22 of them, and more saturated colours; 1.6 started to
    clip colours and lose activation (benchmarks/RESULTS.md). Pass ``decay=1.0`` for lucid's images.

    Example:
        >>> image = Fourier((64, 96), batch=4, seed=0, decay=1.0)
        >>> image().shape
        torch.Size([4, 3, 64, 96])
    """

    default_lr: float = 0.05

    def __init__(self, size: SizeLike, *, decay: float = 1.3, decorrelate: bool = True,
                 color_sqrt: Tensor | None = None, init_scale: float = 0.01, init_image: Tensor | None = None,
                 **shared: Any) -> None:
        super().__init__(size, **shared)
        init_scale = check_init_scale(init_scale)
        height, width = self.size
        scale = power_law(height, width, decay) / _SPECTRUM_DIVISOR
        self.decay = float(decay)
        self.register_buffer("scale", self.place(scale.unsqueeze(-1)))
        shape = (self.out_channels, height, width // 2 + 1, 2)
        self.spectrum = nn.Parameter(self.draw(lambda generator: torch.randn(shape, generator=generator) * init_scale))
        self.decorrelate_colors(decorrelate, color_sqrt)
        if init_image is not None:  # the image's own spectrum, so that forward() returns it
            with torch.no_grad():
                spectrum = torch.fft.rfft2(self.components_from_images(init_image), norm="ortho")
                self.spectrum.copy_(torch.view_as_real(spectrum / self.scale.squeeze(-1).to("cpu", torch.float64)))

    def components(self) -> Tensor:
        spectrum = torch.view_as_complex(self.spectrum * self.scale)
        return torch.fft.irfft2(spectrum, s=self.size, norm="ortho")


__all__ = ["Fourier"]
