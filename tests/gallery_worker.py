"""A small gallery build of a tiny random-init network, run by tests/test_gallery.py in a subprocess (to kill it
part-way) or under `torchrun --nproc-per-node 2` (to shard it).

    python tests/gallery_worker.py OUT IMAGES [--delay SECONDS]

``--delay`` sleeps before every render so that a test can kill the build between batches.
"""
import argparse
import time

import torch

from featviz_testing import tiny_model

import featviz.gallery.build as build

LAYERS = ["0", "2"]
UNITS = "0-5"
SETTINGS = {"steps": 6, "size": 24, "seed": 3, "batch": 2, "examples": 2}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("images")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the same arithmetic in every process, so PNG bytes can be compared
    if args.delay:
        render = build.Renderer.render

        def slow_render(*positional, **keywords):
            time.sleep(args.delay)
            return render(*positional, **keywords)

        build.Renderer.render = slow_render
    summary = build.build_gallery(
        tiny_model(size=32), LAYERS, units=UNITS, images=args.images, out=args.out, progress=False, **SETTINGS
    )
    if summary.index is not None:
        print(summary, flush=True)


if __name__ == "__main__":
    main()
