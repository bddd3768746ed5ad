"""A static gallery site: plain HTML, CSS and JS files that work from disk (file://) or any web server.

No external URL, CDN or build step. File layout (paths relative to the site folder; ``LAYER`` is
`layer_slug` of the layer name, ``UNIT`` the unit number)::

    index.html                        the layers, their unit counts and a few preview thumbnails
    layers/LAYER.html                 a grid of the layer's unit thumbnails (lazy-loaded), linking to unit pages;
                                      with a search table, a box that finds units by a word
    units/LAYER/UNIT.html             one unit: visualizations, diversity set, concept label and top words,
                                      faceted renders, dataset examples, histogram, conditional probabilities,
                                      metadata
    images/LAYER/UNIT/positive.png    the unit's visualizations, written by the renderer (see `featviz.gallery.paths.unit_paths`)
    images/LAYER/UNIT/negative.png
    images/LAYER/UNIT/diversity-I.png I = 0, 1, 2, 3
    images/LAYER/UNIT/thumbnail.png   a small copy of the positive image, made by `write_site`
    images/LAYER/UNIT/example-I.jpg   dataset example I as the model saw it, and
    images/LAYER/UNIT/crop-I.jpg      its crop around the spot where the unit fires most (`featviz.gallery.pictures.write_unit_examples`)
    images/LAYER/UNIT/facet-NAME.png  the positive visualization steered towards a facet (a probe's name)
    images/LAYER/UNIT/conditional.svg the unit's conditional-probability plot
    images/dataset/NAME-HASH.jpg      dataset images shared by all units (`write_unit_examples(shared_images=True)`)
    assets/style.css, assets/site.js  copied from featviz/gallery/assets (and assets/search.js)
    search/LAYER.js                   the layer's search table (`featviz.gallery.words.write_search_table`)
    manifest.json                     the records the pages are made from (`featviz.gallery.manifest`)

Every name written into HTML is escaped (``html.escape(..., quote=True)``) and every URL is percent-encoded,
so layer names like ``<script>`` or quotes are shown, never interpreted. Unit pages answer the keys
ArrowLeft / ``k`` (previous unit), ArrowRight / ``j`` (next unit), ``u`` / Escape (up to the layer page); layer
pages answer the same keys for the previous / next layer and the index. Every file is written atomically.
"""
from __future__ import annotations

import html
import importlib.resources
import os
import warnings
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import quote


from featviz.errors import FeatvizError
from featviz.gallery.manifest import Manifest, record_key
from featviz.gallery.paths import layer_page, layer_slug, search_table_path, unit_paths
from featviz.gallery.pictures import make_thumbnail
from featviz.gallery.words import resolution_line, resolution_mark
from featviz.io import ensure_writable_dir, write_bytes
from featviz.text.directions import POOR_FIT

ASSETS = ("style.css", "site.js", "search.js")
KNOWN_KEYS = ("objective", "steps", "seed", "activation", "render_seconds")
STRUCTURE_KEYS = frozenset({
    "layer", "unit", "images", "dataset_examples", "histogram", "parts", "top_words", "top_words_resolved", "concept",
    "concept_score", "concept_runners_up", "concept_images",
})


def _text(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _href(prefix: str, path: str) -> str:
    return html.escape(prefix + quote(path, safe="/"), quote=True)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class _SiteFiles:
    """Checks that the image paths records name exist inside the site; remembers the ones that do not."""

    def __init__(self, site_dir: Path) -> None:
        self.site_dir = site_dir
        self.missing: list[str] = []

    def get(self, path: Any) -> str | None:
        if not isinstance(path, str) or not path:
            return None
        relative = PurePosixPath(path.replace("\\", "/"))
        if relative.is_absolute() or ".." in relative.parts or not (self.site_dir / relative).is_file():
            self.missing.append(path)
            return None
        return relative.as_posix()


def _write_if_changed(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    write_bytes(path, data)


Link = tuple[str, str]  # (label, site-relative path)
UNIT_KEYS = (
    "<kbd>&larr;</kbd>/<kbd>k</kbd> previous, <kbd>&rarr;</kbd>/<kbd>j</kbd> next, <kbd>u</kbd>/<kbd>Esc</kbd> layer"
)
LAYER_KEYS = (
    "<kbd>&larr;</kbd>/<kbd>k</kbd> previous layer, <kbd>&rarr;</kbd>/<kbd>j</kbd> next layer, "
    "<kbd>u</kbd>/<kbd>Esc</kbd> index"
)


def _page(
    title: str, depth: int, kind: str, crumbs: Sequence[tuple[str, str | None]], body: str, nav: str = "",
    scripts: Sequence[str] = (),
) -> str:
    prefix = "../" * depth
    extra = "".join(f"<script src=\"{_href(prefix, script)}\" defer></script>\n" for script in scripts)
    trail = " <span class=\"sep\">/</span> ".join(
        f"<a href=\"{_href(prefix, link)}\">{_text(label)}</a>" if link is not None else f"<span>{_text(label)}</span>"
        for label, link in crumbs
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_text(title)}</title>\n<link rel=\"icon\" href=\"data:,\">\n"
        f"<link rel=\"stylesheet\" href=\"{_href(prefix, 'assets/style.css')}\">\n"
        f"<script src=\"{_href(prefix, 'assets/site.js')}\" defer></script>\n{extra}</head>\n"
        f"<body class=\"{kind}\">\n<header><nav class=\"crumbs\">{trail}</nav>{nav}</header>\n"
        f"<main>\n{body}\n</main>\n<footer>Made with featviz.</footer>\n</body>\n</html>\n"
    )


def _pager(prefix: str, previous: Link | None, up: Link, following: Link | None, keys: str) -> str:
    """The visible previous / up / next links; site.js follows them on key presses (``data-nav``)."""

    def link(role: str, target: Link | None, text: str) -> str:
        if target is None:
            return f"<span class=\"disabled\">{text.format('')}</span>"
        label, path = target
        relation = f" rel=\"{role}\"" if role != "up" else ""
        return f"<a data-nav=\"{role}\"{relation} href=\"{_href(prefix, path)}\">{text.format(_text(label))}</a>"

    return (
        f"<nav class=\"pager\">{link('prev', previous, '&larr; {}')} {link('up', up, '{}')} "
        f"{link('next', following, '{} &rarr;')}<span class=\"keys\">{keys}</span></nav>"
    )


def _histogram_svg(histogram: Any) -> str:
    """An inline SVG bar chart of a record's histogram, empty bins at both ends trimmed; "" without data."""
    if not isinstance(histogram, Mapping):
        return ""
    counts, edges = histogram.get("counts"), histogram.get("edges")
    if not isinstance(counts, list) or not isinstance(edges, list) or len(edges) != len(counts) + 1:
        return ""
    if not all(isinstance(number, (int, float)) for number in counts + edges):
        return ""
    filled = [index for index, count in enumerate(counts) if count > 0]
    if not filled:
        return ""
    first, last = filled[0], filled[-1]
    counts, edges = counts[first:last + 1], edges[first:last + 2]
    width, height, axis = 480.0, 120.0, 16.0
    bar = width / len(counts)
    peak = max(counts)
    bars = []
    for index, count in enumerate(counts):
        bar_height = (height - axis) * count / peak
        span = f"{_number(float(edges[index]))} to {_number(float(edges[index + 1]))}"
        bars.append(
            f"<rect x=\"{index * bar:.2f}\" y=\"{height - axis - bar_height:.2f}\" width=\"{max(bar - 1, 0.5):.2f}\" "
            f"height=\"{bar_height:.2f}\"><title>{_text(span)}: {int(count)} images</title></rect>"
        )
    total = histogram.get("images", sum(counts))
    label = f"histogram of the per-image mean activation over {_number(total)} images"
    baseline = f"{height - axis:.0f}"
    return (
        f"<svg class=\"histogram\" viewBox=\"0 0 {width:.0f} {height:.0f}\" role=\"img\" aria-label=\"{_text(label)}\">"
        f"{''.join(bars)}<line x1=\"0\" y1=\"{baseline}\" x2=\"{width:.0f}\" y2=\"{baseline}\"/>"
        f"<text x=\"0\" y=\"{height - 3:.0f}\">{_text(_number(float(edges[0])))}</text>"
        f"<text x=\"{width:.0f}\" y=\"{height - 3:.0f}\" text-anchor=\"end\">{_text(_number(float(edges[-1])))}</text>"
        "</svg>"
    )


def _figure(prefix: str, path: str | None, alt: str, caption: str, css: str) -> str:
    picture = (
        f"<img src=\"{_href(prefix, path)}\" alt=\"{_text(alt)}\">" if path is not None
        else "<div class=\"missing\">no image</div>"
    )
    return f"<figure class=\"{css}\">{picture}<figcaption>{_text(caption)}</figcaption></figure>"


def _mapping(record: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = record.get(key)
    return value if isinstance(value, Mapping) else {}


def _list(record: Mapping[str, Any], key: str) -> list[Any]:
    value = record.get(key)
    return value if isinstance(value, list) else []


def _example_cards(prefix: str, examples: list[Any], files: _SiteFiles) -> list[str]:
    cards = []
    for index, example in enumerate(examples):
        if not isinstance(example, Mapping):
            continue
        # Only the file name: the site may be published, the absolute source path stays in the manifest.
        source = PurePosixPath(str(example.get("source", f"example {index}")).replace("\\", "/")).name
        value = example.get("value")
        caption = f"max {_text(_number(value))}" if isinstance(value, (int, float)) else ""
        whole, crop = files.get(example.get("image")), files.get(example.get("crop"))
        pictures = "".join(
            f"<img src=\"{_href(prefix, path)}\" alt=\"{_text(what + source)}\" title=\"{_text(source)}\" "
            "loading=\"lazy\">"
            for path, what in ((whole, "dataset image "), (crop, "crop of "))
            if path is not None
        )
        cards.append(
            f"<figure class=\"example\"><div class=\"pair\">{pictures}</div><figcaption>{caption}</figcaption></figure>"
        )
    return cards


def _metadata_table(record: Mapping[str, Any]) -> str:
    rows = [(key, record[key]) for key in KNOWN_KEYS if key in record]
    rows += sorted(
        (key, value) for key, value in record.items()
        if key not in STRUCTURE_KEYS and key not in KNOWN_KEYS and isinstance(value, (str, int, float, bool))
    )
    labels = {"activation": "activation reached", "render_seconds": "render time (s)"}
    cells = "".join(
        f"<tr><th>{_text(labels.get(key, key.replace('_', ' ')))}</th><td>{_text(_number(value))}</td></tr>"
        for key, value in rows
    )
    return f"<table class=\"meta\">{cells}</table>"


def _scored(value: Any) -> list[tuple[str, float]]:
    """``[[name, score], ...]`` (or ``{"word"|"concept": name, "score": score}`` items) as pairs; bad items dropped."""
    pairs = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, Mapping):
            item = (item.get("word", item.get("concept")), item.get("score"))
        if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str):
            score = item[1]
            if isinstance(score, (int, float)) and not isinstance(score, bool):
                pairs.append((item[0], float(score)))
    return pairs


def _resolution(word: str, entry: Any) -> str:
    """What a top word became on a classifier (its `featviz.gallery.words.word_resolutions` entry), as a line under
    the word: the classes it resolved to, marked when the word is a class name or names no class; "" without."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("classes"), list):
        return ""
    try:
        line = resolution_line(word, entry)
    except (TypeError, ValueError):  # a hand-edited record: show nothing rather than fail the page
        return ""
    mark = resolution_mark(entry)
    kind = " exact" if entry.get("exact") else " flat" if entry.get("flat") else ""
    shown = line[len(word) + 1:]  # "→ LABEL WEIGHT, ...": the word stands just above
    badge = f" <span class=\"mark\">{_text(mark)}</span>" if mark else ""
    title = f"{line} ({mark})" if mark else line
    return f"<span class=\"resolved{kind}\" title=\"{_text(title)}\">{_text(shown)}{badge}</span>"


def _meaning_section(prefix: str, layer: str, record: Mapping[str, Any], searchable: bool) -> str:
    """The unit's concept label (with its score and runners-up) and its top words, or "" when it has neither."""
    blocks = []
    concept = record.get("concept")
    if isinstance(concept, str) and concept:
        score = record.get("concept_score")
        shown = f" <span class=\"score\">score {_text(_number(score))}</span>" if isinstance(score, (int, float)) else ""
        others = ", ".join(f"{_text(name)} ({_text(_number(value))})" for name, value in _scored(record.get("concept_runners_up")))
        runners = f"<p class=\"note\">Runners-up: {others}</p>" if others else ""
        count = record.get("concept_images")
        images = f"the {count} images" if isinstance(count, int) and count > 0 else "the images"
        source = (
            f"<p class=\"note\">The concept whose match to each of {images} given for labels best follows this "
            "unit's activation over them (CLIP-Dissect): it can name only what those images show."
            + (" The top words come from the unit's text directions, not from images, so the two can differ."
               if record.get("top_words") else "")
            + "</p>"
        )
        blocks.append(
            f"<h3>Concept label</h3><p class=\"concept\"><span class=\"concept-name\">{_text(concept)}</span>{shown}</p>"
            f"{runners}{source}"
        )
    words = _scored(record.get("top_words"))
    if words:
        peak = max(abs(score) for _, score in words) or 1.0
        resolved = _mapping(record, "top_words_resolved")
        items = []
        for word, score in words:
            label = _text(word)
            if searchable:
                label = f"<a href=\"{_href(prefix, layer_page(layer))}#search={quote(word, safe='')}\">{label}</a>"
            width = max(score, 0) / peak * 100
            items.append(
                f"<li><span class=\"word\">{label}</span><span class=\"bar\" style=\"width:{width:.0f}%\"></span>"
                f"<span class=\"score\">{_text(_number(score))}</span>{_resolution(word, resolved.get(word))}</li>"
            )
        r2 = record.get("words_r2")
        caution = ""
        if isinstance(r2, (int, float)) and r2 < POOR_FIT:
            caution = (
                f"<p class=\"note\">This layer's text directions come from a linear map that predicts held-out photos "
                f"poorly (R² {_text(_number(float(r2)))}): read these words with care; later layers fit better.</p>"
            )
        if resolved:
            caution += (
                "<p class=\"note\">The model is a classifier: a word means the classes it resolves to, shown under "
                "it (at most 3, with their weights).</p>"
            )
        blocks.append(
            "<h3>Top words (zero-shot: the words whose text direction weighs most on this unit)</h3>"
            f"{caution}<ol class=\"top-words\">{''.join(items)}</ol>"
        )
    if not blocks:
        return ""
    return f"<section class=\"meaning\"><h2>What it stands for</h2>{''.join(blocks)}</section>"


def _unit_body(
    prefix: str, layer: str, unit: int, record: Mapping[str, Any], files: _SiteFiles, searchable: bool = False
) -> str:
    images = _mapping(record, "images")
    name = f"layer {layer} unit {unit}"
    parts = [f"<h1>{_text(layer)} <span class=\"unit\">unit {unit}</span></h1>"]
    large = [
        _figure(prefix, files.get(images[kind]), f"{kind} visualization of {name}", kind, "large")
        for kind in ("positive", "negative") if images.get(kind)
    ]
    if large:
        parts.append(f"<section class=\"visualizations\">{''.join(large)}</section>")
    diversity = _list(images, "diversity")
    if diversity:
        figures = "".join(
            _figure(prefix, files.get(path), f"diversity image {index} of {name}", f"#{index}", "diverse")
            for index, path in enumerate(diversity)
        )
        parts.append(f"<section><h2>Diversity</h2><div class=\"row\">{figures}</div></section>")
    meaning = _meaning_section(prefix, layer, record, searchable)
    if meaning:
        parts.append(meaning)
    facets = _mapping(images, "facets")
    if facets:
        strength = record.get("facet_strength")
        suffix = f" (strength {_number(strength)})" if isinstance(strength, (int, float)) else ""
        figures = "".join(
            _figure(prefix, files.get(path), f"{facet} facet of {name}", f"{facet}{suffix}", "diverse facet")
            for facet, path in facets.items()
        )
        parts.append(f"<section><h2>Facets</h2><div class=\"row\">{figures}</div></section>")
    cards = _example_cards(prefix, _list(record, "dataset_examples"), files)
    histogram = _histogram_svg(record.get("histogram"))
    if cards or histogram:
        grid = f"<div class=\"examples\">{''.join(cards)}</div>" if cards else ""
        chart = f"<h3>Per-image mean activation</h3>{histogram}" if histogram else ""
        parts.append(f"<section><h2>Dataset examples</h2>{grid}{chart}</section>")
    else:
        parts.append(
            "<section><h2>Dataset examples</h2><p class=\"note\">No dataset examples for this unit "
            "(render with a folder of images to add them).</p></section>"
        )
    conditional = files.get(images.get("conditional")) if images.get("conditional") else None
    if conditional is not None:
        parts.append(
            "<section><h2>Conditional probability</h2><img class=\"conditional\" "
            f"src=\"{_href(prefix, conditional)}\" alt=\"{_text(f'conditional-probability plot of {name}')}\">"
            "</section>"
        )
    parts.append(f"<section><h2>Details</h2>{_metadata_table(record)}</section>")
    return "\n".join(parts)


def _card_label(record: Mapping[str, Any] | None) -> str:
    """A unit card's concept label (from the record), or ""."""
    concept = record.get("concept") if isinstance(record, Mapping) else None
    if not isinstance(concept, str) or not concept:
        return ""
    return f"<span class=\"label\" title=\"{_text(concept)}\">{_text(concept)}</span>"


def _search_box(layer: str) -> str:
    """The layer page's search form; assets/search.js fills it from the layer's search table."""
    return (
        f"<section class=\"unit-search\" data-layer=\"{_text(layer)}\" "
        f"data-units=\"{_href('../', f'units/{layer_slug(layer)}/')}\" "
        f"data-images=\"{_href('../', f'images/{layer_slug(layer)}/')}\">"
        "<form role=\"search\"><label for=\"unit-search-input\">Find units by a word</label> "
        "<input id=\"unit-search-input\" type=\"search\" list=\"unit-search-words\" autocomplete=\"off\" "
        "placeholder=\"e.g. dog, water, striped\"><datalist id=\"unit-search-words\"></datalist></form>"
        "<div class=\"search-results\" aria-live=\"polite\"></div></section>"
    )


def _records_by_layer(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[int, Mapping[str, Any]]]:
    layers: dict[str, dict[int, Mapping[str, Any]]] = {}
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise FeatvizError(
                f"manifest record {index} is a {type(record).__name__}; records are dicts with 'layer' and 'unit'"
            )
        layer, unit = record_key(record, f"manifest record {index}")
        layers.setdefault(layer, {})[unit] = record
    return {layer: dict(sorted(units.items())) for layer, units in layers.items()}


def _neighbours(items: Sequence[Any], position: int) -> tuple[Any | None, Any | None]:
    previous = items[position - 1] if position > 0 else None
    following = items[position + 1] if position + 1 < len(items) else None
    return previous, following


class _SiteWriter:
    """Writes the pages of one site; keeps what every page needs (thumbnails, title, sizes)."""

    def __init__(self, site_dir: Path, model_name: str, title: str, thumbnail_size: int, previews: int) -> None:
        self.site_dir = site_dir
        self.model_name = model_name
        self.title = title
        self.thumbnail_size = thumbnail_size
        self.previews = previews
        self.files = _SiteFiles(site_dir)
        self.thumbnails: dict[tuple[str, int], str | None] = {}

    def search_table(self, layer: str) -> str | None:
        """The layer's search table (site-relative) when the build wrote one."""
        path = search_table_path(layer)
        return path if (self.site_dir / path).is_file() else None

    def make_thumbnails(self, layers: Mapping[str, Mapping[int, Mapping[str, Any]]]) -> None:
        for layer, units in layers.items():
            for unit, record in units.items():
                images = _mapping(record, "images")
                diversity = _list(images, "diversity")
                source = self.files.get(images.get("positive")) or self.files.get(diversity[0] if diversity else None)
                target = unit_paths(layer, unit).thumbnail
                made = make_thumbnail(self.site_dir, source, target, self.thumbnail_size) if source else None
                self.thumbnails[layer, unit] = made
        self.files.missing.clear()  # the unit pages report each missing file once

    def thumb(self, prefix: str, layer: str, unit: int) -> str:
        size = self.thumbnail_size
        path = self.thumbnails[layer, unit]
        if path is None:
            return f"<span class=\"missing thumb\" style=\"width:{size}px;height:{size}px\">{unit}</span>"
        return (
            f"<img class=\"thumb\" src=\"{_href(prefix, path)}\" width=\"{size}\" height=\"{size}\" loading=\"lazy\" "
            f"alt=\"{_text(f'layer {layer} unit {unit}')}\">"
        )

    def unit_page(self, layer: str, units: Mapping[int, Mapping[str, Any]], unit: int, position: int) -> None:
        unit_list = list(units)
        previous, following = _neighbours(unit_list, position)
        def link(other: int | None) -> Link | None:
            return None if other is None else (f"unit {other}", unit_paths(layer, other).page)

        nav = _pager("../../", link(previous), (layer, layer_page(layer)), link(following), UNIT_KEYS)
        crumbs = [(self.model_name, "index.html"), (layer, layer_page(layer)), (f"unit {unit}", None)]
        searchable = self.search_table(layer) is not None
        body = _unit_body("../../", layer, unit, units[unit], self.files, searchable)
        page = _page(f"{layer} unit {unit} - {self.title}", 2, "unit-page", crumbs, body, nav)
        _write_if_changed(self.site_dir / unit_paths(layer, unit).page, page)

    def layer_page(
        self, layers: Sequence[str], position: int, units: Sequence[int], count: str,
        records: Mapping[int, Mapping[str, Any]] | None = None,
    ) -> None:
        layer = layers[position]
        records = records or {}
        previous, following = _neighbours(layers, position)
        def link(other: str | None) -> Link | None:
            return None if other is None else (other, layer_page(other))

        nav = _pager("../", link(previous), ("index", "index.html"), link(following), LAYER_KEYS)
        cards = "".join(
            f"<a class=\"unit-card\" href=\"{_href('../', unit_paths(layer, unit).page)}\">"
            f"{self.thumb('../', layer, unit)}<span>{unit}</span>{_card_label(records.get(unit))}</a>"
            for unit in units
        )
        table = self.search_table(layer)
        search = _search_box(layer) if table is not None else ""
        body = (
            f"<h1>{_text(layer)}</h1><p class=\"count\">{_text(count)}</p>{search}<div class=\"grid\">{cards}</div>"
        )
        crumbs = [(self.model_name, "index.html"), (layer, None)]
        scripts = (table, "assets/search.js") if table is not None else ()
        page = _page(f"{layer} - {self.title}", 1, "layer-page", crumbs, body, nav, scripts)
        _write_if_changed(self.site_dir / layer_page(layer), page)

    def index_card(self, layer: str, units: Sequence[int], count: str) -> str:
        preview = "".join(
            f"<a href=\"{_href('', unit_paths(layer, unit).page)}\">{self.thumb('', layer, unit)}</a>"
            for unit in units[: self.previews]
        )
        return (
            f"<li class=\"layer-card\"><h2><a href=\"{_href('', layer_page(layer))}\">{_text(layer)}</a></h2>"
            f"<p class=\"count\">{_text(count)}</p><div class=\"previews\">{preview}</div></li>"
        )

    def index_page(self, cards: list[str]) -> Path:
        listing = (
            f"<ul class=\"layers\">{''.join(cards)}</ul>" if cards else "<p class=\"note\">No finished units yet.</p>"
        )
        page = _page(self.title, 0, "index-page", [(self.model_name, None)], f"<h1>{_text(self.title)}</h1>\n{listing}")
        path = self.site_dir / "index.html"
        _write_if_changed(path, page)
        return path


def _copy_assets(site_dir: Path) -> None:
    assets = importlib.resources.files("featviz.gallery").joinpath("assets")
    for asset in ASSETS:
        data = assets.joinpath(asset).read_bytes()
        target = site_dir / "assets" / asset
        if not target.exists() or target.read_bytes() != data:
            write_bytes(target, data)


def write_site(
    site_dir: str | os.PathLike,
    manifest_records: Iterable[Mapping[str, Any]] | Manifest,
    model_name: str,
    *,
    title: str | None = None,
    layer_units: Mapping[str, int] | None = None,
    thumbnail_size: int = 96,
    previews: int = 8,
) -> Path:
    """Write the gallery's pages for ``manifest_records`` into ``site_dir`` and return the path of index.html.

    Layers appear in the order of their first record, units in numeric order (a later record of the same unit
    wins). ``layer_units`` gives each layer's total unit count, shown as "12 of 192 units" while a render is
    under way. Thumbnails, at most ``thumbnail_size`` pixels a side (at least 8), are made from each unit's
    positive image (or its first diversity image) when missing or older; the index shows up to ``previews`` of
    each layer's thumbnails. ``model_name`` starts every page's breadcrumbs; ``title`` heads the index page and
    ends every page's HTML title (default: ``"MODEL_NAME: feature visualizations"``). Image paths in the records
    must be relative to ``site_dir`` and inside it; the ones that do not exist are left out of the pages with one
    warning. Unchanged pages are not rewritten.

    Example:
        >>> write_site("site", Manifest("site/manifest.json"), "efficientnet_lite0")
        PosixPath('site/index.html')
    """
    site_dir = ensure_writable_dir(site_dir)
    if isinstance(manifest_records, Manifest):
        manifest_records = manifest_records.records()
    if isinstance(thumbnail_size, bool) or not isinstance(thumbnail_size, int) or thumbnail_size < 8:
        raise FeatvizError(f"thumbnail_size must be an int >= 8 (pixels), not {thumbnail_size!r}")
    if isinstance(previews, bool) or not isinstance(previews, int) or previews < 0:
        raise FeatvizError(f"previews must be an int >= 0, not {previews!r}")
    layers = _records_by_layer(manifest_records)
    _copy_assets(site_dir)
    title = title or f"{model_name}: feature visualizations"
    writer = _SiteWriter(site_dir, model_name, title, thumbnail_size, previews)
    writer.make_thumbnails(layers)
    layer_names = list(layers)
    cards = []
    for layer_position, (layer, units) in enumerate(layers.items()):
        for unit_position, unit in enumerate(units):
            writer.unit_page(layer, units, unit, unit_position)
        total = (layer_units or {}).get(layer)
        done = len(units)
        count = f"{done} of {total} units" if total else f"{done} unit{'' if done == 1 else 's'}"
        writer.layer_page(layer_names, layer_position, list(units), count, units)
        cards.append(writer.index_card(layer, list(units), count))
    index_path = writer.index_page(cards)
    missing = writer.files.missing
    if missing:
        warnings.warn(
            f"{len(missing)} image file(s) named in the records are missing or outside '{site_dir}' and were "
            f"left out of the pages (e.g. {', '.join(missing[:3])})",
            stacklevel=2,
        )
    return index_path
