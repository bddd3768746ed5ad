"""Rendered images out: PIL images, numpy arrays, grids and PNG files (written atomically)."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from PIL import Image, PngImagePlugin

from featviz.errors import FeatvizError
from featviz.io import atomic_path


def to_numpy(images: torch.Tensor) -> np.ndarray:
    """``images`` (B, C, H, W) in [0, 1] -> uint8 array (B, H, W, C).

    Example:
        >>> to_numpy(torch.rand(2, 3, 8, 8)).shape
        (2, 8, 8, 3)
    """
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if not torch.isfinite(images).all():
        raise FeatvizError("images contain NaN or infinite values; nothing was written")
    array = images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return array.permute(0, 2, 3, 1).cpu().numpy()


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """Images (B, C, H, W) in [0, 1] -> PIL images: 1 channel -> "L", 3 -> "RGB", 4 (RGB + alpha) -> "RGBA";
    other channel counts show their first three channels as RGB (or the first as grey).

    Example:
        >>> to_pil(torch.rand(1, 3, 8, 8))[0].mode
        'RGB'
    """
    array = to_numpy(images)
    channels = array.shape[-1]
    if channels == 1:
        return [Image.fromarray(item[..., 0], "L") for item in array]
    if channels in (3, 4):
        return [Image.fromarray(item, "RGB" if channels == 3 else "RGBA") for item in array]
    if channels == 2:
        return [Image.fromarray(item[..., 0], "L") for item in array]
    return [Image.fromarray(np.ascontiguousarray(item[..., :3]), "RGB") for item in array]


def grid(images: torch.Tensor, columns: int | None = None, padding: int = 2, fill: float = 1.0) -> torch.Tensor:
    """Tile a batch (B, C, H, W) into one image (1, C, H', W'), `columns` wide (default: near-square), with
    ``padding`` pixels of value ``fill`` between and around the images.

    Example:
        >>> grid(torch.rand(4, 3, 8, 8), columns=2).shape      # 2 x 2 images, 2 px between and around them
        torch.Size([1, 3, 22, 22])
    """
    count, channels, height, width = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    canvas = images.new_full(
        (1, channels, rows * height + (rows + 1) * padding, columns * width + (columns + 1) * padding), fill
    )
    for index in range(count):
        row, column = divmod(index, columns)
        top = padding + row * (height + padding)
        left = padding + column * (width + padding)
        canvas[0, :, top : top + height, left : left + width] = images[index]
    return canvas


def save_png(image: torch.Tensor, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> Path:
    """Write one image (C, H, W) or (1, C, H, W) in [0, 1] to a PNG at ``path``, atomically, with optional text
    ``metadata`` (objective, steps, seed...) stored in the PNG's text chunks; return the path.

    Example:
        >>> save_png(torch.rand(3, 32, 48), "channel.png", {"featviz:objective": "blocks.4.0.conv_pwl:3"})
        PosixPath('channel.png')
        >>> Image.open("channel.png").text
        {'featviz:objective': 'blocks.4.0.conv_pwl:3'}
    """
    (picture,) = to_pil(image if image.dim() == 4 else image.unsqueeze(0))
    info = PngImagePlugin.PngInfo()
    for key, value in (metadata or {}).items():
        info.add_text(str(key), str(value))
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG", pnginfo=info)
    return Path(path)


def save_pngs(images: torch.Tensor, paths: Sequence[str | os.PathLike], metadata: Sequence[Mapping[str, str]] | None = None) -> list[Path]:
    """Write each image of ``images`` (a batch) to its own path of ``paths``, with its entry of ``metadata`` (see
    `save_png`); return the paths."""
    if len(paths) != len(images):
        raise FeatvizError(f"{len(images)} images but {len(paths)} paths; give one path per image")
    metadata = metadata or [{}] * len(images)
    return [save_png(image, path, meta) for image, path, meta in zip(images, paths, metadata)]
