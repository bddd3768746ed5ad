"""`score`: every metric for a set of rendered images in one dictionary, and `format_score` to print it."""
from __future__ import annotations

import math
import os
from typing import Sequence

import torch

from featviz.errors import FeatvizError
from featviz.hooks import RESERVED
from featviz.metrics.activation import ObjectiveLike, TransformsLike, activation_reached, parse_objectives
from featviz.metrics.diversity import batch_diversity
from featviz.metrics.images import ImageSource, as_images, load_images
from featviz.metrics.power_spectrum import spectrum
from featviz.metrics.transfer import transferability
from featviz.models import Model, load_model
from featviz.objectives.units import ClassLogit

#: ``objective`` value meaning "read each PNG's own objective from its featviz:objective text chunk".
FROM_FILES = "-"


def _objectives_from_files(paths: Sequence[os.PathLike], stored: Sequence[str | None]) -> list[str]:
    texts = []
    for path, text in zip(paths, stored):
        if not text:
            raise FeatvizError(
                f"'{path}' carries no featviz:objective text chunk (only single images written by `featviz render` "
                "do); give the OBJECTIVE instead of '-'"
            )
        try:
            parse_objectives(text)
        except FeatvizError:
            raise FeatvizError(
                f"'{path}' was rendered for '{text}', which is not objective shorthand; give the OBJECTIVE instead of '-'"
            ) from None
        texts.append(text)
    return texts


def _class_labels(objective: ObjectiveLike | Sequence[ObjectiveLike], count: int) -> list[str | int]:
    goals = parse_objectives(objective)
    labels = []
    for goal in goals:
        if not isinstance(goal, ClassLogit):
            raise FeatvizError(
                f"judges score class visualizations, but '{goal.name}' is not a class objective; "
                "use class:LABEL or leave out the judges"
            )
        labels.append(goal.label)
    return labels * count if len(labels) == 1 else labels


def _diversity_layer(objective: ObjectiveLike | Sequence[ObjectiveLike]) -> str | None:
    layers = sorted({layer for goal in parse_objectives(objective) for layer in goal.layers} - RESERVED)
    return layers[0] if layers else None


def score(
    image_or_images: ImageSource,
    model: Model | str,
    objective: ObjectiveLike | Sequence[ObjectiveLike] | None = None,
    natural: torch.Tensor | str | os.PathLike | None = None,
    judges: Sequence[Model | str] | str | None = None,
    *,
    samples: int = 32,
    seed: int = 0,
    transforms: TransformsLike = "standard",
    batch_size: int = 32,
) -> dict:
    """Every quality figure for rendered images, as a dictionary of plain Python values (``json.dumps`` ready).

    ``image_or_images`` is a tensor ``(B, C, H, W)``, a PIL image, a PNG path, a folder or a glob; ``objective``
    what the images were rendered for (one for all, or one per image); None or ``"-"`` reads each PNG's
    ``featviz:objective`` text chunk, written by `featviz render`. The result holds ``"activation"``
    (`activation_reached`: rendered, held-out mean and min, each also on the scale of the ``natural`` images,
    where 1 is the best of them), ``"spectrum"`` (`spectrum`: slope and high-frequency share), ``"diversity"`` (`batch_diversity`
    over the Gram matrices of the objective's first layer, or over pixels when it reads none; None for one
    image) and ``"transfer"`` (`transferability` of class objectives to the ``judges``, models or names or a
    comma-separated string; empty without judges). ``samples`` held-out draws of ``transforms`` with ``seed``
    are scored, the model running ``batch_size`` images at a time. `format_score` prints it as a table.

    Example:
        >>> render = featviz.render(model, "blocks.4.0.conv_pwl:0-1", steps=4, size=64, seed=0, progress=False)
        >>> written = render.save("renders/")        # two PNGs, each with its objective in a text chunk
        >>> result = score("renders/", model, "-", samples=4)    # "-": each PNG's own objective; 32 samples by default
        >>> [value > 1 for value in result["activation"]["held_out_mean_vs_natural"]]
        [True, True]
        >>> sorted(result)
        ['activation', 'diversity', 'images', 'model', 'natural', 'size', 'spectrum', 'transfer']

        With judges (class objectives only): ``score("goldfish.png", "efficientnet_lite0", "-",
        judges="efficientnet_lite1,efficientnet_lite2")``.
    """
    model = load_model(model)
    if isinstance(image_or_images, (str, os.PathLike)):
        loaded = load_images(image_or_images, model.channels if model.channels in (1, 3) else 3)
        images = loaded.images
        names = [str(path) for path in loaded.paths]
        if objective is None or (isinstance(objective, str) and objective.strip() == FROM_FILES):
            objective = _objectives_from_files(loaded.paths, loaded.objectives)
    else:
        images = as_images(image_or_images, model.channels)
        names = [f"image {index}" for index in range(images.shape[0])]
        if objective is None or (isinstance(objective, str) and objective.strip() == FROM_FILES):
            raise FeatvizError("the objective can only be read from PNG files written by `featviz render`; pass objective=")
    if isinstance(judges, str):
        judges = [name.strip() for name in judges.split(",") if name.strip()]
    labels = _class_labels(objective, images.shape[0]) if judges else []

    activation = activation_reached(
        model, objective, images, natural=natural, transforms=transforms, samples=samples, seed=seed,
        batch_size=batch_size,
    )
    diversity = None
    if images.shape[0] > 1:
        layer = _diversity_layer(objective)
        value = batch_diversity(images, model if layer else None, layer, batch_size=batch_size)
        diversity = {"value": value, "features": f"Gram matrices of {layer}" if layer else "pixels"}
    transfer = transferability(images, labels, judges, batch_size=batch_size) if judges else []
    if isinstance(natural, (str, os.PathLike)):
        reference = str(natural)
    else:
        reference = "shipped photos" if natural is None else "given tensor"
    return {
        "model": model.name,
        "images": names,
        "size": [int(images.shape[-2]), int(images.shape[-1])],
        "natural": reference,
        "activation": activation.to_dict(),
        "spectrum": spectrum(images).to_dict(),
        "diversity": diversity,
        "transfer": [item.to_dict() for item in transfer],
    }


def _number(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4g}"


def _times(value: float | None) -> str:
    return "(n/a)" if value is None or not math.isfinite(value) else f"({value:.2f}x)"


def _table(rows: list[list[str]], numeric_from: int) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) if index < numeric_from else cell.rjust(width)
                 for index, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return lines


def format_score(result: dict) -> str:
    """A readable table of ``result``, what `score` returned: one row per image (objective, activation as rendered and
    under held-out transforms, each also on the natural scale where 1 is the best natural image, the natural
    mean and max, spectrum slope and high-frequency share), the batch's diversity and a row per image and judge for transferability.

    Example:
        >>> render = featviz.render(model, "blocks.4.0.conv_pwl:12", steps=2, size=64, seed=0, progress=False)
        >>> written = render.save("channel12.png")
        >>> print(format_score(score("channel12.png", model, "-", samples=4)))
        efficientnet_lite0: 1 image of 64x64; natural reference: 15 shipped photos; 4 held-out transforms (standard, seed 0)
        <BLANKLINE>
        image          objective               rendered  ...  natural mean  natural max   slope  high-freq
        channel12.png  blocks.4.0.conv_pwl:12  ...
        (x): on the natural scale, (value - natural mean) / (natural max - natural mean): 1 = the best natural image
        slope: of log power against log frequency (photos about -2, white noise 0); high-freq: share of energy above half Nyquist
    """
    activation, spectral = result["activation"], result["spectrum"]
    count = len(result["images"])
    height, width = result["size"]
    lines = [
        f"{result['model']}: {count} image{'s' if count != 1 else ''} of {width}x{height}; natural reference: "
        f"{activation['natural_images']} {result['natural']}; {activation['samples']} held-out transforms "
        f"({activation['transforms']}, seed {activation['seed']})",
        "",
    ]
    rows = [["image", "objective", "rendered", "", "held-out mean", "", "held-out min", "", "natural mean",
             "natural max", "slope", "high-freq"]]
    for index, name in enumerate(result["images"]):
        rows.append([
            name, activation["objectives"][index],
            _number(activation["rendered"][index]), _times(activation["rendered_vs_natural"][index]),
            _number(activation["held_out_mean"][index]), _times(activation["held_out_mean_vs_natural"][index]),
            _number(activation["held_out_min"][index]), _times(activation["held_out_min_vs_natural"][index]),
            _number(activation["natural_mean"][index]), _number(activation["natural_max"][index]),
            _number(spectral["slope"][index]), _number(spectral["high_frequency_share"][index]),
        ])
    if count > 1:
        rows.append(["mean", "", "", "", "", "", "", "", "", "", _number(spectral["mean_slope"]),
                     _number(spectral["mean_high_frequency_share"])])
    lines += _table(rows, numeric_from=2)
    lines.append("(x): on the natural scale, (value - natural mean) / (natural max - natural mean): 1 = the best "
                 "natural image")
    lines.append("slope: of log power against log frequency (photos about -2, white noise 0); high-freq: share of "
                 "energy above half Nyquist")
    if result["diversity"] is not None:
        diversity = result["diversity"]
        lines.append(f"diversity: {_number(diversity['value'])} (1 - mean cosine similarity of {diversity['features']})")
    if result["transfer"]:
        lines.append("")
        rows = [["image", "judge", "class", "top-1", "rank", "probability"]]
        for index, name in enumerate(result["images"]):
            for judged in result["transfer"]:
                rows.append([name, judged["judge"], str(judged["label"][index]),
                             "yes" if judged["top1"][index] else "no", str(judged["rank"][index]),
                             _number(judged["probability"][index])])
        lines += _table(rows, numeric_from=3)
    return "\n".join(lines)


__all__ = ["FROM_FILES", "format_score", "score"]
