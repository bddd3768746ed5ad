"""Microscope-style galleries: the build (`build_gallery`), a manifest of finished units and the static site.

Example:
    >>> from featviz.gallery import build_gallery
    >>> build_gallery(model, "blocks.2,blocks.4", units="0-1", images="shipped", steps=8, size=64, out="site",
    ...               progress=False)  # steps=512, units="0-15" for a real one
    GallerySummary(...)
    >>> from featviz.gallery import Manifest, unit_paths, write_site
    >>> manifest = Manifest("site/manifest.json")     # the build's units; add a unit rendered by hand
    >>> paths = unit_paths("blocks.4.0.conv_pwl", 3)   # where its positive.png, negative.png, ... go
    >>> result = featviz.render(model, "blocks.4.0.conv_pwl:3", steps=8, size=64, progress=False)
    >>> _ = result.save(f"site/{paths.positive}")
    >>> manifest.add({"layer": "blocks.4.0.conv_pwl", "unit": 3, "images": {"positive": paths.positive}})
    >>> manifest.save()
    PosixPath('site/manifest.json')
    >>> write_site("site", manifest, "efficientnet_lite0")
    PosixPath('site/index.html')
    >>> build_gallery(model, "blocks.6", units="0-15", words=True, labels="shipped")  # doctest: +SKIP
"""
from featviz.gallery.build import GallerySummary, build_gallery, parse_units
from featviz.gallery.manifest import Manifest, record_key, shard_name, shard_paths
from featviz.gallery.paths import UnitPaths, layer_page, layer_slug, shared_image_path, unit_paths
from featviz.gallery.pictures import write_unit_examples
from featviz.gallery.site import write_site
from featviz.gallery.words import WordScores, read_words, word_scores, write_search_table

__all__ = [
    "GallerySummary", "Manifest", "UnitPaths", "WordScores", "build_gallery", "layer_page",
    "layer_slug", "parse_units", "read_words", "record_key", "shard_name", "shard_paths", "shared_image_path",
    "unit_paths", "word_scores", "write_search_table", "write_site", "write_unit_examples",
]
