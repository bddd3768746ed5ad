"""`featviz gallery MODEL --layers L1,L2 --out SITE`: render many units into a browsable static site."""
from __future__ import annotations

import argparse
import os

from featviz.cli.common import MAXIMUMS, add_model_arguments, check_minimums, check_render_fits, render_settings
from featviz.device import resolve_device
from featviz.errors import FeatvizError
from featviz.gallery.build import DEFAULT_DIVERSITY_WEIGHT, build_gallery, parse_units
from featviz.gallery.extras import DEFAULT_FACET_STRENGTH
from featviz.models import load_model


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `featviz gallery` and its options on ``subparsers``, the `featviz` parser's subcommands."""
    parser = subparsers.add_parser(
        "gallery",
        help="render a Microscope-style gallery of many units into a static site",
        description="Per unit: positive and negative visualizations, a diversity set of 4, and with --images the "
        "top dataset examples and an activation histogram. Re-running resumes; under "
        "`torchrun --nproc-per-node N --no-python featviz gallery ...` the units are shared among N processes.",
    )
    add_model_arguments(parser)
    parser.add_argument("--layers", default=None, help="comma-separated layer names (see `featviz layers MODEL`)")
    parser.add_argument("--dictionary", default=None, metavar="DICT.pt",
                        help="also (or instead of --layers) a page of this dictionary's features (from `featviz "
                        "dictionary`), rendered, ranked on --images and labelled like units")
    parser.add_argument("--units", default=None, help="units of every layer: 0-63, 0,5,9 or 0-3,8 (default: all)")
    parser.add_argument("--images", default=None,
                        help="a folder of images for dataset examples, or 'shipped' for the photos inside "
                        "scikit-image/scikit-learn")
    parser.add_argument("--steps", type=int, default=512, help="optimization steps per image (default 512)")
    parser.add_argument("--size", type=int, default=None,
                        help="rendered image size in pixels (default: the model's input size)")
    parser.add_argument("--seed", type=int, default=0, help="seed; unit u's positive image uses seed + u (default 0)")
    parser.add_argument("--out", default="gallery", help="the site folder (default gallery)")
    parser.add_argument("--batch", type=int, default=16,
                        help="units rendered together in one forward pass (default 16)")
    parser.add_argument("--diversity-weight", type=float, default=DEFAULT_DIVERSITY_WEIGHT,
                        help=f"diversity term relative to the unit's activation (default {DEFAULT_DIVERSITY_WEIGHT:g})")
    parser.add_argument("--diversity-size", type=int, default=None,
                        help="size of the diversity images in pixels (default: --size)")
    parser.add_argument("--examples", type=int, default=6, help="dataset examples per unit (default 6)")
    parser.add_argument("--thumbnail-size", type=int, default=64, help="thumbnail size in pixels (default 64)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    multimodal = parser.add_argument_group(
        "multimodal units", "models with a text tower (CLIP; classifiers such as efficientnet_lite0) and probes; "
        "added to units rendered earlier too, without rendering them again"
    )
    multimodal.add_argument("--words", nargs="?", const=True, default=None, metavar="FILE|W1,W2",
                            help="each unit's top words by zero-shot ranking, and a search box on each layer page; "
                            "alone: the default concept list; or a file with one word a line, or comma-separated words")
    multimodal.add_argument("--labels", nargs="?", const=True, default=None, metavar="IMAGES",
                            help="label each unit with a concept (from --words' list when given) found on images; "
                            "alone: the --images folder; or another folder, or 'shipped'")
    multimodal.add_argument("--facets", default=None, metavar="PROBE[,PROBE]",
                            help="comma-separated probe files (from `featviz.concepts`): one faceted render per "
                            "unit and probe")
    multimodal.add_argument("--facet-strength", type=float, default=DEFAULT_FACET_STRENGTH,
                            help=f"strength of the facet term (default {DEFAULT_FACET_STRENGTH:g})")
    multimodal.add_argument("--story", nargs="?", const=True, default=None, metavar="IMAGES",
                            help="each unit's conditional-probability plot on images; alone: the --images folder")
    parser.set_defaults(run=run)


def _words_option(value: str | bool | None) -> str | list[str] | bool | None:
    """``--words``: alone (True), a file, or comma-separated words."""
    if value is None or value is True:
        return value
    if os.path.isfile(value):
        return value
    if "," in value:
        return [word for word in value.split(",") if word.strip()]
    raise FeatvizError(
        f"--words: '{value}' is not a file; give a file with one word a line, comma-separated words like "
        "dog,water,striped, or --words alone for the default list"
    )


def run(args: argparse.Namespace) -> int:
    """With ``args``, the parsed command line: check the options, build the gallery and print its summary (rank 0
    only under torchrun)."""
    check_minimums(
        args, steps=1, batch=1, seed=0, examples=1, thumbnail_size=8, size=8, diversity_size=8, diversity_weight=0,
        facet_strength=-MAXIMUMS["facet_strength"],
    )
    if args.units is not None:
        try:
            parse_units(args.units)
        except FeatvizError as error:
            raise FeatvizError(f"--units: {error}") from None
    if args.layers is None and args.dictionary is None:
        raise FeatvizError("give --layers L1,L2 (see `featviz layers MODEL`), --dictionary DICT.pt, or both")
    device = resolve_device(args.device, per_process=True)
    model = load_model(args.model, weights=args.weights, device=device)
    # Each batch renders a positive and a negative image per unit, then a diversity set of 4 per unit.
    render_size = (args.size, args.size) if args.size is not None else tuple(model.input_size)
    set_size = (args.diversity_size,) * 2 if args.diversity_size is not None else render_size
    check_render_fits(model, render_size, images=2 * args.batch, views=1)
    check_render_fits(model, set_size, images=4 * args.batch, views=1, option="--diversity-size")
    summary = build_gallery(
        model, args.layers, units=args.units, dictionary=args.dictionary, images=args.images, out=args.out,
        batch=args.batch, settings=render_settings(args, device=device),
        diversity_weight=args.diversity_weight, diversity_size=args.diversity_size,
        examples=args.examples,
        thumbnail_size=args.thumbnail_size,
        words=_words_option(args.words), labels=args.labels, story=args.story,
        facets=[path for path in args.facets.split(",") if path.strip()] if args.facets else None,
        facet_strength=args.facet_strength,
    )
    if summary.index is not None:
        print(summary)
    return 0
