"""The documentation site: built by `mkdocs build --strict`, then opened in headless Chromium, served over HTTP
from 127.0.0.1 (as `mkdocs serve` or any static web server would; the search needs a server).

The site is the one in $FEATVIZ_DOCS_SITE when that is set (.ci/run builds it once and sets it); otherwise this
module builds it into a temporary folder with FEATVIZ_DOCS_QUICK=1 (few steps, small images; a few minutes on
two cores). Skipped when the docs extra is not installed (pip install -e '.[docs]'); the browser test also
needs /usr/bin/chromium and playwright, and fails without them under CI, like the gallery's browser test.
Screenshots go to tests/artifacts/.
"""
from __future__ import annotations

import functools
import http.server
import importlib.util
import os
import re
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from test_browser import ALL_IMAGES_DONE, ARTIFACTS, BROKEN_IMAGES, browser  # noqa: F401 - browser is a fixture

ROOT = Path(__file__).resolve().parents[1]
DOCS_PACKAGES = ("mkdocs", "material", "mkdocstrings_handlers.python", "mkdocs_gallery", "mkdocs_awesome_nav")
# The three pages the browser opens: the landing page, one API page, one example of the gallery.
PAGES = ("", "api/objectives/", "generated/gallery/plot_01_channels/")


def missing_docs_extra() -> str | None:
    for package in DOCS_PACKAGES:
        try:
            found = importlib.util.find_spec(package)
        except ModuleNotFoundError:
            found = None
        if found is None:
            return f"the docs extra is not installed ({package} is missing): pip install -e '.[docs]'"
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    given = os.environ.get("FEATVIZ_DOCS_SITE")
    if given:
        folder = Path(given)
        assert (folder / "index.html").is_file(), f"FEATVIZ_DOCS_SITE={given} holds no built site"
        return folder
    reason = missing_docs_extra()
    if reason is not None:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("docs") / "site"
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=ROOT, env={**os.environ, "FEATVIZ_DOCS_QUICK": "1"}, capture_output=True, text=True, timeout=1800,
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    return folder


class PageParser(HTMLParser):
    """The links, image sources and navigation links of one built page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.links.append(values["href"])
        if tag == "img" and values.get("src"):
            self.images.append(values["src"])


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def local_target(page: Path, reference: str) -> Path | None:
    """The file a relative link or image source of ``page`` points to (a folder's ``index.html``: pages are
    folders), or None for external and anchor links."""
    parts = urlsplit(reference)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    target = (page.parent / unquote(parts.path)).resolve()
    return target / "index.html" if target.is_dir() else target


def built(site: Path, page: str) -> Path:
    """The HTML file of the docs page ``page`` (a path in docs/ without .md)."""
    return site / page / "index.html"


def test_every_local_link_and_image_of_the_site_exists(site):
    broken = []
    for page in sorted(site.rglob("*.html")):
        if page.relative_to(site).parts[0] == "showcase":
            continue  # featviz gallery's own site, checked by tests/test_site.py
        # The 404 page is served at whatever path was not found, so its links start at the site's root.
        base = site / "index.html" if page == site / "404.html" else page
        parsed = parse(page)
        for reference in parsed.links + parsed.images:
            target = local_target(base, reference.lstrip("/") if base != page else reference)
            if target is not None and not target.exists():
                broken.append(f"{page.relative_to(site)} -> {reference}")
    assert broken == []


def test_pages_from_the_folders_and_includes_are_in_the_site(site):
    index = parse(site / "index.html")
    navigation = {local_target(site / "index.html", link) for link in index.links}
    # Pages that other work adds to docs/recipes, docs/concepts and docs/how-to appear in the navigation by
    # themselves (mkdocs-awesome-nav), without editing mkdocs.yml.
    for folder in ("recipes", "concepts", "how-to"):
        for source in sorted((ROOT / "docs" / folder).glob("*.md")):
            page = built(site, f"{folder}/{source.stem}").resolve()
            assert page.is_file(), page
            assert page in navigation, f"{folder}/{source.name} is not in the navigation"
    # The speed page's appendix includes benchmarks/RESULTS.md when the site is built: its first table row is there.
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    first_row = next(line for line in results.splitlines() if line.startswith("| ") and "---" not in line)
    first_cell = first_row.split("|")[1].strip()
    assert first_cell in built(site, "speed-notebook").read_text(encoding="utf-8")
    # The showcase gallery is served from the repository's gallery/ folder.
    assert (site / "showcase" / "index.html").read_bytes() == (ROOT / "gallery" / "index.html").read_bytes()
    # The API reference is generated from the docstrings, examples included.
    api = built(site, "api/objectives").read_text(encoding="utf-8")
    assert "featviz.objectives.units.channel" in api and "Maximize the mean of one channel" in api


def test_guides_and_references_are_in_the_navigation(site):
    """The pages of issue 20: the command-line reference (generated from the parsers), the CLIP and reading
    guides, the benchmark notebook; the API reference in PAGES' order, public names before the modules."""
    index = parse(site / "index.html")
    navigation = [local_target(site / "index.html", link) for link in index.links]
    for page in ("cli", "clip", "reading", "speed", "speed-notebook"):
        assert built(site, page).resolve() in navigation, page
    from featviz.cli import build_parser

    commands = next(action for action in build_parser()._actions if hasattr(action, "choices") and
                    isinstance(action.choices, dict)).choices
    cli = built(site, "cli").read_text(encoding="utf-8")
    for name in commands:
        assert f'id="{name}"' in cli, name
    api = [target for target in navigation if target is not None and "/api/" in target.as_posix()]
    order = [target.parent.name for target in api]
    assert order[:3] == ["api", "renderer", "objectives"], order  # api/index.html, then renderer, objectives
    objectives = built(site, "api/objectives").read_text(encoding="utf-8")
    assert objectives.index("featviz.objectives.units.channel") < objectives.index("featviz.objectives.algebra")


def test_every_gallery_example_shows_the_images_its_script_made(site):
    scripts = sorted((ROOT / "docs" / "examples" / "gallery").glob("plot_*.py"))
    assert len(scripts) >= 5
    for script in scripts:
        page = built(site, f"generated/gallery/{script.stem}")
        images = [source for source in parse(page).images if re.search(rf"mkd_glr_{script.stem}_\d+\.png$", source)]
        assert images, f"{page.name} shows no image made by {script.name}"
        for source in images:
            target = local_target(page, source)
            assert target is not None and target.stat().st_size > 0


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the name the base class uses
        pass


@pytest.fixture(scope="module")
def served(site):
    """The site's base URL, served from 127.0.0.1 by a thread of this process."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_pages_load_every_image_without_console_errors(served, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = []
    page.on("request", lambda request: problems.append(f"request to another host: {request.url}")
            if not request.url.startswith((served, "data:")) else None)
    page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
            if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url} {request.failure}")
            if request.failure != "net::ERR_ABORTED" else None)
    ARTIFACTS.mkdir(exist_ok=True)
    for name in PAGES:
        page.goto(served + name)
        page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")  # lazy images load in view
        page.wait_for_function(ALL_IMAGES_DONE, timeout=20_000)
        assert page.evaluate(BROKEN_IMAGES) == [], name
        assert page.evaluate("() => document.images.length") > 0 or name.startswith("api/"), name
        assert page.locator("nav.md-nav--primary").count() > 0, name  # the theme's navigation rendered
        page.evaluate("() => window.scrollTo(0, 0)")
        shot = ARTIFACTS / f"docs-{Path(name).name or 'index'}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 0
    # The gallery example shows the rendered channels under its code, and the search finds the API.
    page.goto(served + PAGES[2])
    assert page.locator("img[src*='mkd_glr_plot_01_channels']").count() >= 1
    page.goto(served)
    page.keyboard.press("/")
    page.keyboard.type("total_variation")
    page.wait_for_selector(".md-search-result__item", timeout=20_000)
    assert problems == []
    page.close()
