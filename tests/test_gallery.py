"""The gallery build: batched renders with recorded seeds, dataset examples, resume after SIGKILL, torchrun shards,
and the `featviz gallery` command's messages."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import featviz
from featviz import objectives
from featviz.cli import main
from featviz.dataset import ImageFolder, shipped_photo_paths
from featviz.errors import FeatvizError
from featviz.gallery import Manifest, unit_paths
from featviz.gallery.build import build_gallery, parse_units
from featviz.models import list_models, register_model

from featviz_testing import tiny_model

TESTS = Path(__file__).parent
WORKER = TESTS / "gallery_worker.py"  # builds layers 0 and 2, units 0-5, in batches of 2

TINY_NAME = "gallery_test_tiny"
if TINY_NAME not in list_models():
    register_model(TINY_NAME)(lambda weights: tiny_model(size=32))


def write_photos(folder: Path, count: int = 5) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        pixels = np.random.default_rng(index).integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"photo{index}.png")
    return folder


def site_files(site: Path) -> dict[str, bytes]:
    """Every image the build rendered, by site-relative path."""
    return {path.relative_to(site).as_posix(): path.read_bytes() for path in sorted(site.glob("images/*/*/*.png"))
            if path.name != "thumbnail.png"}


def unit_keys(site: Path) -> set[tuple[str, int]]:
    data = json.loads((site / "manifest.json").read_text())
    return {(record["layer"], record["unit"]) for record in data["records"]}


def leftovers(site: Path) -> list[str]:
    return [path.name for path in site.rglob("*.tmp")] + [path.name for path in site.glob("manifest-rank*.json")]


def run_worker(out: Path, images: Path, *extra: str, launcher: tuple[str, ...] = (sys.executable,)) -> subprocess.Popen:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS.parent)}
    return subprocess.Popen([*launcher, str(WORKER), str(out), str(images), *extra], env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return write_photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, photos):
    """An uninterrupted single-process build of the worker's gallery."""
    site = tmp_path_factory.mktemp("reference") / "site"
    assert "rendered 12 units" in finish(run_worker(site, photos))
    return site


def test_parse_units_reads_ranges_and_lists_and_rejects_anything_else():
    assert parse_units("0-3,8,2") == [0, 1, 2, 3, 8]
    assert parse_units(" 5 ") == [5]
    for bad, message in (("a-b", "malformed units"), ("5-2", "write 2-5"), ("", "malformed"), ("1,,2", "malformed")):
        with pytest.raises(FeatvizError, match=message):
            parse_units(bad)


def test_grouped_diversity_scores_each_set_as_if_it_were_rendered_alone():
    torch.manual_seed(0)
    sets, views = 3, 2
    activations = torch.randn(views * sets * 4, 6, 5, 5)
    grouped = objectives.diversity("layer", images=sets * 4, group=4)({"layer": activations})
    for index in range(sets):
        alone = activations.view(views, sets, 4, 6, 5, 5)[:, index].reshape(views * 4, 6, 5, 5)
        expected = objectives.diversity("layer", images=4)({"layer": alone})
        assert torch.allclose(grouped.view(views, sets, 4)[:, index].reshape(-1), expected, atol=1e-5)
    with pytest.raises(FeatvizError, match="multiple of 4"):
        objectives.diversity("layer", images=6, group=4)({"layer": activations[:6]})


def test_build_records_every_unit_with_seeds_that_reproduce_its_images(tmp_path):
    model = tiny_model(size=32)
    site = tmp_path / "site"
    photos = write_photos(tmp_path / "photos", 4)
    summary = build_gallery(model, "0,2", units="1-3", images=photos, steps=5, size=24, seed=10, out=site, batch=2,
                            progress=False, examples=2, diversity_size=16)
    assert (summary.rendered, summary.skipped, summary.total) == (6, 0, 6)
    assert summary.index == site / "index.html" and summary.index.is_file()
    assert str(summary).startswith("rendered 6 units, skipped 0 already done") and str(site / "index.html") in str(summary)
    records = {(record["layer"], record["unit"]): record for record in Manifest(site / "manifest.json").records()}
    assert set(records) == {(layer, unit) for layer in ("0", "2") for unit in (1, 2, 3)}
    record = records["2", 3]  # the second batch of layer 2 holds unit 3 alone
    assert record["seed"] == 10 + 3 and record["diversity_seed"] == 10 + 4 * 3
    assert record["objective"] == "2:3" and record["render_seconds"] > 0
    ratios = [item["relative_to_dataset_max"] for item in records.values() if item["dataset_max"] > 0]
    assert ratios and all(item["relative_to_dataset_max"] is None for item in records.values() if item["dataset_max"] <= 0)
    assert all(item["relative_to_dataset_max"] == pytest.approx(item["activation_max"] / item["dataset_max"])
               for item in records.values() if item["dataset_max"] > 0)
    assert len(record["dataset_examples"]) == 2 and sum(record["histogram"]["counts"]) == 4
    assert all((site / example["crop"]).is_file() and (site / example["image"]).is_file()
               for example in record["dataset_examples"])

    def pixels(path: str) -> np.ndarray:
        return np.asarray(Image.open(site / path), dtype=np.int16)

    # each image equals a single render of its own objective with the recorded seed
    for key in (("0", 2), ("2", 3)):
        record = records[key]
        layer, unit = key
        alone = featviz.render(model, f"{layer}:{unit}", steps=5, size=24, seed=record["seed"], progress=False)
        assert np.abs(pixels(record["images"]["positive"]) - alone.to_numpy()[0]).max() <= 1
        assert alone.history[-1, 0].item() == pytest.approx(record["activation"], rel=1e-4)
        goal = objectives.channel(layer, unit) + record["diversity_weight"] * objectives.diversity(layer, images=4)
        diverse = featviz.render(model, goal, steps=5, size=16, seed=record["diversity_seed"], batch=4, progress=False)
        for index, path in enumerate(record["images"]["diversity"]):
            assert pixels(path).shape == (16, 16, 3)
            assert np.abs(pixels(path) - diverse.to_numpy()[index]).max() <= 1
    negative = Image.open(site / records["0", 1]["images"]["negative"])
    assert negative.text["featviz:objective"] == "-0:1" and negative.text["featviz:seed"] == "11"
    assert record["diversity_weight"] == pytest.approx(max(record["activation"], 0.0))

    layer, unit = next(key for key, item in records.items() if item["dataset_max"] > 0)
    page = (site / unit_paths(layer, unit).page).read_text()
    assert "relative to dataset max" in page and "diversity-3.png" in page
    assert "3 of 8 units" in (site / "index.html").read_text()
    assert leftovers(site) == []

    again = build_gallery(model, "0,2", units="1-3", images=photos, steps=5, size=24, seed=10, out=site, batch=3,
                          progress=False, examples=2, diversity_size=16)
    assert (again.rendered, again.skipped) == (0, 6)
    with pytest.raises(FeatvizError, match="built with steps=5"):
        build_gallery(model, "0", units="4", images=photos, steps=6, size=24, seed=10, out=site, progress=False,
                      examples=2, diversity_size=16)


def test_killed_build_resumes_to_the_same_gallery(tmp_path, photos, reference):
    site = tmp_path / "site"
    process = run_worker(site, photos, "--delay", "0.5")
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline and process.poll() is None:
        manifest = site / "manifest.json"
        if manifest.exists():
            done = len(json.loads(manifest.read_text())["records"])
            if done:
                break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    assert 0 < done < 12, "the build must be killed part-way"

    stale = site / "images" / "0" / "0" / ".positive.png.k1ll3d_x.tmp"  # as if killed while writing
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half a png")
    summary = finish(run_worker(site, photos))
    assert not stale.exists()
    assert f"rendered {12 - done} units, skipped {done} already done" in summary
    assert unit_keys(site) == unit_keys(reference)
    assert site_files(site) == site_files(reference)
    assert leftovers(site) == []
    assert json.loads((site / "manifest.json").read_text())["format"] == 1


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not installed")
def test_torchrun_shards_the_units_and_merges_one_manifest(tmp_path, photos, reference):
    site = tmp_path / "site"
    launcher = ("torchrun", "--standalone", "--nproc-per-node", "2")
    out = finish(run_worker(site, photos, launcher=launcher))
    assert "rendered 12 units, skipped 0 already done" in out and "on 2 processes" in out
    assert unit_keys(site) == unit_keys(reference)
    assert site_files(site) == site_files(reference)  # batches do not depend on the number of processes
    assert leftovers(site) == []
    assert (site / "index.html").is_file()


def run_cli(capsys, *argv):
    code = main(["gallery", TINY_NAME, *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_builds_a_site_and_prints_where_it_is(capsys, tmp_path):
    site = tmp_path / "site"
    code, out, err = run_cli(capsys, "--layers", "0", "--units", "0-1", "--steps", "2", "--size", "16",
                             "--images", "shipped", "--examples", "3", "--out", str(site), "--no-progress")
    assert code == 0, err
    assert out.startswith("rendered 2 units, skipped 0 already done, in ")
    assert out.strip().endswith(f"; open {site / 'index.html'}") and out.count("\n") == 1
    assert unit_keys(site) == {("0", 0), ("0", 1)}
    record = Manifest(site / "manifest.json").records()[0]
    shipped = {path.name for path in shipped_photo_paths()}
    assert len(record["dataset_examples"]) == 3
    assert {Path(example["source"]).name for example in record["dataset_examples"]} <= shipped
    assert sum(record["histogram"]["counts"]) == len(shipped)


def test_image_folder_reads_an_explicit_list_of_files(tmp_path):
    photos = write_photos(tmp_path / "a", 2)
    other = write_photos(tmp_path / "b" / "c", 1)
    files = [other / "photo0.png", photos / "photo1.png", photos / "photo0.png", photos / "photo1.png"]
    folder = ImageFolder(files, size=8)
    assert folder.root == tmp_path.resolve()
    assert [stamp.relative_path for stamp in folder.stamps] == ["b/c/photo0.png", "a/photo1.png", "a/photo0.png"]
    (paths, images), = folder.batches(8)
    assert images.shape == (3, 3, 8, 8) and paths[0] == (other / "photo0.png").resolve()
    with pytest.raises(FeatvizError, match="does not exist"):
        ImageFolder([photos / "missing.png"], size=8)
    with pytest.raises(FeatvizError, match="empty"):
        ImageFolder([], size=8)


def test_cli_mistakes_print_one_line_and_exit_2(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("not a folder")
    cases = [
        (["--layers", "3x"], "closest: 3"),
        (["--layers", "0", "--units", "0-9"], "valid: 0-7"),
        (["--layers", "0", "--units", "1-x"], "--units: malformed units '1-x'"),
        (["--layers", "0", "--out", str(tmp_path / "file" / "site")], "choose a writable --out"),
        (["--layers", "0", "--images", str(tmp_path / "empty")], "no images ending in"),
    ]
    for arguments, expected in cases:
        out = tmp_path / "out" if "--out" not in arguments else None
        code, _, err = run_cli(capsys, *arguments, *(["--out", str(out)] if out else []), "--steps", "1", "--no-progress")
        assert code == 2, (arguments, err)
        assert expected in err and err.count("\n") == 1, (arguments, err)


def test_facets_are_added_to_a_finished_gallery_without_rendering_it_again(tmp_path):
    from featviz.concepts import Probe
    from featviz.models import weights_fingerprint
    from featviz.objectives.faceted import facet

    model = tiny_model(size=32)
    probe_path = Probe(
        weights={"2": torch.linspace(-1, 1, 8)}, bias={"2": 0.0}, model_name=model.name,
        fingerprint=weights_fingerprint(model), name="ramp",
    ).save(tmp_path / "ramp.pt")
    site = tmp_path / "site"
    settings = {"units": "1-2", "steps": 3, "size": 24, "seed": 5, "out": site, "progress": False}
    build_gallery(model, "4", **settings)
    positive = site / unit_paths("4", 2).positive
    stamp = positive.stat().st_mtime_ns
    summary = build_gallery(model, "4", facets=[probe_path], facet_strength=3.0, **settings)
    assert (summary.rendered, summary.annotated) == (0, 2) and positive.stat().st_mtime_ns == stamp
    record = {item["unit"]: item for item in Manifest(site / "manifest.json").records()}[2]
    assert record["images"]["facets"] == {"ramp": unit_paths("4", 2).facet("ramp")}
    assert record["facet_seed"] == 5 + 2 and record["facet_strength"] == 3.0
    image = Image.open(site / record["images"]["facets"]["ramp"])
    assert image.text["featviz:objective"] == "facet(4:2, ramp, 3)"
    alone = featviz.render(model, facet("4:2", probe_path, strength=3.0), steps=3, size=24, seed=7, progress=False)
    assert np.abs(np.asarray(image, dtype=np.int16) - alone.to_numpy()[0]).max() <= 1
    assert "Facets" in (site / unit_paths("4", 2).page).read_text()
    assert build_gallery(model, "4", facets=[probe_path], facet_strength=3.0, **settings).skipped == 2
    with pytest.raises(FeatvizError, match="does not exist"):
        build_gallery(model, "4", facets=[tmp_path / "missing.pt"], **settings)
