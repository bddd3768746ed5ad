"""`featviz label MODEL --layer L --images DIR`: label every unit of a layer with a concept (CLIP-Dissect)."""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
from pathlib import Path

from featviz.cli.common import add_model_arguments, add_pass_arguments, check_minimums, pass_cache
from featviz.concepts.dissect import INCLUSION, PRIOR_WEIGHT, TEMPERATURE, TOP_K, format_labels, label_units
from featviz.concepts.vocabulary import read_concepts
from featviz.device import resolve_device
from featviz.errors import FeatvizError
from featviz.objectives.dictionary import load_dictionary
from featviz.io import check_writable_dir, write_text
from featviz.models import Model, load_model

OUT_FORMATS = (".csv", ".json")


def check_images(images: str) -> None:
    """Fail fast, before a model loads, when --images names no folder or file (``shipped`` is always fine).

    Example:
        >>> check_images("shipped")
        >>> check_images("no/such/folder")
        Traceback (most recent call last):
        featviz.errors.FeatvizError: --images 'no/such/folder' does not exist; pass a folder of images or 'shipped'
    """
    if images.strip() == "shipped":
        return
    path = Path(images).expanduser()
    if not path.exists():
        raise FeatvizError(f"--images '{images}' does not exist; pass a folder of images or 'shipped'")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `featviz label` and its options on ``subparsers``, the `featviz` parser's subcommands."""
    parser = subparsers.add_parser(
        "label",
        help="label every unit of a layer with the concept that best matches its activations (CLIP-Dissect)",
        description="Needs a model with a text tower (a CLIP model, or a classifier with class names and "
        "featviz[text]). Scores are CLIP-Dissect's soft-WPMI with its published defaults. Under "
        "`torchrun --nproc-per-node N --no-python featviz label ...` the images are shared among N processes.",
    )
    add_model_arguments(parser)
    units = parser.add_mutually_exclusive_group(required=True)
    units.add_argument("--layer", help="the layer whose units are labelled (see `featviz layers MODEL`)")
    units.add_argument("--dictionary", metavar="DICT.pt",
                       help="label the features of this dictionary (from `featviz dictionary`) instead of a layer's "
                       "units")
    parser.add_argument("--images", required=True, help="a folder of images (thousands are best), or 'shipped'")
    parser.add_argument("--concepts", default=None, metavar="FILE",
                        help="a text file with one concept a line (default: featviz's ~3,500 common nouns)")
    parser.add_argument("--top-k", type=int, default=TOP_K, help=f"top images per unit (default {TOP_K})")
    parser.add_argument("--temperature", type=float, default=TEMPERATURE,
                        help=f"softmax temperature over concepts (default {TEMPERATURE:g}, the paper's a = 10)")
    parser.add_argument("--prior-weight", type=float, default=PRIOR_WEIGHT,
                        help=f"lambda, weight of the concept's prior over the layer (default {PRIOR_WEIGHT:g})")
    parser.add_argument("--inclusion", type=float, nargs=2, default=list(INCLUSION), metavar=("FIRST", "LAST"),
                        help="probability that the best and the k-th top image hold the concept (default 0.998 0.97)")
    parser.add_argument("--pool", choices=("mean", "max"), default="mean",
                        help="a unit's value on an image: mean or max over positions (default mean)")
    parser.add_argument("--runners-up", type=int, default=3, help="next best concepts listed per unit (default 3)")
    parser.add_argument("--out", default=None, metavar="FILE", help="also write the labels to FILE (.csv or .json)")
    add_pass_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """With ``args``, the parsed command line: check the options (concept file and images before the model loads),
    label, print and write the labels."""
    check_minimums(args, top_k=1, runners_up=0, batch_size=1, temperature=0, prior_weight=0, above=["temperature"])
    first, last = args.inclusion
    if not (math.isfinite(first) and math.isfinite(last) and 0 < last <= first <= 1):
        raise FeatvizError(
            f"--inclusion FIRST LAST must satisfy 0 < LAST <= FIRST <= 1, like 0.998 0.97; got {first:g} {last:g}"
        )
    out = Path(args.out) if args.out else None
    if out is not None:
        if out.suffix.lower() not in OUT_FORMATS:
            raise FeatvizError(f"--out '{out}' must end in .csv or .json")
        check_writable_dir(out.parent)
    concepts = read_concepts(args.concepts) if args.concepts is not None else None
    check_images(args.images)
    dictionary = load_dictionary(args.dictionary) if args.dictionary is not None else None  # before the model loads
    cache = pass_cache(args)
    model = load_model_from(args)
    layer = args.layer if dictionary is None else dictionary
    labels = label_units(
        model, layer, args.images, concepts,
        top_k=args.top_k, temperature=args.temperature, prior_weight=args.prior_weight,
        inclusion=tuple(args.inclusion), runners_up=args.runners_up, pool=args.pool, batch_size=args.batch_size,
        cache_dir=cache, progress=not args.no_progress,
    )
    if int(os.environ.get("RANK", "0") or 0) != 0:
        return 0
    print(format_labels(labels))
    if out is not None:
        if out.suffix.lower() == ".json":
            records = [
                {"unit": item.unit, "concept": item.concept, "score": item.score,
                 "runners_up": [[concept, score] for concept, score in item.runners_up]}
                for item in labels
            ]
            named = {"layer": args.layer} if args.dictionary is None else {"dictionary": args.dictionary,
                                                                            "layer": layer.layer}
            write_text(out, json.dumps({"model": args.model, **named, "labels": records}, indent=1) + "\n")
        else:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(["unit", "concept", "score", "runners_up"])
            for item in labels:
                others = "; ".join(f"{concept} {score:.6g}" for concept, score in item.runners_up)
                writer.writerow([item.unit, csv_text(item.concept), f"{item.score:.6g}", csv_text(others)])
            write_text(out, buffer.getvalue())
        print(out)
    return 0


def csv_text(text: str) -> str:
    """``text`` safe in a spreadsheet cell: a leading ``=``, ``+``, ``-``, ``@``, tab or carriage return, which a
    spreadsheet would run as a formula, is escaped with a leading apostrophe (OWASP's advice for CSV injection).

    Example:
        >>> print(csv_text('=HYPERLINK("http://x")'), csv_text("tabby cat"))
        '=HYPERLINK("http://x") tabby cat
    """
    return "'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text


def load_model_from(args: argparse.Namespace) -> Model:
    """The model that ``args``, the parsed command line, names: MODEL with --weights on --device (``cuda`` means
    cuda:LOCAL_RANK under torchrun).

    Example:
        >>> load_model_from(argparse.Namespace(model="efficientnet_lite0", weights=None, device="cpu")).name
        'efficientnet_lite0'
    """
    return load_model(args.model, weights=args.weights, device=resolve_device(args.device, per_process=True))
