"""Time of `featviz.recipes.explain` by stage, beside a plain render of the same number of objectives
(a script, not a test).

    python benchmarks/building_blocks_speed.py [--size 96] [--steps 64] [--groups 6] [--grid-pool 3] [--grid-size 48]

On efficientnet_lite0 and scikit-image's cat photo (300 x 451, analysed at 224 x 337), at ``blocks.4``: the
stages of `explain` (reading the activations, NMF, attribution, the group renders, the activation grid), each
in seconds and as a ratio to the baseline measured in the same process with the same `featviz.Renderer`: a
plain render of ``groups`` channel objectives of the same layer at the same size and steps (and, for the grid,
of as many channel objectives as it has cells, at the grid's cell size). A warm-up render comes first, so
binding and allocation count in neither.
"""
from __future__ import annotations

import argparse
import time

import torch

import featviz
from featviz.dataset.shipped import shipped_photo_paths
from featviz.objectives import channel
from featviz.recipes import explain

LAYER = "blocks.4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--groups", type=int, default=6)
    parser.add_argument("--grid-pool", type=int, default=3)
    parser.add_argument("--grid-size", type=int, default=48)
    args = parser.parse_args()
    (cat,) = [path for path in shipped_photo_paths() if path.stem == "chelsea"]
    renderer = featviz.Renderer("efficientnet_lite0")
    renderer.render(f"{LAYER}:0", steps=2, size=args.size, seed=0, progress=False)  # warm-up

    started = time.perf_counter()
    found = explain(renderer, LAYER, cat, groups=args.groups, size=args.size, steps=args.steps,
                    grid_pool=args.grid_pool, grid_size=args.grid_size, progress=False)
    total = time.perf_counter() - started
    cells = found.grid.shape[0] * found.grid.shape[1] if found.grid is not None else 0

    def baseline(count: int, size: int) -> float:
        goals = [channel(LAYER, index % found.activations.shape[0]) for index in range(count)]
        started = time.perf_counter()
        renderer.render(goals, steps=args.steps, size=size, seed=0, progress=False)
        return time.perf_counter() - started

    plain_groups = baseline(args.groups, args.size)
    plain_cells = baseline(cells, args.grid_size) if cells else None
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; efficientnet_lite0 {LAYER}, image "
          f"{found.image.shape[-2]}x{found.image.shape[-1]}, {args.groups} groups at {args.size} px, grid "
          f"{found.grid.shape if cells else None} at {args.grid_size} px, {args.steps} steps")
    print("| stage | seconds | ratio to its baseline |")
    print("|---|---|---|")
    for stage, seconds in found.seconds.items():
        if stage == "renders":
            ratio = f"{seconds / plain_groups:.2f} (plain render of {args.groups} channels: {plain_groups:.2f} s)"
        elif stage == "grid":
            ratio = f"{seconds / plain_cells:.2f} (plain render of {cells} channels: {plain_cells:.2f} s)"
        else:
            ratio = f"{seconds / plain_groups:.3f} of the {args.groups}-channel render"
        print(f"| {stage} | {seconds:.2f} | {ratio} |")
    plain_total = plain_groups + (plain_cells or 0.0)
    print(f"| explain, all stages | {total:.2f} | {total / plain_total:.2f} (plain renders of the same objectives: "
          f"{plain_total:.2f} s) |")


if __name__ == "__main__":
    main()
