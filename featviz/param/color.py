"""Colour decorrelation: parameterize images in decorrelated colour components, then mix them back to channels.

Neighbouring channels of natural images are strongly correlated (RGB mostly varies together as brightness).
Optimizing uncorrelated components, scaled by their natural strength, and mixing them back with the square
root of the channel covariance makes each optimizer step move the image in the directions natural images
vary in, which gives cleaner visualizations than optimizing the channels directly.
"""
from __future__ import annotations

import torch
from torch import Tensor

from featviz.errors import FeatvizError, check_int
from featviz.param.alpha import extend_with_alpha

# Square root of the colour covariance of ImageNet training images (ImageNet colour statistics, as used by
# tensorflow/lucid). Rows are R, G, B; columns are the decorrelated components, strongest first: brightness,
# then a red-blue axis, then a green-magenta axis.
IMAGENET_COLOR_SQRT = torch.tensor(
    [
        [0.26, 0.09, 0.02],
        [0.27, 0.00, -0.05],
        [0.27, -0.09, 0.03],
    ]
)


def color_sqrt(
    channels: int, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """The default colour square root for ``channels`` channels, a ``(channels, channels)`` matrix on ``device`` in
    ``dtype``.

    Three channels get ImageNet's matrix (``IMAGENET_COLOR_SQRT``). One channel is treated as brightness and
    gets ImageNet's brightness strength (the largest column norm, about 0.46). Any other count has no
    known statistics, so each channel is its own component: the identity at that same strength. Estimate a
    real matrix for multispectral data with ``color_sqrt_from_images``.

    Example:
        >>> color_sqrt(3).shape, color_sqrt(1)
        (torch.Size([3, 3]), tensor([[0.4620]]))
    """
    return _default_color_sqrt(check_int(channels, "channels")).to(device=device, dtype=dtype)


def _default_color_sqrt(channels: int) -> Tensor:
    if channels == 3:
        return IMAGENET_COLOR_SQRT.clone()
    brightness = torch.linalg.vector_norm(IMAGENET_COLOR_SQRT, dim=0).max()
    return brightness * torch.eye(channels)


def color_sqrt_from_images(images: Tensor) -> Tensor:
    """Estimate the square root ``S`` of the channel covariance of ``images`` (``(N, C, H, W)`` or ``(C, H, W)``).

    ``S @ S.T`` equals the covariance of the channels over all pixels of all images; columns are the
    principal components scaled by their standard deviation, strongest first, each signed so its largest
    entry is positive. Pass the result as ``color_sqrt=`` to ``Fourier``, ``Pixel`` or ``Maco`` to decorrelate
    channels that ImageNet statistics do not describe (multispectral, medical, depth...).

    Example:
        >>> sqrt = color_sqrt_from_images(torch.rand(16, 13, 32, 32))
        >>> from featviz.param import Fourier
        >>> image = Fourier(64, channels=13, color_sqrt=sqrt)
        >>> image().shape
        torch.Size([1, 13, 64, 64])
    """
    if not isinstance(images, Tensor) or images.dim() not in (3, 4):
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise FeatvizError(f"images must be a tensor of shape (N, C, H, W) or (C, H, W), got {shape}")
    if images.dim() == 3:
        images = images.unsqueeze(0)
    channels = images.shape[1]
    samples = images.transpose(0, 1).reshape(channels, -1).to(torch.float64)
    if samples.shape[1] < 2:
        raise FeatvizError(f"images of shape {tuple(images.shape)} have fewer than 2 pixels; give more pixels")
    if not torch.isfinite(samples).all():
        raise FeatvizError("images contain NaN or infinite values; give finite pixel values")
    centered = samples - samples.mean(dim=1, keepdim=True)
    covariance = (centered @ centered.T / (samples.shape[1] - 1)).cpu()
    if not covariance.abs().max() > 0:
        raise FeatvizError("images have constant channels (zero covariance); give images whose pixels vary")
    variances, components = torch.linalg.eigh(covariance)
    variances, components = variances.flip(0).clamp(min=0), components.flip(1)
    largest = components.abs().argmax(dim=0)
    signs = torch.sign(components[largest, torch.arange(channels)])
    result = components * signs * variances.sqrt()
    dtype = images.dtype if images.dtype.is_floating_point else torch.float32
    return result.to(device=images.device, dtype=dtype)


def normalize_color_sqrt(matrix: Tensor) -> Tensor:
    """``matrix`` divided by its largest column norm, so no component is amplified when mixed into channels.

    Example:
        >>> round(float(normalize_color_sqrt(IMAGENET_COLOR_SQRT).norm(dim=0).max()), 4)
        1.0
    """
    if not isinstance(matrix, Tensor) or matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        shape = tuple(matrix.shape) if isinstance(matrix, Tensor) else type(matrix).__name__
        raise FeatvizError(f"colour matrix must be a square (C, C) tensor, got {shape}")
    if not torch.isfinite(matrix).all():
        raise FeatvizError("colour matrix contains NaN or infinite values; give a finite (C, C) matrix")
    largest = torch.linalg.vector_norm(matrix, dim=0).max()
    if not largest > 0:
        raise FeatvizError("colour matrix is all zeros; give a matrix with at least one nonzero column")
    return matrix / largest


def decorrelate(x: Tensor, matrix: Tensor) -> Tensor:
    """Mix decorrelated components into channels: ``normalize_color_sqrt(matrix) @ x`` at every pixel.

    ``x`` is ``(B, C, H, W)`` and ``matrix`` ``(C, C)`` (rows are channels, columns components), e.g. from
    ``color_sqrt`` or ``color_sqrt_from_images``.

    Example:
        >>> rgb = decorrelate(torch.randn(1, 3, 8, 8), IMAGENET_COLOR_SQRT)
    """
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise FeatvizError(f"decorrelate needs images of shape (B, C, H, W), got {shape}")
    mixing = normalize_color_sqrt(matrix)
    if mixing.shape[0] != x.shape[1]:
        raise FeatvizError(
            f"colour matrix is {tuple(mixing.shape)} but the images have {x.shape[1]} channels; "
            f"give a ({x.shape[1]}, {x.shape[1]}) matrix"
        )
    return mix_channels(x, mixing.to(device=x.device, dtype=x.dtype))


def mix_channels(x: Tensor, mixing: Tensor | None) -> Tensor:
    """``mixing @ x`` at every pixel of ``(B, C, H, W)`` images without any checks; None leaves ``x`` as is.

    The parameterizations call this every step with their precomputed mixing buffer.

    Example:
        >>> mix_channels(torch.ones(1, 2, 4, 4), torch.eye(2) * 3).max()
        tensor(3.)
    """
    if mixing is None:
        return x
    return torch.matmul(mixing, x.flatten(2)).view(x.shape)


def mixing_matrix(
    channels: int,
    *,
    alpha: bool,
    decorrelate: bool,
    color_sqrt: Tensor | None,
    device: torch.device | str | None,
    dtype: torch.dtype,
) -> Tensor | None:
    """The normalized mixing matrix a parameterization applies every step, or None when it is the identity.

    ``color_sqrt`` (``(channels, channels)``) overrides the default ``color_sqrt(channels)``; with ``alpha``
    the matrix grows by one row and column that pass the alpha channel through unmixed.

    Example:
        >>> mixing_matrix(3, alpha=True, decorrelate=True, color_sqrt=None, device=None, dtype=torch.float32).shape
        torch.Size([4, 4])
    """
    if not isinstance(decorrelate, bool):
        raise FeatvizError(f"decorrelate must be True or False, got {decorrelate!r}")
    if color_sqrt is not None and not decorrelate:
        raise FeatvizError("color_sqrt was given with decorrelate=False; drop color_sqrt or set decorrelate=True")
    if not decorrelate:
        return None
    if color_sqrt is None:
        matrix = _default_color_sqrt(channels).to(torch.float64)
    else:
        matrix = normalize_color_sqrt(color_sqrt).detach().to(device="cpu", dtype=torch.float64)
        if matrix.shape[0] != channels:
            raise FeatvizError(
                f"color_sqrt is {tuple(color_sqrt.shape)} but the image has {channels} channels; "
                f"give a ({channels}, {channels}) matrix"
            )
    mixing = normalize_color_sqrt(matrix)
    if torch.equal(mixing, torch.eye(channels, dtype=mixing.dtype)):
        return None
    if alpha:
        mixing = extend_with_alpha(mixing)
    return mixing.to(device=device, dtype=dtype)


__all__ = ["color_sqrt", "color_sqrt_from_images", "decorrelate"]
