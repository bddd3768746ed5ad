"""`featviz render MODEL OBJECTIVE [OBJECTIVE ...]`: render objectives into PNG files."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from featviz import objectives, param, transforms
from featviz.cli.common import add_model_arguments, check_lr, check_minimums, check_render_fits, render_settings
from featviz.cli.probe import facet_goals
from featviz.device import resolve_device
from featviz.errors import FeatvizError
from featviz.io import check_writable_dir
from featviz.models import load_model
from featviz.renderer import render
from featviz.objectives.language import prompt_report
from featviz.renderer.settings import OPTIMIZERS, PRECISIONS



def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `featviz render` and its options on ``subparsers``, the `featviz` parser's subcommands."""
    parser = subparsers.add_parser(
        "render",
        help="render objectives into PNG files",
        description="OBJECTIVE: LAYER:CHANNEL, LAYER:CHANNEL@X,Y, LAYER:A-B (several channels), LAYER (deepdream), "
        "class:LABEL; a leading '-' negates. See `featviz layers MODEL` for layer names.",
    )
    add_model_arguments(parser)
    parser.add_argument("objectives", nargs="+", metavar="OBJECTIVE")
    parser.add_argument("--steps", type=int, default=512, help="optimization steps (default 512)")
    parser.add_argument("--size", type=int, default=None, help="image size in pixels (default: the model's input size)")
    parser.add_argument("--seed", type=int, default=0, help="seed; image i uses seed + i (default 0)")
    parser.add_argument("--param", default="fft", choices=param.registered_kinds(), help="image parameterization (default fft)")
    parser.add_argument("--transforms", default="standard", choices=transforms.PRESETS, help="augmentations (default standard)")
    parser.add_argument("--optimizer", default="adam", choices=OPTIMIZERS, help="adam (default) or clampsgd")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the parameterization's)")
    parser.add_argument("--batch", type=int, default=None,
                        help="images of a single objective, seeds SEED, SEED+1, ... (default 1)")
    parser.add_argument("--facet", default=None, metavar="PROBE.pt",
                        help="steer each objective towards the facet of a probe made by `featviz probe` (faceted feature "
                        "visualization; the probe's layers must come before the objectives')")
    parser.add_argument("--facet-strength", default="20", metavar="LO,HI",
                        help="facet strength: one number, or LO,HI spread from the first image to the last (default 20)")
    parser.add_argument("--precision", default="fp32", choices=tuple(PRECISIONS), help="network precision: fp32 (default), bf16 or fp16 autocast")
    parser.add_argument("--out", default="featviz.png", help="a .png (one image, or a grid of several) or a folder (default featviz.png)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--importance", action="store_true",
                        help="also write OUT-importance.png: the render as RGBA whose alpha is MACO's importance map "
                        "(the objective's accumulated absolute gradient on each pixel)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """With ``args``, the parsed command line: check every option, render the objectives and print the paths written."""
    check_minimums(args, steps=1, seed=0, size=8, batch=1)
    check_lr(args.lr)
    goals = [goal for text in args.objectives for goal in objectives.parse(text)]
    if args.facet is not None:  # the probe is checked against the model when the render binds the objectives
        goals = facet_goals(goals, args.facet, args.facet_strength, images=args.batch or len(goals))
    out = Path(args.out)
    if out.suffix.lower() == ".png" and out.is_dir():
        raise FeatvizError(f"--out '{out}' is a folder; give a file name ending in .png or a folder without .png")
    check_writable_dir(out.parent if out.suffix.lower() == ".png" else out)
    device = resolve_device(args.device)
    if args.precision == "fp16" and device.type != "cuda":
        raise FeatvizError("--precision fp16 needs a CUDA device; on the CPU use --precision bf16 or fp32")
    model = load_model(args.model, weights=args.weights, device=device)
    size = (args.size, args.size) if args.size is not None else model.input_size
    check_render_fits(model, size, images=len(goals) if len(goals) > 1 else args.batch or 1, transforms=args.transforms)
    for line in prompt_report(model, goals):  # what each text prompt became on a classifier, once per prompt
        print(line, file=sys.stderr)
    settings = render_settings(args, device=device)
    result = render(
        model, goals, **settings.render_options(), batch=args.batch, autocast=settings.autocast,
        importance=args.importance,
    )
    for path in result.save(out, importance=args.importance):
        print(path)
    return 0
