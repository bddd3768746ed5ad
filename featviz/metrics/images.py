"""Images into the metrics: tensors, PIL images, PNG/JPEG files, folders and globs, with alpha composited on
grey, plus the natural reference photos and the resizing every metric shares."""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from featviz.dataset.folder import IMAGE_EXTENSIONS, ImageFolder, shipped_photos
from featviz.errors import FeatvizError
from featviz.imagefile import open_image, plain_image

#: The grey that transparent pixels are composited on (the renderer's padding colour).
GREY = 0.5
#: The PNG text chunk in which `featviz render` stores a single image's objective.
OBJECTIVE_KEY = "featviz:objective"

ImageSource = Union[torch.Tensor, Image.Image, Sequence[Image.Image], str, os.PathLike]
_GLOB_CHARACTERS = frozenset("*?[")


@dataclass
class LoadedImages:
    """Images read from files: ``images`` ``(B, C, H, W)`` float32 in ``[0, 1]`` (alpha already composited on
    grey), the ``paths`` they came from, and each file's ``featviz:objective`` text chunk (None when absent).

    Example:
        >>> result = featviz.render(model, "blocks.4.0.conv_pwl:0-1", steps=2, size=64, seed=0, progress=False)
        >>> written = result.save("renders/")
        >>> loaded = load_images("renders/")
        >>> loaded.images.shape, loaded.objectives
        (torch.Size([2, 3, 64, 64]), ['blocks.4.0.conv_pwl:0', 'blocks.4.0.conv_pwl:1'])
    """

    images: torch.Tensor
    paths: list[Path]
    objectives: list[str | None]


def image_paths(spec: str | os.PathLike) -> list[Path]:
    """The image files ``spec`` names: one file, every image file directly inside a folder (sorted by name,
    hidden files skipped), or the sorted matches of a glob pattern such as ``"renders/*.png"``.

    Raises FeatvizError when nothing matches or the path does not exist.

    Example:
        >>> Path("renders").mkdir()
        >>> for name in ("b.png", "a.png", "notes.txt"):
        ...     Image.new("RGB", (8, 8)).save(f"renders/{name}", format="PNG")
        >>> [path.name for path in image_paths("renders/*.png")], [path.name for path in image_paths("renders")]
        (['a.png', 'b.png'], ['a.png', 'b.png'])
    """
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(
            item for item in path.iterdir()
            if item.is_file() and not item.name.startswith(".") and item.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not found:
            raise FeatvizError(f"folder '{path}' holds no images ({', '.join(IMAGE_EXTENSIONS[:4])}, ...); give a PNG file or a folder of them")
        return found
    if _GLOB_CHARACTERS & set(text):
        found = sorted(Path(match) for match in glob.glob(os.path.expanduser(text)) if Path(match).is_file())
        if not found:
            raise FeatvizError(f"no file matches '{text}'; give an existing PNG, a folder, or a pattern like 'renders/*.png'")
        return found
    raise FeatvizError(f"image '{text}' does not exist; give a PNG file, a folder of images or a pattern like 'renders/*.png'")


def _composite_array(array: np.ndarray) -> np.ndarray:
    """``(H, W, C + 1)`` uint8 with alpha last -> ``(H, W, C)`` float32 in [0, 1] composited on grey."""
    values = array.astype(np.float32) / 255.0
    colors, alpha = values[..., :-1], values[..., -1:]
    return colors * alpha + GREY * (1.0 - alpha)


def read_image(path: str | os.PathLike, channels: int = 3) -> tuple[np.ndarray, str | None]:
    """The image file at ``path`` as a ``(H, W, channels)`` float32 array in ``[0, 1]`` (transparent pixels composited on
    grey) and its ``featviz:objective`` text chunk, or None. ``channels`` is 1 (grey) or 3 (RGB).

    The file is read with `featviz.imagefile.open_image` (upright, 16-bit and float images scaled by their bit
    depth), which raises FeatvizError naming the file when it cannot be read.

    Example:
        >>> result = featviz.render(model, "blocks.4.0.conv_pwl:12", steps=2, size=64, seed=0, progress=False)
        >>> written = result.save("channel12.png")
        >>> array, objective = read_image("channel12.png")
        >>> array.shape, objective
        ((64, 64, 3), 'blocks.4.0.conv_pwl:12')
    """
    if channels not in (1, 3):
        raise FeatvizError(f"image files can be read with 1 (grey) or 3 (RGB) channels, not {channels}; pass a tensor instead")
    picture = open_image(path)
    objective = picture.info.get(OBJECTIVE_KEY)
    has_alpha = picture.mode in ("RGBA", "LA")
    base = "RGB" if channels == 3 else "L"
    converted = picture.convert(base + "A" if has_alpha else base)
    array = np.asarray(converted, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    if has_alpha:
        return _composite_array(array), None if objective is None else str(objective)
    return array.astype(np.float32) / 255.0, None if objective is None else str(objective)


def load_images(spec: str | os.PathLike, channels: int = 3) -> LoadedImages:
    """Read the images ``spec`` names (a file, a folder or a glob; see `image_paths`) into one batch.

    Every image must have the same size; it is read with ``channels`` channels (1 grey, 3 RGB), transparent
    pixels composited on grey (0.5); each file's
    ``featviz:objective`` text chunk (written by `featviz render`) is kept in ``objectives``.

    Example:
        >>> Path("renders").mkdir()
        >>> for index in range(4):
        ...     Image.new("RGB", (96, 64)).save(f"renders/{index}.png")
        >>> load_images("renders/*.png").images.shape
        torch.Size([4, 3, 64, 96])
    """
    paths = image_paths(spec)
    arrays, objectives = [], []
    for path in paths:
        array, objective = read_image(path, channels)
        if arrays and array.shape != arrays[0].shape:
            first, other = arrays[0].shape, array.shape
            raise FeatvizError(
                f"images differ in size: '{paths[0].name}' is {first[1]}x{first[0]} but '{path.name}' is "
                f"{other[1]}x{other[0]}; score images of one size at a time"
            )
        arrays.append(array)
        objectives.append(objective)
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return LoadedImages(images, paths, objectives)


def composite_on_grey(images: torch.Tensor) -> torch.Tensor:
    """Blend ``(B, C + 1, H, W)`` images whose last channel is alpha over flat grey (0.5): ``(B, C, H, W)``.

    Example:
        >>> composite_on_grey(torch.zeros(1, 4, 8, 8)).unique()
        tensor([0.5000])
    """
    colors, alpha = images[:, :-1], images[:, -1:]
    return torch.lerp(torch.full_like(colors, GREY), colors, alpha)


def as_images(images: ImageSource, channels: int | None = None) -> torch.Tensor:
    """``images``, any image input, as a float ``(B, C, H, W)`` tensor in ``[0, 1]`` with alpha composited on grey.

    Takes a tensor ``(C, H, W)`` or ``(B, C, H, W)`` (floats in [0, 1], or uint8), a PIL image or a list of
    them, or a path, folder or glob (see `load_images`). With ``channels`` (the model's), a tensor with
    ``channels + 1`` channels has alpha last; without it, 2- and 4-channel tensors are taken as grey / RGB plus
    alpha (composite 4-band data yourself). Raises FeatvizError for other shapes and non-finite values.

    Example:
        >>> as_images(torch.rand(4, 64, 64), channels=3).shape  # RGBA -> RGB
        torch.Size([1, 3, 64, 64])
    """
    if isinstance(images, (str, os.PathLike)):
        images = load_images(images, channels if channels in (1, 3) else 3).images
    elif isinstance(images, Image.Image) or (
        isinstance(images, (list, tuple)) and images and all(isinstance(item, Image.Image) for item in images)
    ):
        pictures = [images] if isinstance(images, Image.Image) else list(images)
        arrays = [np.asarray(plain_image(picture), dtype=np.uint8) for picture in pictures]
        arrays = [array[:, :, None] if array.ndim == 2 else array for array in arrays]
        if any(array.shape != arrays[0].shape for array in arrays):
            raise FeatvizError("the PIL images differ in size or mode; give images of one size and mode")
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    if not isinstance(images, torch.Tensor):
        raise FeatvizError(
            f"images must be a tensor (B, C, H, W), a PIL image, or a path / folder / glob, not {type(images).__name__}"
        )
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[0] == 0:
        raise FeatvizError(f"images must have shape (B, C, H, W) or (C, H, W) with B >= 1, not {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        images = images.float() / 255.0
    elif not images.is_floating_point():
        raise FeatvizError(f"images must be floats in [0, 1] or uint8, not {images.dtype}")
    if not bool(torch.isfinite(images).all()):
        raise FeatvizError("images contain NaN or infinite values; score finite images in [0, 1]")
    count = images.shape[1]
    if channels is None:
        return composite_on_grey(images) if count in (2, 4) else images
    if count == channels + 1:
        return composite_on_grey(images)
    if count != channels:
        raise FeatvizError(
            f"images have {count} channels but the model takes {channels} ({channels + 1} with alpha); "
            f"give {channels}-channel images"
        )
    return images


def resize(images: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``images`` resized to ``size`` ``(height, width)`` with antialiased bilinear interpolation (itself when
    the size already matches).

    Example:
        >>> resize(torch.rand(2, 3, 64, 64), (32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """
    size = (int(size[0]), int(size[1]))
    if tuple(images.shape[-2:]) == size:
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def _centre_crop(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    height, width = images.shape[-2:]
    top, left = (height - size[0]) // 2, (width - size[1]) // 2
    return images[..., top:top + size[0], left:left + size[1]]


def natural_images(natural: torch.Tensor | str | os.PathLike | None, size: Sequence[int], channels: int) -> torch.Tensor:
    """The natural reference images at ``size`` ``(height, width)``: the shipped photos when ``natural`` is None
    (see `featviz.dataset.shipped_photos`), every image of a folder (shorter side resized, centre-cropped), or
    a tensor (resized). Alpha is composited on grey.

    Example:
        >>> natural_images(None, (64, 64), channels=3).shape
        torch.Size([15, 3, 64, 64])
    """
    height, width = int(size[0]), int(size[1])
    side = max(height, width)
    if natural is None:
        return shipped_photos((height, width), channels)
    if isinstance(natural, (str, os.PathLike)):
        folder = ImageFolder(natural, side, channels=channels)
        batches = [images for _, images in folder.batches(64)]
        if not batches:
            raise FeatvizError(f"no readable image in '{natural}'; give a folder of natural photos (PNG or JPEG)")
        return _centre_crop(torch.cat(batches), (height, width))
    return resize(as_images(natural, channels), (height, width))


__all__ = [
    "GREY", "OBJECTIVE_KEY", "LoadedImages", "as_images", "composite_on_grey", "image_paths", "load_images",
    "natural_images", "read_image", "resize",
]
