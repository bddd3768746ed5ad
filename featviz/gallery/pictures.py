"""The pictures a gallery site writes besides the renders: each unit's dataset examples and their crops (JPEG),
and the thumbnails of the layer pages (PNG). Every file is written atomically."""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from PIL import Image

from featviz.dataset.activations import UnitStats
from featviz.dataset.folder import load_image
from featviz.gallery.paths import shared_image_path, unit_paths
from featviz.io import atomic_path


def save_jpeg(image: Image.Image, path: Path) -> None:
    """Write ``image`` (converted to RGB unless it is RGB or grey) to ``path`` as a JPEG of quality 90, atomically.

    Example:
        >>> save_jpeg(Image.new("RGB", (8, 8)), Path("site/images/x.jpg"))  # doctest: +SKIP
    """
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    with atomic_path(path) as temporary:
        image.save(temporary, format="JPEG", quality=90)


def write_unit_examples(
    site_dir: str | os.PathLike,
    stats: UnitStats,
    unit: int,
    *,
    example_size: int = 224,
    crop_size: int = 128,
    crop_fraction: float = 0.5,
    count: int | None = None,
    shared_images: bool = False,
) -> dict[str, Any]:
    """Write a unit's dataset examples (image as the model saw it, and the crop around its hottest spot) into the
    site, and return the record fields that describe them: ``{"dataset_examples": [...], "histogram": {...}}``.

    ``stats`` are the layer's dataset statistics (`featviz.dataset.collect_activations`) and ``unit`` the unit
    whose top examples are written, into ``site_dir`` where `unit_paths` puts them: each image as the model saw
    it, ``example_size`` pixels square, and its crop, ``crop_size`` pixels square, cut around the spot where the
    unit fires most with a side of ``crop_fraction`` of the image's (`featviz.dataset.crop_around`). A source
    image that can no longer be read is left out with a warning. ``count`` limits the examples (default: all of
    the top k). ``shared_images=True`` writes each whole dataset image once for the whole site
    (`shared_image_path`) instead of once per unit; the crops stay per unit.

    Example:
        >>> from featviz.dataset import ImageFolder, collect_activations, shipped_photo_paths
        >>> stats = collect_activations(model, ImageFolder(shipped_photo_paths(), 64), ["blocks.4.0.conv_pwl"])
        >>> record = {"layer": "blocks.4.0.conv_pwl", "unit": 3}
        >>> record.update(write_unit_examples("site", stats["blocks.4.0.conv_pwl"], 3, example_size=64, count=2))
        >>> [example["crop"] for example in record["dataset_examples"]]
        ['images/blocks.4.0.conv_pwl/3/crop-0.jpg', 'images/blocks.4.0.conv_pwl/3/crop-1.jpg']
        >>> from featviz.gallery import Manifest
        >>> manifest = Manifest("site/manifest.json")
        >>> manifest.add(record)
    """
    site_dir = Path(site_dir)
    paths = unit_paths(stats.layer, unit)
    examples = []
    for index, example in enumerate(stats.top_examples(unit)[:count]):
        whole_path = shared_image_path(example.path, example_size) if shared_images else paths.example(index)
        try:
            whole = None
            if not (shared_images and (site_dir / whole_path).is_file()):
                pixels = load_image(example.path, example_size, stats.channels)
                whole = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
            crop = example.crop(crop_size, crop_fraction, stats.channels)
        except Exception as error:  # noqa: BLE001 - a vanished or damaged source loses one example, not the gallery
            reason = f"{type(error).__name__}: {error}"
            warnings.warn(f"leaving out dataset example '{example.path}' ({reason})", stacklevel=2)
            continue
        if whole is not None:
            save_jpeg(whole, site_dir / whole_path)
        save_jpeg(crop, site_dir / paths.crop(index))
        examples.append({
            "image": whole_path, "crop": paths.crop(index), "value": example.value, "source": example.path,
            "position": list(example.position), "map_size": list(example.map_size),
        })
    counts, edges = stats.histogram(unit)
    return {"dataset_examples": examples, "histogram": {"counts": counts, "edges": edges, "images": stats.image_count}}


def make_thumbnail(site_dir: Path, source: str, target: str, size: int) -> str | None:
    """Make ``target`` (a path inside ``site_dir``) a copy of the picture ``source`` at most ``size`` pixels a
    side, unless it is already newer; return ``target``, or None (with a warning) when the source is unreadable.

    Example:
        >>> make_thumbnail(Path("site"), "images/conv1/7/positive.png", "images/conv1/7/thumbnail.png", 64)  # doctest: +SKIP
        'images/conv1/7/thumbnail.png'
    """
    source_path, target_path = site_dir / source, site_dir / target
    try:
        if target_path.exists() and target_path.stat().st_mtime_ns >= source_path.stat().st_mtime_ns:
            return target
        with Image.open(source_path) as image:
            image.draft("RGB", (size, size))
            small = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
        small.thumbnail((size, size), Image.Resampling.LANCZOS)
        with atomic_path(target_path) as temporary:
            small.save(temporary, format="PNG", optimize=True)
        return target
    except Exception as error:  # noqa: BLE001 - one unreadable picture must not stop the site
        warnings.warn(f"cannot make a thumbnail of '{source_path}' ({type(error).__name__}: {error})", stacklevel=3)
        return None


__all__ = ["make_thumbnail", "save_jpeg", "write_unit_examples"]
