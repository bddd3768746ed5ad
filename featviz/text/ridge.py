"""Ridge regression with an intercept, for the linear maps that carry text into a vision model's spaces."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = ["ridge_fits"]


def ridge_fits(inputs: Tensor, targets: Tensor, strengths: Sequence[float]) -> list[tuple[Tensor, Tensor]]:
    """Ridge fits of ``targets`` ``(N, D)`` on ``inputs`` ``(N, C)``, one ``(weight (C, D), bias (D,))`` per
    strength ``s`` of ``strengths``, all from one SVD of the centred inputs: ``weight = (X'X + s I)^-1 X'Y`` on
    centred X and Y, and
    ``inputs @ weight + bias`` predicts the targets.

    Example:
        >>> inputs = torch.randn(50, 3, dtype=torch.float64)
        >>> ((weight, bias),) = ridge_fits(inputs, inputs @ torch.eye(3, dtype=torch.float64) + 1, [1e-9])
        >>> torch.allclose(weight, torch.eye(3, dtype=torch.float64), atol=1e-6), round(float(bias[0]), 6)
        (True, 1.0)
    """
    input_mean, target_mean = inputs.mean(0), targets.mean(0)
    left, singular, right = torch.linalg.svd(inputs - input_mean, full_matrices=False)
    projected = left.t() @ (targets - target_mean)
    fits = []
    for strength in strengths:
        # With X = U S V': (X'X + s I)^-1 X'Y = V diag(S / (S^2 + s)) U'Y
        weight = right.t() @ ((singular / (singular.square() + strength)).unsqueeze(1) * projected)
        fits.append((weight, target_mean - input_mean @ weight))
    return fits
