"""Concept lists: the default English nouns shipped with featviz, and reading a user's concept file.

A concept file is UTF-8 text with one concept a line (a word or a short phrase, used as written); blank lines
and lines starting with ``#`` are skipped, surrounding spaces are dropped, and a concept listed twice is kept
once, at its first place.

The default list, ``featviz/concepts/data/concepts.txt``, holds about 3,500 common English nouns of visible
things (animals, artifacts, body parts, food, natural objects, people, phenomena, plants, shapes, substances,
places and colours): WordNet 3.0 nouns chosen by their frequency in English. ``docs/examples/make_concepts.py``
made it and says exactly how; the file's header carries WordNet's license.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Sequence

from featviz.errors import FeatvizError

DEFAULT_CONCEPTS = Path(__file__).resolve().parent / "data" / "concepts.txt"
MINIMUM_CONCEPTS = 2


@functools.lru_cache(maxsize=1)
def _default_concepts() -> tuple[str, ...]:
    return tuple(read_concepts(DEFAULT_CONCEPTS))


def default_concepts() -> list[str]:
    """The concept list shipped with featviz: about 3,500 common English nouns of visible things, alphabetical.

    Example:
        >>> concepts = default_concepts()
        >>> len(concepts) > 3000, "dog" in concepts, "lemon" in concepts
        (True, True, True)
    """
    return list(_default_concepts())


def read_concepts(path: str | os.PathLike) -> list[str]:
    """The concepts of the concept file at ``path`` (one a line; ``#`` comments and blank lines skipped; duplicates
    dropped).

    A missing, unreadable or empty file, or one with fewer than 2 concepts, raises FeatvizError saying so.

    Example:
        >>> _ = Path("colours.txt").write_text("# my colours\\nred\\ngreen\\nblue\\n")
        >>> read_concepts("colours.txt")
        ['red', 'green', 'blue']
    """
    file = Path(path).expanduser()
    if not file.is_file():
        what = "is a folder, not a file" if file.is_dir() else "does not exist"
        raise FeatvizError(f"concept file '{file}' {what}; pass a text file with one concept a line")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise FeatvizError(
            f"concept file '{file}' is not UTF-8 text (byte {error.start} cannot be read); save it as UTF-8 with "
            "one concept a line"
        ) from None
    except OSError as error:
        raise FeatvizError(
            f"cannot read concept file '{file}' ({error.strerror or error}); check its permissions"
        ) from None
    lines = [line.strip() for line in text.splitlines()]
    concepts = [line for line in lines if line and not line.startswith("#")]
    if not concepts:
        raise FeatvizError(
            f"concept file '{file}' holds no concepts (only blank lines and # comments); write one concept a line"
        )
    return check_concepts(concepts, source=f"concept file '{file}'")


def check_concepts(concepts: Sequence[str], source: str = "concepts") -> list[str]:
    """``concepts`` as a list of distinct non-empty strings (first occurrence kept), or FeatvizError.

    Spaces inside a concept are collapsed to one. At least 2 distinct concepts are needed: a label is the best of
    several candidates. ``source`` names the concepts in error messages (e.g. ``"concept file 'x.txt'"``).

    Example:
        >>> check_concepts(["dog", " cat ", "dog"])
        ['dog', 'cat']
    """
    if isinstance(concepts, (str, bytes)):
        raise FeatvizError(f"{source} must be a list of strings like ['dog', 'cat'], not one string")
    try:
        found = list(concepts)
    except TypeError:
        raise FeatvizError(
            f"{source} must be a list of strings like ['dog', 'cat'], not {type(concepts).__name__}"
        ) from None
    cleaned: list[str] = []
    for concept in found:
        if not isinstance(concept, str) or not concept.strip():
            raise FeatvizError(f"{source} must be non-empty strings like 'dog', got {concept!r}")
        cleaned.append(" ".join(concept.split()))
    distinct = list(dict.fromkeys(cleaned))
    if len(distinct) < MINIMUM_CONCEPTS:
        raise FeatvizError(
            f"{source} holds {len(distinct)} distinct concept{'' if len(distinct) == 1 else 's'}; give at least "
            f"{MINIMUM_CONCEPTS} (a label is the best of several), or use the default list"
        )
    return distinct


__all__ = ["check_concepts", "default_concepts", "read_concepts"]
