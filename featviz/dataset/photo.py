"""One photo as a tensor, for the recipes that start from a photo (caricature, style transfer, accentuation,
building blocks): read from a file, a PIL image, an array or a tensor, upright, resized with its aspect ratio kept.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from featviz.errors import FeatvizError
from featviz.imagefile import open_image, plain_image
from featviz.models import Model
from featviz.param.arguments import check_size

PhotoLike = str | os.PathLike | Image.Image | np.ndarray | Tensor
_LUMA = torch.tensor([0.299, 0.587, 0.114])


def load_photo(image: PhotoLike, size: int | Sequence[int] | None = None, channels: int = 3) -> Tensor:
    """A photo as a ``(1, channels, H, W)`` float32 tensor in ``[0, 1]``, upright, its aspect ratio kept.

    ``image`` is a file path (read with `featviz.imagefile.open_image`: EXIF orientation applied), a PIL
    image, an ``(H, W, C)`` array (uint8, or floats in ``[0, 1]``) or a ``(C, H, W)`` / ``(1, C, H, W)`` tensor.
    ``size`` None keeps the photo's size; an int resizes it so that its shorter side is ``size`` pixels (the
    longer side follows the aspect ratio: nothing is cropped); ``(height, width)`` resizes to exactly that.
    Resizing is bicubic with antialiasing; colour photos become grey for a one-channel model and grey ones are
    repeated for a three-channel one. Raises FeatvizError for a missing or unreadable file.

    Example:
        >>> load_photo(np.zeros((480, 640, 3), np.uint8), 224).shape      # a 640 x 480 photo
        torch.Size([1, 3, 224, 299])
    """
    if channels not in (1, 3) and not isinstance(image, Tensor):
        raise FeatvizError(f"photos can be read with 1 (grey) or 3 (RGB) channels, not {channels}; pass a tensor instead")
    if isinstance(image, (str, os.PathLike)):
        image = open_image(image, "RGB" if channels == 3 else "L")
    if isinstance(image, Image.Image):
        image = np.asarray(plain_image(image, "RGB" if channels == 3 else "L"))
    if isinstance(image, np.ndarray):
        array = image[:, :, None] if image.ndim == 2 else image
        if array.ndim != 3:
            raise FeatvizError(f"a photo array must be (H, W) or (H, W, C), got shape {image.shape}")
        image = torch.from_numpy(np.array(array)).permute(2, 0, 1)
    if not isinstance(image, Tensor):
        raise FeatvizError(f"a photo must be a file path, a PIL image, an array or a tensor, not {type(image).__name__}")
    photo = image.detach().unsqueeze(0) if image.dim() == 3 else image.detach()
    if photo.dim() != 4 or photo.shape[0] != 1 or min(photo.shape[2:]) < 1:
        raise FeatvizError(f"a photo tensor must be (C, H, W) or (1, C, H, W), got shape {tuple(image.shape)}")
    if photo.dtype == torch.uint8:
        photo = photo.float() / 255.0
    elif not photo.is_floating_point():
        raise FeatvizError(f"a photo must hold floats in [0, 1] or uint8, not {photo.dtype}")
    photo = photo.float().cpu()
    if (photo.shape[1], channels) == (3, 1):  # grey as PIL makes it (ITU-R 601 luma)
        photo = (photo * _LUMA.view(1, 3, 1, 1)).sum(1, keepdim=True)
    elif (photo.shape[1], channels) == (1, 3):
        photo = photo.expand(-1, 3, -1, -1)
    elif photo.shape[1] != channels:
        raise FeatvizError(f"the photo has {photo.shape[1]} channels but the model takes {channels}; give a "
                           f"{channels}-channel photo")
    if not torch.isfinite(photo).all():
        raise FeatvizError("the photo contains NaN or infinite values; give values in [0, 1]")
    target = resized_shape(tuple(photo.shape[2:]), size)
    if target != tuple(photo.shape[2:]):
        photo = F.interpolate(photo, size=target, mode="bicubic", align_corners=False, antialias=True)
    return photo.clamp(0, 1).contiguous()


def resized_shape(current: tuple[int, int], size: int | Sequence[int] | None) -> tuple[int, int]:
    """The ``(height, width)`` `load_photo` resizes a photo of ``current`` ``(height, width)`` to for ``size``.

    Example:
        >>> resized_shape((480, 640), 224)
        (224, 299)
    """
    if size is None:
        return current
    if isinstance(size, int) and not isinstance(size, bool):
        if size < 1:
            raise FeatvizError(f"size must be at least 1 pixel, got {size}")
        height, width = current
        scale = size / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))
    return check_size(size)



def photo_size(model: Model, size: int | Sequence[int] | None) -> int | Sequence[int]:
    """The ``size`` a photo recipe loads its photos at: ``size``, or the shorter side of ``model``'s input size.

    Example:
        >>> photo_size(model, None)
        224
    """
    return min(model.input_size) if size is None else size


__all__ = ["PhotoLike", "load_photo", "photo_size", "resized_shape"]
