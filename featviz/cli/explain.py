"""`featviz explain IMAGE MODEL --layer L --out DIR`: the building blocks of interpretability for one photo
(`featviz.recipes.building_blocks.explain`): neuron groups, attribution and renders, composed into a figure."""
from __future__ import annotations

import argparse
from pathlib import Path

from featviz.cli.common import (
    add_model_arguments, add_render_arguments, check_minimums, check_sizes_fit, render_settings,
)
from featviz.device import resolve_device
from featviz.errors import FeatvizError
from featviz.io import check_writable_dir, replacing_files
from featviz.models import load_model
from featviz.dataset.photo import load_photo
from featviz.recipes.building_blocks import NEGATIVES, explain

#: Files of an earlier explanation that a new one replaces even where it has none of that name.
STALE = ("group-*.png", "grid*.png")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `featviz explain` and its options on ``subparsers``, the `featviz` parser's subcommands."""
    parser = subparsers.add_parser(
        "explain",
        help="explain one photo at a layer: neuron groups (NMF), attribution toward a class, group renders",
        description="The building blocks of interpretability for IMAGE at --layer: the image's activations are "
        "factorized into --groups neuron groups (non-negative matrix factorization), each group's attribution "
        "toward --target (default: the predicted class) is computed (activation x gradient), and each group is "
        "rendered as a direction. Writes figure.png and its parts (maps, renders, attribution bars, "
        "explanation.json) into the --out folder.",
    )
    parser.add_argument("image", metavar="IMAGE", help="the photo to explain (PNG or JPEG)")
    add_model_arguments(parser)
    parser.add_argument("--layer", required=True, help="the layer to explain at, e.g. blocks.4 (see `featviz layers MODEL`)")
    parser.add_argument("--groups", type=int, default=6, help="neuron groups to find (default 6)")
    parser.add_argument("--target", default=None, metavar="CLASS_OR_UNIT",
                        help="what to attribute: a class name or index (tabby, 281), or a unit of a later layer "
                        "(blocks.6:10); default: the predicted class")
    parser.add_argument("--negatives", default="split", choices=NEGATIVES,
                        help="how NMF treats negative activations: split into positive and negative parts "
                        "(default) or clip them to 0")
    parser.add_argument("--grid-pool", type=int, default=None, metavar="N",
                        help="also render the activation grid, one cell per N x N positions (default: no grid)")
    parser.add_argument("--grid-size", type=int, default=48, help="side of each grid cell's render, in pixels (default 48)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="shorter side of the image as analysed, in pixels (default: the model's input size)")
    add_render_arguments(parser, out="explanation", steps=256, size=96)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """With ``args``, the parsed command line: check every option, explain the image and print the paths written
    (the figure first)."""
    check_minimums(args, steps=1, size=8, seed=0, groups=1, grid_pool=1, grid_size=8, image_size=8)
    out = Path(args.out)
    if out.suffix.lower() == ".png" or (out.exists() and not out.is_dir()):
        raise FeatvizError(f"--out '{out}' must be a folder (the figure and its parts are written into it)")
    photo = load_photo(args.image)  # a missing or unreadable image is reported before the model loads
    check_writable_dir(out)
    device = resolve_device(args.device)
    model = load_model(args.model, weights=args.weights, device=device)
    check_sizes_fit(model, args, images=args.groups, count_option="--groups", photo=photo)
    found = explain(
        model, args.layer, args.image, groups=args.groups, target=args.target, negatives=args.negatives,
        grid_pool=args.grid_pool, grid_size=args.grid_size, image_size=args.image_size,
        settings=render_settings(args, device=device),
    )
    with replacing_files(out, stale=STALE) as stage:  # a rerun with fewer groups leaves none of the earlier's
        written = found.save(stage)
    for path in written:
        print(out / path.relative_to(stage))
    return 0
