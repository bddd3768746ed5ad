"""`featviz style CONTENT STYLE [MODEL] --out PNG`: style transfer in a decorrelated parameterization
(`featviz.recipes.style`)."""
from __future__ import annotations

import argparse
from pathlib import Path

from featviz import param
from featviz.cli.common import (
    add_model_arguments, add_render_arguments, check_minimums, check_photo_fits, render_settings,
)
from featviz.device import resolve_device
from featviz.errors import FeatvizError
from featviz.io import check_writable_dir
from featviz.models import load_model
from featviz.dataset.photo import load_photo
from featviz.recipes.style import DEFAULT_LAYERS, style_transfer

DEFAULT_MODEL = "efficientnet_lite0"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `featviz style` and its options on ``subparsers``, the `featviz` parser's subcommands."""
    parser = subparsers.add_parser(
        "style",
        help="paint a photo in the style of another image (style transfer)",
        description="Optimize an image whose Gram matrices at --style-layers match STYLE's and whose activations at "
        "--content-layer match CONTENT's, in the Fourier, colour-decorrelated parameterization (--param fft, "
        "default; --param pixel shows why it matters). On EfficientNet-Lite the layers default to blocks.0-blocks.3 "
        "(style) and blocks.4 (content). CONTENT keeps its aspect ratio; --size is its shorter side.",
    )
    parser.add_argument("content", metavar="CONTENT", help="the photo to paint")
    parser.add_argument("style", metavar="STYLE", help="the image whose style to use (a painting, a texture)")
    add_model_arguments(parser)
    for action in parser._actions:  # MODEL is optional here: style transfer has a default network
        if action.dest == "model":
            action.nargs, action.default, action.metavar = "?", DEFAULT_MODEL, "MODEL"
            action.help = f"{action.help} (default {DEFAULT_MODEL})"
    parser.add_argument("--style-layers", default=None, help="comma-separated layers whose Gram matrices to match")
    parser.add_argument("--content-layer", default=None, help="layer whose activations keep the content")
    parser.add_argument("--style-weight", type=float, default=1.0, help="weight of the style loss (default 1)")
    parser.add_argument("--content-weight", type=float, default=1.0, help="weight of the content loss (default 1)")
    parser.add_argument("--style-size", type=int, default=None,
                        help="shorter side of the style image in pixels (default: the content's)")
    parser.add_argument("--param", default="fft", choices=param.registered_kinds(), help="image parameterization (default fft)")
    add_render_arguments(parser, out="style.png", steps=512)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """With ``args``, the parsed command line: check every option, run the style transfer and print the path written."""
    check_minimums(args, steps=1, size=8, style_size=8, seed=0, style_weight=0, content_weight=0)
    style_layers = None
    if args.style_layers is not None:
        style_layers = [name.strip() for name in args.style_layers.split(",") if name.strip()]
        if not style_layers:
            raise FeatvizError("--style-layers is empty; give comma-separated layer names such as blocks.0,blocks.1")
    out = Path(args.out)
    if out.suffix.lower() != ".png" or out.is_dir():
        raise FeatvizError(f"--out '{out}' must be a file name ending in .png")
    check_writable_dir(out.parent)
    content, painting = load_photo(args.content), load_photo(args.style)
    device = resolve_device(args.device)
    model = load_model(args.model, weights=args.weights, device=device)
    if (style_layers is None or args.content_layer is None) and model.name not in DEFAULT_LAYERS:
        raise FeatvizError(f"{model.name} has no default style transfer layers; give --style-layers L1,L2,... and "
                           "--content-layer L (see `featviz layers MODEL`)")
    target = check_photo_fits(model, content, args.size, transforms="none")
    side = min(target) if args.style_size is None else args.style_size
    check_photo_fits(model, painting, side, option="--style-size", parameterized=False, views=1)
    result = style_transfer(
        model, painting, content, style_layers=style_layers, content_layer=args.content_layer,
        style_weight=args.style_weight, content_weight=args.content_weight, style_size=args.style_size,
        settings=render_settings(args, device=device),
    )
    for path in result.save(out):
        print(path)
    return 0
