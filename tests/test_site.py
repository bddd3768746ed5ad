"""The gallery: manifest (atomic saves, resume, shards) and the static site (pages, links, escaping)."""
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
import torch
from PIL import Image

from featviz.dataset import UnitStats
from featviz.errors import FeatvizError
from featviz.gallery import Manifest, layer_page, layer_slug, unit_paths, write_site, write_unit_examples

EVIL = "<script>alert(1)</script>"
QUOTES = "a\"b'c&d"


def save_png(path: Path, seed: int, size: int = 32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def render_record(site: Path, layer: str, unit: int, negative: bool = True) -> dict:
    """A record as the renderer would add it, with its visualization PNGs written where unit_paths says."""
    paths = unit_paths(layer, unit)
    save_png(site / paths.positive, unit, 48)
    images = {"positive": paths.positive, "diversity": list(paths.diversity)}
    if negative:
        save_png(site / paths.negative, unit + 100, 48)
        images["negative"] = paths.negative
    for index, path in enumerate(paths.diversity):
        save_png(site / path, unit * 10 + index)
    return {"layer": layer, "unit": unit, "objective": f"channel {layer}:{unit}", "steps": 64, "seed": unit,
            "activation": 1.5 + unit, "render_seconds": 0.25, "images": images}


def fake_stats(layer: str, sources: list[Path]) -> UnitStats:
    """Two units; unit 0's best image is sources[1] with its peak at cell (1, 2) of a 4x4 map."""
    return UnitStats(
        layer=layer, paths=[str(path) for path in sources],
        top_values=torch.tensor([[3.0, 2.0], [5.0, 1.0]]), top_images=torch.tensor([[1, 0], [0, 1]]),
        top_positions=torch.tensor([[[1, 2], [0, 0]], [[3, 3], [2, 1]]]), map_size=(4, 4),
        histogram_counts=torch.tensor([[0, 3, 1, 0], [2, 0, 0, 2]]),
        histogram_low=torch.tensor([0.0, -1.0], dtype=torch.float64),
        histogram_width=torch.tensor([0.5, 1.0], dtype=torch.float64), image_count=4, image_size=32,
    )


@pytest.fixture
def site(tmp_path):
    """A site with layer conv1 (3 units, with dataset examples) and two layers with hostile names."""
    site = tmp_path / "site"
    sources = []
    for index in range(2):
        sources.append(tmp_path / "data" / f"photo{index}.png")
        save_png(sources[-1], 50 + index, 40)
    stats = fake_stats("conv1", sources)
    manifest = Manifest(site / "manifest.json")
    for unit in (2, 0, 1):
        record = render_record(site, "conv1", unit)
        if unit < 2:
            record.update(write_unit_examples(site, stats, unit, example_size=32, crop_size=16))
        manifest.add(record)
    manifest.add(render_record(site, EVIL, 5, negative=False))
    manifest.add(render_record(site, EVIL, 0))
    odd = render_record(site, QUOTES, 3)
    odd["images"]["positive"] = "custom/odd name #1 100%.png"  # a path the renderer chose: must be URL-encoded
    save_png(site / odd["images"]["positive"], 7, 48)
    manifest.add(odd)
    manifest.save()
    write_site(site, Manifest(site / "manifest.json"), "tiny<net>", layer_units={"conv1": 8}, thumbnail_size=24)
    return site


class Links(HTMLParser):
    """Collects every href/src and the script tags of a page."""

    def __init__(self):
        super().__init__()
        self.urls, self.scripts, self.navigation = [], [], {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("href", "src"):
            if attrs.get(name):
                self.urls.append(attrs[name])
        if tag == "script":
            self.scripts.append(attrs)
        if tag == "a" and attrs.get("data-nav"):
            self.navigation[attrs["data-nav"]] = attrs["href"]


def parse(page: Path) -> Links:
    links = Links()
    links.feed(page.read_text(encoding="utf-8"))
    return links


def resolve(page: Path, url: str) -> Path:
    return (page.parent / unquote(urlsplit(url).path)).resolve()


def test_manifest_resumes_replaces_and_cleans_values(tmp_path):
    path = tmp_path / "site" / "manifest.json"
    manifest = Manifest(path)
    assert not manifest.is_done("conv1", 0)
    manifest.add({"layer": "conv1", "unit": 0, "steps": 10, "activation": float("nan"), "shape": (2, 3),
                  "value": torch.tensor(1.5)})
    manifest.add({"layer": "conv1", "unit": 1, "steps": 10})
    manifest.add({"layer": "conv1", "unit": 0, "steps": 20, "activation": float("inf")})
    manifest.info["model"] = "tiny"
    manifest.save()
    resumed = Manifest(path)
    assert resumed.is_done("conv1", 0) and resumed.is_done("conv1", 1) and not resumed.is_done("conv1", 2)
    assert resumed.records() == [{"layer": "conv1", "unit": 0, "steps": 20, "activation": None},
                                 {"layer": "conv1", "unit": 1, "steps": 10}]
    assert resumed.info == {"model": "tiny"}
    json.loads(path.read_text())  # strict JSON: no NaN / Infinity
    with pytest.raises(FeatvizError, match="'unit' that is an int >= 0"):
        resumed.add({"layer": "conv1", "unit": -1})
    with pytest.raises(FeatvizError, match="use str, int, float"):
        resumed.add({"layer": "conv1", "unit": 2, "bad": object()})
    path.write_text('{"records": [{"layer": "conv1", "un')
    with pytest.raises(FeatvizError, match="delete it"):
        Manifest(path)


def test_manifest_save_killed_midway_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "manifest.json"
    manifest = Manifest(path)
    manifest.add({"layer": "conv1", "unit": 0})
    manifest.save()
    before = path.read_bytes()
    manifest.add({"layer": "conv1", "unit": 1, "notes": "x" * 10000})

    def half_write_then_die(self, data):
        with open(self, "wb") as handle:
            handle.write(data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_bytes", half_write_then_die)
    with pytest.raises(KeyboardInterrupt):
        manifest.save()
    monkeypatch.undo()
    assert path.read_bytes() == before
    monkeypatch.setattr(os, "replace", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        manifest.save()
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["manifest.json"]  # no temporary file left
    assert len(Manifest(path).records()) == 1
    manifest.save()
    assert Manifest(path).is_done("conv1", 1)


def test_shards_see_each_other_and_merge_into_one_manifest(tmp_path):
    site = tmp_path / "site"
    final = Manifest(site / "manifest.json")
    final.add({"layer": "conv1", "unit": 9, "steps": 1})
    final.save()
    rank0, rank1 = Manifest.shard(site, 0), Manifest.shard(site, 1)
    rank0.add({"layer": "conv1", "unit": 0, "steps": 1})
    rank0.add({"layer": "conv1", "unit": 2, "steps": 1})
    rank0.info["model"] = "tiny"
    rank0.save()
    rank1.add({"layer": "conv1", "unit": 1, "steps": 1})
    rank1.add({"layer": "conv1", "unit": 2, "steps": 2})
    rank1.save()
    assert (site / "manifest-rank0.json").exists() and (site / "manifest-rank1.json").exists()
    resumed = Manifest.shard(site, 3)  # a rerun with another world size skips units any shard finished
    assert all(resumed.is_done("conv1", unit) for unit in (0, 1, 2, 9)) and not resumed.is_done("conv1", 3)
    assert resumed.records() == []

    merged = Manifest.merge(site)
    assert sorted(path.name for path in site.iterdir()) == ["manifest.json"]
    reread = Manifest(site / "manifest.json")
    units = {record["unit"]: record for record in reread.records()}
    assert sorted(units) == [0, 1, 2, 9] and units[2]["steps"] == 2  # the higher rank's record wins
    assert reread.info == {"model": "tiny"} and len(merged) == 4
    assert len(Manifest.merge(site).records()) == 4  # merging again changes nothing


def test_site_pages_exist_and_every_link_resolves(site):
    pages = sorted(site.rglob("*.html"))
    expected = {site / "index.html", site / layer_page("conv1"), site / layer_page(EVIL), site / layer_page(QUOTES)}
    expected |= {site / unit_paths("conv1", unit).page for unit in (0, 1, 2)}
    expected |= {site / unit_paths(EVIL, unit).page for unit in (0, 5)} | {site / unit_paths(QUOTES, 3).page}
    assert set(pages) == expected
    for page in pages:
        links = parse(page)
        assert links.urls, page
        for url in links.urls:
            if url.startswith("data:"):
                continue
            assert not urlsplit(url).scheme and not url.startswith("/"), f"{page}: external or absolute URL {url}"
            assert resolve(page, url).is_file(), f"{page.relative_to(site)} links to missing {url}"
            assert resolve(page, url).is_relative_to(site.resolve())
    assert (site / "assets" / "style.css").is_file() and (site / "assets" / "site.js").is_file()
    assert "custom/odd%20name%20%231%20100%25.png" in (site / unit_paths(QUOTES, 3).page).read_text(encoding="utf-8")


def test_names_are_escaped_everywhere(site):
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "<script>alert" not in text and "<net>" not in text and QUOTES not in text
        scripts = parse(page).scripts
        assert len(scripts) == 1 and scripts[0]["src"].endswith("assets/site.js")  # no inline script at all
    evil_page = (site / unit_paths(EVIL, 5).page).read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in evil_page
    quotes_layer = (site / layer_page(QUOTES)).read_text(encoding="utf-8")
    assert "a&quot;b&#x27;c&amp;d" in quotes_layer
    assert re.fullmatch(r"[a-z0-9._-]+", layer_slug(EVIL)) and layer_slug(EVIL) != layer_slug(EVIL.upper())
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "tiny&lt;net&gt;" in index and "3 of 8 units" in index


def test_unit_pages_link_neighbours_and_show_all_sections(site):
    middle = site / unit_paths("conv1", 1).page
    links = parse(middle)
    assert resolve(middle, links.navigation["prev"]) == (site / unit_paths("conv1", 0).page).resolve()
    assert resolve(middle, links.navigation["next"]) == (site / unit_paths("conv1", 2).page).resolve()
    assert resolve(middle, links.navigation["up"]) == (site / layer_page("conv1")).resolve()
    first = parse(site / unit_paths("conv1", 0).page).navigation
    assert "prev" not in first and "next" in first
    assert "next" not in parse(site / unit_paths("conv1", 2).page).navigation

    text = middle.read_text(encoding="utf-8")
    for url in ("positive.png", "negative.png", "diversity-3.png", "example-0.jpg", "crop-1.jpg"):
        assert url in text
    assert text.count("<rect") == 4  # unit 1's histogram: bins 0..3, nothing to trim
    assert "activation reached" in text and "2.5" in text and "channel conv1:1" in text
    assert (site / unit_paths("conv1", 0).page).read_text(encoding="utf-8").count("<rect") == 2  # 4 bins, 2 trimmed
    no_examples = (site / unit_paths("conv1", 2).page).read_text(encoding="utf-8")
    assert "No dataset examples" in no_examples and "<svg" not in no_examples

    layer = (site / layer_page("conv1")).read_text(encoding="utf-8")
    assert layer.count('loading="lazy"') == 3
    for unit in (0, 1, 2):
        with Image.open(site / unit_paths("conv1", unit).thumbnail) as thumbnail:
            assert max(thumbnail.size) <= 24


def test_dataset_examples_are_written_with_the_crop_around_the_peak(tmp_path):
    source = tmp_path / "photo.png"
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[8:16, 16:24] = (255, 255, 255)  # cell (1, 2) of a 4x4 map
    Image.fromarray(pixels).save(source)
    missing = tmp_path / "gone.png"
    stats = fake_stats("conv1", [missing, source])
    with pytest.warns(UserWarning, match="gone.png"):
        fields = write_unit_examples(tmp_path / "site", stats, 0, example_size=32, crop_size=8, crop_fraction=0.25)
    assert [example["source"] for example in fields["dataset_examples"]] == [str(source)]
    example = fields["dataset_examples"][0]
    assert example["value"] == 3.0 and example["position"] == [1, 2] and example["map_size"] == [4, 4]
    crop = np.asarray(Image.open(tmp_path / "site" / example["crop"]))
    assert crop.mean() > 240  # the 8x8 white square, exactly
    assert Image.open(tmp_path / "site" / example["image"]).size == (32, 32)
    assert fields["histogram"] == {"counts": [0, 3, 1, 0], "edges": [0.0, 0.5, 1.0, 1.5, 2.0], "images": 4}


def test_missing_images_are_left_out_with_one_warning(tmp_path):
    site = tmp_path / "site"
    record = render_record(site, "conv1", 0)
    (site / record["images"]["negative"]).unlink()
    record["images"]["diversity"][0] = "../../outside.png"
    with pytest.warns(UserWarning, match="2 image file"):
        write_site(site, [record], "tiny")
    page = site / unit_paths("conv1", 0).page
    for url in parse(page).urls:
        assert url.startswith("data:") or resolve(page, url).is_file()
    assert "no image" in page.read_text(encoding="utf-8")
    with pytest.raises(FeatvizError, match="'layer'"):
        write_site(site, [{"unit": 0}], "tiny")


def test_a_concept_label_says_it_comes_from_the_images_given_for_labels(tmp_path):
    site = tmp_path / "site"
    labelled = {"concept": "lamp", "concept_score": 0.46, "concept_runners_up": [["lantern", 0.42]]}
    records = [
        {**render_record(site, "conv1", 0), **labelled, "concept_images": 195, "top_words": [["wolf", 0.23]]},
        {**render_record(site, "conv1", 1), **labelled},  # a gallery labelled before the count was recorded
    ]
    write_site(site, records, "tiny")
    with_words = (site / unit_paths("conv1", 0).page).read_text(encoding="utf-8")
    assert "lamp" in with_words and "each of the 195 images given for labels" in with_words
    assert "not from images, so the two can differ" in with_words
    alone = (site / unit_paths("conv1", 1).page).read_text(encoding="utf-8")
    assert "each of the images given for labels" in alone and "can differ" not in alone
    assert "concept_images" not in with_words  # structure, not a metadata row
