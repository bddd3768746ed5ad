"""The dataset pass: read a folder of images and find, for every unit of some layers, the images that excite
it most (with the spot where it fires) and a histogram of its activation.

Example:
    >>> from featviz.dataset import ImageFolder, collect_activations, shipped_photo_paths
    >>> folder = ImageFolder(shipped_photo_paths(), 64)      # or ImageFolder("val_images", 224)
    >>> stats = collect_activations(model, folder, ["blocks.4.0.conv_pwl"], cache_dir="cache")
    >>> best = stats["blocks.4.0.conv_pwl"].top_examples(3)[0]   # unit 3's best image
    >>> best.crop(128).save("unit3_crop.png")
"""
from featviz.dataset.activations import (
    Histogram, TopExample, UnitStats, collect_activations, crop_around,
)
from featviz.dataset.folder import (
    SHIPPED, FileStamp, ImageFolder, UnreadableImageWarning, image_folder, image_source, load_image,
    shipped_photos,
)
from featviz.dataset.processes import Processes
from featviz.dataset.shipped import shipped_photo_paths

__all__ = [
    "SHIPPED", "FileStamp", "Histogram", "ImageFolder", "Processes", "TopExample", "UnitStats",
    "UnreadableImageWarning", "collect_activations", "crop_around", "image_folder", "image_source", "load_image",
    "shipped_photo_paths", "shipped_photos",
]
