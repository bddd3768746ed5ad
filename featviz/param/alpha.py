"""Alpha channels: how parameterizations produce one, and how the renderer blends it over a background.

Every parameterization made with ``alpha=True`` builds one more channel than its colour channels with its
own machinery (one more spectrum for ``Fourier`` and ``Maco``, one more pixel plane for ``Pixel``, one more
output unit for ``CPPN``) and sends it through the same sigmoid, so the alpha is optimized exactly like the
colours and lies in ``[0, 1]``. Colour decorrelation never touches it: the mixing matrix is extended by an
identity row and column (``extend_with_alpha``). The alpha channel is always last.

During optimization the renderer blends the image over a (usually random) background with ``composite``, so
the network only sees the pixels the alpha keeps, and the optimization learns which ones matter.
"""
from __future__ import annotations

import torch
from torch import Tensor

from featviz.errors import FeatvizError


def extend_with_alpha(matrix: Tensor) -> Tensor:
    """A ``(C + 1, C + 1)`` matrix that applies ``matrix`` to the colours and leaves the last (alpha) channel as is.

    Example:
        >>> extend_with_alpha(torch.full((3, 3), 0.5))[3]
        tensor([0., 0., 0., 1.])
    """
    channels = matrix.shape[0]
    extended = torch.eye(channels + 1, device=matrix.device, dtype=matrix.dtype)
    extended[:channels, :channels] = matrix
    return extended


def split_alpha(images: Tensor) -> tuple[Tensor, Tensor]:
    """Split ``(B, C + 1, H, W)`` images into their colours ``(B, C, H, W)`` and alpha ``(B, 1, H, W)`` (views).

    Example:
        >>> colors, alpha = split_alpha(torch.rand(2, 4, 8, 8))
        >>> colors.shape, alpha.shape
        (torch.Size([2, 3, 8, 8]), torch.Size([2, 1, 8, 8]))
    """
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] < 2:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise FeatvizError(f"images with alpha must have shape (B, C + 1, H, W) with C >= 1, got {shape}")
    return images[:, :-1], images[:, -1:]


def composite(images: Tensor, background: Tensor) -> Tensor:
    """Blend ``(B, C + 1, H, W)`` images with alpha over ``background``: ``colors * alpha + background * (1 - alpha)``.

    ``background`` has ``C`` channels and broadcasts to ``(B, C, H, W)`` (e.g. ``(B, C, H, W)``, ``(1, C, 1, 1)``
    for a flat colour). Gradients reach the colours, the alpha and the background.

    Example:
        >>> from featviz.param import Fourier
        >>> images = Fourier(64, alpha=True, seed=0)()
        >>> composite(images, torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 3, 64, 64])
    """
    colors, alpha = split_alpha(images)
    if not isinstance(background, Tensor) or background.dim() != 4:
        shape = tuple(background.shape) if isinstance(background, Tensor) else type(background).__name__
        raise FeatvizError(f"background must have shape (B, C, H, W) or broadcast to it, got {shape}")
    try:
        fits = torch.broadcast_shapes(background.shape, colors.shape) == colors.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise FeatvizError(
            f"background of shape {tuple(background.shape)} does not match images of shape {tuple(images.shape)}; "
            f"give a background of shape {tuple(colors.shape)} (or with 1 in the batch or spatial dimensions)"
        )
    return torch.lerp(background.to(colors.dtype), colors, alpha)


__all__ = ["composite", "split_alpha"]
