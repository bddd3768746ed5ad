"""Microscope-style galleries: a manifest of finished units and the static site made from it.

Example:
    >>> from featviz.gallery import Manifest, unit_paths, write_site
    >>> manifest = Manifest("site/manifest.json")
    >>> paths = unit_paths("blocks.4.0.conv_pwl", 3)   # where the renderer saves positive.png, ...
    >>> manifest.add({"layer": "blocks.4.0.conv_pwl", "unit": 3, "images": {"positive": paths.positive}})
    >>> manifest.save()
    >>> write_site("site", manifest, "efficientnet_lite0")
"""
from featviz.gallery.manifest import MANIFEST_NAME, Manifest, record_key, shard_name
from featviz.gallery.site import UnitPaths, layer_page, layer_slug, unit_paths, write_site, write_unit_examples

__all__ = [
    "MANIFEST_NAME", "Manifest", "UnitPaths", "layer_page", "layer_slug", "record_key", "shard_name", "unit_paths",
    "write_site", "write_unit_examples",
]
