"""Make the images of docs/recipes/building-blocks.md: `explain` on scikit-image's cat photo with efficientnet_lite0.

The photo (300 x 451) is analysed at 224 x 337, so ``blocks.4`` has a 14 x 22 grid of positions. Six neuron
groups (NMF, negatives split), attribution toward the predicted class, a 128-step render of each group at
96 px, and the activation grid pooled over 3 x 3 positions (5 x 8 cells, 48 px each). The parts are written
by ``Explanation.save`` into a work folder, then copied into docs/images/building-blocks/ as palette PNGs
(256 colours; the figure scaled to 800 pixels wide and 128 colours), so the site's images stay small. The
numbers shown on the page are printed.

Run from the repository root (22 minutes on two CPU cores shared with other work):
    python docs/examples/building_blocks.py [--work /tmp/featviz-building-blocks] [--steps 128]

``--reuse`` redraws the figure from the explanation the last run kept in the work folder, without rendering.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from PIL import Image

import featviz
from featviz.dataset.shipped import shipped_photo_paths
from featviz.recipes import explain

IMAGES = Path(__file__).resolve().parents[1] / "images" / "building-blocks"
PARTS = ("figure.png", "groups.png", "attribution-map.png", "attribution-bars.png", "grid.png")


def compact(source: Path, target: Path, width: int | None = None, colors: int = 256) -> None:
    """``source`` as a PNG of ``colors`` colours at ``target``, scaled down to ``width`` pixels when it is wider."""
    with Image.open(source) as picture:
        picture = picture.convert("RGB")
        if width is not None and picture.width > width:
            picture = picture.resize((width, round(picture.height * width / picture.width)), Image.Resampling.LANCZOS)
        picture.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/featviz-building-blocks")
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--reuse", action="store_true", help="redraw from the work folder's explanation.pt")
    args = parser.parse_args()
    work = Path(args.work)
    kept = work / "explanation.pt"
    if args.reuse:
        found = torch.load(kept, weights_only=False)
    else:
        (cat,) = [path for path in shipped_photo_paths() if path.stem == "chelsea"]
        renderer = featviz.Renderer("efficientnet_lite0")
        found = explain(renderer, "blocks.4", cat, groups=6, size=96, steps=args.steps, grid_pool=3, grid_size=48,
                        seed=0)
        work.mkdir(parents=True, exist_ok=True)
        torch.save(found, kept)
    found.save(work)
    IMAGES.mkdir(parents=True, exist_ok=True)
    for name in PARTS:
        if name == "figure.png":
            compact(work / name, IMAGES / name, width=800, colors=128)
        else:
            compact(work / name, IMAGES / name)
    summary = found.summary()
    print(json.dumps(summary, indent=2))
    for path in sorted(IMAGES.iterdir()):
        print(f"{path.name}: {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
