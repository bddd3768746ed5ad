"""Hostile inputs to every command: each mistake is one line on stderr with exit code 2, no traceback, no file or
folder left behind and no earlier result lost (issue 20's sweep). Commands run in-process on a tiny registered
model, with the free memory pinned to 2 GiB so that memory refusals do not depend on the machine."""
from __future__ import annotations

import argparse
import csv
import os
import pickle
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import featviz.cli.label
import featviz.cli.story
import featviz.hooks.memory
from featviz.cli import build_parser, main
from featviz.concepts.dissect import UnitLabel
from featviz.dataset.folder import ImageFolder, load_image
from featviz.dataset.photo import load_photo
from featviz.errors import FeatvizError
from featviz.imagefile import open_image
from featviz.metrics.images import read_image
from featviz.models import register_model
from featviz.models import registry as model_registry

from featviz_testing import tiny_model

TINY = "hostile_tiny"
FREE = 2 * 1024**3


@pytest.fixture(scope="module", autouse=True)
def tiny_registered():
    register_model(TINY)(lambda weights: tiny_model(size=32))
    yield
    model_registry._REGISTRY.pop(TINY)


@pytest.fixture(autouse=True)
def little_memory(monkeypatch):
    """2 GiB free, whatever the machine has: the refusals below are the same on a laptop and on a GPU server."""
    monkeypatch.setattr(featviz.hooks.memory, "available_bytes", lambda device: FREE)
    monkeypatch.setattr(featviz.cli.story, "available_bytes", lambda device: FREE)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A photo, a folder of 8 photos in two class folders, a decompression bomb and a 16-bit and float image."""
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    for index in range(8):
        folder = root / "images" / ("ab"[index % 2])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / "photo.png")
    (root / "bomb.png").write_bytes(bomb_png(30000, 30000))
    (root / "bombs").mkdir()
    (root / "bombs" / "bomb.png").write_bytes(bomb_png(30000, 30000))
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "bombs" / "fine.png")
    (root / "file.txt").write_text("not a folder")
    return root


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width x height`` pixels, with almost no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``folder``."""
    return {
        str(path.relative_to(folder)): (path.read_bytes() if path.is_file() else None)
        for path in sorted(folder.rglob("*"))
    }


def run_cli(capsys, argv) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(capsys, argv, out: Path, *hints: str) -> str:
    """Run ``argv``; assert exit 2, one line on stderr naming every hint, no traceback, ``out`` unchanged."""
    before = snapshot(out)
    code, _, err = run_cli(capsys, argv)
    assert code == 2, f"exit {code}: {err[-2000:]}"
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for hint in hints:
        assert hint in err, err
    assert snapshot(out) == before, "the failing run changed its output folder"
    return err


# ------------------------------------------------------------- the sweep over every numeric option


def base_commands(inputs: Path, out: Path) -> dict[str, list]:
    """A valid command line of every command on the tiny model; the sweep adds one hostile option to each."""
    images, photo = inputs / "images", inputs / "photo.png"
    render = ["--steps", "1", "--size", "16", "--no-progress"]
    return {
        "layers": [TINY],
        "render": ["render", TINY, "2:0", *render, "--out", out / "r.png"],
        "accentuate": ["accentuate", photo, TINY, "2:0", *render, "--out", out / "a.png"],
        "atlas": ["atlas", TINY, "--layer", "2", "--images", images, *render, "--image-size", "32", "--grid", "2",
                  "--levels", "1", "--samples", "16", "--out", out / "atlas"],
        "caricature": ["caricature", photo, TINY, "--layer", "2", *render, "--out", out / "c.png"],
        "dictionary": ["dictionary", TINY, "--layer", "2", "--images", images, "--concepts", "4", "--steps", "2",
                       "--size", "16", "--no-cache", "--no-progress", "--out", out / "dict.pt"],
        "dream": ["dream", TINY, "a dog", "--steps", "1", "--size", "32", "--views", "1", "--no-progress",
                  "--out", out / "d.png"],
        "explain": ["explain", photo, TINY, "--layer", "2", "--groups", "2", *render, "--image-size", "32",
                    "--out", out / "e"],
        "factors": ["factors", TINY, "--layer", "2", "--images", images, "--count", "2", *render,
                    "--image-size", "32", "--samples", "16", "--out", out / "f.png"],
        "gallery": ["gallery", TINY, "--layers", "2", "--units", "0", *render, "--out", out / "g"],
        "interaction": ["interaction", TINY, "2:0", "2:1", *render, "--out", out / "i.png"],
        "interpolate": ["interpolate", TINY, "2:0", "2:1", "--frames", "2", *render, "--out", out / "p.png"],
        "label": ["label", TINY, "--layer", "2", "--images", images, "--no-cache", "--no-progress"],
        "neurons": ["neurons", TINY, "a dog", "--layer", "2", "--steps", "1", "--size", "16", "--no-progress",
                    "--render", out / "n.png"],
        "probe": ["probe", TINY, "--layers", "2", "--positive", images / "a", "--negative", images / "b",
                  "--out", out / "probe.pt", "--no-progress"],
        "score": ["score", inputs / "images" / "a" / "0.png", TINY, "2:0"],
        "story": ["story", TINY, "--layer", "2", "--unit", "0", "--images", images, "--no-cache", "--no-progress",
                  "--out", out / "s"],
        "style": ["style", photo, photo, TINY, "--style-layers", "0", "--content-layer", "2", *render,
                  "--out", out / "st.png"],
    }


def numeric_options() -> list[tuple[str, str, str]]:
    """(command, option, hostile value) for every int and float option of every command (from the parsers)."""
    parser = build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction)).choices
    cases = []
    for command, subparser in commands.items():
        for action in subparser._actions:
            if action.type not in (int, float) or not action.option_strings:
                continue
            option = action.option_strings[0]
            values = ("-1", "99999999999999999999") if action.type is int else ("nan", "inf", "1e308")
            if option.endswith("size") and option not in ("--batch-size", "--thumbnail-size"):  # fits int32, not memory
                values += ("99999",)
            cases += [(command, option, value) for value in values]
    return cases


NUMERIC = numeric_options()


@pytest.mark.parametrize("command, option, value", NUMERIC, ids=[" ".join(case) for case in NUMERIC])
def test_every_numeric_option_refuses_hostile_values(capsys, tmp_path, inputs, command, option, value):
    commands = base_commands(inputs, tmp_path)
    if command not in commands:
        pytest.skip(f"no base command line for {command}")
    argv = list(commands[command])
    if command == "layers":
        argv = ["layers", TINY]
    count = 2 if option == "--inclusion" else 1
    assert_refused(capsys, [*argv, option, *[value] * count], tmp_path, option)


PATHS = [
    ("render", ["--out", "{file}/x.png"]),
    ("render", ["--weights", "{inputs}/missing.pt"]),
    ("render", ["--facet", "{inputs}/photo.png"]),
    ("accentuate", ["{inputs}/missing.png"]),
    ("accentuate", ["{inputs}/bomb.png"]),
    ("caricature", ["{inputs}/images"]),
    ("style", ["{inputs}/file.txt"]),
    ("explain", ["--out", "{file}/e"]),
    ("atlas", ["--images", "{inputs}/missing"]),
    ("atlas", ["--out", "{file}/atlas"]),
    ("factors", ["--images", "{inputs}/file.txt"]),
    ("gallery", ["--out", "{file}/g"]),
    ("label", ["--cache", "{file}/cache"]),
    ("label", ["--concepts", "{inputs}/missing.txt"]),
    ("label", ["--out", "{inputs}/labels.txt"]),
    ("story", ["--images", "{inputs}/missing"]),
    ("story", ["--out", "{file}/s"]),
    ("probe", ["--positive", "{inputs}/missing"]),
    ("probe", ["--out", "{file}/p.pt"]),
    ("score", ["--natural", "{inputs}/missing"]),
    ("interpolate", ["--out", "{tmp}/strip.txt"]),
    ("dream", ["--out", "{tmp}"]),
]


@pytest.mark.parametrize("command, extra", PATHS, ids=[f"{command} {' '.join(extra)}" for command, extra in PATHS])
def test_hostile_paths_are_refused(capsys, tmp_path, inputs, command, extra):
    out = tmp_path / "out"
    out.mkdir()
    argv = [arg for arg in base_commands(inputs, out)[command] if not (arg == "--no-cache" and "--cache" in extra)]
    values = [item.format(inputs=inputs, file=inputs / "file.txt", tmp=out) for item in extra]
    if not values[0].startswith("--"):  # a positional path replaces the command's first path
        argv[1] = values[0]
        values = []
    assert_refused(capsys, [*argv, *values], out)


# ------------------------------------------------------------- one test per defect of the sweep


@pytest.mark.parametrize("command, extra, hint", [
    ("interpolate", ["--frames", "100000", "--size", "64"], "--frames"),
    ("story", ["--examples", "2", "--crop-size", "99999"], "--crop-size"),
    ("caricature", ["--size", "99999"], "--size"),
    ("accentuate", ["--size", "99999"], "--size"),
    ("style", ["--size", "99999"], "--size"),
    ("style", ["--style-size", "99999"], "--style-size"),
    ("explain", ["--image-size", "99999"], "--image-size"),
    ("dream", ["--size", "99999", "--views", "2"], "--size"),
    ("render", ["--size", "99999"], "--size"),
])
def test_sizes_and_counts_are_checked_against_memory_first(capsys, tmp_path, inputs, command, extra, hint):
    """Defects 1 and 3: refused before any photo is resized or image allocated, naming the option to lower."""
    err = assert_refused(capsys, [*base_commands(inputs, tmp_path)[command], *extra], tmp_path, "GiB", hint)
    assert "free" in err


def test_dream_views_advice_names_views(capsys, tmp_path, inputs):
    """Defect 12: too many views is told to use fewer views, not 'a smaller batch'."""
    argv = [*base_commands(inputs, tmp_path)["dream"], "--views", "10000000"]
    err = assert_refused(capsys, argv, tmp_path, "use --views")
    assert "batch" not in err


def test_a_thin_image_is_told_to_crop_not_a_larger_size(capsys, tmp_path, inputs):
    """Defect 12: a 4000x2 image at --size 64 becomes 128000x64; the advice is not 'use size 2377'."""
    thin = tmp_path / "thin.png"
    Image.fromarray(np.zeros((2, 4000, 3), np.uint8)).save(thin)
    out = tmp_path / "out"
    out.mkdir()
    argv = ["caricature", thin, TINY, "--layer", "2", "--steps", "1", "--size", "64", "--out", out / "c.png"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(featviz.hooks.memory, "available_bytes", lambda device: 256 * 1024**2)
        err = assert_refused(capsys, argv, out, "64x128000")
    assert "crop it" in err or "--size" in err
    if "--size" in err:  # the advised shorter side must be below the one asked for
        advised = int(err.split("use --size ")[1].split()[0])
        assert advised < 64


def test_a_failing_story_rerun_keeps_the_earlier_story_whole(capsys, tmp_path, inputs):
    """Defect 2: a rerun over a good story either replaces it whole or leaves it as it was."""
    argv = base_commands(inputs, tmp_path)["story"]
    code, _, err = run_cli(capsys, [*argv, "--examples", "3", "--per-bucket", "2", "--crop-size", "16"])
    assert code == 0, err
    assert_refused(capsys, [*argv[:-1], tmp_path / "s", "--unit", "5", "--crop-size", "99999"], tmp_path, "--crop-size")
    assert_refused(capsys, [*argv, "--unit", "99"], tmp_path, "99")


@pytest.mark.parametrize("steps", ["99999999999999999999", "1000000000000"])
def test_overflowing_steps_are_bounded(capsys, tmp_path, inputs, steps):
    """Defect 4."""
    argv = base_commands(inputs, tmp_path)["render"]
    assert_refused(capsys, [*argv, "--steps", steps], tmp_path, "--steps", "at most")


@pytest.mark.parametrize("command", ["render", "dream"])
def test_clampsgd_with_a_huge_learning_rate(capsys, tmp_path, inputs, command):
    """Defect 4."""
    argv = [*base_commands(inputs, tmp_path)[command], "--optimizer", "clampsgd", "--lr", "1e308"]
    assert_refused(capsys, argv, tmp_path, "--lr", "at most")


@pytest.mark.parametrize("extra, hint", [(["--min-count", "100000"], "--min-count"), (["--grid", "100000"], "--grid")])
def test_atlas_min_count_and_grid(capsys, tmp_path, inputs, extra, hint):
    """Defect 5."""
    assert_refused(capsys, [*base_commands(inputs, tmp_path)["atlas"], *extra], tmp_path, hint)


@pytest.mark.parametrize("name", ["bomb.png", "bombs"])
def test_score_refuses_a_decompression_bomb(capsys, tmp_path, inputs, name):
    """Defect 6: alone or inside a folder."""
    assert_refused(capsys, ["score", inputs / name, TINY, "2:0"], tmp_path, "bomb.png", "pixels")


def test_sixteen_bit_and_float_images_are_read_by_their_bit_depth(tmp_path):
    """Defect 7: one reader for every image file; a 16-bit ramp and a float ramp keep their grey levels."""
    ramp = np.linspace(0, 1, 64 * 64).reshape(64, 64)
    Image.fromarray((ramp * 65535).round().astype(np.uint16)).save(tmp_path / "grey16.png")
    Image.fromarray(ramp.astype(np.float32), "F").save(tmp_path / "float.tif")
    for name in ("grey16.png", "float.tif"):
        path = tmp_path / name
        expected = ramp * 255
        for pixels in (
            np.asarray(open_image(path, "L"), dtype=np.float64),
            read_image(path)[0][..., 0] * 255,
            load_photo(path)[0, 0].numpy() * 255,
        ):
            assert np.abs(pixels - expected).max() <= 1.0, name
        square = load_image(path, 32)  # resized: still a ramp from black to white, not one colour
        assert square.min() < 10 and square.max() > 245 and 100 < square.mean() < 155
    Image.fromarray((ramp * 4).astype(np.float32), "F").save(tmp_path / "hdr.tif")
    with pytest.raises(FeatvizError, match=r"floats from 0 to 4"):
        open_image(tmp_path / "hdr.tif")


def test_exif_orientation_is_applied_by_every_reader(tmp_path):
    """Issue 19: the metrics' reader applies EXIF rotation like the dataset's and the photos'."""
    picture = Image.new("RGB", (60, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    picture.save(tmp_path / "rotated.jpg", exif=exif)
    assert open_image(tmp_path / "rotated.jpg").size == (20, 60)
    assert read_image(tmp_path / "rotated.jpg")[0].shape == (60, 20, 3)
    assert tuple(load_photo(tmp_path / "rotated.jpg").shape[-2:]) == (60, 20)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_in_an_image_folder_is_skipped(tmp_path):
    """Defect 8: reading it would block forever."""
    for index in range(2):
        Image.new("RGB", (16, 16)).save(tmp_path / f"{index}.png")
    os.mkfifo(tmp_path / "pipe.jpg")
    assert [path.name for path in ImageFolder(tmp_path, 16).paths] == ["0.png", "1.png"]
    with pytest.raises(FeatvizError, match="not a regular file"):
        open_image(tmp_path / "pipe.jpg")


@pytest.mark.parametrize("command, extra", [
    ("render", ["--out", "{out}/newdir/sub/x.png", "9:0"]),
    ("explain", ["--layer", "nolayer"]),
    ("atlas", ["--layer", "nolayer"]),
    ("gallery", ["--layers", "nolayer"]),
    ("story", ["--layer", "nolayer"]),
    ("story", ["--unit", "99"]),
    ("gallery", ["--units", "99"]),
])
def test_failing_runs_leave_no_empty_folder(capsys, tmp_path, inputs, command, extra):
    """Defect 9: options are checked first and folders created last."""
    values = [item.format(out=tmp_path) for item in extra]
    argv = base_commands(inputs, tmp_path)[command]
    if command == "render":
        argv = [*argv[:2], *argv[3:]]  # the objective comes with the extra options
    assert_refused(capsys, [*argv, *values], tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_shorter_rerun_leaves_no_stale_files(capsys, tmp_path, inputs):
    """Defect 10: story --examples 2 after 4, explain --groups 2 after 3."""
    story = [*base_commands(inputs, tmp_path)["story"], "--per-bucket", "2", "--crop-size", "16"]
    assert run_cli(capsys, [*story, "--examples", "4"])[0] == 0
    assert sorted(path.name for path in (tmp_path / "s" / "examples").iterdir()) == [f"0{i}.png" for i in range(4)]
    assert run_cli(capsys, [*story, "--examples", "2"])[0] == 0
    assert sorted(path.name for path in (tmp_path / "s" / "examples").iterdir()) == ["00.png", "01.png"]
    assert sorted(path.name for path in (tmp_path / "s").iterdir()) == ["examples", "story.json", "story.png", "story.svg"]

    explain = [*base_commands(inputs, tmp_path)["explain"][:-5], "--out", tmp_path / "e"]
    code, _, err = run_cli(capsys, [*explain, "--groups", "3"])
    assert code == 0, err
    assert (tmp_path / "e" / "group-2.png").exists()
    code, out, err = run_cli(capsys, [*explain, "--groups", "2"])
    assert code == 0, err
    names = sorted(path.name for path in (tmp_path / "e").iterdir())
    assert not [name for name in names if name.startswith("group-2")]
    assert "group-1.png" in names and not [name for name in names if name.startswith(".")]
    assert all(Path(line).exists() for line in out.split())


def test_score_samples_are_bounded(capsys, tmp_path, inputs):
    """Defect 11."""
    argv = [*base_commands(inputs, tmp_path)["score"], "--samples", "100000000"]
    assert_refused(capsys, argv, tmp_path, "--samples", "at most")


@pytest.mark.parametrize("command, option", [
    ("accentuate", "--balance"), ("caricature", "--cossim-pow"), ("interpolate", "--alignment"),
    ("gallery", "--diversity-weight"),
])
@pytest.mark.parametrize("value", ["1e308", "inf"])
def test_absurd_weights_name_their_option_not_the_learning_rate(capsys, tmp_path, inputs, command, option, value):
    """Defect 12."""
    err = assert_refused(capsys, [*base_commands(inputs, tmp_path)[command], option, value], tmp_path, option)
    assert "learning rate" not in err


def test_messages_use_the_command_line_words(capsys, tmp_path, inputs):
    """Defect 12: no 'pixels' for a batch size, no Python argument names, the right option named."""
    err = assert_refused(capsys, [*base_commands(inputs, tmp_path)["label"], "--batch-size", "0"], tmp_path)
    assert "--batch-size must be at least 1, got 0" in err and "pixels" not in err
    style = base_commands(inputs, tmp_path)["style"]
    err = assert_refused(capsys, [arg for arg in style if arg not in ("--style-layers", "0")], tmp_path)
    assert "--style-layers" in err and "style_layers=" not in err
    label = [arg for arg in base_commands(inputs, tmp_path)["label"] if arg != "--no-cache"]
    err = assert_refused(capsys, [*label, "--cache", inputs / "file.txt" / "c"], tmp_path, "--cache")
    assert "--out" not in err


def test_a_refused_pickle_prints_no_warning(capsys, tmp_path, inputs):
    """Defect 12: torch's UserWarning about the pickle protocol does not leak beside the one line (the tiny
    model's builder ignores --weights: efficientnet_lite0 reads them)."""
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"weight": os.system}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        argv = ["render", "efficientnet_lite0", "blocks.3:0", "--steps", "1", "--out", tmp_path / "x.png"]
        err = assert_refused(capsys, [*argv, "--weights", evil], tmp_path)
    assert "weights" in err
    assert not [warning for warning in caught if "pickle" in str(warning.message)]


def test_label_csv_neutralizes_formulas(capsys, tmp_path, inputs, monkeypatch):
    """Defect 13: a concept that a spreadsheet would run as a formula is written as text. The labels are given
    (label_units is replaced), so the test reads exactly what the command writes for them."""
    labels = [
        UnitLabel(0, '=HYPERLINK("http://example.com","x")', 2.5, [("+cmd", 2.1), ("dog", 1.0)]),
        UnitLabel(1, "@SUM(A1)", -0.5, [("-2+3", -0.7)]),
        UnitLabel(2, "tabby cat", 1.5, []),
    ]
    monkeypatch.setattr(featviz.cli.label, "label_units", lambda *args, **kwargs: labels)
    out = tmp_path / "labels.csv"
    code, _, err = run_cli(capsys, [*base_commands(inputs, tmp_path)["label"], "--out", out])
    assert code == 0, err
    rows = list(csv.DictReader(out.open(newline="")))
    assert [row["concept"] for row in rows] == ['\'=HYPERLINK("http://example.com","x")', "'@SUM(A1)", "tabby cat"]
    assert [row["runners_up"] for row in rows] == ["'+cmd 2.1; dog 1", "'-2+3 -0.7", ""]
    assert [row["score"] for row in rows] == ["2.5", "-0.5", "1.5"]  # numbers stay numbers
