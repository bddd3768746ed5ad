"""Make the images of docs/recipes/caricature.md with efficientnet_lite0 on skimage's photo of Chelsea the cat.

* feature inversions at blocks.2, blocks.3, blocks.4 and blocks.5 (one batch), with the relative error of each
  inversion's activations against the photo's, and of another photo's (skimage's astronaut) for reference;
* caricatures at blocks.3, blocks.4 and blocks.5 (cossim_pow 1, the default);
* caricatures at blocks.4 with cossim_pow 0 and 3.

The photo is loaded with its shorter side at 128 px (128 x 192, its aspect kept); 256 steps, seed 0, the "standard"
transforms (applied to the photo alike). Images go to docs/images/caricature/.

Run from the repository root (about a quarter of an hour on two busy CPU cores):
    python docs/examples/caricature.py [--steps 256] [--size 128]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image
from skimage import data

import featviz
from featviz.hooks import ActivationCapture, bind_layers
from featviz.recipes import caricature
from featviz.dataset.photo import load_photo
from featviz.renderer.image import grid, to_pil

IMAGES = Path(__file__).resolve().parents[1] / "images" / "caricature"
LAYERS = ["blocks.2", "blocks.3", "blocks.4", "blocks.5"]


def save_compact(images: torch.Tensor, path: Path) -> None:
    """Write ``images`` (one image or a grid; RGBA shown over white) as a 256-colour PNG: docs images stay small."""
    (picture,) = to_pil(images if images.dim() == 4 else images[None])
    if picture.mode == "RGBA":
        picture = Image.alpha_composite(Image.new("RGBA", picture.size, "white"), picture)
    picture.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def relative_error(model, images: torch.Tensor, photo: torch.Tensor, layer: str) -> list[float]:
    """|a - p|^2 / |p|^2 at ``layer`` for each of ``images`` against ``photo``."""
    binding = bind_layers(model, [layer], tuple(photo.shape[-2:]))
    with torch.no_grad(), ActivationCapture(model, [layer], layouts=binding.layouts) as capture:
        target = capture.run(photo)[layer].flatten(1)
        found = capture.run(images)[layer].flatten(1)
    return ((found - target).square().sum(1) / target.square().sum(1)).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    IMAGES.mkdir(parents=True, exist_ok=True)
    model = featviz.load_model("efficientnet_lite0")
    photo = load_photo(data.chelsea(), args.size)
    save_compact(photo[0], IMAGES / "photo.png")
    other = load_photo(data.astronaut(), tuple(photo.shape[-2:]))
    options = dict(size=args.size, steps=args.steps, seed=0, progress=False)

    inversions = caricature(model, LAYERS, photo, mode="inversion", **options)
    save_compact(grid(inversions.images, columns=len(LAYERS)), IMAGES / "inversions.png")
    for index, layer in enumerate(LAYERS):
        own = relative_error(model, inversions.images[index:index + 1], photo, layer)[0]
        reference = relative_error(model, other, photo, layer)[0]
        print(f"inversion at {layer}: relative error {own:.2f} (the astronaut photo: {reference:.2f})")

    caricatures = caricature(model, LAYERS[1:], photo, **options)
    save_compact(grid(caricatures.images, columns=3), IMAGES / "caricatures.png")
    powers = [caricature(model, "blocks.4", photo, cossim_pow=power, **options).images for power in (0.0, 3.0)]
    save_compact(grid(torch.cat([powers[0], caricatures.images[1:2], powers[1]]), columns=3), IMAGES / "cossim-pow.png")
    print("caricature scores (1 = the photo's own activations):",
          [round(float(value), 2) for value in caricatures.history[-1]])


if __name__ == "__main__":
    main()
