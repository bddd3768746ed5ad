"""Feature inversion and caricatures (`featviz.recipes.inversion`), the photo loading and paired views they share
with the other photo recipes, and `featviz caricature`."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

import featviz
from featviz.cli import caricature as caricature_cli
from featviz.cli import main
from featviz.errors import FeatvizError
from featviz.hooks import ActivationCapture, bind_layers
from featviz.recipes import caricature
from featviz.dataset.photo import load_photo
from featviz.recipes.inversion import PhotoPair
from featviz_testing import tiny_model


@pytest.fixture(scope="module")
def cat() -> torch.Tensor:
    """Chelsea the cat, 300 x 451: a non-square photo (48 x 72 here)."""
    return load_photo(data.chelsea(), 48)


def flat_activations(model, images: torch.Tensor, layer: str) -> torch.Tensor:
    binding = bind_layers(model, [layer], tuple(images.shape[-2:]))
    with torch.no_grad(), ActivationCapture(model, [layer], layouts=binding.layouts) as capture:
        return capture.run(images)[layer].flatten(1)


# ---------------------------------------------------------------- photos


def test_load_photo_keeps_the_aspect_ratio_and_reads_every_kind_of_input(tmp_path):
    array = data.chelsea()  # 300 x 451
    from_array = load_photo(array, 64)
    assert from_array.shape == (1, 3, 64, 96) and from_array.dtype == torch.float32
    assert 0 <= float(from_array.min()) and float(from_array.max()) <= 1
    Image.fromarray(array).save(tmp_path / "cat.png")
    torch.testing.assert_close(load_photo(tmp_path / "cat.png", 64), from_array)
    torch.testing.assert_close(load_photo(Image.fromarray(array), 64), from_array)
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    torch.testing.assert_close(load_photo(tensor, 64), from_array)
    torch.testing.assert_close(load_photo(tensor.float() / 255, 64), from_array, atol=1e-6, rtol=0)
    assert load_photo(array, (40, 50)).shape == (1, 3, 40, 50)
    assert load_photo(array).shape == (1, 3, 300, 451)
    grey = load_photo(array, 64, channels=1)
    assert grey.shape == (1, 1, 64, 96)
    torch.testing.assert_close(grey, load_photo(Image.fromarray(array).convert("L"), 64, channels=1), atol=0.01, rtol=0)
    # a multispectral model's photos come as tensors with its channel count; files stay grey or RGB
    assert load_photo(torch.rand(4, 30, 45), 20, channels=4).shape == (1, 4, 20, 30)
    with pytest.raises(FeatvizError, match="pass a tensor instead"):
        load_photo(array, 20, channels=4)


def test_load_photo_mistakes_name_what_would_be_right(tmp_path):
    with pytest.raises(FeatvizError, match="does not exist"):
        load_photo(tmp_path / "missing.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(FeatvizError, match="cannot read image"):
        load_photo(tmp_path / "broken.jpg")
    with pytest.raises(FeatvizError, match="model takes 3"):
        load_photo(torch.rand(4, 8, 8))
    with pytest.raises(FeatvizError, match="NaN"):
        load_photo(torch.full((3, 8, 8), float("nan")))


def test_paired_views_show_each_photo_exactly_as_its_image():
    model = tiny_model()
    renderer = featviz.Renderer(model)
    photos = torch.rand(2, 3, 24, 40)
    pair = PhotoPair(renderer, photos, transforms="standard", seeds=[3, 9])
    assert pair.paired
    views = pair(photos.clone(), None)  # images identical to their photos: identical views
    assert views.shape == (4, 3, 24, 40)
    torch.testing.assert_close(views[:2], views[2:])
    assert not torch.allclose(views[0], views[1])  # each image draws its own view
    again = pair(photos.clone(), None)
    assert not torch.allclose(again[:2], views[:2])  # and a new one every step
    assert not PhotoPair(renderer, photos, transforms="none", seeds=[3, 9]).paired


# ---------------------------------------------------------------- the recipe


def test_inversion_reproduces_the_photos_activations_better_than_another_photo_or_the_start(lite0, cat):
    layer = "blocks.3"
    result = caricature(lite0, layer, cat, mode="inversion", size=48, steps=10, transforms="none", progress=False)
    assert result.images.shape == cat.shape  # non-square, as the photo
    target = flat_activations(lite0, cat, layer)

    def errors(images):
        found = flat_activations(lite0, images, layer)
        relative = float((found - target).square().sum() / target.square().sum())
        return relative, float(torch.nn.functional.cosine_similarity(found, target).squeeze())

    inverted = errors(result.images)
    other = errors(load_photo(data.astronaut(), tuple(cat.shape[-2:])))
    start = errors(featviz.param.Fourier(tuple(cat.shape[-2:]), seed=0)().detach())
    assert inverted[0] < 0.5 * other[0] and inverted[0] < 0.5 * start[0]
    assert inverted[1] > other[1] + 0.2 and inverted[1] > start[1] + 0.2
    assert result.history[-1, 0] > result.history[0, 0]  # the score is -relative error: it rose


def test_caricature_exaggerates_the_photos_pattern_where_inversion_reproduces_it(cat):
    model = tiny_model()
    photo = load_photo(cat, 32)
    options = dict(steps=30, transforms="none", progress=False, seed=1)
    inverted = caricature(model, "2", photo, mode="inversion", **options).images
    exaggerated = caricature(model, "2", photo, mode="caricature", cossim_pow=0.0, **options).images
    target = flat_activations(model, photo, "2")

    def projection(images):  # the image's activations along the photo's, 1 = the photo's own
        return float((flat_activations(model, images, "2") * target).sum() / target.square().sum())

    assert projection(exaggerated) > 1.1 > projection(inverted) > 0.5


def test_several_layers_render_one_image_each_and_layers_are_checked(cat):
    model = tiny_model()
    result = caricature(model, ["0", "2"], cat, steps=2, size=(16, 24), transforms="none", progress=False)
    assert result.images.shape == (2, 3, 16, 24)
    assert result.objectives == ["caricature(0, 2)"]
    with pytest.raises(FeatvizError, match="closest"):
        caricature(model, "22", cat, steps=1, size=16, progress=False)
    with pytest.raises(FeatvizError, match="mode"):
        caricature(model, "2", cat, mode="invert", steps=1, progress=False)
    with pytest.raises(FeatvizError, match="cossim_pow"):
        caricature(model, "2", cat, cossim_pow=-1, steps=1, progress=False)


# ---------------------------------------------------------------- the command line


def test_cli_writes_a_png_of_the_photos_shape(capsys, tmp_path, monkeypatch, lite0):
    Image.fromarray(data.chelsea()).save(tmp_path / "cat.jpg")
    monkeypatch.setattr(caricature_cli, "load_model", lambda *args, **kwargs: lite0)
    out = tmp_path / "caricature.png"
    code = main(["caricature", str(tmp_path / "cat.jpg"), "efficientnet_lite0", "--layer", "blocks.2,blocks.3",
                 "--mode", "inversion", "--steps", "1", "--size", "32", "--out", str(out), "--no-progress"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert printed.out.split() == [str(out)]
    assert Image.open(out).size == (2 * 48 + 3 * 2, 32 + 2 * 2)  # two 32 x 48 images side by side


@pytest.mark.parametrize("argv, hint", [
    (["missing.jpg", "efficientnet_lite0", "--layer", "blocks.3"], "does not exist"),
    (["{cat}", "efficientnet_lite0", "--layer", "blocks.3", "--cossim-pow", "-1"], "--cossim-pow"),
    (["{cat}", "efficientnet_lite0", "--layer", "blocks.3", "--steps", "0"], "--steps"),
    (["{cat}", "efficientnet_lite0", "--layer", "blocks.33"], "closest"),
    (["{cat}", "efficientnet_lite0", "--layer", "blocks.3", "--out", "{tmp}/x.jpg"], "ending in .png"),
])
def test_cli_mistakes_exit_2_with_one_line(capsys, tmp_path, monkeypatch, lite0, argv, hint):
    Image.fromarray(np.full((20, 30, 3), 128, np.uint8)).save(tmp_path / "cat.png")
    monkeypatch.setattr(caricature_cli, "load_model", lambda *args, **kwargs: lite0)
    argv = [item.format(cat=tmp_path / "cat.png", tmp=tmp_path) for item in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out.png")]
    code = main(["caricature", *argv, "--size", "16", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and hint in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out.png").exists()
