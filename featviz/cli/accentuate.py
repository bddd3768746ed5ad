"""`featviz accentuate IMAGE MODEL OBJECTIVE --out PNG`: feature accentuation of a photo
(`featviz.recipes.accentuate`), with its importance map beside it."""
from __future__ import annotations

import argparse
from pathlib import Path

from featviz import objectives, transforms
from featviz.cli.common import (
    add_model_arguments, add_render_arguments, check_minimums, check_photo_fits, render_settings,
)
from featviz.device import resolve_device
from featviz.errors import FeatvizError
from featviz.io import check_writable_dir
from featviz.models import load_model
from featviz.recipes.accentuation import accentuate
from featviz.dataset.photo import load_photo


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `featviz accentuate` and its options on ``subparsers``, the `featviz` parser's subcommands."""
    parser = subparsers.add_parser(
        "accentuate",
        help="change a photo just enough to raise a unit: what the unit responds to, and where",
        description="Start from the photo (its own Fourier spectrum) and raise OBJECTIVE while staying close to the "
        "photo's activations at --regularization-layer (feature accentuation, Hamblin et al. 2024). Also writes "
        "OUT-importance.png: the result as RGBA whose alpha is the accumulated absolute gradient on each pixel. "
        "OBJECTIVE: LAYER:CHANNEL, LAYER:CHANNEL@X,Y, class:LABEL, ... as in `featviz render`.",
    )
    parser.add_argument("image", metavar="IMAGE", help="the photo (JPEG, PNG, ...)")
    add_model_arguments(parser)
    parser.add_argument("objective", metavar="OBJECTIVE", help="what to accentuate, e.g. blocks.5:12 or class:tabby")
    parser.add_argument("--regularization-layer", default=None,
                        help="layer whose activations stay close to the photo's (default blocks.2 on "
                        "EfficientNet-Lite, @image (pixels) elsewhere)")
    parser.add_argument("--balance", type=float, default=1.0,
                        help="regularization strength relative to the gradient balance at the start (default 1; "
                        "0: unconstrained)")
    parser.add_argument("--transforms", default="standard", choices=transforms.PRESETS,
                        help="augmentations, applied to the photo alike (default standard)")
    parser.add_argument("--no-importance", action="store_true", help="do not write OUT-importance.png")
    add_render_arguments(parser, out="accentuation.png", steps=128)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """With ``args``, the parsed command line: check every option, accentuate the photo and print the paths written."""
    check_minimums(args, steps=1, size=8, seed=0, balance=0)
    goals = objectives.parse(args.objective)
    out = Path(args.out)
    if out.suffix.lower() != ".png" or out.is_dir():
        raise FeatvizError(f"--out '{out}' must be a file name ending in .png")
    check_writable_dir(out.parent)
    photo = load_photo(args.image)
    device = resolve_device(args.device)
    model = load_model(args.model, weights=args.weights, device=device)
    check_photo_fits(model, photo, args.size, images=len(goals), transforms=args.transforms)
    result = accentuate(
        model, goals, photo, regularization_layer=args.regularization_layer, balance=args.balance,
        importance=not args.no_importance, settings=render_settings(args, device=device),
    )
    for path in result.save(out, importance=not args.no_importance):
        print(path)
    return 0
