"""`featviz neurons MODEL --layer L PROMPT`: rank a layer's units by their weight along a prompt's text direction."""
from __future__ import annotations

import argparse
from pathlib import Path

from featviz import objectives
from featviz.cli.common import add_model_arguments, check_minimums, check_render_fits
from featviz.device import resolve_device
from featviz.errors import FeatvizError
from featviz.io import check_writable_dir
from featviz.models import load_model
from featviz.objectives.language import parse_text
from featviz.renderer import render
from featviz.text import format_neurons, rank_neurons
from featviz.objectives.language import prompt_report


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `featviz neurons` and its options on ``subparsers``, the `featviz` parser's subcommands."""
    parser = subparsers.add_parser(
        "neurons",
        help="rank a layer's units by a prompt (zero-shot neuron search; CLIP, or a classifier's text tower)",
        description="PROMPT: a sentence, or several weighted as in text objectives: 'a dog|a cat:-0.5'. Prints the "
        "top units with their score and, for models with class names, the classes each unit drives most.",
    )
    add_model_arguments(parser)
    parser.add_argument("prompt", metavar="PROMPT")
    parser.add_argument("--layer", required=True, help="the layer whose units are ranked (see `featviz layers MODEL`)")
    parser.add_argument("--top", type=int, default=10, help="how many units to list (default 10)")
    parser.add_argument("--render", default=None, metavar="PNG", help="also render the top units into one grid PNG")
    parser.add_argument("--steps", type=int, default=256, help="steps of the renders with --render (default 256)")
    parser.add_argument("--size", type=int, default=None, help="image size of the renders (default: the model's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the renders (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """With ``args``, the parsed command line: check the options, rank the units, print the table and, with
    --render, write the grid."""
    check_minimums(args, top=1, steps=1, seed=0, size=8)
    out = Path(args.render) if args.render else None
    if out is not None:
        if out.suffix.lower() != ".png":
            raise FeatvizError(f"--render '{out}' must be a file name ending in .png")
        check_writable_dir(out.parent)
    prompts = parse_text(args.prompt).prompts
    model = load_model(args.model, weights=args.weights, device=resolve_device(args.device))
    if out is not None:
        check_render_fits(model, (args.size, args.size) if args.size is not None else model.input_size, images=args.top)
    for line in prompt_report(model, parse_text(args.prompt)):  # what the prompt became on a classifier
        print(line)
    found = rank_neurons(model, args.layer, prompts, top=args.top)
    print(format_neurons(found))
    if out is not None:
        goals = [objectives.channel(args.layer, item.unit) for item in found]
        result = render(model, goals, steps=args.steps, size=args.size, seed=args.seed, progress=not args.no_progress)
        for path in result.save(out):
            print(path)
    return 0
