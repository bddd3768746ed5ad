import subprocess
import sys

import pytest
from PIL import Image

from featviz.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_layers_lists_dot_paths_types_shapes_and_channels(capsys):
    code, out, err = run_cli(capsys, "layers", "efficientnet_lite0")
    assert code == 0, err
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["blocks.3.0.conv_pwl"][1:] == ["Conv2d", "1x80x14x14", "nchw", "80"]
    assert rows["conv_head"][-1] == "1280"


def test_render_writes_one_png_per_objective_and_prints_paths(capsys, tmp_path):
    code, out, err = run_cli(
        capsys, "render", "efficientnet_lite0", "blocks.2.0.conv_pwl:0-1", "class:goldfish",
        "--steps", "2", "--size", "64", "--seed", "3", "--out", str(tmp_path / "renders"), "--no-progress",
    )
    assert code == 0, err
    paths = out.split()
    assert len(paths) == 3
    for path in paths:
        image = Image.open(path)
        assert image.size == (64, 64) and image.mode == "RGB"
    assert Image.open(paths[2]).text["featviz:objective"] == "class:goldfish"


def test_render_several_objectives_into_one_grid(capsys, tmp_path):
    out_file = tmp_path / "grid.png"
    code, out, err = run_cli(
        capsys, "render", "efficientnet_lite0", "blocks.1.0.conv_pwl:0-3", "--steps", "1", "--size", "32",
        "--out", str(out_file), "--no-progress", "--param", "pixel", "--transforms", "none",
    )
    assert code == 0, err
    assert out.strip() == str(out_file)
    assert Image.open(out_file).size == (32 * 2 + 3 * 2, 32 * 2 + 3 * 2)


MISTAKES = [
    (["render", "efficientnet_lite9", "x:1"], "efficientnet_lite0"),
    (["render", "efficientnet_lite0", "blocks.4.0.conv_pwx:1"], "closest: blocks.4.0.conv_pw"),
    (["render", "efficientnet_lite0", "blocks.4.0.conv_pwl:112"], "valid: 0-111"),
    (["render", "efficientnet_lite0", "blocks.4.0.conv_pwl:@"], "malformed objective"),
    (["render", "efficientnet_lite0", "class:goldfsh"], "goldfish"),
    (["render", "efficientnet_lite0", "blocks.4.0.conv_pwl:1", "--steps", "0"], "--steps"),
    (["render", "efficientnet_lite0", "blocks.4.0.conv_pwl:1", "--param", "wavelet"], "invalid choice"),
    (["render", "efficientnet_lite0", "blocks.4.0.conv_pwl:1", "--device", "cuda:7"], "--device cpu"),
    (["render", "efficientnet_lite0", "blocks.4.0.conv_pwl:1", "--precision", "fp16"], "--precision bf16"),
]


@pytest.mark.parametrize("argv, hint", MISTAKES)
def test_user_mistakes_exit_2_with_one_line(capsys, tmp_path, argv, hint):
    extra = [] if "--steps" in argv else ["--steps", "1"]
    code, out, err = run_cli(capsys, *argv, *extra, "--out", str(tmp_path / "x.png"), "--no-progress")
    assert code == 2
    assert hint in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.iterdir()), "no partial file is left"


def test_unwritable_output_and_corrupt_weights(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = run_cli(capsys, "render", "efficientnet_lite0", "blocks.1.0.conv_pwl:0", "--out", str(blocker / "x.png"))
    assert code == 2 and "--out" in err
    corrupt = tmp_path / "weights.pth"
    corrupt.write_bytes(b"this is not a checkpoint")
    code, _, err = run_cli(capsys, "render", "efficientnet_lite0", "blocks.1.0.conv_pwl:0", "--weights", str(corrupt), "--out", str(tmp_path / "y.png"))
    assert code == 2 and "weights" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "y.png").exists()


def test_console_entry_point_exit_code_and_no_traceback(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "featviz", "render", "efficientnet_lite0", "nolayer:1", "--out", str(tmp_path / "a.png")],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stderr.startswith("featviz: error: unknown layer 'nolayer'")
    assert "Traceback" not in completed.stderr


def test_models_lists_registered_names(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0
    assert out.splitlines()[:3] == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
