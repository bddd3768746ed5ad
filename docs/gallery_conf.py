"""mkdocs-gallery's configuration: how the example scripts' images get onto their pages.

The examples in docs/examples/gallery/ make images with `featviz.render` (a `RenderResult`) or PIL; after each
block of a script, every global variable that the block bound to a new `RenderResult`, PIL image, or list of
them is saved as a PNG and shown under the block. Set FEATVIZ_DOCS_QUICK=1 to build with few steps and small
images (what CI does); each script reads the variable itself.

mkdocs-gallery runs a script again only when its text changed (it keeps an MD5 beside the output in
docs/generated/gallery/). A build in the other mode than the last one must run them all again, so the mode
of the last build is kept there too, and the MD5s are dropped when it changes.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

GENERATED = Path(__file__).resolve().parent / "generated" / "gallery"


def _images_of(value) -> list:
    """The PNG images a value shows: a RenderResult (one grid), a PIL image, or a list/tuple of those."""
    from PIL import Image

    from featviz.renderer.result import RenderResult

    if isinstance(value, RenderResult):
        return [Image.open(io.BytesIO(value._repr_png_()))]
    if isinstance(value, Image.Image):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(item, (RenderResult, Image.Image)) for item in value):
        return [image for item in value for image in _images_of(item)]
    return []


def featviz_scraper(block, script) -> str:
    """Save the images that this block bound to global names, in the order the names were first bound."""
    from mkdocs_gallery.scrapers import figure_md_or_html

    seen = script.run_vars.__dict__.setdefault("_featviz_seen", {}) if hasattr(script.run_vars, "__dict__") else None
    if seen is None:
        seen = _SEEN.setdefault(id(script), {})
    paths = []
    for name, value in list(script.run_vars.example_globals.items()):
        if name.startswith("_") or seen.get(name) is value:
            continue
        images = _images_of(value)
        if not images:
            continue
        seen[name] = value
        for image in images:
            path = Path(next(script.run_vars.image_path_iterator))
            image.save(path.with_suffix(".png"))
            paths.append(path.with_suffix(".png"))
    return figure_md_or_html(paths, script) if paths else ""


_SEEN: dict[int, dict] = {}


def _rerun_when_the_mode_changes() -> None:
    mode = "quick" if os.environ.get("FEATVIZ_DOCS_QUICK") == "1" else "full"
    stamp = GENERATED / "built-with.txt"
    if stamp.is_file() and stamp.read_text().strip() == mode:
        return
    for checksum in GENERATED.glob("*.md5"):
        checksum.unlink()
    GENERATED.mkdir(parents=True, exist_ok=True)
    stamp.write_text(mode + "\n")


_rerun_when_the_mode_changes()

conf = {"image_scrapers": (featviz_scraper,)}
