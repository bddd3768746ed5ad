"""Cost of the photo recipes and of MACO's importance map, as ratios to a plain render (a script, not a test).

    python benchmarks/image_recipes_speed.py [--size 96] [--steps 24] [--repeats 3] [--threads N]

Every figure is the median seconds of a run divided by the median seconds of `featviz.render` of one
EfficientNet-Lite0 channel at the same size, steps and transforms (model preparation included, as in the
recipes), measured in the same process, interleaved with it, after one warm-up of each. Expected: importance about 1.0x (it keeps the gradient the backward pass computes
anyway); recipes with random transforms about 2x (the photo goes through the network beside the image); with
transforms "none" about 1x (the photo's activations are computed once).
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from skimage import data

import featviz
from featviz.recipes import accentuate, caricature, style_transfer
from featviz.dataset.photo import load_photo

UNIT = "blocks.5.0.conv_pwl:12"


def seconds(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96, help="the photo's shorter side (default 96)")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = featviz.load_model("efficientnet_lite0")
    photo = load_photo(data.chelsea(), args.size)
    style = data.immunohistochemistry()
    size = tuple(photo.shape[-2:])
    common = dict(steps=args.steps, progress=False, seed=0)

    def plain(transforms: str, importance: bool = False) -> Callable[[], object]:
        return lambda: featviz.render(model, UNIT, size=size, transforms=transforms, importance=importance, **common)

    cases: dict[str, tuple[str, Callable[[], object]]] = {
        "render + importance (standard)": ("standard", plain("standard", importance=True)),
        "render + importance (none)": ("none", plain("none", importance=True)),
        "caricature (standard, paired photo)": ("standard", lambda: caricature(
            model, "blocks.4", photo, size=args.size, **common)),
        "inversion (none, photo once)": ("none", lambda: caricature(
            model, "blocks.4", photo, mode="inversion", size=args.size, transforms="none", **common)),
        "style transfer (none)": ("none", lambda: style_transfer(model, style, photo, size=args.size, **common)),
        "accentuation (standard, paired photo)": ("standard", lambda: accentuate(
            model, UNIT, photo, size=args.size, **common)),
        "accentuation (none)": ("none", lambda: accentuate(
            model, UNIT, photo, size=args.size, transforms="none", **common)),
    }
    baselines = {"standard": plain("standard"), "none": plain("none")}
    for run in (*baselines.values(), *(run for _, run in cases.values())):
        run()  # warm-up: survey, folding, first allocations
    timings: dict[str, list[float]] = {name: [] for name in (*baselines, *cases)}
    for _ in range(args.repeats):
        for name, run in baselines.items():
            timings[name].append(seconds(run))
        for name, (_, run) in cases.items():
            timings[name].append(seconds(run))
    print(f"featviz from {featviz.__file__}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; efficientnet_lite0, photo {size[0]}x{size[1]}, "
          f"{args.steps} steps, median of {args.repeats}")
    for name in baselines:
        print(f"  plain render ({name}): {statistics.median(timings[name]):.2f} s")
    for name, (baseline, _) in cases.items():
        ratio = statistics.median(timings[name]) / statistics.median(timings[baseline])
        print(f"  {name}: {ratio:.2f}x plain render ({baseline})")


if __name__ == "__main__":
    main()
