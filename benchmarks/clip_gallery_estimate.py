"""The arithmetic of a CLIP layer's gallery, and the GPU time it implies (a script, not a test; docs/clip.md).

    python benchmarks/clip_gallery_estimate.py [--arch RN50x4] [--layer layer4] [--units 2560] [--steps 512]

Counts the floating-point operations of the image tower's forward pass up to ``--layer`` with
``torch.utils.flop_counter`` (open_clip's architecture at random init: the count does not depend on the weights),
at the model's input size and two smaller ones. A render step (forward and backward) is taken as three forward
passes, and `featviz gallery` renders 6 images a unit (positive, negative, a diversity set of 4). The time is that
work divided by a sustained rate, which is an assumption (``--rates``, TFLOP/s), not a measurement: nothing
here runs on a GPU.
"""
from __future__ import annotations

import argparse
import logging

import torch
from torch.utils.flop_counter import FlopCounterMode

IMAGES_PER_UNIT = 6  # positive, negative, a diversity set of 4 (featviz.gallery.build)
STEP_PER_FORWARD = 3  # forward + backward


class _Stop(Exception):
    pass


def forward_flops(tower: torch.nn.Module, layer: str, size: int) -> int:
    """Operations of one image's forward pass through ``tower`` up to ``layer`` (inclusive), at ``size`` px."""

    def stop(*_):
        raise _Stop

    handle = tower.get_submodule(layer).register_forward_hook(stop)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            try:
                tower(torch.zeros(1, 3, size, size))
            except _Stop:
                pass
    finally:
        handle.remove()
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="RN50x4")
    parser.add_argument("--layer", default="layer4")
    parser.add_argument("--units", type=int, default=2560)
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--rates", default="50,150", help="assumed sustained TFLOP/s, comma-separated")
    args = parser.parse_args()

    import open_clip

    logging.disable(logging.WARNING)  # open_clip warns about random init
    tower = open_clip.create_model(args.arch).visual.eval()
    full = tower.image_size if isinstance(tower.image_size, int) else tower.image_size[0]
    rates = [float(rate) for rate in args.rates.split(",")]
    print(f"{args.arch} up to {args.layer}; a gallery of {args.units} units, {IMAGES_PER_UNIT} images a unit, "
          f"{args.steps} steps")
    print("size  forward GFLOP  step GFLOP/image  PFLOP/unit  PFLOP/layer  " +
          "  ".join(f"hours at {rate:g} TFLOP/s" for rate in rates))
    for size in (full, 224, 128):
        forward = forward_flops(tower, args.layer, size)
        step = STEP_PER_FORWARD * forward
        unit = step * IMAGES_PER_UNIT * args.steps
        layer = unit * args.units
        hours = [layer / (rate * 1e12) / 3600 for rate in rates]
        print(f"{size:4d}  {forward / 1e9:13.1f}  {step / 1e9:16.0f}  {unit / 1e15:10.2f}  {layer / 1e15:11.0f}  " +
              "  ".join(f"{value:22.1f}" for value in hours))


if __name__ == "__main__":
    main()
