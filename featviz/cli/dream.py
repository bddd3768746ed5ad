"""`featviz dream MODEL PROMPT --out PNG`: text-guided generation (`featviz.recipes.dream`) into one PNG."""
from __future__ import annotations

import argparse
from pathlib import Path

from featviz import recipes
from featviz.cli.common import add_model_arguments, check_lr, check_minimums, check_render_fits
from featviz.device import resolve_device
from featviz.errors import FeatvizError
from featviz.io import check_writable_dir
from featviz.models import load_model
from featviz.objectives.language import parse_text
from featviz.recipes.structured_dreaming import DEFAULT_SIZE, OPTIMIZERS

PARAMETERIZATIONS = ("fft", "maco")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `featviz dream` and its options on ``subparsers``, the `featviz` parser's subcommands."""
    parser = subparsers.add_parser(
        "dream",
        help="generate an image from a text prompt",
        description="Optimize a large canvas so that MODEL's image embedding matches PROMPT, over many random views "
        "a step (crops, flips, perspective, downsampling, cutout, noise). MODEL is a CLIP model (open_clip:ARCH/TAG) "
        "or a classifier with a text tower (efficientnet_lite0).",
    )
    add_model_arguments(parser)
    parser.add_argument("prompt", metavar="PROMPT",
                        help="what the image should show, e.g. 'a lighthouse at dusk', or several prompts weighted as "
                        "in text objectives: 'a lighthouse|fog:-0.5'")
    parser.add_argument("--out", required=True, help="the .png file to write")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE,
                        help=f"canvas side in pixels (default {DEFAULT_SIZE})")
    parser.add_argument("--steps", type=int, default=400, help="optimization steps (default 400)")
    parser.add_argument("--views", type=int, default=16, help="random views of the canvas per step (default 16)")
    parser.add_argument("--param", default="fft", choices=PARAMETERIZATIONS,
                        help="image parameterization (default fft)")
    parser.add_argument("--optimizer", default="adam", choices=OPTIMIZERS, help="adam (default) or clampsgd")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate (default: the parameterization's for adam, 0.4 times it for clampsgd)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the canvas, the views and the dropout (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """With ``args``, the parsed command line: check every option, dream the image and print the path written."""
    check_minimums(args, steps=1, views=1, seed=0, size=8)
    check_lr(args.lr)
    if not args.prompt.strip():
        raise FeatvizError("PROMPT is empty; describe the image, e.g. 'a lighthouse at dusk'")
    goal = parse_text(args.prompt)
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise FeatvizError(f"--out '{out}' must be a file name ending in .png")
    if out.is_dir():
        raise FeatvizError(f"--out '{out}' is a folder; give a file name ending in .png")
    check_writable_dir(out.parent)
    device = resolve_device(args.device)
    model = load_model(args.model, weights=args.weights, device=device)
    check_render_fits(model, (args.size, args.size), views=args.views, network_size=model.input_size)
    result = recipes.dream(
        model, goal, size=args.size, steps=args.steps, views=args.views, param=args.param,
        optimizer=args.optimizer, lr=args.lr, seed=args.seed, device=device, progress=not args.no_progress,
    )
    for path in result.save(out):
        print(path)
    return 0
