"""Style transfer in a decorrelated parameterization (`featviz.recipes.style`) and `featviz style`."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from featviz.cli import main
from featviz.cli import style as style_cli
from featviz.errors import FeatvizError
from featviz.recipes import gram_matrix, style_transfer, transfer_losses
from featviz.dataset.photo import load_photo
from featviz_testing import tiny_model


@pytest.fixture(scope="module")
def cat() -> torch.Tensor:
    return load_photo(data.chelsea(), 48)  # 48 x 72: non-square


@pytest.fixture(scope="module")
def stain() -> np.ndarray:
    """A purple and brown tissue stain: a texture nothing like the cat."""
    return data.immunohistochemistry()


def test_gram_matrix_is_the_channel_co_activation_averaged_over_positions():
    activations = torch.randn(2, 5, 3, 4)
    grams = gram_matrix(activations)
    assert grams.shape == (2, 5, 5)
    flat = activations[1].reshape(5, 12)
    torch.testing.assert_close(grams[1], flat @ flat.T / 12)
    torch.testing.assert_close(grams, grams.transpose(1, 2))
    torch.testing.assert_close(gram_matrix(activations.flip(-1).roll(1, -2)), grams)  # positions do not matter


def test_style_transfer_takes_the_style_and_keeps_the_content_better_in_fourier_space(lite0, cat, stain):
    base = transfer_losses(cat, cat, stain, lite0)
    assert base.content.item() < 1e-6 and base.style.item() > 0.3  # the photo has its own style
    options = dict(size=48, steps=24, progress=False, seed=0)
    fourier = style_transfer(lite0, stain, cat, **options)
    assert fourier.images.shape == cat.shape
    losses = transfer_losses(fourier.images, cat, stain, lite0)
    assert losses.style.item() < 0.5 * base.style.item()  # far closer to the stain's style than the photo
    assert losses.content.item() < 0.5  # the cat is still there (a uniform grey image scores above 1)
    pixel = transfer_losses(style_transfer(lite0, stain, cat, param="pixel", **options).images, cat, stain, lite0)
    assert losses.style.item() < 0.7 * pixel.style.item()  # Distill's point: the same steps go further in fft


def test_layers_default_only_on_efficientnet_lite_and_mistakes_are_reported(cat, stain):
    model = tiny_model()
    with pytest.raises(FeatvizError, match="style_layers"):
        style_transfer(model, stain, cat, steps=1, progress=False)
    result = style_transfer(model, stain, cat, style_layers=["0", "2"], content_layer="2", size=(16, 24), steps=2,
                            progress=False)
    assert result.images.shape == (1, 3, 16, 24)
    with pytest.raises(FeatvizError, match="unknown layer '9x'"):
        style_transfer(model, stain, cat, style_layers=["0", "9x"], content_layer="2", size=16, steps=1,
                       progress=False)
    with pytest.raises(FeatvizError, match="content_weight"):
        style_transfer(model, stain, cat, style_layers=["0"], content_layer="2", content_weight=-1, steps=1,
                       progress=False)


def test_cli_writes_a_png_with_the_default_model(capsys, tmp_path, monkeypatch, lite0):
    Image.fromarray(data.chelsea()).save(tmp_path / "cat.jpg")
    Image.fromarray(data.immunohistochemistry()).save(tmp_path / "stain.png")
    requested = []
    monkeypatch.setattr(style_cli, "load_model", lambda name, **kwargs: requested.append(name) or lite0)
    out = tmp_path / "style.png"
    code = main(["style", str(tmp_path / "cat.jpg"), str(tmp_path / "stain.png"), "--steps", "1", "--size", "32",
                 "--out", str(out), "--no-progress"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert printed.out.split() == [str(out)] and requested == ["efficientnet_lite0"]
    assert Image.open(out).size == (48, 32)


@pytest.mark.parametrize("argv, hint", [
    (["{cat}", "missing.png"], "does not exist"),
    (["{cat}", "{cat}", "--style-layers", "blocks.0,blocks.9"], "closest"),
    (["{cat}", "{cat}", "--style-weight", "-2"], "--style-weight"),
    (["{cat}", "{cat}", "--style-layers", " , "], "--style-layers"),
])
def test_cli_mistakes_exit_2_with_one_line(capsys, tmp_path, monkeypatch, lite0, argv, hint):
    Image.fromarray(np.full((20, 30, 3), 128, np.uint8)).save(tmp_path / "cat.png")
    monkeypatch.setattr(style_cli, "load_model", lambda *args, **kwargs: lite0)
    argv = [item.format(cat=tmp_path / "cat.png") for item in argv]
    code = main(["style", *argv, "--size", "16", "--steps", "1", "--out", str(tmp_path / "out.png"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and hint in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out.png").exists()
