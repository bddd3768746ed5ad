"""`featviz story MODEL --layer L --unit N --images DIR --out DIR`: a unit's conditional-probability plot and its
top dataset examples, cropped around the spot where it fires most."""
from __future__ import annotations

import argparse
import json

from featviz.cli.common import add_model_arguments, add_pass_arguments, check_minimums, pass_cache
from featviz.cli.label import check_images, load_model_from
from featviz.concepts.conditional import LABEL_SOURCES, conditional_probability
from featviz.concepts.vocabulary import read_concepts
from featviz.errors import FeatvizError
from featviz.io import atomic_path, ensure_writable_dir, write_text


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
    parser.add_argument("--layer", required=True, help="the unit's layer (see `featviz layers MODEL`)")
    parser.add_argument("--unit", type=int, required=True, help="the unit (channel) number")
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
    check_minimums(args, unit=0, per_bucket=1, shown=1, examples=1, crop_size=8, seed=0, batch_size=1)
    if not args.bucket_width > 0:
        raise FeatvizError(f"--bucket-width must be > 0 (in standard deviations), got {args.bucket_width:g}")
    if args.concepts is not None and args.labels != "concepts":
        raise FeatvizError("--concepts is only used with --labels concepts")
    concepts = read_concepts(args.concepts) if args.concepts is not None else None
    check_images(args.images)
    out = ensure_writable_dir(args.out)
    story = conditional_probability(
        load_model_from(args), args.layer, args.unit, args.images, labels=args.labels, buckets=args.bucket_width,
        per_bucket=args.per_bucket, reduce=args.reduce, shown=args.shown, concepts=concepts,
        examples=args.examples, seed=args.seed, batch_size=args.batch_size,
        cache_dir=pass_cache(args),
        progress=not args.no_progress,
    )
    written = [story.save(out / "story.svg"), story.save(out / "story.png")]
    for rank, example in enumerate(story.examples):
        path = out / "examples" / f"{rank:02d}.png"
        with atomic_path(path) as temporary:
            example.crop(args.crop_size).save(temporary, format="PNG")
        written.append(path)
    written.append(write_text(out / "story.json", json.dumps(story.to_dict(), indent=1) + "\n"))
    top = [
        f"{name} {shares[-1]:.0%}" for name, shares in zip(story.classes, zip(*story.shares)) if shares[-1] > 0
    ]
    bucket = f"{story.edges[-2]:g} to {story.edges[-1]:g} std"
    print(f"{args.layer} unit {args.unit}: top bucket ({bucket}): " + ", ".join(top))
    for path in written:
        print(path)
    return 0
