"""Make the images of docs/recipes/importance.md with efficientnet_lite0: renders beside their MACO importance maps.

* one blocks.4.0.conv_pwl channel rendered as a neuron at two positions of a 128 x 192 image, and as a whole
  channel (its mean over every position), Fourier parameterization and "standard" transforms;
* the class "goldfish" with the MACO parameterization and MACO's transforms (6 random crops per step).

256 steps, seed 0. Each PNG pairs a render with its importance overlay (the render as RGBA, alpha = importance).
Printed: how much of each neuron's importance falls within 32 px of the neuron's centre. Images go to
docs/images/importance/.

Run from the repository root (a few minutes on two busy CPU cores):
    python docs/examples/importance.py [--steps 256]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image

import featviz
from featviz.renderer.image import grid, to_pil

IMAGES = Path(__file__).resolve().parents[1] / "images" / "importance"
SIZE = (128, 192)
CHANNEL = "blocks.4.0.conv_pwl:12"
NEURONS = [(3, 3), (9, 5)]  # (x, y) on blocks.4's 8 x 12 map: 16 px per position


def save_compact(images: torch.Tensor, path: Path) -> None:
    """Write ``images`` (one image or a grid; RGBA shown over white) as a 256-colour PNG: docs images stay small."""
    (picture,) = to_pil(images if images.dim() == 4 else images[None])
    if picture.mode == "RGBA":
        picture = Image.alpha_composite(Image.new("RGBA", picture.size, "white"), picture)
    picture.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def pairs(result) -> torch.Tensor:
    """Each render (opaque) followed by its importance overlay."""
    opaque = torch.cat([result.images, torch.ones_like(result.images[:, :1])], dim=1)
    return torch.stack([opaque, result.importance_images()], dim=1).flatten(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=256)
    args = parser.parse_args()
    IMAGES.mkdir(parents=True, exist_ok=True)
    renderer = featviz.Renderer("efficientnet_lite0")
    options = dict(size=SIZE, steps=args.steps, seed=0, progress=False, importance=True)

    neurons = renderer.render([f"{CHANNEL}@{x},{y}" for x, y in NEURONS], **options)
    save_compact(grid(pairs(neurons), columns=2), IMAGES / "neurons.png")
    rows, columns = torch.meshgrid(torch.arange(SIZE[0]), torch.arange(SIZE[1]), indexing="ij")
    for (x, y), importance in zip(NEURONS, neurons.importance):
        near = ((rows - (16 * y + 8)) ** 2 + (columns - (16 * x + 8)) ** 2) <= 32 ** 2
        share = float(importance[near].sum() / importance.sum())
        print(f"neuron at x={x}, y={y}: {share:.0%} of the importance within 32 px of its centre "
              f"({float(near.float().mean()):.0%} of the image)")

    channel = renderer.render(CHANNEL, **options)
    goldfish = renderer.render("class:goldfish", param="maco", transforms="maco", **options)
    save_compact(grid(torch.cat([pairs(channel), pairs(goldfish)]), columns=2), IMAGES / "channel-and-class.png")


if __name__ == "__main__":
    main()
