"""The 1/f spectra of natural images, shared by the Fourier and MACO parameterizations."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from featviz.errors import FeatvizError


def frequency_radius(height: int, width: int, device: torch.device | str | None = None) -> Tensor:
    """Radial frequency in cycles per pixel for each bin of an ``rfft2`` spectrum, shape ``(H, W // 2 + 1)``.

    Example:
        >>> frequency_radius(4, 4)[0, 0], frequency_radius(4, 4)[2, 2]
        (tensor(0.), tensor(0.7071))
    """
    vertical = torch.fft.fftfreq(height, dtype=torch.float64, device=device)
    horizontal = torch.fft.rfftfreq(width, dtype=torch.float64, device=device)
    return torch.sqrt(vertical[:, None] ** 2 + horizontal[None, :] ** 2).to(torch.float32)


def power_law(height: int, width: int, decay: float, device: torch.device | str | None = None) -> Tensor:
    """``1 / f**decay`` over an ``rfft2`` grid, with ``f`` floored at the lowest nonzero frequency (no DC blow-up).

    Example:
        >>> power_law(32, 32, 1.0).shape
        torch.Size([32, 17])
    """
    if not isinstance(decay, (int, float)) or isinstance(decay, bool) or not math.isfinite(decay) or decay < 0:
        raise FeatvizError(f"decay must be a finite number >= 0 (1.0 is natural images' 1/f law), got {decay!r}")
    radius = frequency_radius(height, width, device)
    return radius.clamp(min=1.0 / max(height, width)).pow(-float(decay))


__all__: list[str] = []
