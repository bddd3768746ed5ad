"""Tests of featviz.recipes.interaction (neuron interaction grid, aligned interpolation), the shared
parameterization it renders with, and `featviz interaction` / `featviz interpolate`."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import featviz
from featviz.cli import main
from featviz.errors import FeatvizError
from featviz.hooks import ActivationCapture
from featviz.objectives import channel
from featviz.objectives.binding import bind_objective
from featviz.param import Shared, create
from featviz.recipes import interaction_grid, interpolate
from featviz_testing import tiny_model

TINY_TIMM = "timm:test_efficientnet"


@pytest.fixture(scope="module")
def renderer():
    return featviz.Renderer(tiny_model(size=32))


def channel_values(model, layer: str, channels: list[int], images: torch.Tensor) -> torch.Tensor:
    """``(images, channels)``: each channel's spatial mean on each image."""
    bound = bind_objective(model, [channel(layer, index) for index in channels], size=images.shape[-2:])
    with torch.no_grad(), ActivationCapture(model, [layer], layouts=bound.layouts) as capture:
        activations = capture.run(images)[layer]
    return activations[:, channels].mean((-2, -1))


def adjacent_correlation(frames: torch.Tensor) -> float:
    """Mean correlation of each frame with the next (pixels, each frame's mean removed)."""
    flat = F.normalize((frames - frames.mean((1, 2, 3), keepdim=True)).flatten(1), dim=1)
    return float((flat[1:] * flat[:-1]).sum(1).mean())


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------- the shared parameterization


def test_shared_grids_move_every_image_alike_and_leave_the_differences_to_each_images_own_part():
    image = create("shared", (24, 40), batch=3, seed=0, factors=(4, 8))
    assert isinstance(image, Shared)
    assert [tuple(grid.shape) for grid in image.shared_grids] == [(1, 3, 6, 10), (1, 3, 3, 5)]
    before = image.components()
    with torch.no_grad():
        for grid in image.shared_grids:
            grid.normal_()
    after = image.components()
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after[1:] - after[:-1], before[1:] - before[:-1])
    image()[2].sum().backward()  # one image's gradient reaches the grids every image shares
    assert all(grid.grad.abs().sum() > 0 for grid in image.shared_grids)


def test_shared_factors_are_checked():
    with pytest.raises(FeatvizError, match="factors"):
        Shared(16, factors=(2, 0))
    with pytest.raises(FeatvizError, match="factors"):
        Shared(16, factors=4)


# ---------------------------------------------------------------- the interaction grid


def test_interaction_grid_is_symmetric_with_single_units_on_the_diagonal(renderer, tmp_path):
    found = interaction_grid(renderer, ["2:0", "2:1", "2:3"], size=24, steps=3, seed=5, progress=False)
    assert found.units == ["2:0", "2:1", "2:3"]
    assert found.images.shape == (9, 3, 24, 24) and found.history.shape == (3, 9)
    assert [found.objectives[index] for index in (0, 4, 8)] == ["2:0", "2:1", "2:3"]
    assert found.objectives[1] == found.objectives[3] == "2:0 + 2:1"
    for row in range(3):
        for column in range(3):
            assert torch.equal(found.images[row * 3 + column], found.images[column * 3 + row])
    alone = featviz.render(renderer.model, "2:1", size=24, steps=3, seed=5 + 3, progress=False)  # pair index 3
    torch.testing.assert_close(found.images[4], alone.images[0], atol=1e-4, rtol=1e-4)
    (written,) = found.save(tmp_path / "grid.png")
    assert Image.open(written).size == (3 * 24 + 4 * 2, 3 * 24 + 4 * 2)


def test_a_pair_render_drives_each_of_its_channels_more_than_the_other_channels_own_render(lite0):
    channels = [1, 4, 9]
    found = interaction_grid(lite0, [f"blocks.3:{index}" for index in channels], size=64, steps=16, seed=0,
                             progress=False)
    values = channel_values(lite0, "blocks.3", channels, found.images)
    for first in range(3):
        for second in range(first + 1, 3):
            pair = first * 3 + second
            assert values[pair, first] > values[second * 3 + second, first], (first, second, values)
            assert values[pair, second] > values[first * 3 + first, second], (first, second, values)


def test_interaction_mistakes_are_featviz_errors(renderer):
    with pytest.raises(FeatvizError, match="at least 2 units"):
        interaction_grid(renderer, ["2:0"], steps=1)
    with pytest.raises(FeatvizError, match="given twice"):
        interaction_grid(renderer, ["2:0", "2:0-1"], steps=1)
    with pytest.raises(FeatvizError, match="valid: 0-7"):
        interaction_grid(renderer, ["2:0", "2:9"], steps=1, progress=False)


# ---------------------------------------------------------------- interpolation


def test_interpolation_frames_blend_the_two_units(renderer, tmp_path):
    frames = interpolate(renderer, "2:0", "2:1", frames=5, size=24, steps=2, progress=False)
    assert frames.fractions == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert frames.images.shape == (5, 3, 24, 24) and frames.history.shape == (2, 5)
    assert frames.objectives == ["2:0", "0.75*2:0 + 0.25*2:1", "0.5*2:0 + 0.5*2:1", "0.25*2:0 + 0.75*2:1", "2:1"]
    (written,) = frames.save(tmp_path / "strip.png")
    assert Image.open(written).size == (5 * 24 + 6 * 2, 24 + 2 * 2)


def test_shared_parameters_align_adjacent_frames_better_than_independent_frames(renderer):
    options = dict(frames=5, size=32, steps=30, seed=0, alignment=0.0, progress=False)
    shared = interpolate(renderer, "2:0", "2:1", **options)
    independent = interpolate(renderer, "2:0", "2:1", shared=False, **options)
    assert adjacent_correlation(shared.images) > adjacent_correlation(independent.images) + 0.2


def test_interpolation_mistakes_are_featviz_errors(renderer):
    with pytest.raises(FeatvizError, match="frames must be an int >= 2"):
        interpolate(renderer, "2:0", "2:1", frames=1)
    with pytest.raises(FeatvizError, match="the same unit"):
        interpolate(renderer, "2:0", " 2:0 ", frames=3)
    with pytest.raises(FeatvizError, match="alignment must be"):
        interpolate(renderer, "2:0", "2:1", alignment=-1.0)
    with pytest.raises(FeatvizError, match="where one is expected"):
        interpolate(renderer, "2:0-3", "2:1")


# ---------------------------------------------------------------- the command line


def test_cli_interpolate_and_interaction_write_one_png_each(capsys, tmp_path):
    strip = tmp_path / "strip.png"
    code, printed, err = run_cli(capsys, "interpolate", TINY_TIMM, "blocks.2:0", "blocks.2:5", "--weights", "random",
                                 "--frames", "3", "--steps", "2", "--size", "32", "--out", str(strip), "--no-progress")
    assert code == 0, err
    assert printed.strip() == str(strip) and Image.open(strip).size == (3 * 32 + 4 * 2, 32 + 2 * 2)
    grid = tmp_path / "grid.png"
    code, printed, err = run_cli(capsys, "interaction", TINY_TIMM, "blocks.2:0-1", "blocks.3:2", "--weights", "random",
                                 "--steps", "2", "--size", "32", "--out", str(grid), "--no-progress")
    assert code == 0, err
    assert printed.strip() == str(grid) and Image.open(grid).size == (3 * 32 + 4 * 2,) * 2


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["interpolate", TINY_TIMM, "blocks.2:0", "blocks.2:1", "--frames", "1"], "--frames must be at least 2"),
        (["interpolate", TINY_TIMM, "blocks.2:0", "blocks.2:0"], "the same unit"),
        (["interpolate", TINY_TIMM, "blocks.2:0", "blocks.22:1"], "closest: blocks.2"),
        (["interpolate", TINY_TIMM, "blocks.2:0", "blocks.2:1", "--out", "strip.jpg"], "ending in .png"),
        (["interaction", TINY_TIMM, "blocks.2:0"], "at least 2 units"),
        (["interaction", TINY_TIMM, "blocks.2:0", "blocks.2:999"], "valid: 0-31"),
    ],
)
def test_cli_mistakes_exit_2_with_one_line(capsys, tmp_path, arguments, message):
    if "--out" in arguments:
        arguments[arguments.index("--out") + 1] = str(tmp_path / arguments[arguments.index("--out") + 1])
    else:
        arguments = arguments + ["--out", str(tmp_path / "out.png")]
    code, printed, err = run_cli(capsys, *arguments, "--weights", "random", "--steps", "1", "--size", "32",
                                 "--no-progress")
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())
