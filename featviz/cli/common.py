"""Arguments shared by the subcommands: MODEL, --weights and --device (parsed with `featviz.device.resolve_device`),
the rendering options, and the options of a pass over a folder of images."""
from __future__ import annotations

import argparse
import math
import numbers
from pathlib import Path
from typing import Any, Sequence

import torch

from featviz import transforms as transforms_module
from featviz.dataset.photo import photo_size, resized_shape
from featviz.device import resolve_device
from featviz.errors import FeatvizError
from featviz.hooks import survey_model
from featviz.hooks.memory import check_render_memory
from featviz.io import cache_folder, check_writable_dir
from featviz.models import Model, list_models
from featviz.models.registry import sources_syntax
from featviz.renderer.settings import RenderSettings

__all__ = [
    "MAXIMUMS", "MAX_LR", "add_model_arguments", "add_pass_arguments", "add_render_arguments", "check_lr",
    "check_minimums",
    "check_photo_fits", "check_render_fits", "check_sizes_fit", "pass_cache", "resolve_device",
]

#: The largest value `check_minimums` lets an option take, by option name: beyond these a run would take years
#: or a weight would overflow the loss. Every other int option stops at ``INT_LIMIT`` (torch's int32 range).
MAXIMUMS: dict[str, float] = {
    "steps": 1_000_000, "seed": 2**31 - 1, "samples": 1_000_000, "grid": 256, "cossim_pow": 64.0, "balance": 1e6,
    "alignment": 1e6, "diversity_weight": 1e6, "style_weight": 1e6, "content_weight": 1e6, "facet_strength": 1e6,
    "temperature": 1e6, "prior_weight": 1e6, "penalty": 1e6, "bucket_width": 100.0, "learning_rate": 100.0,
    "sparsity": 1e6,
}
INT_LIMIT = 2**31 - 1
#: Options counted in pixels in `check_minimums`' messages.
_NOT_PIXELS = ("batch_size",)


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


def render_settings(args: argparse.Namespace, **changes: Any) -> RenderSettings:
    """The `RenderSettings` of a command's parsed options: --steps, --size, --seed, --param, --transforms,
    --optimizer, --lr, --precision, --device and --no-progress, each where the command has it (the others keep
    RenderSettings' defaults); ``changes`` set fields directly (e.g. an already resolved ``device``).

    Example:
        >>> render_settings(argparse.Namespace(steps=64, size=None, seed=2, no_progress=True))
        RenderSettings(steps=64, size=None, seed=2, param=None, transforms=None, optimizer='adam', lr=None, precision='fp32', device=None, progress=False)
    """
    given = {
        name: getattr(args, name)
        for name in ("steps", "size", "seed", "param", "transforms", "optimizer", "lr", "precision", "device")
        if getattr(args, name, None) is not None
    }
    if hasattr(args, "no_progress"):
        given["progress"] = not args.no_progress
    return RenderSettings(**{**given, **changes})


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
    return check_writable_dir(args.cache, option="--cache") if args.cache else cache_folder("activations")


def check_minimums(args: argparse.Namespace, *, above: Sequence[str] = (), **minimums: Any) -> None:
    """Raise FeatvizError for the first option of ``args`` below its minimum in ``minimums`` (option name ->
    minimum; for the names in ``above``, at or below it), above its maximum (`MAXIMUMS`; any other int option
    stops at ``INT_LIMIT``), or not finite; options left unset (None) are skipped.

    Sizes (options whose name ends in ``size``, but for ``--batch-size``) are counted in pixels in the message.

    Example:
        >>> check_minimums(argparse.Namespace(steps=0, size=None), steps=1, size=8)
        Traceback (most recent call last):
        featviz.errors.FeatvizError: --steps must be at least 1, got 0
        >>> check_minimums(argparse.Namespace(balance=1e308), balance=0)
        Traceback (most recent call last):
        featviz.errors.FeatvizError: --balance must be at most 1e+06, got 1e+308
    """
    for name, minimum in minimums.items():
        value = getattr(args, name)
        if value is None:
            continue
        option = f"--{name.replace('_', '-')}"
        unit = " pixels" if name.endswith("size") and name not in _NOT_PIXELS else ""
        if isinstance(value, float) and not math.isfinite(value):
            raise FeatvizError(f"{option} must be a finite number, got {value}")
        got = value if isinstance(value, numbers.Integral) else f"{value:g}"
        if name in above and not value > minimum:
            raise FeatvizError(f"{option} must be above {minimum:g}{unit}, got {got}")
        if not value >= minimum:
            raise FeatvizError(f"{option} must be at least {minimum:g}{unit}, got {got}")
        maximum = MAXIMUMS.get(name, INT_LIMIT if isinstance(value, numbers.Integral) else math.inf)
        if not value <= maximum:
            shown = maximum if isinstance(maximum, int) else f"{maximum:g}"
            raise FeatvizError(f"{option} must be at most {shown}{unit}, got {got}")


#: The largest learning rate `check_lr` lets through: every parameterization's image lies in [0, 1], and
#: steps far larger than 1 only overflow the optimizer.
MAX_LR = 100.0


def check_lr(lr: float | None) -> None:
    """Raise FeatvizError unless ``lr`` (--lr) is None or a finite number above 0 and at most `MAX_LR`.

    Example:
        >>> check_lr(1e308)
        Traceback (most recent call last):
        featviz.errors.FeatvizError: --lr must be a finite number above 0 and at most 100 (e.g. 0.05), got 1e+308
    """
    if lr is not None and not (math.isfinite(lr) and 0 < lr <= MAX_LR):
        raise FeatvizError(f"--lr must be a finite number above 0 and at most {MAX_LR:g} (e.g. 0.05), got {lr:g}")


def check_render_fits(
    model: Model, image_size: Sequence[int], *, images: int = 1, views: int | None = None,
    transforms: Any = "standard", parameterized: bool = True, option: str = "--size", count_option: str = "--batch",
    network_size: Sequence[int] | None = None,
) -> None:
    """Raise FeatvizError, before any photo is resized or image allocated, when rendering ``images`` images of
    ``image_size`` ``(height, width)`` with ``transforms`` (or ``views`` views a step) cannot fit in the
    memory of ``model``'s device; the advice names the command's options (``option`` for the size,
    ``count_option`` for the images, ``--views``). ``parameterized`` False checks a forward and backward pass of
    the images alone (a photo, no image parameters). ``network_size`` is the size of the views the network sees
    (default: ``image_size``, or the model's input size when it takes no other).

    Example:
        >>> check_render_fits(model, (99999, 99999), option="--image-size")
        Traceback (most recent call last):
        featviz.errors.FeatvizError: a 99999x99999 render of 1 image needs about ... GiB but ... GiB is free on cpu;
        use --image-size ... or less
    """
    found = survey_model(model)
    size = (int(image_size[0]), int(image_size[1]))
    seen = size if found.takes_other_sizes else tuple(model.input_size)
    if network_size is not None:
        seen = (int(network_size[0]), int(network_size[1]))
    if views is None:
        views = int(getattr(transforms_module.resolve(transforms, output_size=seen), "views", 1))
    check_render_memory(
        found, device=model.device, image_size=size, network_size=seen, images=images, views=views,
        channels=model.channels, network_dtype=model.dtype, parameterized=parameterized, option=option,
        count_option=count_option, views_option="--views",
    )


def check_sizes_fit(
    model: Model, args: argparse.Namespace, *, images: int = 1, count_option: str = "--batch",
    photo: torch.Tensor | None = None,
) -> None:
    """`check_render_fits` for the options of ``args`` that a command has: the photos read at --image-size (a
    forward and backward pass; ``photo``, read at its own size, gives their aspect ratio, else they are square),
    ``images`` renders at --size (default: the model's input size), and the grid cells at --grid-size;
    ``count_option`` names the option that sets ``images`` in the message.

    Example:
        >>> check_sizes_fit(model, argparse.Namespace(image_size=99999, size=None))
        Traceback (most recent call last):
        featviz.errors.FeatvizError: a 99999x99999 render of 1 image needs about ... GiB but ... GiB is free on cpu;
        use --image-size ... or less
    """
    image_size = getattr(args, "image_size", None)
    if photo is not None:
        check_photo_fits(model, photo, image_size, option="--image-size", parameterized=False, views=1)
    elif image_size is not None:
        check_render_fits(model, (image_size, image_size), views=1, parameterized=False, option="--image-size")
    size = getattr(args, "size", None)
    check_render_fits(model, (size, size) if size else model.input_size, images=images, count_option=count_option,
                      transforms=getattr(args, "transforms", "standard"))
    if getattr(args, "grid_size", None) is not None:
        check_render_fits(model, (args.grid_size, args.grid_size), option="--grid-size")


def check_photo_fits(
    model: Model, photo: torch.Tensor, size: int | None, *, option: str = "--size", **options: Any
) -> tuple[int, int]:
    """The ``(height, width)`` a photo recipe resizes ``photo`` (read at its own size) to for ``--size`` ``size``,
    after `check_render_fits` (with ``options``) has checked that a render of that size fits; ``option`` is the
    command's name for that size in the message (``--image-size`` for explain).

    Example:
        >>> check_photo_fits(model, torch.zeros(1, 3, 480, 640), 224)
        (224, 299)
        >>> check_photo_fits(model, torch.zeros(1, 3, 480, 640), 99999)
        Traceback (most recent call last):
        featviz.errors.FeatvizError: a 99999x133332 render of 1 image needs about ... GiB but ... GiB is free on cpu;
        use --size ... or less
    """
    target = resized_shape(tuple(photo.shape[-2:]), photo_size(model, size))
    check_render_fits(model, target, option=option, **options)
    return target
