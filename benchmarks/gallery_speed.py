"""Gallery throughput: units per minute of `featviz gallery` on EfficientNet-Lite0 (a script, not a test).

Run it once per code version in the same session and compare the figures as a ratio, e.g. before and after a
change, with the older checkout first on PYTHONPATH:

    PYTHONPATH=/path/to/old/checkout python benchmarks/gallery_speed.py
    python benchmarks/gallery_speed.py

Each run builds the same gallery twice into fresh folders (the first build warms caches up) and prints the
second build's units per minute. No dataset examples: this measures rendering and writing only.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

import featviz
from featviz.gallery import build_gallery


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="blocks.3,blocks.5")
    parser.add_argument("--units", default="0-7")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    model = featviz.load_model("efficientnet_lite0")
    figures = []
    for repeat in range(args.repeats + 1):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            summary = build_gallery(
                model, args.layers, units=args.units, steps=args.steps, size=args.size, batch=args.batch,
                out=folder, progress=False,
            )
            seconds = time.perf_counter() - started
        if repeat:  # the first build warms up
            figures.append(summary.rendered / seconds * 60)
    print(f"featviz from {featviz.__file__}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.layers} units {args.units}, "
          f"{args.steps} steps at {args.size} px, batches of {args.batch}")
    print("units per minute: " + ", ".join(f"{figure:.1f}" for figure in figures)
          + f" (best {max(figures):.1f})")


if __name__ == "__main__":
    main()
