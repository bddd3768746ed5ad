"""A folder of images read lazily, in batches of bounded size, preprocessed the way the dataset pass needs.

Preprocessing of every image: read with `featviz.imagefile.open_image` (EXIF orientation applied, 16-bit and float
images scaled by their bit depth), the centred square of side ``min(width, height)``
resized to ``size x size`` (so the shorter side becomes ``size`` and the longer side is centre-cropped) in one
antialiased resampling step, values scaled to ``[0, 1]``. `crop_around` inverts exactly this mapping to cut the
part of the original image that a position on an activation map looks at.
"""
from __future__ import annotations

import os
import stat
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np
import torch
from PIL import Image

from featviz.dataset.shipped import shipped_photo_paths
from featviz.errors import FeatvizError, check_int
from featviz.imagefile import open_image
from featviz.models.model import Model

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
SHIPPED = "shipped"  # the name that stands for the photos shipped with featviz


class UnreadableImageWarning(UserWarning):
    """Warned once per file that `ImageFolder` skips because it cannot be decoded."""


class FileStamp(NamedTuple):
    """A file's path relative to the folder root (POSIX form), its size in bytes and mtime in nanoseconds."""

    relative_path: str
    size: int
    mtime_ns: int


def _pil_mode(channels: int) -> str:
    if channels not in PIL_MODES:
        valid = ", ".join(str(count) for count in PIL_MODES)
        raise FeatvizError(f"images can be read with {valid} channels, not {channels}; pick one of those")
    return PIL_MODES[channels]


def centre_square(width: int, height: int) -> tuple[float, float, float]:
    """``(left, top, side)`` of the centred square of a ``width x height`` image that `load_image` resizes to the
    model's input.

    Example:
        >>> centre_square(640, 480)
        (80.0, 0.0, 480.0)
    """
    side = float(min(width, height))
    return (width - side) / 2.0, (height - side) / 2.0, side


def load_image(path: str | os.PathLike, size: int, channels: int = 3) -> np.ndarray:
    """The image at ``path`` as a ``(size, size, channels)`` uint8 array: upright, shorter side resized to ``size``,
    centre-cropped.

    Raises FeatvizError for an unreadable file (see `featviz.imagefile.open_image`); `ImageFolder` turns that into
    a warning and a skip.

    Example:
        >>> Image.new("RGB", (640, 480)).save("photo.jpg")
        >>> load_image("photo.jpg", 64).shape
        (64, 64, 3)
    """
    mode = _pil_mode(channels)
    image = open_image(path, mode, draft_size=size)
    left, top, side = centre_square(*image.size)
    resized = image.resize(
        (size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side), reducing_gap=3.0
    )
    array = np.asarray(resized, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def shipped_photos(size: int | Sequence[int], channels: int = 3) -> torch.Tensor:
    """The shipped photos (`shipped_photo_paths`) as one tensor ``(N, channels, H, W)`` in [0, 1]: each read like
    `load_image` at the longer side of ``size`` (an int, or ``(height, width)``), then centre-cropped to ``size``.

    Example:
        >>> shipped_photos(64).shape
        torch.Size([15, 3, 64, 64])
        >>> shipped_photos((48, 64)).shape
        torch.Size([15, 3, 48, 64])
    """
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    side = max(height, width)
    arrays = np.stack([load_image(path, side, channels) for path in shipped_photo_paths()])
    photos = torch.from_numpy(arrays).permute(0, 3, 1, 2).float().div(255)
    top, left = (side - height) // 2, (side - width) // 2
    return photos[..., top:top + height, left:left + width]


def _load_or_reason(path: Path, size: int, channels: int) -> tuple[np.ndarray | None, str]:
    try:
        return load_image(path, size, channels), ""
    except FeatvizError as error:
        return None, str(error)
    except Exception as error:  # noqa: BLE001 - any decoder failure means "skip this file"
        return None, f"{type(error).__name__}: {error}"


def _existing_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """``paths`` resolved, duplicates dropped, order kept; FeatvizError for an empty list or a missing file."""
    try:
        resolved = list(dict.fromkeys(Path(path).expanduser().resolve() for path in paths))
    except TypeError:
        raise FeatvizError(
            f"images must be a folder path or a list of image file paths, not {type(paths).__name__}"
        ) from None
    if not resolved:
        raise FeatvizError("the list of image files is empty; pass at least one image file or a folder")
    for path in resolved:
        if not path.is_file():
            what = "is not a file" if path.exists() else "does not exist"
            raise FeatvizError(f"image file '{path}' {what}; pass existing image files or a folder")
    return resolved


class ImageFolder:
    """Every image file under ``root`` (nested folders included), read lazily in deterministic order.

    Files are found once, at construction: those whose extension (any case) is in ``extensions``, skipping
    hidden files and folders (names starting with ``.``), sorted by their path relative to ``root``. ``root``
    may instead be a list of image files, read in the given order (duplicates dropped, ``extensions`` not
    applied); ``root`` is then the folder that contains them all. Images are read as ``size x size`` squares
    (see `load_image`) with ``channels`` channels (1 grey, 3 RGB, 4 RGBA), and
    are decoded only while iterating `batches`, which keeps at most two batches in memory however large the
    folder is. A file that cannot be decoded is skipped with one `UnreadableImageWarning` naming it (once per
    file for the life of the folder object); iteration never raises for a bad file.

    Example:
        >>> Path("images/cats").mkdir(parents=True)
        >>> for name in ("images/b.jpg", "images/cats/a.png", "images/notes.txt"):
        ...     Image.new("RGB", (640, 480)).save(name, format="PNG")
        >>> folder = ImageFolder("images", size=224)
        >>> [path.relative_to(Path("images").resolve()).as_posix() for path in folder.paths]   # not notes.txt
        ['b.jpg', 'cats/a.png']
        >>> for paths, images in folder.batches(32):
        ...     print(len(paths), images.shape, images.dtype)   # values in [0, 1]
        2 torch.Size([2, 3, 224, 224]) torch.float32
        >>> ImageFolder(["images/cats/a.png", "images/b.jpg"], size=64).paths[0].name   # a list of files
        'a.png'
    """

    def __init__(
        self,
        root: str | os.PathLike | Sequence[str | os.PathLike],
        size: int,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        channels: int = 3,
    ) -> None:
        files = None if isinstance(root, (str, os.PathLike)) else _existing_files(root)
        if files is not None:
            self.root = Path(os.path.commonpath([str(path.parent) for path in files]))
        else:
            self.root = Path(root).expanduser().resolve()
            if not self.root.is_dir():
                what = "is not a folder" if self.root.exists() else "does not exist"
                raise FeatvizError(f"image folder '{self.root}' {what}; pass a folder that holds images")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise FeatvizError(f"image size must be a positive int (pixels), not {size!r}")
        if isinstance(extensions, str):
            extensions = (extensions,)
        normalized = tuple(
            ("" if extension.startswith(".") else ".") + extension.lower() for extension in extensions if extension
        )
        if not normalized:
            raise FeatvizError("extensions is empty; pass file endings such as ('.jpg', '.png')")
        self.size = size
        self.channels = channels
        self.mode = _pil_mode(channels)
        self.extensions = normalized
        self.stamps = self._scan() if files is None else [self._stamp(path) for path in files]
        if not self.stamps:
            raise FeatvizError(
                f"no images ending in {', '.join(self.extensions)} under '{self.root}'; "
                "pass a folder of images or other extensions="
            )
        self.paths = [self.root / stamp.relative_path for stamp in self.stamps]
        self.skipped: set[Path] = set()

    def _stamp(self, path: Path) -> FileStamp:
        status = path.stat()
        return FileStamp(path.relative_to(self.root).as_posix(), status.st_size, status.st_mtime_ns)

    def _scan(self) -> list[FileStamp]:
        stamps = []
        for folder, folder_names, file_names in os.walk(self.root):
            folder_names[:] = sorted(name for name in folder_names if not name.startswith("."))
            for name in file_names:
                if name.startswith(".") or not name.lower().endswith(self.extensions):
                    continue
                path = Path(folder, name)
                try:
                    status = path.stat()
                except OSError:  # a dangling symlink or a file removed while scanning
                    continue
                if not stat.S_ISREG(status.st_mode):  # a named pipe or a device would block or never end
                    continue
                stamps.append(FileStamp(path.relative_to(self.root).as_posix(), status.st_size, status.st_mtime_ns))
        stamps.sort(key=lambda stamp: stamp.relative_path)
        return stamps

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"ImageFolder('{self.root}', size={self.size}, channels={self.channels}, images={len(self)})"

    def batches(self, batch_size: int, workers: int = 0) -> Iterator[tuple[list[Path], torch.Tensor]]:
        """Yield ``(paths, images)``: up to ``batch_size`` readable images as a float32 ``(B, C, size, size)`` tensor.

        Unreadable files are left out of ``paths`` and ``images`` (a batch whose files all fail is not
        yielded). ``workers > 0`` decodes in that many threads, preparing the next batch while the caller
        works on the current one; memory stays bounded by two batches either way.

        Example:
            >>> Path("images").mkdir()
            >>> for index in range(3):
            ...     Image.new("RGB", (80, 60), (90 * index, 0, 0)).save(f"images/{index}.png")
            >>> for paths, images in ImageFolder("images", 64).batches(2, workers=2):
            ...     print([path.name for path in paths], images.shape)
            ['0.png', '1.png'] torch.Size([2, 3, 64, 64])
            ['2.png'] torch.Size([1, 3, 64, 64])
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise FeatvizError(f"batch_size must be a positive int, not {batch_size!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise FeatvizError(f"workers must be an int >= 0 (0 decodes in this thread), not {workers!r}")
        chunks = (self.paths[start:start + batch_size] for start in range(0, len(self.paths), batch_size))
        if workers == 0:
            for chunk in chunks:
                batch = self._assemble(chunk, [_load_or_reason(path, self.size, self.channels) for path in chunk])
                if batch is not None:
                    yield batch
            return
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="featviz-images")
        try:
            pending: tuple[list[Path], list[Future]] | None = None
            for chunk in chunks:
                futures = [pool.submit(_load_or_reason, path, self.size, self.channels) for path in chunk]
                if pending is not None:
                    batch = self._assemble(pending[0], [future.result() for future in pending[1]])
                    if batch is not None:
                        yield batch
                pending = (chunk, futures)
            if pending is not None:
                batch = self._assemble(pending[0], [future.result() for future in pending[1]])
                if batch is not None:
                    yield batch
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _assemble(
        self, chunk: list[Path], loaded: list[tuple[np.ndarray | None, str]]
    ) -> tuple[list[Path], torch.Tensor] | None:
        good_paths = []
        arrays = []
        for path, (array, reason) in zip(chunk, loaded):
            if array is None:
                if path not in self.skipped:
                    self.skipped.add(path)
                    message = f"skipping unreadable image '{path}' ({reason})"
                    warnings.warn(message, UnreadableImageWarning, stacklevel=3)
                continue
            good_paths.append(path)
            arrays.append(array)
        if not arrays:
            return None
        pixels = torch.from_numpy(np.stack(arrays))  # (B, H, W, C) uint8
        images = torch.empty((len(arrays), self.channels, self.size, self.size), dtype=torch.float32)
        images.copy_(pixels.permute(0, 3, 1, 2)).div_(255.0)
        return good_paths, images


def image_source(images: Any) -> tuple[Any, str] | None:
    """What `ImageFolder` reads for ``images`` and a description of it for caches and logs: None for None,
    the shipped photos for ``"shipped"``, a resolved folder for a path, resolved files for a list of paths.

    Example:
        >>> files, described = image_source("shipped")
        >>> described, len(files) > 0
        ('shipped', True)
    """
    if images is None:
        return None
    if isinstance(images, str) and images.strip() == SHIPPED:
        return shipped_photo_paths(), SHIPPED
    if isinstance(images, (str, os.PathLike)):
        folder = Path(images).expanduser().resolve()
        return folder, str(folder)
    try:
        files = [Path(path).expanduser().resolve() for path in images]
    except TypeError:
        raise FeatvizError(
            f"images must be a folder, a list of image files or '{SHIPPED}', not {type(images).__name__}"
        ) from None
    return files, f"{len(files)} files: " + ", ".join(sorted(path.name for path in files))[:200]


def image_folder(model: Model, images: Any, size: int | None = None, *, name: str = "images") -> ImageFolder:
    """``images`` as an `ImageFolder` that ``model`` reads: an ImageFolder (its channels checked against the
    model's), a folder, a list of image files or ``"shipped"`` (`image_source`), read at ``size`` pixels square
    (default: the model's input size, which must then be square). ``name`` names the argument in errors.

    Example:
        >>> folder = image_folder(model, "shipped")           # EfficientNet-Lite0 reads 224 x 224
        >>> len(folder), folder.size, folder.channels
        (15, 224, 3)
        >>> image_folder(model, ImageFolder(shipped_photo_paths(), 64, channels=1))
        Traceback (most recent call last):
        featviz.errors.FeatvizError: the images are read with 1 channel but efficientnet_lite0 takes 3; use ImageFolder(..., channels=3)
    """
    if isinstance(images, ImageFolder):
        if images.channels != model.channels:
            plural = "s" if images.channels != 1 else ""
            raise FeatvizError(
                f"the {name} are read with {images.channels} channel{plural} but {model.name} takes {model.channels}; "
                f"use ImageFolder(..., channels={model.channels})"
            )
        return images
    source = image_source(images)
    if source is None:
        raise FeatvizError(f"{name} is None; pass a folder of images, a list of image files or '{SHIPPED}'")
    if size is None:
        height, width = model.input_size
        if height != width:
            raise FeatvizError(
                f"{model.name} takes {height}x{width} images; pass size=N, the square side in pixels to read the {name} at"
            )
        size = int(height)
    return ImageFolder(source[0], size=check_int(size, "size", 8), channels=model.channels)
