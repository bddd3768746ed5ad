"""Galleries of models with a text tower: each unit's top words (the reverse of zero-shot neuron ranking), the
layer page's search box (typed into in headless Chromium), and adding words to a finished gallery without
rendering it again. One tiny random-init CLIP gallery is built once for the module."""
import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

import featviz
from featviz.cli import main
from featviz.errors import FeatvizError
from featviz.gallery import build_gallery, layer_page, unit_paths
from featviz.gallery.words import WORD_TEMPLATES, read_words, search_table_path
from featviz.text import rank_neurons
from featviz.text.directions import text_directions

LAYER = "transformer.resblocks.1"
EVIL = "<img src=x onerror=alert(1)>"
WORDS = ["dog", "cat", "car", "water", "fire", "tree", "house", "striped", "bird", "doughnut", EVIL]
SETTINGS = {"units": "0-5", "steps": 2, "size": 64, "batch": 6, "progress": False}
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return featviz.load_model("open_clip:featviz-tiny-ViT", weights="random")


@pytest.fixture(scope="module")
def site(clip, tmp_path_factory):
    site = tmp_path_factory.mktemp("search") / "site"
    summary = build_gallery(clip, [LAYER], out=site, words=WORDS, **SETTINGS)
    assert summary.rendered == 6
    return site


def records(site: Path) -> dict[int, dict]:
    return {record["unit"]: record for record in json.loads((site / "manifest.json").read_text())["records"]}


def search_table(site: Path) -> dict:
    script = (site / search_table_path(LAYER)).read_text()
    return json.loads(script[script.index("= {") + 2:].rstrip().rstrip(";"))


def test_top_words_are_the_words_whose_direction_weighs_most_on_the_unit(clip, site):
    directions = text_directions(clip, LAYER, WORDS, templates=WORD_TEMPLATES).vectors
    for unit, record in records(site).items():
        expected = [WORDS[index] for index in directions[:, unit].argsort(descending=True)[:8].tolist()]
        assert [word for word, _ in record["top_words"]] == expected
        assert record["top_words"][0][1] == pytest.approx(float(directions[:, unit].max()), abs=2e-3)


def test_search_table_agrees_with_zero_shot_neuron_ranking(clip, site):
    table = search_table(site)
    assert table["word_count"] == len(WORDS) and set(table["words"]) == set(WORDS)
    for word in ("dog", "water"):
        ranked = rank_neurons(clip, LAYER, word, templates=WORD_TEMPLATES, top=64)
        in_gallery = [found.unit for found in ranked if found.unit <= 5 and found.score > 0]
        assert [unit for unit, _ in table["words"][word]] == in_gallery


def test_adding_words_later_renders_nothing_again(clip, site):
    images = sorted(site.glob("images/*/*/positive.png"))
    stamps = {path: path.stat().st_mtime_ns for path in images}
    again = build_gallery(clip, [LAYER], out=site, words=WORDS, **SETTINGS)
    assert (again.rendered, again.annotated, again.skipped) == (0, 0, 6)
    more = build_gallery(clip, [LAYER], out=site, words=[*WORDS, "zebra"], **SETTINGS)
    assert (more.rendered, more.annotated) == (0, 6)
    assert {path: path.stat().st_mtime_ns for path in images} == stamps
    assert all(len(record["top_words"]) == 8 for record in records(site).values())
    assert "zebra" in search_table(site)["words"]
    build_gallery(clip, [LAYER], out=site, words=WORDS, **SETTINGS)  # back to the list the browser test expects


def test_clip_words_have_no_resolutions(clip, site):
    # only a classifier's tower says what a word became (test_gallery_resolutions); a CLIP tower encodes it as is
    assert search_table(site)["resolved"] == {}
    assert all("top_words_resolved" not in record for record in records(site).values())
    page = (site / unit_paths(LAYER, 0).page).read_text()
    assert "class=\"top-words\"" in page and "class=\"resolved" not in page


def test_word_lists_from_files_and_mistakes(tmp_path):
    listing = tmp_path / "words.txt"
    listing.write_text("# animals\ndog\n\nDog\n  red   fox \n")
    assert read_words(listing) == ["dog", "red fox"]
    with pytest.raises(FeatvizError, match="does not exist"):
        read_words(tmp_path / "missing.txt")
    with pytest.raises(FeatvizError, match="non-empty strings"):
        read_words(["dog", "  "])
    with pytest.raises(FeatvizError, match="no text tower"):
        build_gallery(_no_text_model(), ["4"], out=tmp_path / "s", words=WORDS, **SETTINGS)
    assert not (tmp_path / "s" / "manifest.json").exists()


def _no_text_model():
    from featviz.models import load_model

    from featviz_testing import tiny_convnet

    return load_model(tiny_convnet(), input_size=(32, 32))  # no class names: no text tower


def test_cli_words_and_its_mistakes(capsys, tmp_path):
    command = ["gallery", "open_clip:featviz-tiny-ViT", "--weights", "random", "--layers", LAYER, "--units", "0-1",
               "--steps", "1", "--no-progress", "--out", str(tmp_path / "site")]
    assert main([*command, "--words", "dog,water,fire"]) == 0
    assert capsys.readouterr().out.startswith("rendered 2 units")
    assert [word for word, _ in records(tmp_path / "site")[0]["top_words"]] != []
    assert set(search_table(tmp_path / "site")["words"]) == {"dog", "water", "fire"}
    for extra, expected in ((["--words", str(tmp_path / "nothing.txt")], "--words"), (["--labels"], "images")):
        assert main([*command, *extra, "--out", str(tmp_path / "other")]) == 2
        error = capsys.readouterr().err.strip()
        assert expected in error and "\n" not in error


def browser_missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install playwright)"
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    return None


def test_search_box_finds_units_by_a_word_and_says_when_a_word_is_unknown(site):
    reason = browser_missing()
    if reason is not None:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"the browser test must run under CI but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    expected = [unit for unit, _ in search_table(site)["words"]["dog"]]
    assert expected, "the tiny CLIP's 'dog' direction points to some unit of the gallery"
    problems = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
        page = browser.new_page()
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        page.on("dialog", lambda dialog: problems.append(f"dialog opened: {dialog.message}"))
        page.goto((site / layer_page(LAYER)).as_uri())
        box = page.locator("#unit-search-input")
        box.fill("  DOG ")
        hits = page.locator(".search-hit")
        hits.first.wait_for(timeout=10_000)
        assert [int(hit.get_attribute("data-unit")) for hit in hits.all()] == expected
        assert page.locator(".search-hit .search-score").first.inner_text().startswith("score ")

        box.fill(EVIL)  # a word of the list that is markup: shown as text, never run
        assert EVIL in page.locator(".search-results").inner_text()
        assert page.locator(".search-results img:not(.thumb)").count() == 0

        box.fill("zebra")
        assert "not in this gallery's word list" in page.locator(".search-missing").inner_text()
        assert "no text tower" in page.locator(".search-missing").inner_text()
        assert page.locator(".search-hit").count() == 0

        box.fill("do")  # unknown, but words of the list start with it
        suggestions = page.locator(".search-suggestion")
        assert suggestions.all_inner_texts() == ["dog", "doughnut"]
        suggestions.first.click()
        assert box.input_value() == "dog" and page.locator(".search-hit").count() == len(expected)

        hits.first.click()
        page.wait_for_url((site / unit_paths(LAYER, expected[0]).page).as_uri(), timeout=10_000)
        shown = page.locator(".top-words .word").all_inner_texts()
        assert shown == [word for word, _ in records(site)[expected[0]]["top_words"]]
        page.locator(".top-words .word a").first.click()  # back to the layer page, searching for the unit's top word
        page.wait_for_function("() => document.querySelector('#unit-search-input').value !== ''", timeout=10_000)
        assert page.locator("#unit-search-input").input_value() == shown[0]
        browser.close()
    assert problems == []
