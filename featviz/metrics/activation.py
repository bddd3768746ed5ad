"""Activation reached: how strongly a rendered image drives its objective, as rendered and under held-out
random transforms, compared with natural photos."""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import torch

from featviz import transforms as transforms_module
from featviz.errors import FeatvizError
from featviz.hooks import IMAGE, ActivationCapture
from featviz.metrics.images import ImageSource, as_images, natural_images
from featviz.models import Model, load_model
from featviz.objectives import Objective
from featviz.objectives.binding import BoundObjective, ObjectiveLike, bind_objective, parse_objectives

TransformsLike = Union[str, transforms_module.Compose, Sequence[Callable], None]


def held_out_seed(seed: int, sample: int) -> int:
    """The seed of held-out transform ``sample`` for metric seed ``seed``: a 64-bit hash of both, a stream that a
    render's seeds (``seed + i``) never use, so no image is scored under the draws it was optimized on.

    Example:
        >>> held_out_seed(0, 0) == held_out_seed(0, 0) != held_out_seed(0, 1)
        True
    """
    digest = hashlib.blake2b(f"featviz.metrics.held-out:{int(seed)}:{int(sample)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _values(capture: ActivationCapture, target: Objective, images: torch.Tensor,
            augment: transforms_module.Compose, source: transforms_module.RandomSource) -> torch.Tensor:
    """The objective's value for each of ``images`` under one draw of ``augment``, views averaged."""
    views_batch = augment(images, source)
    views = views_batch.shape[0] // images.shape[0]
    activations = dict(capture.run(views_batch))
    if IMAGE in target.layers:
        activations[IMAGE] = images.repeat(views, 1, 1, 1) if views > 1 else images
    return target(activations).float().view(views, images.shape[0]).mean(0)


def _relative(values: torch.Tensor, best: torch.Tensor, typical: torch.Tensor) -> torch.Tensor:
    """``(values - typical) / (best - typical)``: 0 for a typical natural image, 1 for the best one."""
    spread = best - typical
    return torch.where(spread > 0, (values - typical) / spread.clamp(min=1e-30), torch.full_like(values, math.nan))


def _floats(values: torch.Tensor) -> list[float | None]:
    return [float(value) if math.isfinite(value) else None for value in values.tolist()]


@dataclass
class ActivationReport:
    """What `activation_reached` measured, one entry per image: the objective's value on the image as rendered
    (``rendered``), over ``samples`` held-out random transforms (``held_out``, ``(samples, B)``; its mean and
    minimum in ``held_out_mean`` / ``held_out_min``), and the highest and the mean value over the natural images
    (``natural_max``, ``natural_mean``). The ``*_vs_natural`` properties put each figure on the natural scale,
    ``(value - natural_mean) / (natural_max - natural_mean)``: 0 is a typical natural image, 1 the best one,
    above 1 beyond every natural image; defined whatever the sign of the unit's values (NaN only when every
    natural image gives the same value). ``objectives`` names the objective of each image and ``natural_count``
    the number of natural images.

    Example:
        >>> result = featviz.render(model, "blocks.4.0.conv_pwl:12", steps=8, size=64, seed=0, progress=False)
        >>> report = activation_reached(model, "blocks.4.0.conv_pwl:12", result.images, samples=4)  # 32 by default
        >>> [round(value.item(), 1) for value in (report.rendered, report.natural_max, report.natural_mean)]
        [-1.4, -3.8, -5.1]
        >>> round(report.rendered_vs_natural.item(), 1)   # 3 times as far above the mean photo as the best photo
        2.9
    """

    objectives: list[str]
    rendered: torch.Tensor
    held_out: torch.Tensor
    natural_max: torch.Tensor
    natural_mean: torch.Tensor
    natural_count: int
    seed: int
    transforms: str

    @property
    def samples(self) -> int:
        """How many held-out transforms each image was scored under."""
        return self.held_out.shape[0]

    @property
    def held_out_mean(self) -> torch.Tensor:
        """The mean value over the held-out transforms, per image (robustness on average)."""
        return self.held_out.mean(0)

    @property
    def held_out_min(self) -> torch.Tensor:
        """The lowest value over the held-out transforms, per image (robustness in the worst case)."""
        return self.held_out.amin(0)

    @property
    def rendered_vs_natural(self) -> torch.Tensor:
        """``rendered`` on the natural scale (0: a typical natural image, 1: the best one, above 1: beyond all)."""
        return _relative(self.rendered, self.natural_max, self.natural_mean)

    @property
    def held_out_mean_vs_natural(self) -> torch.Tensor:
        """``held_out_mean`` on the natural scale (0: a typical natural image, 1: the best one)."""
        return _relative(self.held_out_mean, self.natural_max, self.natural_mean)

    @property
    def held_out_min_vs_natural(self) -> torch.Tensor:
        """``held_out_min`` on the natural scale (0: a typical natural image, 1: the best one)."""
        return _relative(self.held_out_min, self.natural_max, self.natural_mean)

    def to_dict(self) -> dict:
        """Plain Python values, one list entry per image (None for NaN), ready for ``json.dumps``.

        Example:
            >>> result = featviz.render(model, "blocks.4.0.conv_pwl:12", steps=2, size=64, seed=0, progress=False)
            >>> found = activation_reached(model, "blocks.4.0.conv_pwl:12", result.images, samples=4).to_dict()
            >>> import json
            >>> json.dumps(found)[:41]
            '{"objectives": ["blocks.4.0.conv_pwl:12"]'
            >>> sorted(found)[:4]
            ['held_out_mean', 'held_out_mean_vs_natural', 'held_out_min', 'held_out_min_vs_natural']
        """
        return {
            "objectives": list(self.objectives),
            "rendered": _floats(self.rendered),
            "rendered_vs_natural": _floats(self.rendered_vs_natural),
            "held_out_mean": _floats(self.held_out_mean),
            "held_out_mean_vs_natural": _floats(self.held_out_mean_vs_natural),
            "held_out_min": _floats(self.held_out_min),
            "held_out_min_vs_natural": _floats(self.held_out_min_vs_natural),
            "natural_max": _floats(self.natural_max),
            "natural_mean": _floats(self.natural_mean),
            "natural_images": self.natural_count,
            "samples": self.samples,
            "seed": self.seed,
            "transforms": self.transforms,
        }


def activation_reached(
    model: Model | str,
    objective: ObjectiveLike | Sequence[ObjectiveLike],
    images: ImageSource,
    natural: torch.Tensor | str | os.PathLike | None = None,
    transforms: TransformsLike = "standard",
    samples: int = 32,
    seed: int = 0,
    *,
    batch_size: int = 32,
) -> ActivationReport:
    """How strongly ``images`` drive ``objective``, as rendered and under held-out random transforms, absolute
    and on the scale of natural images (0: a typical natural image, 1: the strongest one).

    ``objective`` is read like `featviz.render` reads it (a shorthand string, an Objective or a list; a list
    scores image ``i`` by objective ``i``) and bound with one dry forward pass. Each image is scored as it is
    (resized only if the model takes no other size), then under ``samples`` random draws of ``transforms``
    (a preset name, a Compose or a list) seeded by `held_out_seed`: a stream disjoint from renders' seeds, so
    the draws are held out, and the same draw ``k`` for every image, so images are compared under identical
    transforms and an image's figures do not depend on the rest of the batch. ``natural`` (default: the shipped
    photos, `featviz.dataset.shipped_photos`, at the images' size; or a tensor; or a folder path) gives the
    reference: the highest and the mean value over the natural images, as they are. Forward passes stop after
    the objective's last layer, run without gradients, ``batch_size`` images at a time. Alpha channels are
    composited on grey.

    Example:
        >>> result = featviz.render(model, "blocks.4.0.conv_pwl:12", steps=8, size=64, seed=0, progress=False)  # steps=512
        >>> report = activation_reached(model, "blocks.4.0.conv_pwl:12", result.images, samples=4)  # 32 by default
        >>> report.rendered_vs_natural.shape, bool(report.held_out_min_vs_natural > 1)
        (torch.Size([1]), True)
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise FeatvizError(f"samples must be a positive int (held-out transforms per image), not {samples!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise FeatvizError(f"batch_size must be a positive int, not {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise FeatvizError(f"seed must be an int, not {seed!r}")
    model = load_model(model)
    images = as_images(images, model.channels).to(device=model.device, dtype=model.dtype)
    count = images.shape[0]
    image_size = tuple(images.shape[-2:])
    bound = bind_objective(model, objective, image_size)
    if len(bound.goals) > 1 and len(bound.goals) != count:
        raise FeatvizError(
            f"{len(bound.goals)} objectives for {count} images; give one objective for all, or one per image"
        )
    as_is = transforms_module.create("none", bound.size)
    augment = transforms_module.resolve(transforms, bound.size)
    views = int(getattr(augment, "views", 1))
    reference = natural_images(natural, image_size, model.channels).to(device=model.device, dtype=model.dtype)
    fixed = transforms_module.RandomSource(0)
    # A stack scores image i by goal i, so its batches hold whole sets of the images.
    step = count if len(bound.goals) > 1 else batch_size
    per_forward = max(1, batch_size // (count * views))

    with torch.no_grad(), ActivationCapture(model, bound.target.layers, layouts=bound.layouts) as capture:
        rendered = torch.cat([
            _values(capture, bound.target, images[start:start + step], as_is, fixed)
            for start in range(0, count, step)
        ])
        held_out = torch.empty(samples, count, device=rendered.device)
        for start in range(0, samples, per_forward):
            stop = min(samples, start + per_forward)
            seeds = [held_out_seed(seed, sample) for sample in range(start, stop) for _ in range(count)]
            source = transforms_module.RandomSource(seeds, device=model.device)
            batch = images.repeat(stop - start, 1, 1, 1)
            held_out[start:stop] = _values(capture, bound.target, batch, augment, source).view(stop - start, count)
        natural_values = torch.empty(len(bound.goals), reference.shape[0], device=rendered.device)
        for start in range(0, reference.shape[0], batch_size):
            photos = reference[start:start + batch_size]
            activations = dict(capture.run(as_is(photos, fixed)))
            activations[IMAGE] = photos
            for index, goal in enumerate(bound.goals):
                natural_values[index, start:start + photos.shape[0]] = goal(activations).float()
    goal_of_image = [bound.goal_index(index) for index in range(count)]
    return ActivationReport(
        objectives=[bound.goals[goal].name for goal in goal_of_image],
        rendered=rendered.cpu(), held_out=held_out.cpu(), natural_max=natural_values.amax(1)[goal_of_image].cpu(),
        natural_mean=natural_values.mean(1)[goal_of_image].cpu(),
        natural_count=int(reference.shape[0]), seed=int(seed),
        transforms=transforms if isinstance(transforms, str) else ("standard" if transforms is None else repr(transforms)),
    )


__all__ = [
    "ActivationReport", "BoundObjective", "activation_reached", "bind_objective", "held_out_seed", "parse_objectives",
]
