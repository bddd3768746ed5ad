"""Where a gallery site keeps its files: the layer slug, each unit's page and images, the layer pages, the search
tables and the dataset images shared by all units (the layout is drawn in `featviz.gallery.site`'s docstring).
The site writer, the build and the word search all find their files here."""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

DIVERSITY = 4
_UNSAFE = re.compile(r"[^a-z0-9._-]")


def layer_slug(layer: str) -> str:
    """The file-system-safe name of a layer's folder and page: the name itself when it is lower-case
    ``[a-z0-9._-]``, else a cleaned name plus 8 hex digits of its hash (so different layers never collide,
    even on case-insensitive file systems).

    Example:
        >>> layer_slug("blocks.4.0.conv_pwl"), layer_slug("<script>")
        ('blocks.4.0.conv_pwl', '_script_-5b63e5b2')
    """
    cleaned = _UNSAFE.sub("_", layer.lower())[:80].strip(".")
    if cleaned != layer:
        cleaned = f"{cleaned or 'layer'}-{hashlib.sha256(layer.encode()).hexdigest()[:8]}"
    return cleaned


@dataclass(frozen=True)
class UnitPaths:
    """Where one unit's files live, relative to the site folder (POSIX paths), as `unit_paths` gives them.

    ``folder`` holds the unit's images and ``page`` is its HTML page; ``positive`` and ``negative`` are its two
    visualizations, ``diversity`` the images of its diversity set and ``thumbnail`` the small copy of the
    positive image that `write_site` makes.

    Example:
        >>> paths = unit_paths("conv1", 7)
        >>> paths.positive, paths.page
        ('images/conv1/7/positive.png', 'units/conv1/7.html')
    """

    folder: str
    page: str
    positive: str
    negative: str
    diversity: tuple[str, ...]
    thumbnail: str

    def example(self, index: int) -> str:
        """The path of dataset example ``index`` (the image as the model saw it)."""
        return f"{self.folder}/example-{index}.jpg"

    def crop(self, index: int) -> str:
        """The path of the crop of dataset example ``index``."""
        return f"{self.folder}/crop-{index}.jpg"

    def facet(self, name: str) -> str:
        """The path of the unit's render steered towards the facet ``name`` (a probe's name)."""
        return f"{self.folder}/facet-{layer_slug(name)}.png"

    @property
    def conditional(self) -> str:
        """The path of the unit's conditional-probability plot (SVG)."""
        return f"{self.folder}/conditional.svg"


def unit_paths(layer: str, unit: int, diversity: int = DIVERSITY) -> UnitPaths:
    """The site-relative paths of the page and image files of ``unit`` of ``layer`` (see the module docstring for
    the layout), with ``diversity`` images in its diversity set.

    Example:
        >>> paths = unit_paths("blocks.4.0.conv_pwl", 3)
        >>> result = featviz.render(model, "blocks.4.0.conv_pwl:3", steps=8, size=64, progress=False)
        >>> result.save(f"site/{paths.positive}")
        [PosixPath('site/images/blocks.4.0.conv_pwl/3/positive.png')]
        >>> unit_paths("blocks.4.0.conv_pwl", 3, diversity=2).diversity
        ('images/blocks.4.0.conv_pwl/3/diversity-0.png', 'images/blocks.4.0.conv_pwl/3/diversity-1.png')
    """
    slug = layer_slug(layer)
    folder = f"images/{slug}/{int(unit)}"
    return UnitPaths(
        folder=folder,
        page=f"units/{slug}/{int(unit)}.html",
        positive=f"{folder}/positive.png",
        negative=f"{folder}/negative.png",
        diversity=tuple(f"{folder}/diversity-{index}.png" for index in range(diversity)),
        thumbnail=f"{folder}/thumbnail.png",
    )


def layer_page(layer: str) -> str:
    """The site-relative path of a layer's page.

    Example:
        >>> layer_page("conv1")
        'layers/conv1.html'
    """
    return f"layers/{layer_slug(layer)}.html"


def search_table_path(layer: str) -> str:
    """The site-relative path of a layer's search table (a script that the layer page loads).

    Example:
        >>> search_table_path("blocks.6")
        'search/blocks.6.js'
    """
    return f"search/{layer_slug(layer)}.js"


def shared_image_path(source: str | os.PathLike, size: int) -> str:
    """The site-relative path of a dataset image shared by every unit that ranks it (``size`` pixels square):
    ``images/dataset/NAME-HASH.jpg``, the hash covering the source's path, size in bytes, mtime and ``size``.

    Example:
        >>> shared_image_path("/data/val/dog.jpg", 224)
        'images/dataset/dog-...jpg'
    """
    source = Path(source)
    try:
        status = source.stat()
        stamp = f"{status.st_size}:{status.st_mtime_ns}"
    except OSError:
        stamp = "missing"
    digest = hashlib.sha256(f"{source.as_posix()}|{stamp}|{int(size)}".encode()).hexdigest()[:10]
    stem = _UNSAFE.sub("_", source.stem.lower())[:40].strip(".") or "image"
    return f"images/dataset/{stem}-{digest}.jpg"


__all__ = ["DIVERSITY", "UnitPaths", "layer_page", "layer_slug", "search_table_path", "shared_image_path", "unit_paths"]
