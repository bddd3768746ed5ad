"""Spectrum naturalness: the slope of an image's radially averaged power spectrum and its share of energy at
high frequencies, the two places where checkerboards and pixel noise show up."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from featviz.errors import FeatvizError
from featviz.metrics.images import ImageSource, as_images

#: Frequencies above this fraction of the Nyquist frequency count as "high".
HIGH_FREQUENCY_FROM = 0.5
_NYQUIST = 0.5  # cycles per pixel
_MIN_SIDE = 8


@dataclass
class SpectrumReport:
    """What `spectrum` measured, one entry per image: ``slope`` of log power against log frequency (natural
    photos about -2, white noise 0), ``high_frequency_share`` of the energy above half the Nyquist frequency
    (0 to 1), and the radially averaged ``power`` ``(B, R)`` at ``frequencies`` ``(R,)`` in cycles per pixel
    (0.5 is Nyquist), from which the slope was fitted.

    Example:
        >>> result = featviz.render(model, "blocks.4.0.conv_pwl:12", steps=4, size=64, seed=0, progress=False)
        >>> report = spectrum(result.images)          # a Fourier-parameterized render (512 steps for a real one)
        >>> report.slope.shape, -3 < report.mean_slope < -2, report.mean_high_frequency_share < 0.2
        (torch.Size([1]), True, True)
    """

    slope: torch.Tensor
    high_frequency_share: torch.Tensor
    frequencies: torch.Tensor
    power: torch.Tensor

    @property
    def mean_slope(self) -> float:
        """The slope averaged over the images (NaN entries, from flat images, left out)."""
        return _nanmean(self.slope)

    @property
    def mean_high_frequency_share(self) -> float:
        """The high-frequency share averaged over the images (NaN entries left out)."""
        return _nanmean(self.high_frequency_share)

    def to_dict(self) -> dict:
        """Plain Python values (per image, and averaged; None for NaN), ready for ``json.dumps``.

        Example:
            >>> found = spectrum(torch.rand(2, 3, 64, 64)).to_dict()
            >>> sorted(found), len(found["slope"])
            (['high_frequency_share', 'mean_high_frequency_share', 'mean_slope', 'slope'], 2)
        """
        return {
            "slope": _floats(self.slope),
            "high_frequency_share": _floats(self.high_frequency_share),
            "mean_slope": _float(self.mean_slope),
            "mean_high_frequency_share": _float(self.mean_high_frequency_share),
        }


def _float(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _floats(values: torch.Tensor) -> list[float | None]:
    return [_float(value) for value in values.tolist()]


def _nanmean(values: torch.Tensor) -> float:
    finite = values[torch.isfinite(values)]
    return float(finite.mean()) if finite.numel() else math.nan


class _Rings:
    """Constants of one image size: which ring every rfft2 coefficient falls in, and with what weight."""

    def __init__(self, height: int, width: int, window: bool, device: torch.device) -> None:
        side = min(height, width)
        rows = torch.fft.fftfreq(height, dtype=torch.float64)
        columns = torch.fft.rfftfreq(width, dtype=torch.float64)
        radius = torch.sqrt(rows[:, None].square() + columns[None, :].square())
        # rfft2 keeps one of each conjugate pair of columns: count the others twice.
        weight = torch.full_like(radius, 2.0)
        weight[:, 0] = 1.0
        if width % 2 == 0:
            weight[:, -1] = 1.0
        rings = side // 2
        ring = torch.round(radius * side).long()
        ring[radius > _NYQUIST] = rings + 1  # the corners beyond the Nyquist radius are not fitted
        self.rings = rings
        self.ring = ring.flatten().to(device)
        self.weight = weight.flatten().to(device)
        counts = torch.zeros(rings + 2, dtype=torch.float64).index_add_(0, ring.flatten(), weight.flatten())
        radius_sums = torch.zeros(rings + 2, dtype=torch.float64).index_add_(0, ring.flatten(), (radius * weight).flatten())
        self.counts = counts[1:rings + 1].to(device)
        self.frequencies = (radius_sums[1:rings + 1] / counts[1:rings + 1]).to(device)
        self.log_frequencies = self.frequencies.log10()
        self.high = (radius.flatten() > HIGH_FREQUENCY_FROM * _NYQUIST).to(device=device, dtype=torch.float64)
        self.not_dc = (radius.flatten() > 0).to(device=device, dtype=torch.float64)
        if window:
            taper = torch.outer(torch.hann_window(height, periodic=True, dtype=torch.float64),
                                torch.hann_window(width, periodic=True, dtype=torch.float64))
        else:
            taper = torch.ones(height, width, dtype=torch.float64)
        self.window = taper.to(device) if window else None
        self.normalization = float(taper.square().sum())


@functools.lru_cache(maxsize=16)
def _rings(height: int, width: int, window: bool, device: torch.device) -> _Rings:
    return _Rings(height, width, window, device)


def spectrum(images: ImageSource, window: bool = True) -> SpectrumReport:
    """Measure how natural the images' spectra are: the slope of the radially averaged power spectrum on
    log-log axes and the share of spectral energy at high frequencies.

    Each channel has its mean removed and (with ``window``, the default) is tapered by a 2-D Hann window so
    that the jump between opposite edges does not pose as high-frequency energy; the power ``|FFT|**2`` is
    averaged over channels, then over rings of equal radius (one ring per ``1 / min(H, W)`` cycles per pixel).
    ``slope`` is the least-squares slope of log10(power) against log10(frequency) over the rings from the
    first one above DC up to the Nyquist radius (the corners beyond it are left out): natural photos fall near
    -2 (amplitude ~ 1/f), white noise near 0, and 1/f**a noise near -a. ``high_frequency_share`` is the
    energy above half the Nyquist frequency (corners included) over all energy but DC, in [0, 1]: a smooth
    photo has a few percent, a checkerboard nearly all. A flat image has no spectrum: NaN for both. Takes
    what `featviz.metrics.images.as_images` takes (2- and 4-channel tensors are composited on grey); images
    need at least 8 pixels a side.

    Example:
        >>> report = spectrum(torch.rand(4, 3, 64, 64))        # white noise
        >>> abs(report.mean_slope) < 0.1, round(report.mean_high_frequency_share, 2)   # flat: slope 0
        (True, 0.8)
    """
    batch = as_images(images)
    count, _, height, width = batch.shape
    if min(height, width) < _MIN_SIDE:
        raise FeatvizError(f"spectrum needs images of at least {_MIN_SIDE}x{_MIN_SIDE} pixels, got {height}x{width}")
    rings = _rings(height, width, bool(window), batch.device)
    centred = batch.to(torch.float64)
    centred = centred - centred.mean((-2, -1), keepdim=True)
    if rings.window is not None:
        centred = centred * rings.window
    power = torch.fft.rfft2(centred).abs().square().mean(1).flatten(1) / rings.normalization
    weighted = power * rings.weight
    ring_power = torch.zeros(count, rings.rings + 2, dtype=torch.float64, device=batch.device)
    ring_power.index_add_(1, rings.ring, weighted)
    ring_power = ring_power[:, 1:rings.rings + 1] / rings.counts

    energy = weighted @ rings.not_dc
    share = (weighted @ rings.high) / energy
    floor = (energy / weighted.shape[1] * 1e-12).clamp(min=1e-300)[:, None]
    log_power = torch.maximum(ring_power, floor).log10()
    log_frequency = rings.log_frequencies - rings.log_frequencies.mean()
    slope = ((log_power - log_power.mean(1, keepdim=True)) @ log_frequency) / log_frequency.square().sum()
    flat = energy <= 1e-20 * height * width
    nan = torch.full_like(slope, math.nan)
    return SpectrumReport(
        slope=torch.where(flat, nan, slope).float().cpu(),
        high_frequency_share=torch.where(flat, nan, share).float().cpu(),
        frequencies=rings.frequencies.float().cpu(),
        power=ring_power.float().cpu(),
    )


__all__ = ["HIGH_FREQUENCY_FROM", "SpectrumReport", "spectrum"]
