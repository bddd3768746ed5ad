"""Image parameterizations: modules whose ``forward()`` returns the images being optimized, in ``[0, 1]``.

``Fourier`` (the default) optimizes a 1/f-scaled spectrum; ``Pixel`` the pixels themselves; ``CPPN`` a small
coordinate network per image; ``Maco`` only the phase of a spectrum of fixed magnitude. All take ``size``,
``batch``, ``channels``, ``seed``, ``alpha``, ``device`` and ``dtype``, and carry the Adam learning rate that
suits them as ``default_lr``. ``create(kind, size, ...)`` builds one by name.
"""
from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from featviz.errors import FeatvizError, suggestion
from featviz.param.alpha import composite, split_alpha
from featviz.param.base import Parameterization, SeedLike, SizeLike
from featviz.param.color import (
    IMAGENET_COLOR_SQRT,
    color_sqrt,
    color_sqrt_from_images,
    decorrelate,
)
from featviz.param.cppn import CPPN
from featviz.param.fourier import Fourier
from featviz.param.maco import Maco, maco_magnitude
from featviz.param.pixel import Pixel

KINDS: tuple[str, ...] = ("fft", "pixel", "cppn", "maco")

_CLASSES: dict[str, type[Parameterization]] = {
    "fft": Fourier,
    "fourier": Fourier,
    "pixel": Pixel,
    "cppn": CPPN,
    "maco": Maco,
}

_SHARED_ARGUMENTS = frozenset({"size", "self", "batch", "channels", "seed", "alpha", "device", "dtype"})


def create(
    kind: str,
    size: SizeLike,
    *,
    batch: int = 1,
    channels: int = 3,
    seed: SeedLike = None,
    alpha: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    **options: Any,
) -> nn.Module:
    """Build the parameterization named ``kind`` (one of ``KINDS``; ``"fourier"`` is an alias of ``"fft"``).

    ``options`` go to the class's own keyword arguments (``decay`` for fft and maco, ``layers``/``width``
    for cppn, ``decorrelate``/``color_sqrt`` for fft, pixel and maco...). Unknown kinds or options raise
    FeatvizError with the valid names.

    Example:
        >>> image = create("fft", 128, batch=4, seed=0, decay=1.2)
        >>> optimizer = torch.optim.Adam(image.parameters(), lr=image.default_lr)
    """
    if not isinstance(kind, str):
        raise FeatvizError(f"parameterization kind must be a string, one of: {', '.join(KINDS)}; got {kind!r}")
    name = kind.strip().lower()
    if name not in _CLASSES:
        raise FeatvizError(
            f"unknown parameterization '{kind}'; valid kinds: {', '.join(KINDS)} (fourier = fft)"
            f"{suggestion(name, _CLASSES)}"
        )
    cls = _CLASSES[name]
    accepted = [option for option in inspect.signature(cls.__init__).parameters if option not in _SHARED_ARGUMENTS]
    for option in options:
        if option not in accepted:
            raise FeatvizError(
                f"'{name}' parameterization has no option '{option}'; valid options: {', '.join(accepted)}"
                f"{suggestion(option, accepted)}"
            )
    return cls(size, batch=batch, channels=channels, seed=seed, alpha=alpha, device=device, dtype=dtype, **options)


__all__ = [
    "CPPN",
    "IMAGENET_COLOR_SQRT",
    "KINDS",
    "Fourier",
    "Maco",
    "Parameterization",
    "Pixel",
    "color_sqrt",
    "color_sqrt_from_images",
    "composite",
    "create",
    "decorrelate",
    "maco_magnitude",
    "split_alpha",
]
