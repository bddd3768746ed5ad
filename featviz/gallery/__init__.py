"""Microscope-style galleries: the build (`build_gallery`), a manifest of finished units and the static site.

Example:
    >>> from featviz.gallery import build_gallery
    >>> build_gallery("efficientnet_lite0", "blocks.2,blocks.4", units="0-15", images="shipped", out="site")
    >>> from featviz.gallery import Manifest, unit_paths, write_site
    >>> manifest = Manifest("site/manifest.json")
    >>> paths = unit_paths("blocks.4.0.conv_pwl", 3)   # where the renderer saves positive.png, ...
    >>> manifest.add({"layer": "blocks.4.0.conv_pwl", "unit": 3, "images": {"positive": paths.positive}})
    >>> manifest.save()
    >>> write_site("site", manifest, "efficientnet_lite0")
    >>> build_gallery("efficientnet_lite0", "blocks.6", units="0-15", words=True, labels="shipped")  # multimodal
"""
from featviz.gallery.build import GallerySummary, build_gallery, parse_units
from featviz.gallery.manifest import MANIFEST_NAME, Manifest, record_key, shard_name, shard_paths
from featviz.gallery.site import (
    UnitPaths, layer_page, layer_slug, shared_image_path, unit_paths, write_site, write_unit_examples,
)
from featviz.gallery.words import WordScores, read_words, word_scores, write_search_table

__all__ = [
    "GallerySummary", "MANIFEST_NAME", "Manifest", "UnitPaths", "WordScores", "build_gallery", "layer_page",
    "layer_slug", "parse_units", "read_words", "record_key", "shard_name", "shard_paths", "shared_image_path",
    "unit_paths", "word_scores", "write_search_table", "write_site", "write_unit_examples",
]
