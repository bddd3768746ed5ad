"""`featviz factors MODEL --layer L --images DIR --count 8 --out grid.png`: a layer's activations over images
reduced to a few directions by non-negative matrix factorization (`featviz.recipes.factors`), rendered."""
from __future__ import annotations

import argparse
from pathlib import Path

from featviz.cli.common import (
    add_model_arguments, add_render_arguments, check_minimums, check_sizes_fit, render_settings,
)
from featviz.device import resolve_device
from featviz.errors import FeatvizError
from featviz.io import check_writable_dir
from featviz.models import load_model
from featviz.recipes.factors import NEGATIVES, layer_factors, render_factors
from featviz.renderer import Renderer


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `featviz factors` and its options on ``subparsers``, the `featviz` parser's subcommands."""
    parser = subparsers.add_parser(
        "factors",
        help="the few directions (NMF factors) that reconstruct a layer's activations over images, rendered",
        description="Sample the layer's activation vectors over the images, factorize them with non-negative "
        "matrix factorization into COUNT factors and render each factor's direction in the layer.",
    )
    add_model_arguments(parser)
    parser.add_argument("--layer", required=True, help="the layer (see `featviz layers MODEL`)")
    parser.add_argument("--images", required=True,
                        help="a folder of images, or 'shipped' for the photos inside scikit-image/scikit-learn")
    parser.add_argument("--count", type=int, default=8, help="number of factors (default 8)")
    parser.add_argument("--negatives", default="split", choices=NEGATIVES,
                        help="negative activations: split into a positive and a negative part (default), or clip to 0")
    parser.add_argument("--samples", type=int, default=20000, help="activation vectors kept at most (default 20000)")
    parser.add_argument("--positions", type=int, default=4, help="random positions sampled per image (default 4)")
    parser.add_argument("--cossim-pow", type=float, default=0.0,
                        help="reward for pointing along the factor's direction (default 0: plain dot product)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="side the images are read at in pixels (default: the model's input size)")
    add_render_arguments(parser, out="factors.png", steps=256)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """With ``args``, the parsed command line: check the options, factorize, render and print the share explained
    and the paths written."""
    check_minimums(args, steps=1, size=8, seed=0, count=1, samples=1, positions=1, cossim_pow=0, image_size=8)
    out = Path(args.out)
    if out.suffix.lower() == ".png" and out.is_dir():
        raise FeatvizError(f"--out '{out}' is a folder; give a file name ending in .png or a folder without .png")
    check_writable_dir(out.parent if out.suffix.lower() == ".png" else out)
    device = resolve_device(args.device)
    renderer = Renderer(load_model(args.model, weights=args.weights, device=device))
    check_sizes_fit(renderer.model, args, images=args.count, count_option="--count")
    found = layer_factors(
        renderer, args.layer, args.images, count=args.count, negatives=args.negatives, samples=args.samples,
        positions=args.positions, seed=args.seed, image_size=args.image_size, progress=not args.no_progress,
    )
    result = render_factors(renderer, found, cossim_pow=args.cossim_pow, settings=render_settings(args, device=device))
    print(
        f"{len(found)} factors of {found.layer} explain {100 * found.explained:.1f} % of its activations "
        f"({len(found.sample)} vectors from {found.sample.image_count} images)"
    )
    for path in result.save(out):
        print(path)
    return 0
