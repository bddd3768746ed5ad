"""Make the images of docs/recipes/factors.md: NMF factors of efficientnet_lite0's ``blocks.4`` over photos.

The images are those of docs/examples/atlas_lite0.py (the 15 shipped photos, each whole and as 15 random
crops: 240 images, read at 224 px), 8 random positions each (1920 vectors of 112 channels, signed: split into
positive and negative parts). Eight factors, each rendered at 96 px for 256 steps with a colour strip under
it; then three photos with each position coloured by the factor that holds most of it (``Factors.project``).
Both go to docs/images/factors/ as 256-colour PNGs. The numbers on the page are printed: the share the
factors explain against a random non-negative basis of the same rank, and each factor's activation along its
direction in its own render against a render of a random direction.

Run from the repository root (about 10 minutes on two busy CPU cores):
    python docs/examples/factors_lite0.py [--work /tmp/featviz-atlas] [--steps 256] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import featviz
from featviz.dataset import ImageFolder, load_image
from featviz.dataset.shipped import shipped_photo_paths
from featviz.hooks import ActivationCapture, bind_layers
from featviz.recipes import Factors, layer_factors, render_factors
from featviz.recipes.factors import explained
from featviz.renderer.image import to_pil

from atlas_lite0 import COLORS, compact, write_crops

IMAGES = Path(__file__).resolve().parents[1] / "images" / "factors"
LAYER = "blocks.4"
COUNT = 8
PHOTOS = ("chelsea", "coffee", "astronaut")


def strip_grid(images: torch.Tensor, columns: int = 4, strip: int = 8, padding: int = 4) -> Image.Image:
    """Renders in a grid, each with its factor's colour in a strip below it."""
    count, _, side, _ = images.shape
    rows = -(-count // columns)
    picture = Image.new("RGB", (columns * (side + padding) + padding, rows * (side + strip + padding) + padding), "white")
    draw = ImageDraw.Draw(picture)
    for index, render in enumerate(to_pil(images)):
        row, column = divmod(index, columns)
        left, top = padding + column * (side + padding), padding + row * (side + strip + padding)
        picture.paste(render, (left, top))
        draw.rectangle([left, top + side + 1, left + side - 1, top + side + strip - 2], fill=COLORS[index])
    return picture


def dominant_maps(model, found: Factors, size: int = 224, padding: int = 4) -> Image.Image:
    """Each photo with every position tinted by the colour of the factor that holds most of it."""
    paths = {path.stem: path for path in shipped_photo_paths()}
    photos = torch.stack([torch.from_numpy(load_image(paths[name], size).copy()).permute(2, 0, 1) for name in PHOTOS])
    photos = photos.float() / 255
    binding = bind_layers(model, [LAYER], (size, size))
    with torch.no_grad(), ActivationCapture(model, [LAYER], layouts=binding.layouts) as capture:
        activations = capture.run(photos)[LAYER]
    maps = found.project(activations)  # (photos, factors, rows, columns)
    strongest = maps.argmax(1)
    weight = maps.amax(1) / maps.amax((1, 2, 3), keepdim=True)[:, 0]
    palette = torch.tensor(COLORS[:COUNT], dtype=torch.float32) / 255
    picture = Image.new("RGB", (len(PHOTOS) * (size + padding) + padding, size + 2 * padding), "white")
    for index in range(len(PHOTOS)):
        tint = palette[strongest[index]].permute(2, 0, 1)[None]
        tint = torch.nn.functional.interpolate(tint, size=(size, size), mode="nearest")[0]
        alpha = torch.nn.functional.interpolate(weight[index][None, None], size=(size, size), mode="bilinear")[0]
        mixed = photos[index] * (1 - 0.6 * alpha) + tint * 0.6 * alpha
        picture.paste(to_pil(mixed[None])[0], (padding + index * (size + padding), padding))
    return picture


def along(model, images: torch.Tensor, directions: torch.Tensor) -> list[float]:
    binding = bind_layers(model, [LAYER], tuple(images.shape[-2:]))
    with torch.no_grad(), ActivationCapture(model, [LAYER], layouts=binding.layouts) as capture:
        mean = capture.run(images)[LAYER].mean((2, 3))
    return [round(float(value), 2) for value in (mean * directions).sum(1)]


def main() -> None:
    from sklearn.decomposition import non_negative_factorization

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/featviz-atlas")
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work)
    if not (work / "crops").is_dir():
        write_crops(work / "crops")
    renderer = featviz.Renderer("efficientnet_lite0")
    model = renderer.model
    found = layer_factors(renderer, LAYER, ImageFolder(work / "crops", size=224), count=COUNT, samples=4000,
                          positions=8, progress=True)
    result = render_factors(renderer, found, steps=args.steps, size=96, seed=0)
    random = torch.nn.functional.normalize(torch.randn(COUNT, found.channels, generator=torch.Generator().manual_seed(0)), dim=1)
    baseline = render_factors(
        renderer, Factors(LAYER, random, random, found.usage, 0.0, found.negatives, found.sample),
        steps=args.steps, size=96, seed=0,
    )
    IMAGES.mkdir(parents=True, exist_ok=True)
    compact(strip_grid(result.images), IMAGES / "factors.png")
    compact(dominant_maps(model, found), IMAGES / "maps.png")

    features = found.features(found.sample.vectors)
    basis = np.random.default_rng(0).random((COUNT, features.shape[1]))
    coefficients, _, _ = non_negative_factorization(features, H=basis, n_components=COUNT, init="custom",
                                                    update_H=False, max_iter=500)
    figures = {
        "vectors": len(found.sample), "images": found.sample.image_count,
        "explained": round(found.explained, 3),
        "explained_by_random_basis": round(explained(features, coefficients, basis), 3),
        "usage": [round(float(value), 3) for value in found.usage],
        "own_render_along_factor": along(model, result.images, found.directions),
        "random_render_along_factor": along(model, baseline.images, found.directions),
        "render_seconds": round(result.seconds, 1),
    }
    print(json.dumps(figures, indent=2))
    for path in sorted(IMAGES.iterdir()):
        print(f"{path.name}: {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
