"""Facet probes: featviz.concepts.train_probe / Probe / load_probe and the `featviz probe` command (plus
`featviz render --facet`)."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from featviz.cli import main
from featviz.concepts import Probe, load_probe, train_probe
from featviz.dataset import shipped_photo_paths
from featviz.models import weights_fingerprint
from featviz.errors import FeatvizError
from featviz_testing import tiny_model

LAYERS = ["blocks.2", "blocks.3"]
GROUPS = {  # two kinds of real photo; both turned grey so that colour alone cannot tell them apart
    "textures": ["brick.png", "grass.png", "gravel.png"],
    "subjects": ["chelsea.png", "astronaut.png", "coffee.png", "motorcycle_left.png", "camera.png"],
}


def write_crops(folder: Path, names, count, size=64, seed=0):
    """``count`` random square crops (35-70 % of the shorter side) of the named shipped photos, as grey PNGs."""
    photos = {path.name: path for path in shipped_photo_paths()}
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        with Image.open(photos[names[index % len(names)]]) as photo:
            image = ImageOps.grayscale(photo).convert("RGB")
        width, height = image.size
        side = int(min(width, height) * rng.uniform(0.35, 0.7))
        left, top = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        image.crop((left, top, left + side, top + side)).resize((size, size)).save(folder / f"{index:03d}.png")
    return folder


@pytest.fixture(scope="module")
def photo_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("facet_photos")
    return {group: write_crops(root / group, names, 16, seed=index) for index, (group, names) in enumerate(GROUPS.items())}


@pytest.fixture(scope="module")
def lite0_probe(lite0, photo_folders):
    return train_probe(lite0, LAYERS, photo_folders["textures"], photo_folders["subjects"], size=64)


def run_cli(capsys, *argv):
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_lite0_probe_tells_two_kinds_of_photo_apart(lite0, lite0_probe):
    probe = lite0_probe
    assert probe.layers == tuple(LAYERS)
    assert probe.accuracy >= 0.85, probe  # held out: 4 + 4 images never fitted on; chance is 0.5
    assert all(accuracy >= 0.75 for accuracy in probe.layer_accuracy.values()), probe.layer_accuracy
    assert probe.counts == {"positive_fit": 12, "negative_fit": 12, "positive_test": 4, "negative_test": 4}
    assert probe.weights["blocks.2"].shape == (40,) and probe.weights["blocks.3"].shape == (80,)
    assert probe.model_name == "efficientnet_lite0" and probe.fingerprint == weights_fingerprint(lite0)
    assert probe.name == "textures" and probe.size == 64


def test_probe_scores_new_photos_of_each_kind(lite0, lite0_probe, tmp_path):
    """Fresh crops (another seed) of each kind land on their side of the probe."""
    textures = write_crops(tmp_path / "t", GROUPS["textures"], 6, seed=7)
    subjects = write_crops(tmp_path / "s", GROUPS["subjects"], 6, seed=8)
    from featviz.dataset import ImageFolder

    scores = {name: lite0_probe.score_images(lite0, next(ImageFolder(folder, 64).batches(6))[1])
              for name, folder in (("textures", textures), ("subjects", subjects))}
    assert (scores["textures"] > 0).float().mean() >= 0.8 and (scores["subjects"] < 0).float().mean() >= 0.8, scores


def test_probe_file_round_trip_and_model_check(lite0, lite0_probe, tmp_path):
    path = lite0_probe.save(tmp_path / "probes" / "textures.pt")
    assert sorted(item.name for item in path.parent.iterdir()) == ["textures.pt"], "written atomically, no leftovers"
    loaded = load_probe(path, lite0)
    assert loaded.layers == lite0_probe.layers and loaded.name == "textures"
    for layer in LAYERS:
        assert torch.equal(loaded.weights[layer], lite0_probe.weights[layer])
        assert loaded.bias[layer] == lite0_probe.bias[layer]
    assert (loaded.accuracy, loaded.layer_accuracy, loaded.counts, loaded.fingerprint, loaded.size) == (
        lite0_probe.accuracy, lite0_probe.layer_accuracy, lite0_probe.counts, lite0_probe.fingerprint, 64)
    with pytest.raises(FeatvizError, match="probe 'textures' was fitted on efficientnet_lite0 \\(weights [0-9a-f]{12}\\), not on"):
        load_probe(path, tiny_model())
    (tmp_path / "not_a_probe.pt").write_bytes(b"plain bytes")
    with pytest.raises(FeatvizError, match="is not a probe file"):
        load_probe(tmp_path / "not_a_probe.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(FeatvizError, match="is not a probe file"):
        load_probe(tmp_path / "other.pt")
    with pytest.raises(FeatvizError, match="does not exist"):
        load_probe(tmp_path / "missing.pt")


def test_train_probe_works_on_any_model_and_names_mistakes(photo_folders, tmp_path):
    model = tiny_model(size=32)
    probe = train_probe(model, ["1", "3"], photo_folders["textures"], photo_folders["subjects"], holdout=0.5, seed=3)
    assert probe.counts["positive_test"] == 8 and probe.size == 32 and probe.weights["3"].shape == (8,)
    assert 0.0 <= probe.accuracy <= 1.0
    few = write_crops(tmp_path / "few", GROUPS["textures"], 3)
    with pytest.raises(FeatvizError, match="holds 3 images; a probe needs at least 4 per folder"):
        train_probe(model, ["3"], few, photo_folders["subjects"])
    with pytest.raises(FeatvizError, match="leaves 1 of the 16 images"):
        train_probe(model, ["3"], photo_folders["textures"], photo_folders["subjects"], holdout=0.95)
    with pytest.raises(FeatvizError, match="are the same"):
        train_probe(model, ["3"], photo_folders["textures"], photo_folders["textures"])
    with pytest.raises(FeatvizError, match="closest: 3"):
        train_probe(model, ["3x"], photo_folders["textures"], photo_folders["subjects"])
    with pytest.raises(FeatvizError, match="'@output' is not a layer"):
        train_probe(model, ["@output"], photo_folders["textures"], photo_folders["subjects"])
    for options, hint in (({"holdout": 0.0}, "holdout must be a fraction"), ({"penalty": -1.0}, "penalty must be")):
        with pytest.raises(FeatvizError, match=hint):
            train_probe(model, ["3"], photo_folders["textures"], photo_folders["subjects"], **options)
    with pytest.raises(FeatvizError, match="at least one layer"):
        Probe(weights={}, bias={}, model_name="m", fingerprint="0")


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    """A small timm network's random weights as a checkpoint, so that the command loads the same model each time."""
    from featviz.models import load_model

    path = tmp_path_factory.mktemp("small") / "test_efficientnet.pth"
    torch.manual_seed(0)
    torch.save(load_model("timm:test_efficientnet", weights="random").network.state_dict(), path)
    return path


def test_cli_probe_then_faceted_render(capsys, photo_folders, small_checkpoint, tmp_path):
    model = ["timm:test_efficientnet", "--weights", small_checkpoint]
    out = tmp_path / "textures.pt"
    code, printed, err = run_cli(
        capsys, "probe", *model, "--layers", "blocks.1,blocks.2", "--positive", photo_folders["textures"],
        "--negative", photo_folders["subjects"], "--size", 48, "--out", out, "--no-progress",
    )
    assert code == 0, err
    lines = printed.splitlines()
    assert lines[0].startswith("blocks.1 ") and "held-out accuracy" in lines[0] and lines[1].startswith("blocks.2 ")
    assert lines[2].startswith("all layers") and "fitted on 12 + 12 images, tested on 4 + 4" in lines[2]
    assert lines[3] == str(out)
    probe = load_probe(out)
    assert probe.layers == ("blocks.1", "blocks.2") and probe.model_name == "timm:test_efficientnet"

    code, printed, err = run_cli(
        capsys, "render", *model, "blocks.3:3", "--facet", out, "--facet-strength", "0,4", "--batch", 2,
        "--steps", 2, "--size", 48, "--out", tmp_path / "renders", "--no-progress",
    )
    assert code == 0, err
    paths = printed.split()
    assert len(paths) == 2 and all(Image.open(path).size == (48, 48) for path in paths)
    assert Image.open(paths[0]).text["featviz:objective"] == "facet(blocks.3:3, textures, 0-4)"

    code, _, err = run_cli(  # the same network with other weights
        capsys, "render", "timm:test_efficientnet", "--weights", "random", "blocks.3:3", "--facet", out,
        "--steps", 1, "--out", tmp_path / "other.png", "--no-progress",
    )
    assert code == 2 and "probe 'textures' was fitted on timm:test_efficientnet (weights" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "other.png").exists()


def test_cli_mistakes_exit_2_with_one_line(capsys, photo_folders, small_checkpoint, tmp_path):
    few = write_crops(tmp_path / "few", GROUPS["textures"], 2)
    base = ["probe", "timm:test_efficientnet", "--weights", small_checkpoint, "--out", tmp_path / "p.pt", "--no-progress"]
    folders = ["--positive", photo_folders["textures"], "--negative", photo_folders["subjects"]]
    render = ["render", "timm:test_efficientnet", "--weights", small_checkpoint, "blocks.3:3", "--facet", tmp_path / "none.pt"]
    cases = [
        ([*base, "--layers", "blocks.3", "--positive", tmp_path / "nowhere", "--negative", photo_folders["subjects"]],
         "--positive '" + str(tmp_path / "nowhere") + "' does not exist"),
        ([*base, "--layers", "blocks.3", "--positive", photo_folders["textures"], "--negative", few],
         "holds 2 images; a probe needs at least 4"),
        ([*base, "--layers", "blocks.3.9", *folders], "closest: blocks.3.0"),
        ([*base, "--layers", "blocks.3", "--holdout", "1.5", *folders], "--holdout must be a fraction"),
        ([*render, "--out", tmp_path / "x.png"], "probe file"),
        ([*render, "--facet-strength", "0,4", "--out", tmp_path / "x.png"], "add --batch N"),
        ([*render, "--facet-strength", "strong", "--out", tmp_path / "x.png"], "--facet-strength must be a number or LO,HI"),
    ]
    for argv, hint in cases:
        code, _, err = run_cli(capsys, *argv)
        assert code == 2, (argv, err)
        assert hint in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "p.pt").exists() and not (tmp_path / "x.png").exists()
