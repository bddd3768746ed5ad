"""`featviz story MODEL --layer L --unit N --images DIR --out DIR`: a unit's conditional-probability plot and its
top dataset examples, cropped around the spot where it fires most."""
from __future__ import annotations

import argparse
import json
import math

import torch

from featviz.cli.common import add_model_arguments, add_pass_arguments, check_minimums, pass_cache
from featviz.cli.label import check_images, load_model_from
from featviz.concepts.conditional import LABEL_SOURCES, conditional_probability
from featviz.concepts.vocabulary import read_concepts
from featviz.errors import FeatvizError
from featviz.objectives.dictionary import load_dictionary

#: Bytes an example crop needs per pixel while it is resized and encoded (PIL's 4-byte pixels, twice).
CROP_BYTES_PER_PIXEL = 8
from featviz.hooks.memory import available_bytes, check_memory
from featviz.io import atomic_path, check_writable_dir, replacing_files, write_text


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `featviz story` and its options on ``subparsers``, the `featviz` parser's subcommands."""
    parser = subparsers.add_parser(
        "story",
        help="a unit's story in numbers: share of each class per activation bucket, and its top examples",
        description="Writes OUT/story.svg, OUT/story.png, OUT/story.json and OUT/examples/NN.png (the top images, "
        "cropped around where the unit fires most). Labels come from the images' subfolders (folders), the "
        "model's own prediction (predicted) or the closest concept by its text tower (concepts).",
    )
    add_model_arguments(parser)
    units = parser.add_mutually_exclusive_group(required=True)
    units.add_argument("--layer", help="the unit's layer (see `featviz layers MODEL`)")
    units.add_argument("--dictionary", metavar="DICT.pt",
                       help="a dictionary (from `featviz dictionary`): --unit is then one of its features")
    parser.add_argument("--unit", type=int, required=True, help="the unit (channel) number, or the feature number")
    parser.add_argument("--images", required=True, help="a folder of images (one subfolder per class for "
                        "--labels folders), or 'shipped'")
    parser.add_argument("--out", required=True, help="the folder to write into")
    parser.add_argument("--labels", choices=LABEL_SOURCES, default="folders",
                        help="where each image's class comes from (default folders)")
    parser.add_argument("--concepts", default=None, metavar="FILE",
                        help="concepts for --labels concepts, one a line (default: featviz's common nouns)")
    parser.add_argument("--bucket-width", type=float, default=1.0,
                        help="bucket width in standard deviations (default 1)")
    parser.add_argument("--per-bucket", type=int, default=50, help="images drawn per bucket (default 50)")
    parser.add_argument("--shown", type=int, default=8, help="classes with their own colour (default 8)")
    parser.add_argument("--reduce", choices=("mean", "max"), default="mean",
                        help="the unit's value on an image: mean or max over positions (default mean)")
    parser.add_argument("--examples", type=int, default=9, help="top examples written (default 9)")
    parser.add_argument("--crop-size", type=int, default=128, help="size of the example crops in pixels (default 128)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws per bucket (default 0)")
    add_pass_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """With ``args``, the parsed command line: check the options, compute the story and write the chart, its numbers
    and the example crops."""
    check_minimums(
        args, unit=0, per_bucket=1, shown=1, examples=1, crop_size=8, seed=0, batch_size=1, bucket_width=0,
        above=["bucket_width"],
    )
    if args.concepts is not None and args.labels != "concepts":
        raise FeatvizError("--concepts is only used with --labels concepts")
    concepts = read_concepts(args.concepts) if args.concepts is not None else None
    check_images(args.images)
    out = check_writable_dir(args.out)
    if out.exists() and not out.is_dir():
        raise FeatvizError(f"--out '{out}' is a file; give a folder to write the story into")
    cpu = torch.device("cpu")
    fits = math.isqrt((available_bytes(cpu) or 0) // CROP_BYTES_PER_PIXEL)
    check_memory(args.crop_size**2 * CROP_BYTES_PER_PIXEL, device=cpu,
                 what=f"an example crop of {args.crop_size}x{args.crop_size} pixels",
                 advice=f"use --crop-size {fits} or less")
    dictionary = load_dictionary(args.dictionary) if args.dictionary is not None else None  # before the model loads
    story = conditional_probability(
        load_model_from(args), args.layer if dictionary is None else dictionary, args.unit, args.images, labels=args.labels, buckets=args.bucket_width,
        per_bucket=args.per_bucket, reduce=args.reduce, shown=args.shown, concepts=concepts,
        examples=args.examples, seed=args.seed, batch_size=args.batch_size,
        cache_dir=pass_cache(args),
        progress=not args.no_progress,
    )
    with replacing_files(out) as stage:  # a rerun replaces the story whole (examples/ too) or leaves it as it was
        written = [story.save(stage / "story.svg"), story.save(stage / "story.png")]
        for rank, example in enumerate(story.examples):
            path = stage / "examples" / f"{rank:02d}.png"
            with atomic_path(path) as temporary:
                example.crop(args.crop_size).save(temporary, format="PNG")
            written.append(path)
        written.append(write_text(stage / "story.json", json.dumps(story.to_dict(), indent=1) + "\n"))
    written = [out / path.relative_to(stage) for path in written]
    top = [
        f"{name} {shares[-1]:.0%}" for name, shares in zip(story.classes, zip(*story.shares)) if shares[-1] > 0
    ]
    bucket = f"{story.edges[-2]:g} to {story.edges[-1]:g} std"
    what = f"{args.layer} unit" if dictionary is None else f"{dictionary.name} feature"
    print(f"{what} {args.unit}: top bucket ({bucket}): " + ", ".join(top))
    for path in written:
        print(path)
    return 0
