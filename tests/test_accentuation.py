"""Feature accentuation (`featviz.recipes.accentuate`), the Fourier parameterization started from an image
(`Fourier(init_image=...)`), and `featviz accentuate`."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from featviz.cli import accentuate as accentuate_cli
from featviz.cli import main
from featviz.errors import FeatvizError
from featviz.hooks import ActivationCapture
from featviz.objectives.binding import bind_objective
from featviz.param import Fourier, create
from featviz.recipes import accentuate
from featviz.dataset.photo import load_photo
from featviz_testing import tiny_model


@pytest.fixture(scope="module")
def cat() -> torch.Tensor:
    return load_photo(data.chelsea(), 48)  # 48 x 72: non-square


def score(model, images: torch.Tensor, objective: str) -> float:
    bound = bind_objective(model, objective, size=tuple(images.shape[-2:]))
    with torch.no_grad(), ActivationCapture(model, bound.target.layers, layouts=bound.layouts) as capture:
        return float(bound.target(capture.run(images)).mean())


# ---------------------------------------------------------------- Fourier(init_image=...)


@pytest.mark.parametrize("options", [{}, {"decay": 1.0}, {"decorrelate": False}, {"alpha": True}, {"batch": 3}])
def test_fourier_started_from_an_image_returns_that_image(options):
    image = torch.rand(3, 20, 33) * 0.98 + 0.01  # odd width: the real spectrum's last column is not a mirror
    fourier = Fourier((20, 33), init_image=image, **options)
    first = fourier()
    torch.testing.assert_close(first[:, :3], image.expand(first.shape[0], -1, -1, -1), atol=1e-5, rtol=0)
    if options.get("alpha"):
        assert bool((first[:, 3] > 0.99).all())  # an alpha channel starts opaque
    loss = first.mean()
    loss.backward()
    assert fourier.spectrum.grad.abs().sum() > 0  # still optimizable
    per_element = Fourier((20, 33), batch=2, init_image=torch.stack([image, 1 - image]))
    torch.testing.assert_close(per_element()[1], 1 - image, atol=1e-5, rtol=0)
    torch.testing.assert_close(create("fft", (20, 33), init_image=image)(), image[None], atol=1e-5, rtol=0)


def test_fourier_init_image_mistakes_name_the_right_shape():
    with pytest.raises(FeatvizError, match="resize it to that size"):
        Fourier(32, init_image=torch.rand(3, 20, 33))
    with pytest.raises(FeatvizError, match=r"give \(3, 16, 16\)"):
        Fourier(16, init_image=torch.rand(2, 16, 16))
    with pytest.raises(FeatvizError, match="float tensor"):
        Fourier(16, init_image=np.zeros((3, 16, 16)))


# ---------------------------------------------------------------- the recipe


def test_accentuation_raises_the_unit_but_stays_closer_to_the_photo_than_an_unconstrained_render(lite0, cat):
    unit = "blocks.5.0.conv_pwl:12"
    options = dict(size=48, steps=12, transforms="none", progress=False)
    accentuated = accentuate(lite0, unit, cat, **options)
    unconstrained = accentuate(lite0, unit, cat, balance=0.0, **options)
    assert accentuated.images.shape == cat.shape and accentuated.importance.shape == (1, 48, 72)
    photo_score = score(lite0, cat, unit)
    assert score(lite0, accentuated.images, unit) > photo_score + 3.0  # a clear rise (the photo scores about 1)

    def distance(images):
        return float((images - cat).square().mean())

    assert distance(accentuated.images) < 0.6 * distance(unconstrained.images)
    assert "distance(blocks.2)" in accentuated.objectives[0] and unconstrained.objectives == [unit]


def test_other_models_stay_close_in_pixels_and_a_list_gives_one_accentuation_each(cat):
    model = tiny_model()
    result = accentuate(model, ["2:0", "2:1@3,2"], cat, size=(16, 24), steps=3, progress=False)
    assert result.images.shape == (2, 3, 16, 24) and result.importance.shape == (2, 16, 24)
    assert "distance(@image)" in result.objectives[0]
    plain = accentuate(model, "2:0", cat, size=(16, 24), steps=3, importance=False, progress=False)
    assert plain.importance is None
    with pytest.raises(FeatvizError, match="balance"):
        accentuate(model, "2:0", cat, balance=-1, steps=1, progress=False)
    with pytest.raises(FeatvizError, match="out of range"):
        accentuate(model, "2:99", cat, size=16, steps=1, progress=False)


# ---------------------------------------------------------------- the command line


def test_cli_writes_the_accentuation_and_its_importance(capsys, tmp_path, monkeypatch, lite0):
    Image.fromarray(data.chelsea()).save(tmp_path / "cat.jpg")
    monkeypatch.setattr(accentuate_cli, "load_model", lambda *args, **kwargs: lite0)
    out = tmp_path / "tabby.png"
    code = main(["accentuate", str(tmp_path / "cat.jpg"), "efficientnet_lite0", "class:tabby", "--steps", "1",
                 "--size", "32", "--transforms", "none", "--out", str(out), "--no-progress"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert printed.out.split() == [str(out), str(tmp_path / "tabby-importance.png")]
    assert Image.open(out).size == (48, 32) and Image.open(tmp_path / "tabby-importance.png").mode == "RGBA"


@pytest.mark.parametrize("argv, hint", [
    (["missing.jpg", "efficientnet_lite0", "class:tabby"], "does not exist"),
    (["{cat}", "efficientnet_lite0", "blocks.5:@"], "malformed objective"),
    (["{cat}", "efficientnet_lite0", "class:tabbby"], "tabby"),
    (["{cat}", "efficientnet_lite0", "class:tabby", "--regularization-layer", "blocks.22"], "closest"),
    (["{cat}", "efficientnet_lite0", "class:tabby", "--balance", "nan"], "--balance"),
])
def test_cli_mistakes_exit_2_with_one_line(capsys, tmp_path, monkeypatch, lite0, argv, hint):
    Image.fromarray(np.full((20, 30, 3), 128, np.uint8)).save(tmp_path / "cat.png")
    monkeypatch.setattr(accentuate_cli, "load_model", lambda *args, **kwargs: lite0)
    argv = [item.format(cat=tmp_path / "cat.png") for item in argv]
    code = main(["accentuate", *argv, "--size", "16", "--steps", "1", "--out", str(tmp_path / "out.png"),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and hint in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out.png").exists()
