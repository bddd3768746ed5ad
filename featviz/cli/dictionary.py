"""`featviz dictionary MODEL --layer L --images DIR --concepts N --out dict.pt`: learn a layer's dictionary features."""
from __future__ import annotations

import argparse
from pathlib import Path

from featviz.cli.common import add_model_arguments, add_pass_arguments, check_minimums, check_render_fits, pass_cache
from featviz.cli.label import check_images, load_model_from
from featviz.concepts.dictionary import METHODS, learn_dictionary
from featviz.errors import FeatvizError
from featviz.io import check_writable_dir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `featviz dictionary` and its options on ``subparsers``, the `featviz` parser's subcommands."""
    parser = subparsers.add_parser(
        "dictionary",
        help="learn a dictionary of a layer's features (sparse autoencoder or NMF) for render, gallery and label",
        description="Collect the layer's activation vector at every position (every patch token on a ViT) of every "
        "image, and train a sparse autoencoder from the `overcomplete` package (pip install 'featviz[dictionary]') "
        "on them. Prints and stores R^2, mean L0, the dead fraction and stability against a second seed. A killed "
        "run started again resumes from its checkpoint. Under `torchrun --nproc-per-node N --no-python featviz "
        "dictionary ...` the images are shared among N processes. Render a feature with `featviz render MODEL "
        "dict.pt:17`.",
    )
    add_model_arguments(parser)
    parser.add_argument("--layer", required=True, help="the layer to decompose (see `featviz layers MODEL`)")
    parser.add_argument("--images", required=True, help="a folder of images (thousands are best), or 'shipped'")
    parser.add_argument("--concepts", type=int, required=True, help="the number of features to learn")
    parser.add_argument("--method", choices=METHODS, default="topk", help="how (default topk)")
    parser.add_argument("--out", required=True, metavar="DICT.pt", help="the dictionary file to write")
    parser.add_argument("--top-k", type=int, default=None,
                        help="features kept per position (topk) or per vector on average (batchtopk); default N/16")
    parser.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    parser.add_argument("--train-batch", type=int, default=1024, help="activation vectors per step (default 1024)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's learning rate (default 1e-3)")
    parser.add_argument("--sparsity", type=float, default=3e-3, help="L1 weight of jumprelu and relu (default 3e-3)")
    parser.add_argument("--positions", type=int, default=None,
                        help="random positions kept per image (default: every position)")
    parser.add_argument("--size", type=int, default=None, help="image side in pixels (default: the model's)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0); stability is measured against seed+1")
    parser.add_argument("--no-stability", action="store_true", help="skip the second training that measures stability")
    add_pass_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """With ``args``, the parsed command line: check the options, learn, print the metrics and the path written."""
    check_minimums(
        args, concepts=1, steps=1, train_batch=2, top_k=1, positions=1, size=8, seed=0, batch_size=1, learning_rate=0,
        sparsity=0, above=["learning_rate"],
    )
    out = Path(args.out)
    if out.is_dir():
        raise FeatvizError(f"--out '{out}' is a folder; give a file name such as '{out / 'dict.pt'}'")
    if out.suffix != ".pt":
        raise FeatvizError(f"--out '{out}' must end in .pt (so that `featviz render MODEL {out.stem}.pt:0` finds it)")
    check_writable_dir(out.parent)
    check_images(args.images)
    model = load_model_from(args)
    if args.size is not None:  # the pass reads the images at --size: a forward and backward pass must fit
        check_render_fits(model, (args.size, args.size), views=1, parameterized=False)
    dictionary = learn_dictionary(
        model, args.layer, args.images.strip(), args.concepts, args.method, out=out,
        top_k=args.top_k, steps=args.steps, batch_size=args.train_batch, learning_rate=args.learning_rate,
        sparsity=args.sparsity, seed=args.seed, stability_seed=None if args.no_stability else args.seed + 1,
        size=args.size, positions=args.positions, image_batch=args.batch_size, cache_dir=pass_cache(args),
        progress=not args.no_progress,
    )
    if dictionary is None or not out.exists():
        return 0  # another rank of a torchrun
    metrics = dictionary.metrics
    shown = [f"R^2 {metrics['r2']:.3f}", f"mean L0 {metrics['l0']:.2f}", f"dead {100 * metrics['dead']:.1f}%"]
    if "stability" in metrics:
        shown.append(f"stability {metrics['stability']:.3f} (Hungarian-matched cosine to seed {args.seed + 1})")
    print(f"{dictionary.concepts} features of {dictionary.layer} ({args.method}): {', '.join(shown)}")
    print(out)
    return 0
