"""Make the images of docs/recipes/accentuation.md with efficientnet_lite0 on photos of skimage and scikit-learn.

Each row is: the photo, its accentuation, and the accentuation with MACO's importance map as its alpha channel.

* Chelsea the cat (skimage) accentuated towards "leopard" and "tiger", and "leopard" without regularization
  (balance 0) for comparison;
* the cup of coffee (skimage) towards "lemon" and "strawberry";
* scikit-learn's flower.jpg towards "bee".

Photos at 128 px on their shorter side (aspect kept), 128 steps, seed 0, "standard" transforms, the default
regularization (blocks.2, balance 1). Printed: each class logit on the photo and on its accentuation, and the mean
squared pixel difference to the photo. Images go to docs/images/accentuation/.

Run from the repository root (about a quarter of an hour on two busy CPU cores):
    python docs/examples/accentuation.py [--steps 128] [--size 128]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image
from skimage import data
from sklearn.datasets import load_sample_image

import featviz
from featviz.hooks import ActivationCapture
from featviz.objectives.binding import bind_objective
from featviz.recipes import accentuate
from featviz.dataset.photo import load_photo
from featviz.renderer.image import grid, to_pil

IMAGES = Path(__file__).resolve().parents[1] / "images" / "accentuation"
CASES = [
    ("cat", data.chelsea, ["class:leopard", "class:tiger"]),
    ("coffee", data.coffee, ["class:lemon", "class:strawberry"]),
    ("flower", lambda: load_sample_image("flower.jpg"), ["class:bee"]),
]


def save_compact(images: torch.Tensor, path: Path) -> None:
    """Write ``images`` (one image or a grid; RGBA shown over white) as a 256-colour PNG: docs images stay small."""
    (picture,) = to_pil(images if images.dim() == 4 else images[None])
    if picture.mode == "RGBA":
        picture = Image.alpha_composite(Image.new("RGBA", picture.size, "white"), picture)
    picture.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def scores(model, images: torch.Tensor, objective: str) -> list[float]:
    bound = bind_objective(model, objective, size=tuple(images.shape[-2:]))
    with torch.no_grad(), ActivationCapture(model, bound.target.layers, layouts=bound.layouts) as capture:
        return bound.target(capture.run(images)).tolist()


def opaque(images: torch.Tensor) -> torch.Tensor:
    return torch.cat([images, torch.ones_like(images[:, :1])], dim=1)


def save_rows(photo: torch.Tensor, result, name: str) -> None:
    """One row per accentuation: photo, accentuation, accentuation with its importance as alpha."""
    rows = [torch.cat([opaque(photo), opaque(image[None]), overlay[None]])
            for image, overlay in zip(result.images, result.importance_images())]
    save_compact(grid(torch.cat(rows), columns=3), IMAGES / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    IMAGES.mkdir(parents=True, exist_ok=True)
    model = featviz.load_model("efficientnet_lite0")
    options = dict(size=args.size, steps=args.steps, seed=0, progress=False)
    for name, read, objectives in CASES:
        photo = load_photo(read(), args.size)
        result = accentuate(model, objectives, photo, **options)
        save_rows(photo, result, f"{name}.png")
        for index, objective in enumerate(objectives):
            before, after = scores(model, photo, objective)[0], scores(model, result.images[index:index + 1], objective)[0]
            distance = float((result.images[index] - photo[0]).square().mean())
            print(f"{name} {objective}: logit {before:.1f} on the photo, {after:.1f} accentuated; pixel MSE {distance:.4f}")
        if name == "cat":
            free = accentuate(model, objectives[0], photo, balance=0.0, **options)
            save_rows(photo, free, "cat-unconstrained.png")
            after = scores(model, free.images, objectives[0])[0]
            distance = float((free.images[0] - photo[0]).square().mean())
            print(f"cat {objectives[0]} without regularization: logit {after:.1f}; pixel MSE {distance:.4f}")


if __name__ == "__main__":
    main()
