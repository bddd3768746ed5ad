"""Arguments shared by the subcommands: MODEL, --weights and --device (parsed with `featviz.device.resolve_device`),
the rendering options, and the options of a pass over a folder of images."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from featviz.device import resolve_device
from featviz.errors import FeatvizError
from featviz.io import cache_folder
from featviz.models import list_models
from featviz.models.registry import sources_syntax

__all__ = [
    "add_model_arguments", "add_pass_arguments", "add_render_arguments", "check_minimums", "pass_cache", "resolve_device",
]


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the MODEL positional plus --weights and --device to ``parser``; MODEL's help lists every model source.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_model_arguments(parser)
        >>> parser.parse_args(["timm:resnet18", "--weights", "random"]).device
        'cpu'
    """
    parser.add_argument(
        "model", help=f"a registered name ({', '.join(list_models()[:1])}, ...: see `featviz models`), {sources_syntax()}"
    )
    parser.add_argument(
        "--weights", default=None,
        help="local checkpoint PATH, or 'random' for random init (default: the model's pretrained weights)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps (default: cpu)")


def add_render_arguments(parser: argparse.ArgumentParser, *, out: str, steps: int = 512, size: int | None = None) -> None:
    """Add the options every rendering command shares: --out, --steps, --size, --seed and --no-progress
    (``add_model_arguments`` adds --device); check them with ``check_minimums(args, steps=1, size=8, seed=0)``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_render_arguments(parser, out="atlas", steps=256)
        >>> parser.parse_args([]).steps
        256
    """
    parser.add_argument("--out", default=out, help=f"where to write the result (default {out})")
    parser.add_argument("--steps", type=int, default=steps, help=f"optimization steps (default {steps})")
    size_default = f"{size} pixels" if size is not None else "the model's input size"
    parser.add_argument("--size", type=int, default=size, help=f"image size in pixels (default: {size_default})")
    parser.add_argument("--seed", type=int, default=0, help="seed; image i uses seed + i (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_pass_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options every command that reads a folder of images through the model shares: --cache, --no-cache,
    --batch-size and --no-progress; ``pass_cache(args)`` reads the first two.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_pass_arguments(parser)
        >>> parser.parse_args(["--no-cache"]).batch_size
        32
    """
    parser.add_argument("--cache", default=None, metavar="DIR",
                        help="where the pass over the images is cached (default $FEATVIZ_CACHE/activations)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the pass cache")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def pass_cache(args: argparse.Namespace) -> Path | None:
    """The folder where the pass over the images is cached, from ``args`` parsed with `add_pass_arguments`: None
    with --no-cache, --cache DIR when given, else ``$FEATVIZ_CACHE/activations``.

    Example:
        >>> pass_cache(argparse.Namespace(cache="passes", no_cache=False))
        PosixPath('passes')
    """
    if args.no_cache:
        return None
    return Path(args.cache) if args.cache else cache_folder("activations")


def check_minimums(args: argparse.Namespace, **minimums: Any) -> None:
    """Raise FeatvizError for the first option of ``args`` below its minimum in ``minimums`` (option name ->
    minimum); options left unset (None) are skipped.

    Sizes (options whose name ends in ``size``) are counted in pixels in the message.

    Example:
        >>> check_minimums(argparse.Namespace(steps=0, size=None), steps=1, size=8)
        Traceback (most recent call last):
        featviz.errors.FeatvizError: --steps must be at least 1, got 0
    """
    for name, minimum in minimums.items():
        value = getattr(args, name)
        if value is not None and not value >= minimum:
            unit = " pixels" if name.endswith("size") else ""
            raise FeatvizError(f"--{name.replace('_', '-')} must be at least {minimum:g}{unit}, got {value:g}")
