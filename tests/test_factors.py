"""NMF factors of a layer over images: they reconstruct real activations better than a random basis, their
renders activate their directions, signed activations are split, and the `featviz factors` command."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.decomposition import non_negative_factorization

from featviz.cli import main
from featviz.errors import FeatvizError
from featviz.hooks import ActivationCapture, bind_layers
from featviz.models import list_models, register_model
from featviz.recipes.factors import Factors, explained, factorize, layer_factors, render_factors
from featviz.renderer import Renderer

from featviz_testing import tiny_model

TINY_NAME = "factors_test_tiny"
if TINY_NAME not in list_models():
    register_model(TINY_NAME)(lambda weights: tiny_model(size=32))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for index in range(5):
        pixels = np.random.default_rng(index).integers(0, 256, (36, 44, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"photo{index}.png")
    return folder


def mean_activation(model, layer, images):
    binding = bind_layers(model, [layer], tuple(images.shape[-2:]))
    with torch.no_grad(), ActivationCapture(model, [layer], layouts=binding.layouts) as capture:
        return capture.run(images)[layer].mean((2, 3))


def test_factors_reconstruct_real_activations_and_their_renders_follow_them(lite0):
    found = layer_factors(lite0, "blocks.4", "shipped", count=6, samples=240, positions=16, image_size=96)
    assert isinstance(found, Factors) and found.layer == "blocks.4" and found.directions.shape == (6, 112)
    assert found.directions.dtype == torch.float32
    assert torch.allclose(found.directions.norm(dim=1), torch.ones(6), atol=1e-5)
    assert torch.all(found.usage[:-1] >= found.usage[1:]) and abs(float(found.usage.sum()) - 1) < 1e-5

    # a random non-negative basis of the same rank, with its best non-negative coefficients, reconstructs less
    features = found.features(found.sample.vectors)
    basis = np.random.default_rng(0).random((6, features.shape[1]))
    coefficients, _, _ = non_negative_factorization(features, H=basis, n_components=6, init="custom",
                                                    update_H=False, max_iter=500)
    random_share = explained(features, coefficients, basis)
    assert found.explained > random_share + 0.1, (found.explained, random_share)

    renderer = Renderer(lite0)
    directions = found.directions[:4]
    four = Factors(found.layer, directions, found.components[:4], found.usage[:4], found.explained, found.negatives,
                   found.sample)
    own = render_factors(renderer, four, steps=16, size=64, seed=0, progress=False)
    random = torch.nn.functional.normalize(torch.randn(4, 112, generator=torch.Generator().manual_seed(0)), dim=1)
    other = render_factors(renderer, Factors(found.layer, random, random, found.usage[:4], 0.0, "split", found.sample),
                           steps=16, size=64, seed=0, progress=False)
    along_own = (mean_activation(lite0, "blocks.4", own.images) * directions).sum(1)
    along_other = (mean_activation(lite0, "blocks.4", other.images) * directions).sum(1)
    assert torch.all(along_own > along_other + 1.0), (along_own, along_other)


def test_signed_activations_are_split_and_maps_reconstruct_them(photos):
    model = tiny_model(size=32)
    found = layer_factors(model, "2", photos, count=4, samples=300, positions=16)  # a convolution: signed values
    assert found.components.shape == (4, 16) and found.negatives == "split"
    assert (found.sample.vectors < 0).any()
    expected = found.components[:, :8] - found.components[:, 8:]
    assert torch.allclose(found.directions, torch.nn.functional.normalize(expected, dim=1), atol=1e-5)
    clipped = layer_factors(model, "2", photos, count=4, samples=300, positions=16, negatives="clip")
    assert clipped.components.shape == (4, 8) and clipped.explained > 0

    # after a ReLU there is nothing below 0: split and clip find the same directions
    relu_split = layer_factors(model, "1", photos, count=3, samples=200, positions=8)
    relu_clip = layer_factors(model, "1", photos, count=3, samples=200, positions=8, negatives="clip")
    assert torch.allclose(relu_split.directions, relu_clip.directions, atol=0.02)  # nndsvda starts differ a little

    # maps of the factors over whole images rebuild their activations about as well as the fit did on the sample
    folder_images = torch.stack([
        torch.from_numpy(np.array(Image.open(path).convert("RGB").resize((32, 24)))).permute(2, 0, 1).float() / 255
        for path in sorted(photos.glob("*.png"))
    ])
    binding = bind_layers(model, ["2"], (24, 32))
    with torch.no_grad(), ActivationCapture(model, ["2"], layouts=binding.layouts) as capture:
        activations = capture.run(folder_images)["2"]
    maps = found.project(activations)
    assert maps.shape == (5, 4, 12, 16) and maps.min() >= 0
    coefficients = maps.permute(0, 2, 3, 1).reshape(-1, 4).numpy()
    features = found.features(activations.permute(0, 2, 3, 1).reshape(-1, 8))
    share = explained(features, coefficients, found.components.numpy())
    assert share > found.explained - 0.1, (share, found.explained)
    with pytest.raises(FeatvizError, match=r"activations must be \(batch, 8, height, width\)"):
        found.project(activations[:, :4])

    with pytest.raises(FeatvizError, match="count must be an int from 1 to 16"):
        factorize(found.sample, 17)
    with pytest.raises(FeatvizError, match="negatives must be 'split' or 'clip'"):
        layer_factors(model, "2", photos, negatives="abs")
    with pytest.raises(FeatvizError, match="unknown layer '9'"):
        layer_factors(model, "9", photos)


def test_cli_renders_the_factors_into_one_grid(capsys, tmp_path, photos):
    out = tmp_path / "factors.png"
    code = main(["factors", TINY_NAME, "--layer", "2", "--images", str(photos), "--count", "3", "--steps", "2",
                 "--size", "16", "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    first, second = captured.out.strip().splitlines()
    assert first.startswith("3 factors of 2 explain ") and "from 5 images" in first and second == str(out)
    with Image.open(out) as picture:
        assert picture.size == (2 * 16 + 3 * 2, 2 * 16 + 3 * 2)  # a 2 x 2 grid with 2-pixel padding
    for arguments, message in (
        (["--count", "0"], "--count must be at least 1, got 0"),
        (["--layer", "22"], "unknown layer '22'"),
        (["--negatives", "abs"], "invalid choice: 'abs'"),
        (["--count", "99"], "count must be an int from 1 to 16"),
    ):
        target = tmp_path / "bad.png"
        base = ["factors", TINY_NAME, "--layer", "2", "--images", str(photos), "--steps", "1", "--out", str(target),
                "--no-progress"]
        code = main([*base, *arguments])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1 and not Path(target).exists(), (arguments, err)
