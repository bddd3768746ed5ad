"""Activation atlases: the bounded activation sample (positions, class filter, shards), a layout that keeps
neighbours of real activations together, the cells, the static site and the `featviz atlas` command."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from featviz import objectives, render
from featviz.cli import main
from featviz.dataset import ImageFolder, load_image
from featviz.errors import FeatvizError
from featviz.hooks import ActivationCapture, bind_layers
from featviz.models import register_model
from featviz.models import registry as model_registry
from featviz.recipes.atlas import sampling as atlas_sampling
from featviz.recipes.atlas import activation_atlas, embed_2d, sample_activations, write_atlas_site

from featviz_testing import tiny_model

TINY_NAME = "atlas_test_tiny"


@pytest.fixture(scope="module", autouse=True)
def tiny_registered():
    """The CLI tests name a tiny model: registered while this module runs only, so that other modules see the
    usual list of models."""
    register_model(TINY_NAME)(lambda weights: tiny_model(size=32))
    yield
    model_registry._REGISTRY.pop(TINY_NAME)


def write_photos(folder: Path, count: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        pixels = np.random.default_rng(index).integers(0, 256, (40, 56, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"photo{index}.png")
    return folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return write_photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def tiny_atlas(photos):
    return activation_atlas(tiny_model(size=32), "2", photos, grid=[2, 4, 8], samples=48, positions=8, layout="tsne",
                            steps=2, size=64, seed=3, batch=16, progress=False)


def activation_at(model, layer, path, size, position):
    image = torch.from_numpy(load_image(path, size).copy()).permute(2, 0, 1)[None].float() / 255
    binding = bind_layers(model, [layer], (size, size))
    with torch.no_grad(), ActivationCapture(model, [layer], layouts=binding.layouts) as capture:
        activation = capture.run(image)[layer][0]
    return activation[:, position[0], position[1]]


def test_layout_keeps_neighbours_of_real_activations_together(lite0):
    from sklearn.decomposition import PCA
    from sklearn.manifold import trustworthiness

    sample = sample_activations(lite0, "blocks.4", "shipped", samples=240, positions=16, image_size=96)
    assert sample.vectors.shape == (240, 112) and sample.map_size == (6, 6) and sample.image_count == 15
    # every vector is the layer's activation at the recorded position of the recorded image
    for row in (0, 100, 239):
        path = sample.paths[int(sample.images[row])]
        expected = activation_at(lite0, "blocks.4", path, 96, sample.positions[row].tolist())
        assert torch.allclose(sample.vectors[row], expected, atol=1e-4)
    vectors = sample.vectors.numpy()
    layout = embed_2d(sample.vectors, "tsne", seed=0).numpy()
    kept = trustworthiness(vectors, layout, n_neighbors=5, metric="cosine")
    linear = trustworthiness(vectors, PCA(2).fit_transform(vectors), n_neighbors=5, metric="cosine")
    chance = trustworthiness(vectors, np.random.default_rng(0).random((240, 2)), n_neighbors=5, metric="cosine")
    assert kept > 0.9 and kept > linear + 0.08 and chance < 0.6, (kept, linear, chance)
    assert layout.min() >= 0 and layout.max() <= 1 and np.isclose(np.ptp(layout, 0).max(), 1.0)
    # UMAP, the layout Carter et al. used, is the other choice (umap-learn, the recipes extra)
    umap_layout = embed_2d(sample.vectors, "umap", seed=0).numpy()
    kept_by_umap = trustworthiness(vectors, umap_layout, n_neighbors=5, metric="cosine")
    assert kept_by_umap > 0.85 and kept_by_umap > linear + 0.05, (kept_by_umap, linear)


def test_sample_is_bounded_and_does_not_depend_on_batches_or_shards(photos):
    model = tiny_model(size=32)
    reference = sample_activations(model, "2", photos, samples=10, positions=3, batch_size=32, seed=4)
    assert len(reference) == 10 and reference.image_count == 6 and reference.map_size == (16, 16)
    assert torch.bincount(reference.images).max() <= 3  # at most `positions` per image
    again = sample_activations(model, "2", photos, samples=10, positions=3, batch_size=2, seed=4)
    assert torch.equal(again.vectors, reference.vectors) and again.paths == reference.paths
    assert not torch.equal(sample_activations(model, "2", photos, samples=10, positions=3, seed=5).vectors,
                           reference.vectors)

    # two shards, as under torchrun: each reads every other image; the merged sample is the same
    class Shard:
        def __init__(self, rank, parts):
            self.rank, self.world, self.parts, self.distributed = rank, 2, parts, self

        def all_gather_object(self, gathered, value):
            self.parts[self.rank] = value
            gathered[:] = [self.parts[index] for index in range(self.world)]

    folder = ImageFolder(photos, size=32)
    empty = ((torch.empty(0, dtype=torch.float64), None, torch.empty(0, dtype=torch.int64),
              torch.empty(0, dtype=torch.int64)), 0)
    parts = {0: empty}
    atlas_sampling.sample_layer(model, "2", folder, 10, 3, None, 5, 32, 4, 0, False, Shard(1, parts))
    merged = atlas_sampling.sample_layer(model, "2", folder, 10, 3, None, 5, 32, 4, 0, False, Shard(0, parts))
    assert torch.equal(merged.vectors, reference.vectors) and merged.paths == reference.paths
    assert torch.equal(merged.positions, reference.positions) and merged.image_count == 6


def test_reservoir_keeps_the_smallest_keys_of_everything_it_was_given():
    generator = torch.Generator().manual_seed(0)
    keys = torch.rand(500, generator=generator, dtype=torch.float64)
    vectors = torch.arange(500, dtype=torch.float32)[:, None].repeat(1, 3)
    reservoir = atlas_sampling._Reservoir(37)
    start = 0
    for size in [1, 0, 30, 7, 100, 2, 160, 200]:
        rows = slice(start, start + size)
        reservoir.add(keys[rows], vectors[rows], torch.arange(500)[rows], torch.arange(500)[rows] * 2)
        start += size
    held, held_vectors, images, spots = reservoir.state()
    expected = keys.argsort()[:37]
    assert torch.equal(held, keys[expected]) and torch.equal(images, expected) and torch.equal(spots, 2 * expected)
    assert torch.equal(held_vectors[:, 0], expected.float())


def test_class_atlas_keeps_predicted_images_at_positions_that_support_the_class(photos):
    model = tiny_model(size=32)
    folder = ImageFolder(photos, size=32)
    (paths, images), = folder.batches(16)
    with torch.no_grad():
        predicted = model(images).argmax(1)
    label = int(predicted.mode().values)
    sample = sample_activations(model, "2", photos, samples=100, positions=4, label=model.labels[label], top=1)
    chosen = {str(path) for path, guess in zip(paths, predicted.tolist()) if guess == label}
    assert sample.label == label and set(sample.paths) == chosen

    held = {}
    handle = model.get_layer("2").register_forward_hook(lambda module, inputs, output: held.update(out=output))
    images.requires_grad_(True)
    try:
        output = model(images)
        held["out"].retain_grad()
        output[:, label].sum().backward()
    finally:
        handle.remove()
    attribution = (held["out"] * held["out"].grad).sum(1).detach()
    for row in range(len(sample)):
        image = [str(path) for path in paths].index(sample.paths[int(sample.images[row])])
        y, x = sample.positions[row].tolist()
        assert attribution[image, y, x] > 0
        # the largest positive attributions of each image are the ones taken
        assert (attribution[image] > attribution[image, y, x]).sum() < 4
    with pytest.raises(FeatvizError, match="closest: dog"):
        sample_activations(model, "2", photos, label="dgo")


def test_atlas_cells_average_their_samples_and_the_site_references_every_tile(photos, tiny_atlas, tmp_path):
    model = tiny_model(size=32)
    atlas = tiny_atlas
    assert [level.grid for level in atlas.levels] == [2, 4, 8]
    assert set(atlas.seconds) == {"activations", "layout", "render"}
    cell_index = 0
    for level in atlas.levels:
        assert int(level.counts.sum()) == 48  # min_count 1: every sample lands in one kept cell
        columns = (atlas.coordinates[:, 0] * level.grid).floor().clamp(max=level.grid - 1).long()
        rows = (atlas.coordinates[:, 1] * level.grid).floor().clamp(max=level.grid - 1).long()
        for (row, column), vector, count in zip(level.cells.tolist(), level.vectors, level.counts.tolist()):
            members = (rows == row) & (columns == column)
            assert int(members.sum()) == count
            assert torch.allclose(vector, atlas.sample.vectors[members].mean(0), atol=1e-5)
        assert level.images.shape == (len(level), 3, 64, 64)
        assert level.seeds.tolist() == list(range(3 + cell_index, 3 + cell_index + len(level)))
        cell_index += len(level)

    # a tile's recorded seed reproduces it alone (a cell of grid 8 that is the 2nd of its batch of 16)
    level = atlas.levels[2]
    first = len(atlas.levels[0]) + len(atlas.levels[1])
    cell = next(index for index in range(len(level)) if (first + index) % 16 == 1)
    alone = render(model, objectives.direction_neuron("2", level.vectors[cell], cossim_pow=1.0), steps=2, size=64,
                   seed=int(level.seeds[cell]), progress=False)
    assert torch.allclose(alone.images[0], level.images[cell], atol=1e-4)

    site = tmp_path / "site"
    index = write_atlas_site(atlas, site)
    data = json.loads((site / "atlas.json").read_text())
    referenced = {cell["tile"] for level in data["levels"] for cell in level["cells"]}
    on_disk = {path.relative_to(site).as_posix() for path in site.glob("tiles/*/*.png")}
    assert referenced == on_disk and len(referenced) == cell_index
    page = index.read_text()
    embedded = json.loads(re.search(r'<script id="atlas-data" type="application/json">(.*?)</script>', page, re.S)[1])
    assert embedded == data
    assert [cell["count"] for cell in data["levels"][1]["cells"]] == atlas.levels[1].counts.tolist()
    with Image.open(site / "atlas-4.png") as picture:
        assert picture.size == (256, 256)
    assert not list(site.rglob("*.tmp"))

    smaller = activation_atlas(model, "2", photos, grid=[3], samples=48, positions=8, layout="tsne", steps=1, size=16,
                               progress=False)
    write_atlas_site(smaller, site)
    assert {path.parent.name for path in site.glob("tiles/*/*.png")} == {"3"}  # the earlier tiles are gone
    assert not (site / "tiles" / "4").exists() and not (site / "tiles" / "8").exists()
    with pytest.raises(FeatvizError, match="render=False"):
        write_atlas_site(activation_atlas(model, "2", photos, grid=2, samples=20, layout="tsne", render=False,
                                          progress=False), tmp_path / "other")


def run_cli(capsys, *argv):
    code = main(["atlas", TINY_NAME, *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_writes_the_site_and_says_where(capsys, tmp_path, photos):
    site = tmp_path / "site"
    code, out, err = run_cli(capsys, "--layer", "2", "--images", str(photos), "--grid", "4", "--levels", "2",
                             "--samples", "40", "--layout", "tsne", "--steps", "2", "--size", "16", "--out",
                             str(site), "--no-progress")
    assert code == 0, err
    assert out.startswith("atlas of 2: ") and out.strip().endswith(f"open {site / 'index.html'}")
    assert (site / "index.html").is_file() and (site / "atlas-4.png").is_file()


def test_cli_mistakes_print_one_line_and_exit_2(capsys, tmp_path, photos):
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    common = ["--images", str(photos), "--layout", "tsne", "--steps", "1"]
    cases = [
        (["--layer", "3x", *common], "unknown layer '3x' in Sequential; closest: 3"),
        (["--layer", "2", *common, "--grid", "1"], "--grid must be at least 2, got 1"),
        (["--layer", "2", *common, "--grid", "-4"], "--grid must be at least 2"),
        (["--layer", "2", *common, "--samples", "2"], "--samples must be at least 4"),
        (["--layer", "2", "--images", str(tmp_path / "missing")], "does not exist"),
        (["--layer", "2", *common, "--class", "dgo"], "closest: dog"),
        (["--layer", "2", *common, "--layout", "pca"], "invalid choice: 'pca'"),
    ]
    for arguments, message in cases:
        out_dir = tmp_path / "site"
        code, out, err = run_cli(capsys, *arguments, "--out", str(out_dir), "--no-progress")
        assert code == 2 and message in err and err.count("\n") == 1, (arguments, err)
        assert "Traceback" not in err and not (out_dir / "index.html").exists()
    code, out, err = run_cli(capsys, "--layer", "2", *common, "--out", str(a_file))
    assert code == 2 and "is a file" in err


CHROMIUM = Path("/usr/bin/chromium")
# every tile of the shown grid that lies in the viewport has loaded (the others load lazily, when scrolled to)
VISIBLE_TILES_LOADED = """() => {
  const view = document.getElementById("viewport").getBoundingClientRect();
  const inside = Array.from(document.querySelectorAll(".level.shown img")).filter(image => {
    const box = image.getBoundingClientRect();
    return box.right > view.left && box.left < view.right && box.bottom > view.top && box.top < view.bottom;
  });
  return inside.length > 0 && inside.every(image => image.complete && image.naturalWidth === 64);
}"""


def test_site_zooms_to_finer_grids_and_shows_counts_in_a_browser(tiny_atlas, tmp_path):
    """Headless Chromium opens the site from disk (skipped without /usr/bin/chromium and playwright, as in
    tests/test_browser.py)."""
    import importlib.util

    if importlib.util.find_spec("playwright") is None or not CHROMIUM.is_file():
        pytest.skip("needs the playwright package and /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    atlas = tiny_atlas
    index = write_atlas_site(atlas, tmp_path / "site", title="<b>atlas</b>")
    errors = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 220, "height": 220})
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.goto(index.as_uri())
            assert page.title() == "<b>atlas</b>"
            # the atlas is 189 px wide: grid 4 gives 47-px cells (at least half a 64-px tile), grid 8 only 24
            assert page.text_content("#status") == "zoom 1.0x, grid 4"
            shown = page.locator(".level.shown img")
            assert shown.count() == len(atlas.level(4))
            level = atlas.level(4)
            row, column = level.cells[-1].tolist()
            page.locator(f'.level.shown img[src="tiles/4/{row}-{column}.png"]').hover()
            count = int(level.counts[-1])
            assert page.text_content("#tip") == (
                f"grid 4, row {row}, column {column}: {count} sample{'' if count == 1 else 's'}"
            )
            page.click("#in")
            assert page.text_content("#status") == "zoom 2.0x, grid 8"
            assert shown.count() == len(atlas.level(8))
            page.wait_for_function(VISIBLE_TILES_LOADED)
            page.click("#reset")
            assert page.text_content("#status") == "zoom 1.0x, grid 4"
        finally:
            browser.close()
    assert errors == []
