"""`featviz atlas MODEL --layer L --images DIR --out SITE`: an activation atlas (`featviz.recipes.atlas`) as a
zoomable static site."""
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
from featviz.dataset import image_folder
from featviz.recipes.atlas import activation_atlas, write_atlas_site
from featviz.recipes.atlas.layout import LAYOUTS
from featviz.recipes.atlas.recipe import DEFAULT_COSSIM_POW, DEFAULT_SIZE, DEFAULT_STEPS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `featviz atlas` and its options on ``subparsers``, the `featviz` parser's subcommands."""
    parser = subparsers.add_parser(
        "atlas",
        help="an activation atlas of a layer over a folder of images, as a zoomable static site",
        description="Sample the layer's activation vectors over the images, lay them out in 2-D (t-SNE or UMAP), "
        "average them in a grid of cells at several grid sizes and render each cell's average as a direction. "
        "Under `torchrun --nproc-per-node N --no-python featviz atlas ...` the images and the cells are shared "
        "among N processes.",
    )
    add_model_arguments(parser)
    parser.add_argument("--layer", required=True, help="the layer (see `featviz layers MODEL`)")
    parser.add_argument("--images", required=True,
                        help="a folder of images, or 'shipped' for the photos inside scikit-image/scikit-learn")
    parser.add_argument("--grid", type=int, default=20, help="cells a side of the finest grid (default 20)")
    parser.add_argument("--levels", type=int, default=3,
                        help="grid sizes, each half the next: 3 with --grid 20 gives 5, 10, 20 (default 3)")
    parser.add_argument("--samples", type=int, default=20000, help="activation vectors kept at most (default 20000)")
    parser.add_argument("--positions", type=int, default=4, help="random positions sampled per image (default 4)")
    parser.add_argument("--layout", default="tsne", choices=LAYOUTS,
                        help="2-D layout: tsne (default) or umap (needs pip install umap-learn)")
    parser.add_argument("--min-count", type=int, default=1, help="samples a cell needs to be rendered (default 1)")
    parser.add_argument("--class", dest="label", default=None, metavar="LABEL",
                        help="a class atlas: only images that predict LABEL (name or index) among their --top classes, "
                        "at positions whose attribution to it is positive")
    parser.add_argument("--top", type=int, default=5, help="with --class: predictions an image may rank it in (default 5)")
    parser.add_argument("--cossim-pow", type=float, default=DEFAULT_COSSIM_POW,
                        help=f"reward for pointing along the cell's direction (default {DEFAULT_COSSIM_POW:g})")
    parser.add_argument("--batch", type=int, default=32, help="cells rendered together (default 32)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="side the images are read at in pixels (default: the model's input size)")
    add_render_arguments(parser, out="atlas", steps=DEFAULT_STEPS, size=DEFAULT_SIZE)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """With ``args``, the parsed command line: check the options, make the atlas, write the site and print where it
    is (rank 0 only under torchrun)."""
    check_minimums(
        args, steps=1, size=8, seed=0, grid=2, levels=1, samples=4, positions=1, min_count=1, top=1, batch=1,
        cossim_pow=0, image_size=8,
    )
    if args.min_count > args.samples:
        raise FeatvizError(
            f"--min-count {args.min_count} is more than --samples {args.samples}: no cell could hold that many; use "
            f"--min-count {args.samples} or less"
        )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise FeatvizError(f"--out '{out}' is a file; give a folder for the site")
    check_writable_dir(out)
    device = resolve_device(args.device, per_process=True)
    model = load_model(args.model, weights=args.weights, device=device)
    model.get_layer(args.layer)  # mistakes in the layer or the images are reported before the folder is made
    check_sizes_fit(model, args, images=args.batch)
    images = image_folder(model, args.images, args.image_size, name="--images")
    label = int(args.label) if args.label is not None and args.label.strip().isdigit() else args.label
    atlas = activation_atlas(
        model, args.layer, images, grid=args.grid, levels=args.levels, samples=args.samples,
        positions=args.positions, layout=args.layout, min_count=args.min_count, label=label, top=args.top,
        cossim_pow=args.cossim_pow, batch=args.batch, settings=render_settings(args, device=device),
    )
    index = write_atlas_site(atlas, out)
    if _rank() == 0:
        cells = sum(len(level) for level in atlas.levels)
        grids = ", ".join(str(level.grid) for level in atlas.levels)
        print(
            f"atlas of {atlas.layer}: {cells} cells on grids {grids} from {len(atlas.sample)} activation vectors of "
            f"{atlas.sample.image_count} images; open {index}"
        )
    return 0


def _rank() -> int:
    import os

    text = os.environ.get("RANK", "").strip()
    return int(text) if text.isdigit() else 0
