"""An atlas as a zoomable static site: index.html (the page template ``page.html`` with the data embedded),
atlas.json, one PNG per cell and one per level."""
from __future__ import annotations

import contextlib
import html
import importlib.resources
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from featviz.errors import FeatvizError
from featviz.io import ensure_writable_dir, write_text
from featviz.renderer.image import save_png

SITE_FORMAT = 1
_TILE_NAME = re.compile(r"^(\d+)-(\d+)\.png$")


def _page() -> str:
    return importlib.resources.files("featviz.recipes.atlas").joinpath("page.html").read_text(encoding="utf-8")


def tile_path(grid: int, row: int, column: int) -> str:
    """The site-relative path of one cell's image.

    Example:
        >>> tile_path(16, 3, 10)
        'tiles/16/3-10.png'
    """
    return f"tiles/{grid}/{row}-{column}.png"


def _summary(atlas: Any) -> str:
    sample = atlas.sample
    what = f", class {sample.label} only" if sample.label is not None else ""
    grids = ", ".join(str(level.grid) for level in atlas.levels)
    return (
        f"{atlas.model}, layer {atlas.layer}: {len(sample)} activation vectors from {sample.image_count} images{what}, "
        f"laid out with {atlas.settings.get('layout', '?')}; grids {grids}. Scroll or use + to zoom, drag to move, "
        "hover a cell for its count."
    )


def write_atlas_site(atlas: Any, out: str | os.PathLike, title: str | None = None) -> Path:
    """Write ``atlas`` as a static site in the folder ``out`` and return the path of its ``index.html``.

    The site: ``index.html`` (the atlas with its data embedded, so it opens from disk without a server: zoom
    with the wheel or the buttons, which switch to finer grids as cells grow, drag to move, hover for a
    cell's count), ``atlas.json`` (the same data: per level its grid and cells with row, column, count, seed,
    objective value and tile path), ``tiles/GRID/ROW-COLUMN.png`` (one image per cell) and ``atlas-GRID.png``
    (each level as one image). Tiles that an earlier atlas left in ``out/tiles`` and this one does not use
    are removed; under torchrun only rank 0 writes. ``title`` is the page's title (default: "Activation atlas
    of LAYER").

    Example:
        >>> write_atlas_site(atlas, "atlas-site")  # doctest: +SKIP
        PosixPath('atlas-site/index.html')
    """
    if not all(hasattr(atlas, name) for name in ("levels", "sample", "settings")):  # Atlas.save calls this module
        raise FeatvizError(f"write_atlas_site needs an Atlas (from activation_atlas), not {type(atlas).__name__}")
    if any(level.images is None for level in atlas.levels):
        raise FeatvizError("this atlas was made with render=False; make it with render=True to write a site")
    site = ensure_writable_dir(out)
    index = site / "index.html"
    if int(os.environ.get("RANK", "0") or 0) != 0:
        return index
    levels = []
    written = set()
    tile_size = 0
    for level in atlas.levels:
        assert level.images is not None and level.values is not None and level.seeds is not None
        tile_size = int(level.images.shape[-1])
        cells = []
        for (row, column), count, image, value, seed in zip(
            level.cells.tolist(), level.counts.tolist(), level.images, level.values.tolist(), level.seeds.tolist()
        ):
            path = tile_path(level.grid, row, column)
            metadata = {
                "featviz:objective": f"direction({atlas.layer}@centre, cossim_pow={atlas.settings.get('cossim_pow')})",
                "featviz:steps": str(atlas.settings.get("steps")), "featviz:seed": str(seed),
                "featviz:cell": f"grid {level.grid}, row {row}, column {column}, {count} samples",
            }
            save_png(image, site / path, metadata)
            written.add(path)
            cells.append({
                "row": row, "column": column, "count": count, "seed": seed,
                "value": round(float(value), 6) if math.isfinite(value) else None, "tile": path,
            })
        save_png(level.canvas(), site / f"atlas-{level.grid}.png")
        levels.append({"grid": level.grid, "cells": cells, "image": f"atlas-{level.grid}.png"})
    _remove_stale_tiles(site, written)
    data = {
        "format": SITE_FORMAT, "model": atlas.model, "layer": atlas.layer, "samples": len(atlas.sample),
        "images": atlas.sample.image_count, "map_size": list(atlas.sample.map_size), "settings": atlas.settings,
        "tile_size": tile_size, "levels": levels,
    }
    text = json.dumps(data, indent=1)
    write_text(site / "atlas.json", text + "\n")
    shown_title = title if title is not None else f"Activation atlas of {atlas.layer}"
    page = (
        _page().replace("__TITLE__", html.escape(shown_title))
        .replace("__SUMMARY__", html.escape(_summary(atlas)))
        .replace("__DATA__", json.dumps(data).replace("</", "<\\/"))
    )
    return write_text(index, page)


def _remove_stale_tiles(site: Path, written: set[str]) -> None:
    tiles = site / "tiles"
    for folder in tiles.iterdir() if tiles.is_dir() else []:
        if not (folder.is_dir() and folder.name.isdigit()):
            continue
        for path in folder.iterdir():
            relative = f"tiles/{folder.name}/{path.name}"
            if _TILE_NAME.match(path.name) and path.is_file() and relative not in written:
                path.unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when now empty


__all__ = ["write_atlas_site"]
