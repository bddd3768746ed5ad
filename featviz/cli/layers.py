"""`featviz layers MODEL`: every layer's dot-path name, type, output shape and channel count."""
from __future__ import annotations

import argparse

from featviz.cli.common import add_model_arguments, check_minimums, check_render_fits
from featviz.device import resolve_device
from featviz.hooks import format_layer_table, layer_table
from featviz.models import load_model


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `featviz layers` and its options on ``subparsers``, the `featviz` parser's subcommands.

    Example:
        >>> from featviz.cli import build_parser
        >>> build_parser().parse_args(["layers", "efficientnet_lite0"]).run is run
        True
    """
    parser = subparsers.add_parser("layers", help="list a model's layers with output shapes and channel counts")
    add_model_arguments(parser)
    parser.add_argument(
        "--size", type=int, default=None, help="input size for the dry forward pass (default: the model's)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """With ``args``, the parsed command line: load the model (random weights unless --weights is given) and print
    its layer table.

    Example:
        >>> from featviz.cli import build_parser
        >>> run(build_parser().parse_args(["layers", "efficientnet_lite0", "--size", "64"]))
        layer                 type                    output shape  layout  channels
        conv_stem             Conv2dSame              1x32x32x32    nchw  32
        ...
        0
    """
    check_minimums(args, size=8)
    # Shapes do not depend on the weights, so listing layers never needs a download.
    model = load_model(args.model, weights=args.weights or "random", device=resolve_device(args.device))
    size = (args.size, args.size) if args.size else None
    if size is not None:  # the survey's forward pass of two grey images
        check_render_fits(model, size, images=2, views=1, parameterized=False)
    print(format_layer_table(layer_table(model, size)))
    return 0
