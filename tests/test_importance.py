"""MACO's importance map: `featviz.render(..., importance=True)`, `RenderResult.importance`, saving it as RGBA, and
`featviz render --importance`."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import featviz
from featviz.cli import main
from featviz.cli import render as render_cli
from featviz.errors import FeatvizError
from featviz_testing import tiny_model

SIZE = (24, 40)  # non-square: rows and columns must not be swapped


def render(objective, **options):
    settings = dict(steps=6, size=SIZE, seed=0, transforms="none", progress=False, importance=True)
    settings.update(options)
    return featviz.render(tiny_model(), objective, **settings)


def distance_map(row: float, column: float) -> torch.Tensor:
    rows, columns = torch.meshgrid(torch.arange(SIZE[0]), torch.arange(SIZE[1]), indexing="ij")
    return ((rows - row) ** 2 + (columns - column) ** 2).float().sqrt()


def test_importance_has_the_images_shape_is_non_negative_and_only_on_request():
    result = render("2:0@3,2", batch=2)
    assert result.importance.shape == (2, *SIZE)
    assert result.importance.dtype == torch.float32 and result.importance.device.type == "cpu"
    assert bool((result.importance >= 0).all()) and bool(torch.isfinite(result.importance).all())
    assert result.importance.sum() > 0
    assert render("2:0@3,2", importance=False).importance is None


def test_importance_lies_in_the_receptive_field_of_a_neuron_on_a_non_square_image():
    # layer "2" is a stride-2 convolution after a 3x3 one: its neuron (x=15, y=3) sees input rows 3-9, columns
    # 27-33 (centre row 6, column 30), far from the left half of the image
    importance = render("2:0@15,3").importance[0]
    distance = distance_map(6, 30)
    assert importance[distance <= 4].mean() > 0
    assert importance[distance > 8].abs().max() == 0
    assert importance[:, :20].abs().max() == 0


def test_importance_follows_the_view_transforms_and_stays_near_the_neuron():
    importance = render("2:0@15,3", transforms="standard", steps=8).importance[0]
    distance = distance_map(6, 30)
    assert importance[distance <= 5].mean() > 5 * importance[distance > 14].mean()


def test_each_image_of_a_batch_gets_its_own_map():
    importance = render(["2:0@2,2", "2:1@17,9"]).importance
    left, right = distance_map(4, 4), distance_map(18, 34)
    assert importance[0][left <= 4].mean() > 0 and importance[0][right <= 4].abs().max() == 0
    assert importance[1][right <= 4].mean() > 0 and importance[1][left <= 4].abs().max() == 0


def test_save_writes_the_render_and_an_rgba_importance_beside_it(tmp_path):
    result = render("2:0@15,3")
    paths = result.save(tmp_path / "neuron.png", importance=True)
    assert [path.name for path in paths] == ["neuron.png", "neuron-importance.png"]
    rendered, overlay = Image.open(paths[0]), Image.open(paths[1])
    assert overlay.mode == "RGBA" and overlay.size == rendered.size == (SIZE[1], SIZE[0])
    pixels = np.asarray(overlay)
    assert pixels[..., 3].max() == 255 and pixels[:, :20, 3].max() == 0  # opaque at the neuron, clear far away
    assert (pixels[..., :3] == np.asarray(rendered)).all()
    many = render(["2:0@2,2", "2:1@17,9"])
    names = {path.name for path in many.save(tmp_path / "folder", importance=True)}
    assert names == {"0-2-0-2-2.png", "0-2-0-2-2-importance.png", "1-2-1-17-9.png", "1-2-1-17-9-importance.png"}


def test_saving_an_importance_that_was_not_kept_fails_and_writes_nothing(tmp_path):
    result = render("2:0", importance=False)
    with pytest.raises(FeatvizError, match="importance=True"):
        result.save(tmp_path / "x.png", importance=True)
    assert list(tmp_path.iterdir()) == []


def test_cli_render_importance_writes_both_pngs(capsys, tmp_path, monkeypatch, lite0):
    monkeypatch.setattr(render_cli, "load_model", lambda *args, **kwargs: lite0)
    out = tmp_path / "unit.png"
    code = main(["render", "efficientnet_lite0", "blocks.2.0.conv_pwl:3@1,1", "--steps", "2", "--size", "32",
                 "--transforms", "none", "--importance", "--out", str(out), "--no-progress"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert printed.out.split() == [str(out), str(tmp_path / "unit-importance.png")]
    assert Image.open(tmp_path / "unit-importance.png").mode == "RGBA"
