"""Class names, read offline from the metadata that ships with torchvision."""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def _imagenet_labels() -> tuple[str, ...]:
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names in output order (from torchvision's weight metadata; no download).

    Example:
        >>> imagenet_labels()[1]
        'goldfish'
    """
    return list(_imagenet_labels())
