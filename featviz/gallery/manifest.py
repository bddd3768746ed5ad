"""The gallery's manifest: a JSON file listing every finished unit with its metadata, safe to kill at any moment.

File format::

    {"format": 1, "info": {...}, "records": [{...}, ...]}

A record is a JSON object with at least ``layer`` (str) and ``unit`` (int >= 0). `featviz.gallery.site` reads:

* ``objective`` (str), ``steps`` (int), ``seed`` (int), ``activation`` (float, the objective value the
  render reached), ``render_seconds`` (float);
* ``images``: ``{"positive": PATH, "negative": PATH, "diversity": [PATH, ...]}``, paths relative to the site
  folder (see `featviz.gallery.paths.unit_paths` for where to put them);
* ``dataset_examples``: ``[{"image": PATH, "crop": PATH, "value": float, "source": str, ...}, ...]`` and
  ``histogram``: ``{"counts": [int, ...], "edges": [float, ...]}`` (both written by
  `featviz.gallery.pictures.write_unit_examples`);
* any other key with a scalar value is shown in the unit page's metadata table.

Non-finite floats are stored as ``null`` so the file stays strict JSON.

Distributed runs: each rank writes its own shard ``manifest-rank{R}.json`` (`Manifest.shard`), which also
reads the final manifest and the other shards so a resumed run with a different world size skips every unit
already done. After all ranks finish (e.g. after a barrier), one process calls `Manifest.merge`, which
writes ``manifest.json`` atomically and only then deletes the shards; killed in between, merging again gives
the same result.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from featviz.errors import FeatvizError
from featviz.io import write_text

MANIFEST_NAME = "manifest.json"
SHARD_PATTERN = re.compile(r"^manifest-rank(\d+)\.json$")
FORMAT = 1


def shard_name(rank: int) -> str:
    """The file name of rank ``rank``'s shard: ``manifest-rank{rank}.json``.

    Example:
        >>> shard_name(3)
        'manifest-rank3.json'
    """
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
        raise FeatvizError(f"rank must be an int >= 0, not {rank!r}")
    return f"manifest-rank{rank}.json"


def _json_safe(value: Any, where: str) -> Any:
    """``value`` as plain JSON types (tuples become lists, non-finite floats None); FeatvizError otherwise."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return _json_safe(value.item(), where)  # numpy / torch scalars
    if isinstance(value, os.PathLike):
        return Path(value).as_posix()
    raise FeatvizError(f"manifest value {where} is a {type(value).__name__}; use str, int, float, bool, list or dict")


def record_key(record: Mapping[str, Any], where: str = "manifest record") -> tuple[str, int]:
    """The ``(layer, unit)`` a record describes; FeatvizError naming ``where`` when either is missing or invalid.

    Example:
        >>> record_key({"layer": "conv1", "unit": 3, "steps": 256})
        ('conv1', 3)
    """
    layer = record.get("layer")
    unit = record.get("unit")
    if not isinstance(layer, str) or not layer:
        raise FeatvizError(f"{where} needs a 'layer' that is a non-empty string, not {layer!r}")
    if isinstance(unit, bool) or not isinstance(unit, int) or unit < 0:
        raise FeatvizError(f"{where} needs a 'unit' that is an int >= 0, not {unit!r}")
    return layer, unit


def _read_records(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FeatvizError(
            f"manifest '{path}' cannot be read ({type(error).__name__}: {error}); delete it to start the gallery over"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        raise FeatvizError(
            f"manifest '{path}' is not a featviz manifest (no 'records' list); delete it or pick another folder"
        )
    if data.get("format", FORMAT) > FORMAT:
        raise FeatvizError(
            f"manifest '{path}' has format {data['format']}, newer than this featviz reads ({FORMAT}); upgrade featviz"
        )
    records = data["records"]
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise FeatvizError(
                f"record {index} of manifest '{path}' is not a JSON object; delete the manifest to start over"
            )
        record_key(record, f"record {index} of manifest '{path}'")
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    return info, records


class Manifest:
    """The finished units of a gallery, stored in one JSON file that every `save` replaces atomically.

    ``path`` is that file (``manifest.json`` in the site folder; `save` creates its folder). Opening an existing
    file loads its records (resume); ``read_also`` names other manifest files whose units count as done too (and
    whose records `get` returns) but are never written (what `shard` uses). Adding a record for a unit that is
    already there replaces it. ``info`` is a free dict saved with the records (model name, settings, ...).
    Saving writes a temporary file and renames it over the old one, so a process killed at any moment leaves
    the old or the new manifest, never a broken one; the cost is one full rewrite per save, so save after each
    unit or every few units.

    Example:
        >>> manifest = Manifest("site/manifest.json")
        >>> if not manifest.is_done("blocks.4.0.conv_pwl", 3):
        ...     manifest.add({"layer": "blocks.4.0.conv_pwl", "unit": 3, "objective": "channel", "steps": 512})
        ...     _ = manifest.save()
        >>> Manifest("site/manifest.json").is_done("blocks.4.0.conv_pwl", 3)  # a later run resumes
        True
    """

    def __init__(self, path: str | os.PathLike, read_also: Iterable[str | os.PathLike] = ()) -> None:
        self.path = Path(path)
        self.info: dict[str, Any] = {}
        self._records: dict[tuple[str, int], dict[str, Any]] = {}
        self._elsewhere: dict[tuple[str, int], dict[str, Any]] = {}
        if self.path.exists():
            self.info, records = _read_records(self.path)
            for record in records:
                self._records[record_key(record, "record")] = record
        for other in read_also:
            other = Path(other)
            if other.exists() and other.resolve() != self.path.resolve():
                for record in _read_records(other)[1]:
                    self._elsewhere[record_key(record, "record")] = record

    @classmethod
    def shard(cls, site_dir: str | os.PathLike, rank: int) -> "Manifest":
        """Rank ``rank``'s shard ``site_dir/manifest-rank{rank}.json``; units in the final manifest or in any
        shard count as done.

        Example:
            >>> rank = 0  # torch.distributed.get_rank() under torchrun
            >>> manifest = Manifest.shard("site", rank)
            >>> manifest.add({"layer": "conv1", "unit": 0, "steps": 256})
            >>> manifest.save()
            PosixPath('site/manifest-rank0.json')
        """
        site_dir = Path(site_dir)
        path = site_dir / shard_name(rank)
        return cls(path, read_also=[site_dir / MANIFEST_NAME, *shard_paths(site_dir)])

    @classmethod
    def merge(cls, site_dir: str | os.PathLike) -> "Manifest":
        """Combine ``site_dir/manifest.json`` and every ``manifest-rank*.json`` shard into ``manifest.json``.

        Shards are read in rank order after the final manifest; a unit present in several keeps the last
        record read. The merged manifest is saved before the shards are deleted. Returns the merged manifest.

        Example:
            >>> for rank in (0, 1):  # what two processes of a torchrun build save
            ...     shard = Manifest.shard("site", rank)
            ...     shard.add({"layer": "conv1", "unit": rank, "steps": 256})
            ...     _ = shard.save()
            >>> rank = 0  # torch.distributed.get_rank() under torchrun, after a barrier
            >>> if rank == 0:
            ...     records = Manifest.merge("site").records()
            >>> [(record["layer"], record["unit"]) for record in records], shard_paths("site")
            ([('conv1', 0), ('conv1', 1)], [])
        """
        site_dir = Path(site_dir)
        merged = cls(site_dir / MANIFEST_NAME)
        shards = shard_paths(site_dir)
        for shard in shards:
            info, records = _read_records(shard)
            for key, value in info.items():
                merged.info.setdefault(key, value)
            for record in records:
                merged._records[record_key(record, "record")] = record
        merged.save()
        for shard in shards:
            shard.unlink(missing_ok=True)
        return merged

    def is_done(self, layer: str, unit: int) -> bool:
        """Whether ``(layer, unit)`` has a record here or in a manifest this one reads (`shard`).

        Example:
            >>> manifest = Manifest("site/manifest.json")
            >>> manifest.add({"layer": "blocks.4.0.conv_pwl", "unit": 3, "steps": 512})
            >>> manifest.is_done("blocks.4.0.conv_pwl", 3), manifest.is_done("blocks.4.0.conv_pwl", 4)
            (True, False)
        """
        return (layer, unit) in self._records or (layer, unit) in self._elsewhere

    def get(self, layer: str, unit: int) -> dict[str, Any] | None:
        """A copy of the record of ``(layer, unit)``, this manifest's own or else one a manifest it reads has
        (`shard`; the last read wins), or None. Adding the changed copy back updates the unit.

        Example:
            >>> manifest = Manifest("site/manifest.json")
            >>> manifest.add({"layer": "conv1", "unit": 0, "steps": 256})
            >>> record = manifest.get("conv1", 0)
            >>> record["top_words"] = [["dog", 0.12]]
            >>> manifest.add(record)
            >>> manifest.get("conv1", 0)["top_words"], manifest.get("conv1", 1)
            ([['dog', 0.12]], None)
        """
        record = self._records.get((layer, unit), self._elsewhere.get((layer, unit)))
        return json.loads(json.dumps(record)) if record is not None else None

    def add(self, record: Mapping[str, Any]) -> None:
        """Add (or replace) the record of one finished unit; call `save` to write it.

        Example:
            >>> manifest = Manifest("site/manifest.json")
            >>> manifest.add({"layer": "conv1", "unit": 0, "objective": "channel", "steps": 256, "seed": 0})
            >>> manifest.add({"layer": "conv1", "unit": 0, "objective": "channel", "steps": 512, "seed": 0})
            >>> len(manifest), manifest.get("conv1", 0)["steps"]
            (1, 512)
        """
        if not isinstance(record, Mapping):
            raise FeatvizError(f"a manifest record must be a dict, not {type(record).__name__}")
        key = record_key(record, "manifest record")
        self._records[key] = _json_safe(record, f"{key[0]}:{key[1]}")

    def records(self) -> list[dict[str, Any]]:
        """This manifest's own records, in the order they were first added.

        Example:
            >>> manifest = Manifest("site/manifest.json")
            >>> for unit in (0, 1):
            ...     manifest.add({"layer": "conv1", "unit": unit, "steps": 256})
            >>> [(record["layer"], record["unit"]) for record in manifest.records()]
            [('conv1', 0), ('conv1', 1)]
        """
        return list(self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    def save(self) -> Path:
        """Write the manifest atomically (temporary file, then rename) and return its path.

        Example:
            >>> manifest = Manifest("site/manifest.json")
            >>> manifest.add({"layer": "conv1", "unit": 0, "steps": 256})
            >>> manifest.save()
            PosixPath('site/manifest.json')
        """
        document = {"format": FORMAT, "info": _json_safe(self.info, "info"), "records": self.records()}
        return write_text(self.path, json.dumps(document, separators=(",", ":"), allow_nan=False) + "\n")


def shard_paths(site_dir: str | os.PathLike) -> list[Path]:
    """The ``manifest-rank*.json`` shards in ``site_dir``, in rank order.

    Example:
        >>> for rank in (1, 0):
        ...     _ = Manifest.shard("site", rank).save()
        >>> [path.name for path in shard_paths("site")]
        ['manifest-rank0.json', 'manifest-rank1.json']
    """
    site_dir = Path(site_dir)
    if not site_dir.is_dir():
        return []
    found = []
    for path in site_dir.iterdir():
        match = SHARD_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]
