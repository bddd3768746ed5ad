"""The gallery in a real browser: headless Chromium driven by Playwright opens the site from disk (file://).

Needs /usr/bin/chromium (apt-get install -y chromium) and the playwright package (pip install playwright;
never `playwright install`: the system Chromium is used). Without them the test is skipped, except under CI
(environment variable CI set), where it fails. Screenshots go to tests/artifacts/.
"""
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from featviz.dataset import UnitStats
from featviz.gallery import Manifest, layer_page, unit_paths, write_site, write_unit_examples

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
EVIL = "<script>alert(1)</script>"
ALL_IMAGES_DONE = "() => Array.from(document.images).every(image => image.complete)"
BROKEN_IMAGES = "() => Array.from(document.images).filter(image => image.naturalWidth === 0).map(image => image.src)"


def missing_browser() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install playwright)"
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    return None


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def browser():
    reason = missing_browser()
    if reason is not None:
        if running_in_ci():
            pytest.fail(f"the browser test must run under CI but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
        yield chromium
        chromium.close()


def save_png(path: Path, seed: int, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    gradient = np.linspace(0, 255, size, dtype=np.float64)
    noise = rng.uniform(0, 255, (size, size))
    pixels = np.stack([np.add.outer(gradient, gradient) / 2, np.tile(gradient, (size, 1)), noise], 2)
    Image.fromarray(pixels.astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Three units of conv1 (unit 1 with dataset examples) and one unit of a layer with a hostile name."""
    root = tmp_path_factory.mktemp("browser")
    site = root / "site"
    sources = []
    for index in range(3):
        sources.append(root / "data" / f"photo {index}.png")
        save_png(sources[-1], index, 48)
    stats = UnitStats(
        layer="conv1", paths=[str(path) for path in sources],
        top_values=torch.tensor([[3.0, 2.0, 1.0]] * 2), top_images=torch.tensor([[2, 0, 1]] * 2),
        top_positions=torch.tensor([[[0, 0], [1, 1], [3, 2]]] * 2), map_size=(4, 4),
        histogram_counts=torch.tensor([[1, 4, 2, 0, 3, 0]] * 2), histogram_low=torch.zeros(2, dtype=torch.float64),
        histogram_width=torch.ones(2, dtype=torch.float64), image_count=10, image_size=48,
    )
    manifest = Manifest(site / "manifest.json")
    for layer, unit in (("conv1", 0), ("conv1", 1), ("conv1", 2), (EVIL, 4)):
        paths = unit_paths(layer, unit)
        for seed, path in enumerate((paths.positive, paths.negative, *paths.diversity)):
            save_png(site / path, unit * 10 + seed, 64 if seed < 2 else 32)
        record = {"layer": layer, "unit": unit, "objective": "channel", "steps": 32, "seed": 0, "activation": 1.0,
                  "render_seconds": 0.5, "images": {"positive": paths.positive, "negative": paths.negative,
                                                    "diversity": list(paths.diversity)}}
        if unit == 1:
            record.update(write_unit_examples(site, stats, unit, example_size=48, crop_size=24))
        manifest.add(record)
    manifest.save()
    write_site(site, manifest, "tiny-net")
    return site


def open_page(page, path: Path) -> None:
    """Go to ``path``, bring lazy images into view and wait until every image has loaded or failed."""
    page.goto(path.as_uri())
    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function(ALL_IMAGES_DONE, timeout=10_000)


def test_gallery_loads_every_image_without_errors_and_arrow_keys_navigate(browser, site):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems = []

    def console(message):
        if message.type == "error":
            problems.append(f"console error: {message.text}")

    def request_failed(request):
        # ERR_ABORTED: a load cancelled because the test navigated on; a missing file is ERR_FILE_NOT_FOUND.
        if request.failure != "net::ERR_ABORTED":
            problems.append(f"request failed: {request.url} {request.failure}")

    page.on("console", console)
    page.on("requestfailed", request_failed)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("dialog", lambda dialog: problems.append(f"dialog opened: {dialog.message}"))

    pages = [site / "index.html", site / layer_page("conv1"), site / layer_page(EVIL), site / unit_paths(EVIL, 4).page]
    pages += [site / unit_paths("conv1", unit).page for unit in (0, 1, 2)]
    image_counts = {}
    for path in pages:
        open_page(page, path)
        assert page.evaluate(BROKEN_IMAGES) == [], path
        image_counts[path.relative_to(site).as_posix()] = page.evaluate("() => document.images.length")
    assert image_counts[unit_paths("conv1", 1).page] == 2 + 4 + 2 * 3  # visualizations, diversity, 3 examples x 2
    assert image_counts[layer_page("conv1")] == 3
    assert page.evaluate("() => document.querySelectorAll('svg.histogram rect').length") == 0  # unit 2: none
    page.goto((site / unit_paths(EVIL, 4).page).as_uri())
    assert page.inner_text("h1").startswith(EVIL)  # shown as text, never run (a dialog would be a problem)

    open_page(page, site / unit_paths("conv1", 1).page)
    assert page.locator("svg.histogram rect").count() == 5  # 6 bins, the empty last one trimmed
    page.evaluate("() => window.scrollTo(0, 0)")  # the sticky header at the top of the full-page shot
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "browser-unit-page.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 0

    steps = [("ArrowRight", unit_paths("conv1", 2).page), ("k", unit_paths("conv1", 1).page),
             ("ArrowLeft", unit_paths("conv1", 0).page), ("j", unit_paths("conv1", 1).page),
             ("u", layer_page("conv1")), ("ArrowRight", layer_page(EVIL)), ("Escape", "index.html")]
    for key, target in steps:
        page.keyboard.press(key)
        page.wait_for_url((site / target).as_uri(), timeout=10_000)
    assert problems == []
    page.close()
