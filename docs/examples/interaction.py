"""Make the images of docs/recipes/interaction.md with efficientnet_lite0.

* the interaction grid of three ``blocks.4`` channels (6 renders, mirrored into 3 x 3);
* an interpolation between two of them in 8 frames, once with shared parameters and alignment (the default)
  and once with independent frames, and the correlation of neighbouring frames for both.

All at 96 px, seed 0. Images go to docs/images/interaction/ as 256-colour PNGs. The docs' images were made
with ``--steps 128`` (23 minutes on two CPU cores shared with other work).

Run from the repository root:
    python docs/examples/interaction.py [--steps 256]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

import featviz
from featviz.recipes import interaction_grid, interpolate

IMAGES = Path(__file__).resolve().parents[1] / "images" / "interaction"
UNITS = ["blocks.4:3", "blocks.4:7", "blocks.4:11"]


def adjacent_correlation(frames: torch.Tensor) -> float:
    flat = F.normalize((frames - frames.mean((1, 2, 3), keepdim=True)).flatten(1), dim=1)
    return float((flat[1:] * flat[:-1]).sum(1).mean())


def compact_save(result, name: str) -> None:
    """Save ``result`` as a grid PNG, then rewrite it as a 256-colour PNG in docs/images/interaction/."""
    with tempfile.TemporaryDirectory() as folder:
        (path,) = result.save(Path(folder) / name)
        with Image.open(path) as picture:
            picture.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(IMAGES / name, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=256)
    args = parser.parse_args()
    IMAGES.mkdir(parents=True, exist_ok=True)
    renderer = featviz.Renderer("efficientnet_lite0")
    grid = interaction_grid(renderer, UNITS, size=96, steps=args.steps, seed=0)
    compact_save(grid, "interaction-grid.png")
    print("interaction grid, final objective per cell:", [round(float(value), 1) for value in grid.history[-1]])
    aligned = interpolate(renderer, UNITS[0], UNITS[1], frames=8, size=96, steps=args.steps, seed=0)
    compact_save(aligned, "interpolation-aligned.png")
    independent = interpolate(renderer, UNITS[0], UNITS[1], frames=8, size=96, steps=args.steps, seed=0,
                              shared=False, alignment=0.0)
    compact_save(independent, "interpolation-independent.png")
    print(f"adjacent-frame correlation: aligned {adjacent_correlation(aligned.images):.2f}, "
          f"independent {adjacent_correlation(independent.images):.2f}")
    for path in sorted(IMAGES.iterdir()):
        print(f"{path.name}: {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
