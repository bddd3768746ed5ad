"""Words for a gallery of a model with a text tower: each unit's top words by zero-shot ranking, and the table
behind the layer page's search box (word -> the units it points to most).

A word's score on a unit is the unit's entry in the word's text direction in the layer
(`featviz.text.directions.text_directions`, the word put in `WORD_TEMPLATES`), so the top words of a unit are
the reverse of `featviz.text.rank_neurons`: for one unit, the words of a list whose directions weigh most on
it. All words of a layer come from one text-tower encode and one linear map, cached in the site's
``.featviz-cache`` folder.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from featviz.concepts.vocabulary import check_concepts, default_concepts, read_concepts
from featviz.gallery.paths import search_table_path
from featviz.io import atomic_path, write_text
from featviz.models import weights_fingerprint
from featviz.text.directions import text_directions
from featviz.text.prompts import prompt_embeddings
from featviz.text.sentence import SHOWN_CLASSES
from featviz.text.tower import text_tower

#: How a word becomes a prompt for the text tower.
WORD_TEMPLATES = ("a photo of a {}.",)
#: Top words kept per unit, and top units kept per word in the search table.
TOP_WORDS = 8
TOP_UNITS = 12
WordsLike = bool | str | os.PathLike | Sequence[str] | None


def _distinct(words: Sequence[str]) -> list[str]:
    """``words`` without repeats that differ only in case (the search box ignores case), the first kept."""
    seen: set[str] = set()
    found = []
    for word in words:
        if word.lower() not in seen:
            seen.add(word.lower())
            found.append(word)
    return found


def read_words(words: WordsLike) -> list[str] | None:
    """The word list that ``words`` names: None or False (no words); True (`featviz.concepts.default_concepts`);
    a list of words; or the path of a text file with one word (or short phrase) a line, read by
    `featviz.concepts.read_concepts` (blank lines and ``#`` comments skipped). Repeats (any case) are dropped.

    Example:
        >>> read_words(["dog", "Dog", " striped  cat "])
        ['dog', 'striped cat']
    """
    if words is None or words is False:
        return None
    if words is True:
        return _distinct(default_concepts())
    if isinstance(words, (str, os.PathLike)):
        return _distinct(read_concepts(words))
    return _distinct(check_concepts(words, source="words"))


def words_key(words: Sequence[str], templates: Sequence[str] = WORD_TEMPLATES) -> str:
    """A short fingerprint of a word list and its templates: records store it to know their words are current.

    Example:
        >>> words_key(["dog", "cat"]) == words_key(["dog", "cat"]) != words_key(["cat", "dog"])
        True
    """
    return hashlib.sha256("\n".join([*templates, "", *words]).encode()).hexdigest()[:16]


@dataclass
class WordScores:
    """Every word's score on every unit of ``layer``: ``scores[i, u]`` is unit ``u``'s entry in the unit-norm text
    direction of ``words[i]``. ``method`` and ``r2`` say how the directions were found (`featviz.text.directions`).

    Example:
        >>> found = word_scores(model, "layer4", ["dog", "cat", "car"])  # doctest: +SKIP
        >>> found.top_words(7, count=2)  # doctest: +SKIP
        [('dog', 0.118), ('cat', 0.093)]
    """

    layer: str
    words: list[str]
    scores: Tensor
    method: str
    r2: float | None = None

    def top_words(self, unit: int, count: int = TOP_WORDS) -> list[tuple[str, float]]:
        """The ``count`` words with the highest score on ``unit``, best first, with their scores."""
        column = self.scores[:, unit]
        values, indices = column.topk(min(count, column.numel()))
        return [(self.words[index], round(float(value), 5)) for value, index in zip(values.tolist(), indices.tolist())]

    def top_units(self, units: Sequence[int], count: int = TOP_UNITS) -> dict[str, list[list[float | int]]]:
        """For every word, the ``count`` of ``units`` it scores highest on, best first, among those it scores above
        zero on: ``{word: [[unit, score], ...]}`` (what the search table holds; the list is empty for a word
        that points to none of ``units``)."""
        chosen = torch.tensor(list(units), dtype=torch.long)
        if chosen.numel() == 0:
            return {}
        values, positions = self.scores[:, chosen].topk(min(count, chosen.numel()), dim=1)
        table = {}
        for word, row_values, row_positions in zip(self.words, values.tolist(), positions.tolist()):
            table[word] = [
                [int(chosen[position]), round(value, 4)] for value, position in zip(row_values, row_positions) if value > 0
            ]
        return table


def word_scores(
    model: Any,
    layer: str,
    words: Sequence[str],
    *,
    templates: Sequence[str] = WORD_TEMPLATES,
    cache_dir: str | os.PathLike | None = None,
) -> WordScores:
    """Every word's text direction in ``layer`` (one encode, one linear map), as a `WordScores` table.

    With ``cache_dir`` the table is kept there (keyed by the model's weights, the layer, the words and the
    templates) and read back by later calls.

    Example:
        >>> import featviz
        >>> model = featviz.load_model("open_clip:featviz-tiny-RN", weights="random")
        >>> word_scores(model, "layer4", ["dog", "cat"]).scores.shape
        torch.Size([2, 512])
    """
    words = read_words(list(words))
    path = _cache_file(cache_dir, "words", ".pt", _model_key(model), layer, words_key(words, templates))
    if path is not None and path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            return WordScores(layer, list(saved["words"]), saved["scores"].float(), saved["method"], saved["r2"])
        except Exception:  # noqa: BLE001 - an unreadable cache file is recomputed and replaced
            pass
    embeddings = _word_embeddings(model, words, templates, cache_dir)
    found = text_directions(model, layer, words, templates=templates, embeddings=embeddings)
    scores = WordScores(layer, words, found.vectors.float(), found.method, found.r2)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temporary:
            torch.save(
                {"words": words, "scores": scores.scores.half(), "method": scores.method, "r2": scores.r2}, temporary
            )
        scores.scores = scores.scores.half().float()  # the same numbers a later call reads back
    return scores


def _cache_file(cache_dir: str | os.PathLike | None, kind: str, suffix: str, *keys: str) -> Path | None:
    """``cache_dir/KIND-HASH.SUFFIX``, the hash fingerprinting ``keys``; None without a ``cache_dir``."""
    if cache_dir is None:
        return None
    return Path(cache_dir) / f"{kind}-{hashlib.sha256('|'.join(keys).encode()).hexdigest()[:24]}{suffix}"


def _model_key(model: Any) -> str:
    """What decides a model's word embeddings and directions: its weights (a CLIP text tower's included) and its
    text tower's kind and settings (a classifier's tower: its classes, templates and temperature)."""
    tower = text_tower(model)
    settings = [getattr(tower, name, None) for name in ("classes", "templates", "architecture", "temperature")]
    return f"{model.name}|{weights_fingerprint(model)}|{type(tower).__name__}|{settings!r}"


def _word_embeddings(model: Any, words: list[str], templates: Sequence[str], cache_dir: Any) -> Any:
    """The words' text embeddings, encoded once for every layer of a gallery (kept in ``cache_dir`` when given)."""
    path = _cache_file(cache_dir, "word-embeddings", ".pt", _model_key(model), words_key(words, templates))
    if path is not None and path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - an unreadable cache file is recomputed and replaced
            pass
    embeddings = prompt_embeddings(model, words, templates).detach().cpu().float()
    if path is not None:
        with atomic_path(path) as temporary:
            torch.save(embeddings, temporary)
    return embeddings


def resolves_words(model: Any) -> bool:
    """Whether ``model``'s text tower says what a word became (a classifier's tower does, a CLIP tower does not).

    Example:
        >>> resolves_words(model), resolves_words(featviz.load_model("open_clip:featviz-tiny-RN", weights="random"))
        (True, False)
    """
    return callable(getattr(getattr(model, "text", None), "resolve", None))


def word_resolutions(
    model: Any,
    words: Sequence[str],
    *,
    templates: Sequence[str] = WORD_TEMPLATES,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, dict[str, Any]] | None:
    """What each word became on a classifier (``model.text.resolve``, one batched call for all words, each word
    put in ``templates`` as its text direction is), or None for a text tower that does not resolve (CLIP).

    Each entry holds the `SHOWN_CLASSES` largest classes ``[[label, weight], ...]``, ``more`` (the distribution
    has further classes), ``exact`` (the word is a class name or synonym) and ``flat`` (it names no class).
    With several templates a word's weights are the mean over its sentences (exact or flat under every one).
    With ``cache_dir`` the entries are kept there, keyed by the model and the words, and read back later.

    Example:
        >>> word_resolutions(model, ["goldfish", "tench"])["goldfish"]      # EfficientNet-Lite0's classifier tower
        {'classes': [['goldfish', 1.0]], 'more': False, 'exact': True, 'flat': False}
    """
    if not resolves_words(model):
        return None
    words = read_words(list(words))
    path = _cache_file(cache_dir, "word-resolutions", ".json", _model_key(model), words_key(words, templates))
    if path is not None and path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(saved, dict) and list(saved) == words:
                return saved
        except (OSError, ValueError):  # an unreadable cache file is recomputed and replaced
            pass
    found = model.text.resolve([template.format(word) for word in words for template in templates])
    table = {}
    for index, word in enumerate(words):
        sentences = found[index * len(templates):(index + 1) * len(templates)]
        weights: dict[str, float] = {}
        for resolution in sentences:
            for label, weight in resolution.classes:
                weights[label] = weights.get(label, 0.0) + weight / len(sentences)
        ranked = sorted(weights.items(), key=lambda pair: -pair[1])  # stable: ties keep the tower's order
        table[word] = {
            "classes": [[label, round(weight, 3)] for label, weight in ranked[:SHOWN_CLASSES]],
            "more": len(ranked) > SHOWN_CLASSES,
            "exact": all(resolution.exact for resolution in sentences),
            "flat": all(resolution.flat for resolution in sentences),
        }
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(table, ensure_ascii=True, separators=(",", ":")))
    return table


def resolution_mark(entry: Mapping[str, Any]) -> str:
    """How the pages mark a word from its `word_resolutions` entry: ``"a class name"`` (exact), ``"names no class"``
    (flat) or ``""``.

    Example:
        >>> resolution_mark({"classes": [["brass", 0.15]], "flat": True})
        'names no class'
    """
    return "a class name" if entry.get("exact") else "names no class" if entry.get("flat") else ""


def resolution_line(word: str, entry: Mapping[str, Any]) -> str:
    """The short line that says what ``word`` became, from its `word_resolutions` entry (what the pages show,
    followed by its `resolution_mark`).

    Example:
        >>> resolution_line("crane", {"classes": [["crane bird", 0.5], ["crane", 0.5]], "exact": True})
        'crane → crane bird 0.50, crane 0.50'
        >>> resolution_line("irony", {"classes": [["brass", 0.15]], "more": True, "flat": True})
        'irony → brass 0.15, …'
    """
    classes = ", ".join(f"{label} {float(weight):.2f}" for label, weight in entry.get("classes") or [])
    return f"{word} → {classes}{', …' if entry.get('more') else ''}"


def write_search_table(
    site_dir: str | os.PathLike,
    layer: str,
    words: Mapping[str, Sequence[Sequence[float]]] | None = None,
    labels: Mapping[str, Sequence[Sequence[float]]] | None = None,
    word_count: int | None = None,
    resolved: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Write ``site_dir/search/LAYER.js``, the table the layer page's search box reads: ``words`` maps a word to
    its top units ``[[unit, score], ...]`` (zero-shot), ``labels`` a concept to the units labelled with it.

    ``word_count`` is the size of the word list the gallery was built with (default: the number of ``words``);
    the search box names it when a word is not in the list. ``resolved`` maps a word to what it became on a
    classifier (its `word_resolutions` entry, shown above the units found); CLIP galleries have none.

    The table is a script (``window.featvizSearch[layer] = {...}``) rather than a JSON file so that the site
    works when opened from disk, where browsers refuse to fetch files.

    Example:
        >>> write_search_table("site", "layer4", {"dog": [[7, 0.118], [3, 0.09]]}, {"dog": [[7, 0.31]]})  # doctest: +SKIP
        PosixPath('site/search/layer4.js')
    """
    data = {
        "layer": layer,
        "words": {word: [list(pair) for pair in pairs] for word, pairs in (words or {}).items()},
        "labels": {concept: [list(pair) for pair in pairs] for concept, pairs in (labels or {}).items()},
        "word_count": int(word_count if word_count is not None else len(words or {})),
        "resolved": {
            word: {**entry, "line": resolution_line(word, entry), "mark": resolution_mark(entry)}
            for word, entry in (resolved or {}).items()
        },
    }
    encoded = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    script = (
        "// featviz gallery search table, written at build time\n"
        f"(window.featvizSearch = window.featvizSearch || {{}})[{json.dumps(layer, ensure_ascii=True)}] = {encoded};\n"
    )
    return write_text(Path(site_dir) / search_table_path(layer), script)


__all__ = [
    "TOP_UNITS", "TOP_WORDS", "WORD_TEMPLATES", "WordScores", "read_words", "resolution_line", "resolution_mark",
    "resolves_words", "word_resolutions", "word_scores", "words_key", "write_search_table",
]
