"""Make the screenshots of docs/concepts/multimodal-gallery.md: the showcase gallery of EfficientNet-Lite0 given top
words, concept labels and the search box, in a copy (the committed gallery/ is not touched, and nothing is
rendered again: the copy's render settings are the showcase's).

    python docs/examples/multimodal_gallery.py [--gallery gallery] [--work /tmp/featviz-showcase]

Prints the time the words and labels took, and writes docs/images/multimodal-gallery/search.png (a layer page
searching for a word) and unit.png (a unit page's concept label and top words). Needs playwright and
/usr/bin/chromium for the screenshots.
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from featviz.gallery import build_gallery, layer_page, unit_paths

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "images" / "multimodal-gallery"
LAYERS = ["blocks.1", "blocks.3", "blocks.5", "blocks.6"]  # the README's showcase command
SHOWCASE = {"units": "0-23", "images": "shipped", "steps": 256, "size": 112, "diversity_size": 80, "examples": 4}


def screenshot(site: Path, layer: str, word: str, unit: int) -> None:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 640})
        page.goto((site / layer_page(layer)).as_uri())
        page.fill("#unit-search-input", word)
        page.wait_for_function("() => Array.from(document.images).every(image => image.complete)")
        page.screenshot(path=str(OUT / "search.png"), clip={"x": 0, "y": 0, "width": 1100, "height": 420})
        page.goto((site / unit_paths(layer, unit).page).as_uri())
        page.add_style_tag(content="header { position: static !important; }")  # the sticky bar would cover the top
        page.locator("section.meaning").screenshot(path=str(OUT / "unit.png"))
        browser.close()
    for name, colours in (("search.png", 96), ("unit.png", 64)):  # palette PNGs keep the page small
        Image.open(OUT / name).convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(
            OUT / name, optimize=True
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gallery", default=str(ROOT / "gallery"))
    parser.add_argument("--work", default="/tmp/featviz-showcase")
    parser.add_argument("--word", default="dog")
    parser.add_argument("--layer", default="blocks.6")
    args = parser.parse_args()
    work = Path(args.work)
    if not work.exists():
        shutil.copytree(args.gallery, work)
    started = time.perf_counter()
    summary = build_gallery("efficientnet_lite0", LAYERS, out=work, words=True, labels=True, progress=False,
                            **SHOWCASE)
    print(summary)
    print(f"words and labels for {summary.annotated} units in {time.perf_counter() - started:.0f} s")
    import json

    records = json.loads((work / "manifest.json").read_text())["records"]
    mine = [record for record in records if record["layer"] == args.layer]
    unit = max(mine, key=lambda record: record.get("top_words", [[None, -1.0]])[0][1])["unit"]
    screenshot(work, args.layer, args.word, unit)
    print(f"screenshots of {args.layer} (search '{args.word}') and unit {unit} in {OUT}")


if __name__ == "__main__":
    main()
