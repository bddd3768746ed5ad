"""Every Python block of README.md and docs/*.md runs, through pytest-examples.

A page is one test: its blocks run in order in one namespace, as a reader pastes them one after another into
one session (a block may use what an earlier block of its page defined), in a fresh temporary folder. Quick
mode: every render (`Renderer.render`, which `featviz.render`, `dream` and `build_gallery` go through) runs at
most 2 steps, whatever the block asks, `dream` shows the model 2 views a step, and `build_gallery` renders
units 0-1 of each layer; everything else runs as written.

Weights that no test can have (pretrained downloads fail without a network) are replaced in the open, never
skipped silently: a model name with a pretrained default or tag (``open_clip:RN50``, ``open_clip:ViT-B-32/openai``,
``torchvision:resnet50``) and the weights files that the pages name for them (`WEIGHTS_FILES`) load the same
architecture at random init: the same layer names, sizes and code path, images that mean nothing. A block
that cannot run at all says so in its page, on the line before its fence, and is reported as skipped with
that reason: ``<!-- docs-test: skip because ... -->``.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from pytest_examples import CodeExample, find_examples

import featviz
import featviz.gallery
import featviz.recipes
from featviz.models import registry
from featviz.renderer.renderer import Renderer

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
QUICK_STEPS = 2
# Checkpoint files the pages name for CLIP models whose weights must come from the user (docs/text.md says how).
WEIGHTS_FILES = {"clip.safetensors", "RN50.pt", "~/Downloads/RN50.pt", "ViT-B-32.pt"}
# Sources whose default weights are a download.
DOWNLOADED = ("open_clip:", "torchvision:", "timm:")
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s+(.+?)\s*-->\s*$")


def _blocks(page: Path) -> list[tuple[CodeExample, str | None]]:
    """The page's Python blocks with the skip reason written before each (None: it runs)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found = []
    for example in find_examples(page):
        if example.prefix.split(" ")[0] not in ("py", "python"):
            continue
        before = next((line for line in reversed(lines[: example.start_line - 1]) if line.strip()), "")
        match = SKIP.match(before.strip())
        found.append((example, match.group(1) if match else None))
    return found


BLOCKS = {page: _blocks(page) for page in PAGES}
RUNNABLE = [page for page, blocks in BLOCKS.items() if any(reason is None for _, reason in blocks)]
SKIPPED = [(page, example, reason) for page, blocks in BLOCKS.items() for example, reason in blocks if reason]


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.fixture
def quick_and_offline(monkeypatch, tmp_path):
    """Renders of at most QUICK_STEPS steps; downloaded weights and the pages' CLIP files -> random init."""
    render = Renderer.render

    def quick_render(self, *args, steps: int = 512, **options):
        return render(self, *args, steps=min(steps, QUICK_STEPS), **{**options, "progress": False})

    resolve, from_name = registry.resolve_weights_argument, registry._from_name

    def resolve_weights(weights):
        return "random" if isinstance(weights, str) and weights in WEIGHTS_FILES else resolve(weights)

    built: dict = {}  # a page that names one model in several blocks builds it once

    def build(name, weights):
        weights = "random" if weights is None and name.startswith(DOWNLOADED) else weights
        key = (name, str(weights))
        if key not in built:
            built[key] = from_name(name, weights)
        return built[key]

    build_gallery = featviz.gallery.build_gallery

    def quick_gallery(*args, **options):
        return build_gallery(*args, **{**options, "units": "0-1", "progress": False})

    dream = featviz.recipes.dream

    def quick_dream(*args, **options):
        return dream(*args, **{**options, "views": 2, "progress": False})

    monkeypatch.setattr(Renderer, "render", quick_render)
    monkeypatch.setattr(featviz.recipes, "dream", quick_dream)
    monkeypatch.setattr(featviz.gallery, "build_gallery", quick_gallery)
    monkeypatch.setattr(registry, "resolve_weights_argument", resolve_weights)
    monkeypatch.setattr(registry, "_from_name", build)
    monkeypatch.chdir(tmp_path)


def test_the_pages_have_python_blocks():
    # A broken finder must not pass by finding nothing: the README and the Objectives page have blocks.
    assert {ROOT / "README.md", ROOT / "docs" / "objectives.md"} <= set(RUNNABLE)
    assert sum(len(blocks) for blocks in BLOCKS.values()) >= 20


@pytest.mark.parametrize("page", RUNNABLE, ids=_name)
def test_python_blocks_of_the_page_run(page, quick_and_offline, eval_example, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])  # pytest-examples runs blocks as __main__
    namespace: dict = {}
    for example, reason in BLOCKS[page]:
        if reason is None:
            failure = None
            try:
                defined = eval_example.run(example, module_globals=namespace, rewrite_assertions=False)
            except Exception as error:  # reported by hand: pytest's traceback of the block's file breaks on 3.11
                failure = (f"{_name(page)}, block at line {example.start_line}, line {_failing_line(error, tmp_path)}: "
                           f"{type(error).__name__}: {error}")
            if failure is not None:
                pytest.fail(failure, pytrace=False)
            namespace = {key: value for key, value in defined.items() if not key.startswith("__")}


def _failing_line(error: BaseException, folder: Path) -> int | str:
    """The line of the page where ``error`` was raised (pytest-examples runs a block as a file in ``folder``
    whose line numbers are the page's)."""
    trace, line = error.__traceback__, "?"
    while trace is not None:
        if trace.tb_frame.f_code.co_filename.startswith(str(folder)):
            line = trace.tb_lineno
        trace = trace.tb_next
    return line


@pytest.mark.parametrize(
    "page, example, reason", SKIPPED, ids=[f"{_name(page)}:{example.start_line}" for page, example, _ in SKIPPED]
)
def test_blocks_marked_as_not_runnable(page, example, reason):
    pytest.skip(f"{_name(page)} line {example.start_line}: {reason}")
