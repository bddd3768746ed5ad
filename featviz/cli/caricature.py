"""`featviz caricature IMAGE MODEL --layer L --out PNG`: feature inversion and caricatures of a photo
(`featviz.recipes.inversion`)."""
from __future__ import annotations

import argparse
from pathlib import Path

from featviz import param, transforms
from featviz.cli.common import (
    add_model_arguments, add_render_arguments, check_minimums, check_photo_fits, render_settings,
)
from featviz.device import resolve_device
from featviz.errors import FeatvizError
from featviz.io import check_writable_dir
from featviz.models import load_model
from featviz.dataset.photo import load_photo
from featviz.recipes.inversion import MODES, caricature


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `featviz caricature` and its options on ``subparsers``, the `featviz` parser's subcommands."""
    parser = subparsers.add_parser(
        "caricature",
        help="render what a layer sees in a photo: reproduced (inversion) or exaggerated (caricature)",
        description="Optimize an image whose activations at --layer match the photo's (--mode inversion) or push "
        "the photo's pattern further (--mode caricature: dot product times cosine ** --cossim-pow). The photo keeps "
        "its aspect ratio; --size is its shorter side. Several layers give one image each, in a grid.",
    )
    parser.add_argument("image", metavar="IMAGE", help="the photo (JPEG, PNG, ...)")
    add_model_arguments(parser)
    parser.add_argument("--layer", required=True, action="append",
                        help="layer to compare (see `featviz layers MODEL`); repeat it or separate names with commas "
                        "for one image per layer")
    parser.add_argument("--mode", default="caricature", choices=MODES, help="caricature (default) or inversion")
    parser.add_argument("--cossim-pow", type=float, default=1.0,
                        help="caricature's cosine power: 0 exaggerates most, larger stays closer to the photo (default 1)")
    parser.add_argument("--param", default="fft", choices=param.registered_kinds(), help="image parameterization (default fft)")
    parser.add_argument("--transforms", default="standard", choices=transforms.PRESETS,
                        help="augmentations, applied to the photo alike (default standard)")
    add_render_arguments(parser, out="caricature.png", steps=512)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """With ``args``, the parsed command line: check every option, render the caricature and print the path written."""
    check_minimums(args, steps=1, size=8, seed=0, cossim_pow=0)
    layers = [name.strip() for text in args.layer for name in text.split(",") if name.strip()]
    if not layers:
        raise FeatvizError("--layer is empty; give a layer name such as blocks.4 (see `featviz layers MODEL`)")
    out = Path(args.out)
    if out.suffix.lower() != ".png" or out.is_dir():
        raise FeatvizError(f"--out '{out}' must be a file name ending in .png")
    check_writable_dir(out.parent)
    photo = load_photo(args.image)
    device = resolve_device(args.device)
    model = load_model(args.model, weights=args.weights, device=device)
    check_photo_fits(model, photo, args.size, images=len(layers), transforms=args.transforms)
    result = caricature(
        model, layers, photo, cossim_pow=args.cossim_pow, mode=args.mode, settings=render_settings(args, device=device),
    )
    for path in result.save(out):
        print(path)
    return 0
