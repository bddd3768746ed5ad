"""Natural photos that ship inside installed packages (scikit-image, scikit-learn): a small, offline
reference set for metrics, tests and the showcase gallery's dataset examples."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from featviz.errors import FeatvizError

# Natural photographs only: scikit-image's data folder also holds charts, text and synthetic patterns.
_SKIMAGE_PHOTOS = (
    "astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "grass.png", "gravel.png",
    "hubble_deep_field.jpg", "moon.png", "motorcycle_left.png", "retina.jpg", "rocket.jpg",
)
_SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")


def _package_folder(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def shipped_photo_paths() -> list[Path]:
    """Paths of the natural photos shipped by the installed scikit-image and scikit-learn packages.

    Raises FeatvizError when neither package is installed (`pip install scikit-image scikit-learn`, or pass
    your own folder of images instead).

    Example:
        >>> [path.name for path in shipped_photo_paths()][:2]
        ['astronaut.png', 'brick.png']
        >>> len(shipped_photo_paths())    # 13 from scikit-image, 2 from scikit-learn
        15
    """
    paths: list[Path] = []
    skimage = _package_folder("skimage")
    if skimage is not None:
        paths += [skimage / "data" / name for name in _SKIMAGE_PHOTOS if (skimage / "data" / name).is_file()]
    sklearn = _package_folder("sklearn")
    if sklearn is not None:
        paths += [sklearn / "datasets" / "images" / name for name in _SKLEARN_PHOTOS if (sklearn / "datasets" / "images" / name).is_file()]
    if not paths:
        raise FeatvizError(
            "no shipped photos found: install scikit-image or scikit-learn (pip install scikit-image), or give a folder of images"
        )
    return paths
