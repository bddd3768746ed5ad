"""Make the images of docs/concepts/facets.md: a "textures" facet probe on efficientnet_lite0, fitted on crops of
real photos, and renders of one unit without and with the facet.

    python docs/examples/facets.py [--work /tmp/featviz-facets] [--size 96] [--steps 96]

The photos are the ones scikit-image and scikit-learn ship (`featviz.dataset.shipped_photo_paths`): random
square crops of three texture photos (brick, grass, gravel) form the positive folder, crops of six photos of
subjects (a cat, an astronaut, a cameraman, a coffee cup, a motorcycle, a rocket) the negative one; both are
turned grey so that colour alone cannot tell them apart. Took 23 minutes on two CPU cores shared with other jobs.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

import featviz
from featviz.concepts import load_probe, train_probe
from featviz.dataset import ImageFolder, shipped_photo_paths
from featviz.metrics import activation_reached
from featviz.objectives import channel, facet
from featviz.renderer.image import grid, save_png

GROUPS = {
    "textures": ["brick.png", "grass.png", "gravel.png"],
    "subjects": ["chelsea.png", "astronaut.png", "camera.png", "coffee.png", "motorcycle_left.png", "rocket.jpg"],
}
PROBE_LAYERS = ["blocks.3.2", "blocks.4.2"]
UNIT = ("blocks.5.3", 17)
STRENGTHS = (0.0, 30.0)
IMAGES = Path(__file__).resolve().parents[1] / "images" / "facets"


def write_crops(folder: Path, names: list[str], count: int, seed: int) -> Path:
    """``count`` random square crops (30-70 % of the shorter side) of the named photos, grey, 160 px."""
    photos = {path.name: path for path in shipped_photo_paths()}
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        with Image.open(photos[names[index % len(names)]]) as photo:
            image = ImageOps.grayscale(photo).convert("RGB")
        width, height = image.size
        side = int(min(width, height) * rng.uniform(0.3, 0.7))
        left, top = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        image.crop((left, top, left + side, top + side)).resize((160, 160), Image.Resampling.LANCZOS).save(
            folder / f"{index:03d}.png")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/featviz-facets", help="where the photo crops and the probe go")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=96)
    args = parser.parse_args()
    work = Path(args.work)
    IMAGES.mkdir(parents=True, exist_ok=True)
    folders = {group: write_crops(work / group, names, 48, seed) for seed, (group, names) in enumerate(GROUPS.items())}
    sheet = torch.cat([next(ImageFolder(folders[group], 64).batches(6))[1] for group in GROUPS])
    save_png(grid(sheet, 6), IMAGES / "photos.png")

    model = featviz.load_model("efficientnet_lite0")
    probe = train_probe(model, PROBE_LAYERS, folders["textures"], folders["subjects"], size=128)
    probe.save(work / "textures.pt")
    probe = load_probe(work / "textures.pt", model)
    print(probe, {layer: round(value, 3) for layer, value in probe.layer_accuracy.items()}, probe.counts)

    renderer = featviz.Renderer(model)
    options = dict(batch=4, size=args.size, steps=args.steps, seed=0, progress=False)
    plain = renderer.render(channel(*UNIT), **options)
    faceted = renderer.render(facet(channel(*UNIT), probe, strength=STRENGTHS), **options)
    save_png(grid(plain.images, 4), IMAGES / "plain.png")
    save_png(grid(faceted.images, 4), IMAGES / "textures.png")
    strengths = facet(channel(*UNIT), probe, strength=STRENGTHS).strengths(4).tolist()
    plain_logits, faceted_logits = probe.score_images(model, plain.images), probe.score_images(model, faceted.images)
    plain_unit, faceted_unit = (activation_reached(model, channel(*UNIT), result.images, samples=4).rendered_vs_natural
                                for result in (plain, faceted))
    print("| image (seed) | facet strength | unit, plain | unit, faceted | probe logit, plain | probe logit, faceted |")
    print("|---|---|---|---|---|---|")
    for index in range(4):
        print(f"| {index} | {strengths[index]:g} | {float(plain_unit[index]):.2f} | {float(faceted_unit[index]):.2f} | "
              f"{float(plain_logits[index]):.1f} | {float(faceted_logits[index]):.1f} |")

if __name__ == "__main__":
    main()
