"""The generated reference pages (command line, API order) and the CLIP guide's script (docs/clip.md).

The page generators are the mkdocs hooks in docs/hooks/, tested here without building the site; the API test
needs griffe (the docs extra) and is skipped without it. The built pages are checked by tests/test_docs_site.py.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOOKS = ROOT / "docs" / "hooks"
SCRIPT = ROOT / "docs" / "examples" / "clip_neuron.py"


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_has_every_command_and_option():
    from featviz.cli import build_parser

    parser = build_parser()
    page = load(HOOKS / "cli_page.py").page(parser)
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction)).choices
    assert len(commands) >= 18
    headings = re.findall(r"^## (\S+) \{#", page, flags=re.MULTILINE)
    assert headings == list(commands)  # every command, in `featviz --help`'s order
    for name, sub in commands.items():
        section = page.split(f"## {name} {{#{name}}}", 1)[1].split("\n## ", 1)[0]
        assert f"featviz {name} " in section  # its usage line
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in section, (name, option)
    render = page.split("## render {#render}", 1)[1].split("\n## ", 1)[0]
    assert "| `--steps STEPS` | optimization steps (default 512) |" in render


def test_cli_reference_follows_the_parsers():
    """A command added to the parser (as another module of featviz/cli/ would add it) is on the page, with its
    options; the page is made from the parser, not from a list."""
    parser = argparse.ArgumentParser(prog="featviz")
    subparsers = parser.add_subparsers(dest="command")
    added = subparsers.add_parser("dictionary", help="train a sparse dictionary on a layer")
    added.add_argument("model")
    added.add_argument("--concepts", type=int, default=64, help="dictionary size (default %(default)s)")
    added.add_argument("--method", choices=("topk", "nmf"), default="topk")
    page = load(HOOKS / "cli_page.py").page(parser)
    assert "`featviz` has 1 commands" in page
    assert "| [dictionary](#dictionary) | train a sparse dictionary on a layer |" in page
    assert "| `--method METHOD` | one of: topk, nmf |" in page
    assert "| `--concepts CONCEPTS` | dictionary size (default 64) |" in page
    assert "featviz dictionary [-h] [--concepts CONCEPTS] [--method {topk,nmf}] model" in page


@pytest.fixture(scope="module")
def api_pages():
    pytest.importorskip("griffe", reason="the docs extra is not installed: pip install -e '.[docs]'")
    pytest.importorskip("mkdocs")
    return load(HOOKS / "api_pages.py")


def test_api_pages_start_with_what_the_package_exports(api_pages):
    for key, (_, _, targets) in api_pages.PAGES.items():
        if key == "index":
            continue
        page = api_pages._page(key)
        public, modules = page.split("## Public API", 1)[1].split("## Modules", 1)
        shown = re.findall(r"^::: (\S+)$", public, flags=re.MULTILINE)
        assert shown, key
        assert len(shown) == len(set(shown)), key  # nothing twice
        for target in targets:  # every exported function and class is in the public part
            package = importlib.import_module(target)
            for name in getattr(package, "__all__", ()):
                value = getattr(package, name)
                if callable(value) and getattr(value, "__module__", "").startswith("featviz."):
                    canonical = f"{value.__module__}.{value.__qualname__}"
                    assert canonical in shown, (key, name)
        listed = re.findall(r"^::: (\S+)$", modules, flags=re.MULTILINE)
        assert listed == [module for target in targets for module in api_pages._modules(target)]  # then every module, with what it defines beyond those
    objectives = api_pages._page("objectives")
    first = re.findall(r"^::: (\S+)$", objectives, flags=re.MULTILINE)[:3]
    assert first == ["featviz.objectives.units.channel", "featviz.objectives.units.neuron",
                     "featviz.objectives.units.layer"]
    assert api_pages._page("renderer").index("::: featviz.renderer.renderer.render\n") < \
        api_pages._page("renderer").index("::: featviz.renderer.renderer.Renderer\n")
    assert "members: ['Stack']" in objectives  # algebra's Stack, not its exported `stack`, under Modules


def test_api_navigation_follows_pages(api_pages):
    navigation = api_pages._navigation()
    assert navigation.splitlines()[1:] == [f"  - {key}.md" for key in api_pages.PAGES]
    assert list(api_pages.PAGES)[:3] == ["index", "renderer", "objectives"]


def isolated_environment(tmp_path: Path) -> dict[str, str]:
    """No weights anywhere: an empty home (so an empty ~/.cache/clip) and Hugging Face cache, offline."""
    return {**os.environ, "HOME": str(tmp_path / "home"), "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_OFFLINE": "1", "FEATVIZ_CACHE": str(tmp_path / "cache")}


def test_clip_script_stops_with_one_line_without_weights(tmp_path):
    out = tmp_path / "clip-neuron"
    result = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], check=False, capture_output=True, text=True,
                            env=isolated_environment(tmp_path), timeout=600, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clip_neuron.py: error: "), result.stderr
    assert "open_clip:RN50x4/openai" in lines[0] and "weights" in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_clip_script_runs_end_to_end_on_a_tiny_clip(tmp_path, monkeypatch):
    from PIL import Image
    from skimage import data

    folders = {}
    for name, photos in (("textures", ("brick", "grass", "gravel")), ("subjects", ("cat", "astronaut", "camera"))):
        folder = folders[name] = tmp_path / name
        folder.mkdir()
        for photo in photos:
            image = Image.fromarray(getattr(data, photo)()).convert("L").convert("RGB")
            side = min(image.size) // 2
            for index in range(2):
                corner = index * side // 2
                image.crop((corner, corner, corner + side, corner + side)).resize((64, 64)).save(
                    folder / f"{photo}{index}.png")
    out = tmp_path / "site"
    script = load(SCRIPT)
    code = script.main(["--model", "open_clip:featviz-tiny-RN", "--weights", "random", "--layer", "layer4.0",
                        "--unit", "3", "--steps", "4", "--size", "64", "--examples", "2",
                        "--words", "dog,piggy bank,money,cat,price", "--facet-positive", str(folders["textures"]),
                        "--facet-negative", str(folders["subjects"]), "--out", str(out), "--no-progress"])
    assert code == 0
    search = (out / "search.txt").read_text(encoding="utf-8").splitlines()
    assert search[0].startswith("open_clip:featviz-tiny-RN, layer4.0:3")
    assert [line.split(":")[0].strip() for line in search[1:]] == [repr(p) for p in script.FINANCE_PROMPTS]
    assert all(re.search(r"rank \d+ of 512$", line) for line in search[1:])
    assert (out / "index.html").is_file() and (out / "textures.pt").is_file()
    record, = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["records"]
    assert (record["layer"], record["unit"]) == ("layer4.0", 3)
    words = ["dog", "piggy bank", "money", "cat", "price"]
    assert record["concept"] in words and sorted(word for word, _ in record["top_words"]) == sorted(words)
    assert record["facet_strength"] == 5.0
    for path in (record["images"]["positive"], record["images"]["negative"], *record["images"]["diversity"],
                 record["images"]["facets"]["textures"]):
        assert (out / path).is_file(), path
    assert "textures" in (out / "units" / "layer4.0" / "3.html").read_text(encoding="utf-8")


def test_facet_layers_are_every_other_block_of_layer3():
    script = load(SCRIPT)

    class Fake:
        name = "fake"

        def __init__(self, count):
            self.count = count

        def layer_names(self):
            return ["layer3"] + [f"layer3.{index}" for index in range(self.count)] + ["layer3.1.conv1"]

    assert script.facet_layers(Fake(10)) == ["layer3.1", "layer3.3", "layer3.5", "layer3.7", "layer3.9"]
    assert script.facet_layers(Fake(1)) == ["layer3.0"]
