"""Activation atlas time split: the activation pass, the layout and the renders, against a plain render of as
many directions (a script, not a test).

    python benchmarks/atlas_speed.py [--layout tsne|umap] [--threads N]

One process: efficientnet_lite0's ``blocks.4`` over the shipped photos (15 images at 224 px, 16 positions
each: 240 vectors), a grid of 6 with 2 levels (3 and 6), each cell rendered at 64 px. The baseline renders
the same number of random directions (``objectives.direction_neuron``, same size, steps, batches) with the
same `Renderer`. A first atlas warms up (model preparation, the layout library's imports and JIT); the
second is measured. Figures are printed as seconds and as ratios to the baseline.
"""
from __future__ import annotations

import argparse
import time

import torch

import featviz
from featviz import objectives
from featviz.recipes import activation_atlas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default="blocks.4")
    parser.add_argument("--layout", default="tsne", choices=("tsne", "umap"))
    parser.add_argument("--grid", type=int, default=6)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    renderer = featviz.Renderer("efficientnet_lite0")
    settings = dict(
        grid=args.grid, levels=2, samples=20000, positions=16, layout=args.layout, steps=args.steps, size=args.size,
        batch=args.batch, seed=0, progress=False,
    )
    activation_atlas(renderer, args.layer, "shipped", **settings)  # warm-up
    started = time.perf_counter()
    atlas = activation_atlas(renderer, args.layer, "shipped", **settings)
    total = time.perf_counter() - started
    cells = sum(len(level) for level in atlas.levels)

    channels = atlas.sample.vectors.shape[1]
    directions = torch.randn(cells, channels, generator=torch.Generator().manual_seed(0))
    started = time.perf_counter()
    for start in range(0, cells, args.batch):
        goals = [objectives.direction_neuron(args.layer, vector, cossim_pow=1.0)
                 for vector in directions[start:start + args.batch]]
        renderer.render(goals, steps=args.steps, size=args.size, seed=start, progress=False)
    baseline = time.perf_counter() - started

    print(f"featviz from {featviz.__file__}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.layer}, {len(atlas.sample)} vectors "
          f"from {atlas.sample.image_count} images, layout {args.layout}, {cells} cells "
          f"(grids {', '.join(str(level.grid) for level in atlas.levels)}), {args.steps} steps at {args.size} px, "
          f"batches of {args.batch}")
    print(f"plain render of {cells} directions: {baseline:.2f} s (1.00)")
    for name in ("activations", "layout", "render"):
        print(f"  atlas {name:<11}: {atlas.seconds[name]:7.2f} s ({atlas.seconds[name] / baseline:.2f})")
    print(f"  atlas total      : {total:7.2f} s ({total / baseline:.2f})")


if __name__ == "__main__":
    main()
