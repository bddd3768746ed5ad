"""`featviz score IMAGE MODEL OBJECTIVE`: quality figures for rendered images (see docs/metrics.md)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from featviz import transforms
from featviz.cli.common import add_model_arguments, check_minimums
from featviz.device import resolve_device
from featviz.errors import FeatvizError
from featviz.metrics import format_score, score
from featviz.models import load_model

#: The most held-out transforms `featviz score` takes: 128 times the default, a few minutes per image on a CPU.
MAX_SAMPLES = 4096


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `featviz score` and its options on ``subparsers``, the `featviz` parser's subcommands."""
    parser = subparsers.add_parser(
        "score",
        help="quality figures for rendered images: activation vs natural photos, robustness, spectrum, diversity, transfer",
        description="IMAGE: a PNG, a folder of images, or a quoted glob such as 'renders/*.png' (images of one size). "
        "OBJECTIVE: what the images were rendered for (LAYER:CHANNEL, class:LABEL, ...; a range gives one per "
        "image), or '-' to read each PNG's own objective, stored by `featviz render`. See docs/metrics.md.",
    )
    parser.add_argument("image", metavar="IMAGE", help="a PNG, a folder of images, or a quoted glob ('renders/*.png')")
    add_model_arguments(parser)
    parser.add_argument("objective", metavar="OBJECTIVE", help="the images' objective, or '-' to read it from the PNGs")
    # Catches a shell-expanded glob (renders/*.png unquoted) so that it gets a clear message.
    parser.add_argument("surplus", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--natural", default=None, metavar="DIR", help="folder of natural photos to compare with (default: the shipped photos)")
    parser.add_argument("--judges", default=None, metavar="M1,M2", help="models that judge class visualizations, e.g. efficientnet_lite1,efficientnet_lite2")
    parser.add_argument("--samples", type=int, default=32, help="held-out random transforms per image (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out transforms (default 0)")
    parser.add_argument("--transforms", default="standard", choices=transforms.PRESETS, help="held-out transform preset (default standard)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """With ``args``, the parsed command line: check the options, score the images and print the table (or JSON)."""
    if args.surplus:
        raise FeatvizError(
            f"featviz score takes one IMAGE, then MODEL and OBJECTIVE, but got {3 + len(args.surplus)} arguments; "
            "for several images give a folder or a quoted pattern such as 'renders/*.png'"
        )
    if args.samples > MAX_SAMPLES:
        raise FeatvizError(
            f"--samples must be at most {MAX_SAMPLES} (each is a forward pass per image), got {args.samples}"
        )
    check_minimums(args, seed=0, samples=1)
    if args.natural is not None and not Path(args.natural).is_dir():
        what = "is not a folder" if Path(args.natural).exists() else "does not exist"
        raise FeatvizError(f"--natural '{args.natural}' {what}; give a folder of natural photos")
    judges = [name.strip() for name in (args.judges or "").split(",") if name.strip()]
    if args.judges is not None and not judges:
        raise FeatvizError("--judges is empty; give model names separated by commas, e.g. efficientnet_lite1,efficientnet_lite2")
    device = resolve_device(args.device)
    model = load_model(args.model, weights=args.weights, device=device)
    judge_models = [load_model(name, device=device) for name in judges]
    result = score(
        args.image, model, args.objective, natural=args.natural, judges=judge_models or None,
        samples=args.samples, seed=args.seed, transforms=args.transforms,
    )
    print(json.dumps(result, indent=2) if args.json else format_score(result))
    return 0
