"""`featviz interpolate MODEL UNIT_A UNIT_B --frames 8 --out strip.png`: aligned interpolation between two units
(`featviz.recipes.interpolate`), the frames in one row."""
from __future__ import annotations

import argparse
from pathlib import Path

from featviz.cli.common import (
    add_model_arguments, add_render_arguments, check_minimums, check_render_fits, render_settings,
)
from featviz.device import resolve_device
from featviz.errors import FeatvizError
from featviz.io import check_writable_dir
from featviz.models import load_model
from featviz.recipes.interaction import DEFAULT_ALIGNMENT, interpolate


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `featviz interpolate` and its options on ``subparsers``, the `featviz` parser's subcommands."""
    parser = subparsers.add_parser(
        "interpolate",
        help="interpolate between two units with aligned frames (shared parameters)",
        description="Render --frames images; frame i maximizes (1 - t) UNIT_A + t UNIT_B with t = i / (frames - 1). "
        "The frames share low-resolution parameters (and are rewarded for similar activations, --alignment), so "
        "they keep one composition. Units are objective shorthand: LAYER:CHANNEL, LAYER:CHANNEL@X,Y, class:LABEL.",
    )
    add_model_arguments(parser)
    parser.add_argument("unit_a", metavar="UNIT_A", help="the first unit, e.g. blocks.4:3")
    parser.add_argument("unit_b", metavar="UNIT_B", help="the last unit, e.g. blocks.5:7")
    parser.add_argument("--frames", type=int, default=8, help="frames, both ends included (default 8)")
    parser.add_argument("--alignment", type=float, default=DEFAULT_ALIGNMENT,
                        help="weight of the alignment objective between neighbouring frames "
                        f"(default {DEFAULT_ALIGNMENT:g}; 0: off)")
    parser.add_argument("--alignment-layer", default=None, help="layer alignment compares (default: UNIT_A's layer)")
    parser.add_argument("--independent", action="store_true",
                        help="give every frame its own parameters (no shared part): frames are then not aligned")
    add_render_arguments(parser, out="interpolation.png", steps=256, size=96)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """With ``args``, the parsed command line: check every option, render the frames and print the path written."""
    check_minimums(args, steps=1, size=8, seed=0, frames=2, alignment=0)
    out = Path(args.out)
    if out.suffix.lower() != ".png" or out.is_dir():
        raise FeatvizError(f"--out '{out}' must be a file name ending in .png (the frames are one row)")
    check_writable_dir(out.parent)
    device = resolve_device(args.device)
    model = load_model(args.model, weights=args.weights, device=device)
    check_render_fits(model, (args.size, args.size), images=args.frames, count_option="--frames")
    result = interpolate(
        model, args.unit_a, args.unit_b, frames=args.frames, shared=not args.independent, alignment=args.alignment,
        alignment_layer=args.alignment_layer, settings=render_settings(args, device=device),
    )
    for path in result.save(out):
        print(path)
    return 0

