"""`featviz interaction MODEL UNIT [UNIT ...] --out grid.png`: every pair of a few units rendered together
(`featviz.recipes.interaction_grid`), an n x n grid with the single units on the diagonal."""
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
from featviz.recipes.interaction import interaction_grid


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `featviz interaction` and its options on ``subparsers``, the `featviz` parser's subcommands."""
    parser = subparsers.add_parser(
        "interaction",
        help="render every pair of a few units together: an n x n grid, single units on the diagonal",
        description="Cell (i, j) of the grid maximizes UNIT i + UNIT j; the diagonal shows each unit alone. Units "
        "are objective shorthand: LAYER:CHANNEL, LAYER:CHANNEL@X,Y, class:LABEL; LAYER:A-B names several.",
    )
    add_model_arguments(parser)
    parser.add_argument("units", metavar="UNIT", nargs="+", help="two or more units, e.g. blocks.4:3 blocks.4:7 blocks.5:1")
    add_render_arguments(parser, out="interaction.png", steps=256, size=96)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """With ``args``, the parsed command line: check every option, render the grid and print the path written."""
    check_minimums(args, steps=1, size=8, seed=0)
    out = Path(args.out)
    if out.suffix.lower() != ".png" or out.is_dir():
        raise FeatvizError(f"--out '{out}' must be a file name ending in .png (the grid is one image)")
    check_writable_dir(out.parent)
    device = resolve_device(args.device)
    model = load_model(args.model, weights=args.weights, device=device)
    size = (args.size, args.size) if args.size is not None else model.input_size
    check_render_fits(model, size, images=len(args.units) * (len(args.units) + 1) // 2)  # one per pair
    result = interaction_grid(model, args.units, settings=render_settings(args, device=device))
    for path in result.save(out):
        print(path)
    return 0
