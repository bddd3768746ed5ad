"""A classifier gallery's top words say what each word became: on EfficientNet-Lite0's classifier, whose units are
classes (0 tench, 1 goldfish, 2 great white shark, 3 tiger shark), a word is resolved to a distribution over the
classes once per build, and the unit pages and the layer page's search box show it. One tiny gallery is built once
for the module (2 steps at 64 px). CLIP galleries, which have no resolutions, are tested in test_gallery_search."""
import html
import json
import os
from pathlib import Path

import pytest

from featviz.gallery import build_gallery, layer_page, unit_paths
from featviz.gallery.words import WORD_TEMPLATES, search_table_path, word_resolutions
from test_gallery_search import CHROMIUM, CHROMIUM_ARGS, browser_missing

LAYERS = ["classifier", "global_pool"]
EVIL = "<img src=x onerror=alert(1)>"
FLAT = "irony"  # names no ImageNet class: its largest weight is under featviz.text.sentence.FLAT
WORDS = ["goldfish", "fish", FLAT, "tench", EVIL]
SETTINGS = {"units": "0-3", "steps": 2, "size": 64, "batch": 4, "progress": False}


@pytest.fixture(scope="module")
def built(lite0, tmp_path_factory):
    """The gallery, and how many times the build called the tower's resolve (and with how many prompts)."""
    site = tmp_path_factory.mktemp("resolutions") / "site"
    calls = []
    resolve = lite0.text.resolve

    def counted(prompts):
        calls.append(len(prompts))
        return resolve(prompts)

    lite0.text.resolve = counted
    try:
        summary = build_gallery(lite0, LAYERS, out=site, words=WORDS, **SETTINGS)
        again = build_gallery(lite0, LAYERS, out=site, words=WORDS, **SETTINGS)  # reads the cache: no call
    finally:
        del lite0.text.resolve
    assert summary.rendered == 8 and again.rendered == 0
    return site, calls


def table(site: Path, layer: str) -> dict:
    script = (site / search_table_path(layer)).read_text()
    return json.loads(script[script.index("= {") + 2:].rstrip().rstrip(";"))


def records(site: Path, layer: str) -> dict[int, dict]:
    found = json.loads((site / "manifest.json").read_text())["records"]
    return {record["unit"]: record for record in found if record["layer"] == layer}


def test_words_are_resolved_once_per_build(built):
    site, calls = built
    assert calls == [len(WORDS) * len(WORD_TEMPLATES)]  # one batched call for both layers, none when rebuilt
    assert table(site, "classifier")["resolved"] == table(site, "global_pool")["resolved"]


def test_search_table_says_what_each_word_became(lite0, built):
    site, _ = built
    found = table(site, "classifier")
    assert [unit for unit, _ in found["words"]["goldfish"]][0] == 1  # typing goldfish finds the goldfish unit
    goldfish = found["resolved"]["goldfish"]
    assert goldfish["line"] == "goldfish → goldfish 1.00" and goldfish["mark"] == "a class name"
    assert goldfish["exact"] and not goldfish["flat"]
    flat = found["resolved"][FLAT]
    assert flat["flat"] and not flat["exact"] and flat["mark"] == "names no class"
    assert flat["line"].startswith(f"{FLAT} → ") and len(flat["classes"]) == 3
    assert lite0.text.resolve(WORD_TEMPLATES[0].format(FLAT)).flat  # the tower's own verdict
    fish = found["resolved"]["fish"]
    assert not fish["exact"] and not fish["flat"] and fish["mark"] == ""
    assert set(found["resolved"]) == set(WORDS)


def test_unit_pages_show_what_each_top_word_became(built):
    site, _ = built
    record = records(site, "classifier")[1]
    assert record["top_words"][0][0] == "goldfish"
    assert record["top_words_resolved"]["goldfish"]["classes"] == [["goldfish", 1.0]]
    page = (site / unit_paths("classifier", 1).page).read_text()
    assert (
        '<span class="resolved exact" title="goldfish → goldfish 1.00 (a class name)">→ goldfish 1.00 '
        '<span class="mark">a class name</span></span>'
    ) in page
    assert f'<span class="resolved flat" title="{FLAT} → ' in page and "names no class</span>" in page
    assert EVIL not in page and html.escape(EVIL, quote=True) in page  # a word from a user's file stays text


def test_word_resolutions_without_a_classifier_tower_is_none():
    from featviz.models import load_model

    from featviz_testing import tiny_convnet

    assert word_resolutions(load_model(tiny_convnet(), input_size=(32, 32)), ["dog"]) is None


def test_search_box_shows_what_a_word_became_above_the_units(built):
    reason = browser_missing()
    if reason is not None:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"the browser test must run under CI but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    site, _ = built
    problems = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
        page = browser.new_page()
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("dialog", lambda dialog: problems.append(f"dialog opened: {dialog.message}"))
        page.goto((site / layer_page("classifier")).as_uri())
        box = page.locator("#unit-search-input")
        box.fill("Goldfish")
        page.locator(".search-hit").first.wait_for(timeout=10_000)
        shown = page.locator(".search-results > *")
        assert shown.first.get_attribute("class") == "search-resolved exact"
        assert shown.first.inner_text() == "goldfish → goldfish 1.00 a class name"
        assert page.locator(".search-hit").first.get_attribute("data-unit") == "1"
        box.fill(FLAT)
        assert page.locator(".search-resolved.flat .mark").inner_text() == "names no class"
        box.fill(EVIL)
        assert page.locator(".search-resolved").inner_text().startswith(f"{EVIL} → ")
        assert page.locator(".search-results img:not(.thumb)").count() == 0
        box.fill("zebra")  # not in the list: nothing to resolve
        assert page.locator(".search-resolved").count() == 0
        box.fill("constructor")  # a name every object inherits is not a word of the list
        assert "not in this gallery's word list" in page.locator(".search-missing").inner_text()
        browser.close()
    assert problems == []
