"""`featviz probe MODEL --layers L1,L2 --positive DIR --negative DIR --out PROBE.pt`: fit a facet probe."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from featviz.cli.common import add_model_arguments, check_minimums, check_render_fits
from featviz.concepts.probe import check_image_count, load_probe, train_probe
from featviz.dataset.folder import ImageFolder
from featviz.device import resolve_device
from featviz.errors import FeatvizError
from featviz.io import check_writable_dir
from featviz.models import load_model
from featviz.objectives import facet


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `featviz probe` and its options on ``subparsers``, the `featviz` parser's subcommands."""
    parser = subparsers.add_parser(
        "probe",
        help="fit a linear probe telling a folder of facet images from others (for `featviz render --facet`)",
        description="Fit one logistic regression per layer on the layers' activations averaged over positions, "
        "telling the --positive images (the facet: faces, text, textures...) from the --negative ones, with the two "
        "folders weighted equally and part of each held out to measure accuracy. Pick layers before the ones you "
        "will render (see `featviz layers MODEL`).",
    )
    add_model_arguments(parser)
    parser.add_argument("--layers", required=True, help="comma-separated layer names, e.g. blocks.3.2,blocks.4.2")
    parser.add_argument("--positive", required=True, metavar="DIR", help="folder of images showing the facet")
    parser.add_argument("--negative", required=True, metavar="DIR", help="folder of other images")
    parser.add_argument("--out", required=True, metavar="PROBE.pt", help="the probe file to write")
    parser.add_argument("--size", type=int, default=None,
                        help="side in pixels images are read at (default: the model's input size)")
    parser.add_argument("--holdout", type=float, default=0.25,
                        help="fraction of each folder held out to measure accuracy (default 0.25)")
    parser.add_argument("--penalty", type=float, default=1.0,
                        help="L2 penalty on the standardized weights, scikit-learn's 1/C (default 1.0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out draw (default 0)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    parser.add_argument("--name", default=None, help="the probe's name (default: the positive folder's name)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """With ``args``, the parsed command line: check every option, fit the probe, print each layer's held-out
    accuracy and the path written."""
    check_minimums(args, size=8, seed=0, batch_size=1, penalty=0, above=["penalty"])
    if not 0 < args.holdout < 1:
        raise FeatvizError(f"--holdout must be a fraction between 0 and 1 (e.g. 0.25), got {args.holdout:g}")
    layers = [name.strip() for name in args.layers.split(",") if name.strip()]
    if not layers:
        raise FeatvizError("--layers is empty; give comma-separated layer names, e.g. blocks.3.2,blocks.4.2")
    for option, folder in (("--positive", args.positive), ("--negative", args.negative)):
        path = Path(folder)
        if not path.is_dir():
            what = "is not a folder" if path.exists() else "does not exist"
            raise FeatvizError(f"{option} '{folder}' {what}; give a folder of images")
        check_image_count(folder, len(ImageFolder(path, size=8)))  # before the model is loaded
    out = Path(args.out)
    if out.is_dir():
        raise FeatvizError(f"--out '{out}' is a folder; give a file name such as '{out / 'probe.pt'}'")
    check_writable_dir(out.parent)
    model = load_model(args.model, weights=args.weights, device=resolve_device(args.device))
    if args.size is not None:  # the images are read at --size, a batch at a time
        check_render_fits(model, (args.size, args.size), images=args.batch_size, views=1, parameterized=False,
                          count_option="--batch-size")
    probe = train_probe(
        model, layers, args.positive, args.negative, size=args.size, holdout=args.holdout, penalty=args.penalty,
        seed=args.seed, batch_size=args.batch_size, name=args.name, progress=not args.no_progress,
    )
    width = max(len(layer) for layer in (*probe.layers, "all layers"))
    for layer in probe.layers:
        print(f"{layer:<{width}}  held-out accuracy {probe.layer_accuracy[layer]:.3f}")
    counts = probe.counts
    print(
        f"{'all layers':<{width}}  held-out accuracy {probe.accuracy:.3f} (class-balanced; chance 0.5; fitted on "
        f"{counts['positive_fit']} + {counts['negative_fit']} images, tested on "
        f"{counts['positive_test']} + {counts['negative_test']})"
    )
    print(probe.save(out))
    return 0


def parse_strength(text: str) -> tuple[float, float]:
    """``--facet-strength``: ``text`` is ``"S"`` (every image) or ``"LO,HI"`` (spread from the first image to the
    last); returns ``(LO, HI)``, ``(S, S)`` for one number.

    Example:
        >>> parse_strength("0,8")
        (0.0, 8.0)
    """
    parts = [part.strip() for part in str(text).split(",")]
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not all(math.isfinite(value) for value in values):
        raise FeatvizError(f"--facet-strength must be a number or LO,HI (e.g. 5 or 0,8), got '{text}'")
    return (values[0], values[-1])


def facet_goals(goals: list, probe_path: str, strength_text: str, images: int) -> list:
    """``goals`` each steered towards the facet of the probe at ``probe_path`` (`featviz render --facet`), the
    strength ``strength_text`` (``--facet-strength``, read by `parse_strength`) spread over the ``images``
    rendered; the render checks the probe against its model.

    Example:
        >>> facet_goals(objectives.parse("blocks.5.3:17"), "textures.pt", "0,8", images=4)  # doctest: +SKIP
    """
    low, high = parse_strength(strength_text)
    if low != high and images < 2:
        raise FeatvizError(
            f"--facet-strength {low:g},{high:g} spreads strengths over several images, but one image is rendered; "
            "add --batch N, or give one strength"
        )
    probe = load_probe(probe_path)
    return [facet(goal, probe, strength=(low, high), images=images) for goal in goals]
