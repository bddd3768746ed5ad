"""The one reader of image files: every photo, dataset image and render featviz reads goes through `open_image`.

It reads only regular files (a named pipe would block forever), refuses decompression bombs, applies the EXIF
orientation, and brings 16-bit and floating-point images to 8 bits by their bit depth instead of clipping them.
"""
from __future__ import annotations

import os
import stat
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from featviz.errors import FeatvizError

#: PIL modes an image is kept in when ``open_image`` is given no mode (others are converted to one of these).
PLAIN_MODES = ("L", "LA", "RGB", "RGBA")
_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
_WIDE_INTEGER_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_OPENING = threading.Lock()


def open_image(path: str | os.PathLike, mode: str | None = None, *, draft_size: int | None = None) -> Image.Image:
    """Decode the image file at ``path`` upright (EXIF orientation applied), 8 bits a channel, in PIL ``mode``.

    ``mode`` None keeps grey or colour and transparency (one of `PLAIN_MODES`). 16-bit images are scaled by
    their bit depth (65535 becomes 255) and float images with values in ``[0, 1]`` by 255; a float image with
    other values is refused. ``draft_size`` lets JPEG decoding skip detail that a later downscale to that size
    would drop. The PNG text chunks are kept in the result's ``info``. Raises FeatvizError naming the file for a
    missing file, anything that is not a regular file, an image larger than PIL's pixel limit, or a file that
    cannot be decoded.

    Example:
        >>> import numpy as np
        >>> Image.fromarray(np.full((4, 6), 32768, np.uint16)).save("grey16.png")   # 16-bit mid grey
        >>> picture = open_image("grey16.png", "RGB")
        >>> picture.size, picture.getpixel((0, 0))
        ((6, 4), (128, 128, 128))
    """
    path = Path(path)
    try:
        status = path.stat()
    except OSError:
        raise FeatvizError(f"image '{path}' does not exist; give an image file (PNG, JPEG, ...)") from None
    if not stat.S_ISREG(status.st_mode):
        raise FeatvizError(f"image '{path}' is not a regular file; give an image file (PNG, JPEG, ...)")
    try:
        # Opening reads the header only; the filters are process-wide, so threads that decode take turns here.
        with _OPENING, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(path)
        with opened as image:
            if draft_size is not None and mode in ("RGB", "L") and image.format == "JPEG":
                image.draft(mode, (draft_size, draft_size))
            image.load()
            text = dict(getattr(image, "text", None) or {})
            upright = ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise FeatvizError(
            f"image '{path}' declares more than {Image.MAX_IMAGE_PIXELS} pixels (a decompression bomb?); give a "
            "smaller image"
        ) from None
    except Exception as error:  # noqa: BLE001 - any decoder failure is an unreadable file
        reason = " ".join(str(error).split()) or type(error).__name__
        raise FeatvizError(f"cannot read image '{path}' ({reason}); give a PNG or JPEG file") from None
    result = plain_image(upright, mode, name=f"image '{path}'")
    result.info.update(text)
    return result


def plain_image(picture: Image.Image, mode: str | None = None, *, name: str = "the image") -> Image.Image:
    """``picture`` at 8 bits a channel in PIL ``mode`` (None: one of `PLAIN_MODES`, keeping grey or colour and
    transparency): 16-bit images scaled by their bit depth, float images with values in ``[0, 1]`` by 255 (other
    float values raise FeatvizError naming the picture as ``name``). Always a new image.

    Example:
        >>> import numpy as np
        >>> plain_image(Image.fromarray(np.full((2, 2), 0.5, np.float32), "F")).getpixel((0, 0))
        128
    """
    picture = _eight_bits(picture, name)
    if mode is None:
        has_alpha = picture.mode in _ALPHA_MODES or "transparency" in picture.info
        if picture.mode in PLAIN_MODES:
            mode = picture.mode
        else:
            mode = ("L" if picture.mode == "1" else "RGB") + ("A" if has_alpha else "")
    return picture.convert(mode) if picture.mode != mode else picture.copy()


def _eight_bits(picture: Image.Image, name: str) -> Image.Image:
    """``picture`` as 8-bit grey when it is a 16-bit, 32-bit integer or float image; else itself."""
    if picture.mode not in _WIDE_INTEGER_MODES and picture.mode != "F":
        return picture
    values = np.asarray(picture)
    if picture.mode == "F":
        finite = np.isfinite(values).all()
        if not finite or (values.size and (values.min() < 0 or values.max() > 1)):
            low, high = (float(np.nanmin(values)), float(np.nanmax(values))) if values.size else (0.0, 0.0)
            raise FeatvizError(
                f"{name} holds floats from {low:g} to {high:g}; featviz reads float images with values in "
                "[0, 1]: rescale it or save it as an 8- or 16-bit image"
            )
        scaled = values * 255.0
    else:
        scaled = values.astype(np.float64) / 257.0  # 16 bits: 65535 -> 255
    pixels = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    grey = Image.fromarray(pixels, "L")
    grey.info.update(picture.info)
    return grey


__all__ = ["PLAIN_MODES", "open_image", "plain_image"]
