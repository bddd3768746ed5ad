"""Make the images of docs/recipes/atlas.md: activation atlases of efficientnet_lite0's ``blocks.4``.

The images: the 15 photos that ship inside scikit-image and scikit-learn, each whole and as 15 random square
crops (a quarter to three fifths of its shorter side), 240 images written into a work folder. Up to 8 random
positions of each image's 14 x 14 map give the sample (1920 vectors of 112 channels); UMAP lays them out;
grids of 4 and 8 cells a side; each cell rendered at 64 px for 128 steps. Then a class atlas of "Egyptian cat"
(images that rank it in their top 5, positions that support it). The site goes to WORK/site; its level images,
a map of the layout coloured by source photo, the class atlas and a screenshot of the site (when Chromium and
playwright are installed) are copied into docs/images/atlas/ as 256-colour PNGs. The numbers shown on the page
(sizes, times, trustworthiness of the layout against PCA) are printed.

Run from the repository root (about 20 minutes on two busy CPU cores):
    python docs/examples/atlas_lite0.py [--work /tmp/featviz-atlas] [--steps 128] [--threads 1]
"""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import featviz
from featviz.dataset import ImageFolder
from featviz.imagefile import open_image
from featviz.dataset.shipped import shipped_photo_paths
from featviz.recipes import activation_atlas, write_atlas_site

IMAGES = Path(__file__).resolve().parents[1] / "images" / "atlas"
CROPS_PER_PHOTO = 15
LAYER = "blocks.4"
COLORS = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 200, 200), (240, 50, 230),
    (150, 170, 40), (128, 0, 0), (0, 128, 128), (170, 110, 40), (0, 0, 128), (128, 128, 128), (255, 180, 0),
    (90, 60, 200),
)


def compact(picture: Image.Image, target: Path) -> None:
    """``picture`` as a 256-colour PNG at ``target``."""
    picture.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)


def write_crops(folder: Path) -> dict[str, int]:
    """Every shipped photo whole and as random square crops; returns each file's source photo index."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    source = {}
    for index, path in enumerate(shipped_photo_paths()):
        photo = open_image(path, "RGB")
        photo.save(folder / f"{path.stem}-whole.jpg", quality=92)
        source[f"{path.stem}-whole.jpg"] = index
        width, height = photo.size
        for crop in range(CROPS_PER_PHOTO):
            side = int(min(width, height) * rng.uniform(0.25, 0.6))
            left, top = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
            name = f"{path.stem}-{crop:02d}.jpg"
            photo.crop((left, top, left + side, top + side)).resize((224, 224), Image.Resampling.BICUBIC).save(
                folder / name, quality=92
            )
            source[name] = index
    return source


def layout_map(atlas, source: dict[str, int], side: int = 384) -> Image.Image:
    """Every sampled vector as a dot at its layout position, coloured by the photo it came from, on the 8-grid."""
    picture = Image.new("RGB", (side, side), "white")
    draw = ImageDraw.Draw(picture)
    grid = atlas.levels[-1].grid
    for step in range(1, grid):
        draw.line([(step * side / grid, 0), (step * side / grid, side)], fill=(225, 225, 225))
        draw.line([(0, step * side / grid), (side, step * side / grid)], fill=(225, 225, 225))
    photos = [source[Path(path).name] for path in atlas.sample.paths]
    for (x, y), image in zip(atlas.coordinates.tolist(), atlas.sample.images.tolist()):
        color = COLORS[photos[image] % len(COLORS)]
        draw.ellipse([x * (side - 6) + 1, y * (side - 6) + 1, x * (side - 6) + 5, y * (side - 6) + 5], fill=color)
    return picture


def screenshot(index: Path, target: Path) -> None:
    """The site in headless Chromium, zoomed in twice (skipped without /usr/bin/chromium and playwright)."""
    chromium = Path("/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return
    if not chromium.is_file():
        return
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 560, "height": 640})
        page.goto(index.as_uri())
        page.click("#in")
        page.wait_for_timeout(1500)
        picture = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
        browser.close()
    width, height = picture.size
    compact(picture.resize((width * 3 // 4, height * 3 // 4), Image.Resampling.LANCZOS), target)


def trustworthiness_figures(atlas) -> dict[str, float]:
    from sklearn.decomposition import PCA
    from sklearn.manifold import trustworthiness

    vectors = atlas.sample.vectors.numpy()
    layout = atlas.coordinates.numpy()
    rng = np.random.default_rng(0)
    return {
        "umap": trustworthiness(vectors, layout, n_neighbors=10, metric="cosine"),
        "pca": trustworthiness(vectors, PCA(2).fit_transform(vectors), n_neighbors=10, metric="cosine"),
        "random": trustworthiness(vectors, rng.random(layout.shape), n_neighbors=10, metric="cosine"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/featviz-atlas")
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--label", default="Egyptian cat", help="the class of the class atlas")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work)
    source = write_crops(work / "crops")
    renderer = featviz.Renderer("efficientnet_lite0")
    model = renderer.model
    folder = ImageFolder(work / "crops", size=224)
    atlas = activation_atlas(
        renderer, LAYER, folder, grid=8, levels=2, samples=4000, positions=8, layout="umap", steps=args.steps,
        size=64, seed=0,
    )
    write_atlas_site(atlas, work / "site", title=f"Activation atlas of efficientnet_lite0 {LAYER}")
    IMAGES.mkdir(parents=True, exist_ok=True)
    for level in atlas.levels:
        compact(level.to_image(), IMAGES / f"atlas-{level.grid}.png")
    compact(layout_map(atlas, source), IMAGES / "layout.png")
    figures = {
        "vectors": len(atlas.sample), "images": atlas.sample.image_count,
        "cells": {level.grid: len(level) for level in atlas.levels},
        "seconds": {name: round(value, 1) for name, value in atlas.seconds.items()},
        "trustworthiness@10": {name: round(float(value), 3) for name, value in trustworthiness_figures(atlas).items()},
    }

    # a class atlas: the positions that support "Egyptian cat" in the images that rank it among their top 5
    label = model.label_index(args.label)
    predictions = []
    with torch.no_grad():
        for _, images in folder.batches(32):
            predictions += model(images.to(model.device)).topk(5, 1).indices.tolist()
    labelled = activation_atlas(
        renderer, LAYER, folder, grid=4, levels=1, samples=4000, positions=8, label=label, top=5, layout="umap",
        steps=args.steps, size=64, seed=0,
    )
    compact(labelled.levels[0].to_image(), IMAGES / "class-atlas.png")
    figures["class"] = {
        "label": model.labels[label], "images_with_it_in_top_5": sum(label in top for top in predictions),
        "vectors": len(labelled.sample), "images_with_samples": len(labelled.sample.paths),
        "cells": len(labelled.levels[0]),
    }
    screenshot(work / "site" / "index.html", IMAGES / "site.png")
    print(json.dumps(figures, indent=2))
    for path in sorted(IMAGES.iterdir()):
        print(f"{path.name}: {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
