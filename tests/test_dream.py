"""Tests of text-guided generation: the dream views, the generator parameterization, featviz.recipes.dream and
`featviz dream`."""
from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch import nn

import featviz
from featviz.cli import main
from featviz.errors import FeatvizError
from featviz.objectives import channel
from featviz.param import Generator, create
from featviz.recipes import dream
from featviz.transforms import RandomSource, cutout, random_downsample, random_flip, random_perspective
from featviz.transforms.views import dream as dream_views
from featviz_testing import tiny_model

TINY_CLIP = "open_clip:featviz-tiny-ViT"


def tiny_generator(seed: int = 0) -> nn.Module:
    """Latents of 8 numbers to 3 x 16 x 16 images in [-1, 1]."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 4 * 8 * 8), nn.Unflatten(1, (4, 8, 8)), nn.Upsample(scale_factor=2),
                         nn.Conv2d(4, 3, 3, padding=1), nn.Tanh())


def rose(history: torch.Tensor, window: int = 3, by: float = 0.1) -> bool:
    """Whether the objective's last steps beat its first ones by ``by`` times their size."""
    values = history.mean(1)
    first, last = values[:window].mean(), values[-window:].mean()
    return bool(last > first + by * first.abs())


def goal():
    """A channel of the tiny model's second convolution: it responds strongly to the image."""
    return channel("2", 0)


@pytest.fixture(scope="module")
def tiny_clip():
    pytest.importorskip("open_clip")
    torch.manual_seed(0)  # random init draws from torch's global generator
    return featviz.load_model(TINY_CLIP, weights="random")


# ---------------------------------------------------------------- the views


def test_views_shapes_and_view_major_order_with_per_element_seeds():
    images = torch.rand(2, 3, 96, 96)
    augment = dream_views((32, 32), views=5)
    assert augment.views == 5
    batched = augment(images, RandomSource([3, 4]))
    assert batched.shape == (10, 3, 32, 32)
    first, second = augment(images[:1], RandomSource([3])), augment(images[1:], RandomSource([4]))
    for view in range(5):
        torch.testing.assert_close(batched[view * 2], first[view])
        torch.testing.assert_close(batched[view * 2 + 1], second[view])


def test_views_are_reproducible_per_seed_and_differ_between_views():
    images = torch.rand(1, 3, 64, 64)
    augment = dream_views(32, views=4)
    again = augment(images, RandomSource([7]))
    assert torch.equal(augment(images, RandomSource([7])), again)
    assert not torch.allclose(augment(images, RandomSource([8])), again)
    assert not torch.allclose(again[0], again[1])


def test_gradients_reach_the_canvas_through_every_view():
    canvas = torch.rand(2, 3, 64, 64, requires_grad=True)
    views = dream_views(32, views=3)(canvas, RandomSource([0, 1]))
    views.view(3, 2, -1)[:, 1].sum().backward()
    assert canvas.grad[1].abs().sum() > 0 and canvas.grad[0].abs().sum() == 0


def test_each_view_transform():
    row = torch.arange(6.0).view(1, 1, 1, 6)
    torch.testing.assert_close(random_flip(1.0)(row, RandomSource([0])), row.flip(-1))
    torch.testing.assert_close(random_flip(0.0)(row, RandomSource([0])), row)
    images = torch.rand(4, 3, 24, 24)
    source = RandomSource([0, 1, 2, 3])
    assert torch.equal(random_perspective(0.0)(images, source), images)
    warped = random_perspective(0.5)(images, source)
    assert warped.shape == images.shape and not torch.allclose(warped, images)
    assert warped.min() >= images.min() - 1e-6 and warped.max() <= images.max() + 1e-6  # samples stay inside
    painted = cutout(1.0, size=(0.5, 0.5), fill=2.0)(images, source)
    assert torch.all((painted == 2.0).flatten(1).sum(1) == 3 * 12 * 12)
    blocky = random_downsample(1.0, factors=(4,))(images, source)
    assert blocky.shape == images.shape and blocky.diff(dim=-1).abs().mean() < images.diff(dim=-1).abs().mean() / 2
    assert torch.equal(random_downsample(0.0)(images, source), images)


@pytest.mark.parametrize("make, message", [
    (lambda: random_flip(1.5), "probability"),
    (lambda: random_perspective(1.0), "distortion"),
    (lambda: cutout(size=(0.0, 0.5)), "cutout size"),
    (lambda: random_downsample(factors=(1,)), "factors"),
    (lambda: dream_views(32, views=0), "views must be"),
])
def test_view_options_are_checked(make, message):
    with pytest.raises(FeatvizError, match=message):
        make()


# ---------------------------------------------------------------- the generator parameterization


def test_latent_mode_optimizes_the_seeded_latent_only():
    network = tiny_generator()
    image = Generator(32, generator=network, latent_shape=8, batch=2, seed=5)
    assert [name for name, _ in image.named_parameters()] == ["latent"]
    images = image()
    assert images.shape == (2, 3, 32, 32) and images.min() >= 0 and images.max() <= 1
    torch.testing.assert_close(images[1], Generator(32, generator=network, latent_shape=8, seed=6)()[0])
    assert create("generator", 32, generator=network, latent_shape=8, seed=5)().shape == (1, 3, 32, 32)


@pytest.mark.parametrize("optimize", ["latent", "weights"])
def test_the_objective_rises_and_the_callers_generator_is_unchanged(optimize):
    network = tiny_generator()
    before = {name: value.clone() for name, value in network.state_dict().items()}
    image = Generator(32, generator=network, latent_shape=8, optimize=optimize, seed=0)
    assert {name.partition(".")[0] for name, _ in image.named_parameters()} == (
        {"latent"} if optimize == "latent" else {"network"})
    result = featviz.render(tiny_model(), goal(), param=image, transforms="none", steps=12,
                            redirect_relu_steps=0, progress=False, seed=0)
    assert rose(result.history)
    assert all(torch.equal(value, before[name]) for name, value in network.state_dict().items())
    assert all(parameter.requires_grad for parameter in network.parameters())


def test_generator_mistakes_raise_featviz_errors():
    network = tiny_generator()
    with pytest.raises(FeatvizError, match="latent_shape"):
        Generator(32, generator=network)
    with pytest.raises(FeatvizError, match="'latent' or 'weights'"):
        Generator(32, generator=network, latent_shape=8, optimize="both")
    with pytest.raises(FeatvizError, match="output_range"):
        Generator(32, generator=network, latent_shape=8, output_range=(1, -1))
    with pytest.raises(FeatvizError, match=r"expected \(1, 4, H, W\)"):
        Generator(32, generator=network, latent_shape=8, alpha=True)
    with pytest.raises(FeatvizError, match="nn.Module"):
        Generator(32, generator=lambda latent: latent, latent_shape=8)


def test_the_built_in_generator_renders_any_size():
    image = Generator((20, 28), batch=2, channels=4, seed=0)
    assert image().shape == (2, 4, 20, 28) and image.latent.shape == (2, 16, 3, 4)


# ---------------------------------------------------------------- the recipe


@pytest.mark.parametrize("param, optimizer", [("fft", "clampsgd"), ("maco", "adam")])
def test_dream_raises_the_objective_on_a_canvas_larger_than_the_model(param, optimizer):
    result = dream(tiny_model(), goal(), size=48, steps=10, views=4, param=param, optimizer=optimizer,
                   progress=False)
    assert result.images.shape == (1, 3, 48, 48)
    assert rose(result.history)


def test_dream_with_a_generator_in_weights_mode_and_clampsgd():
    image = Generator(40, generator=tiny_generator(), latent_shape=8, optimize="weights", seed=0)
    result = dream(tiny_model(), goal(), steps=12, views=4, param=image, optimizer="clampsgd", lr=2e-3,
                   progress=False)
    assert result.images.shape == (1, 3, 40, 40)
    assert rose(result.history)


def test_dream_follows_a_prompt_on_a_tiny_random_clip(tiny_clip):
    result = dream(tiny_clip, "a lighthouse at dusk", size=96, steps=10, views=4, progress=False)
    assert result.objectives == ["text:a lighthouse at dusk"]
    assert rose(result.history)


def test_dream_mistakes_raise_featviz_errors():
    model = tiny_model()
    with pytest.raises(FeatvizError, match="optimizer must be one of adam, clampsgd"):
        dream(model, goal(), optimizer="sgd")
    with pytest.raises(FeatvizError, match="lr must be"):
        dream(model, goal(), lr=0.0)
    with pytest.raises(FeatvizError, match="prompt is empty"):
        dream(model, " ")
    with pytest.raises(FeatvizError, match="featviz.param.Generator"):
        dream(model, goal(), param=tiny_generator())
    with pytest.raises(FeatvizError, match="leave size out"):
        dream(model, goal(), size=64, param=Generator(32, seed=0))
    unlabelled = featviz.load_model(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), input_size=32)  # no class names
    with pytest.raises(FeatvizError, match="text tower"):
        dream(unlabelled, "a dog", steps=1, progress=False)


# ---------------------------------------------------------------- the command line


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_dream_writes_a_png(capsys, tmp_path, tiny_clip):
    out = tmp_path / "dream.png"
    code, printed, err = run_cli(capsys, "dream", TINY_CLIP, "a red cube|fog:-0.5", "--weights", "random",
                                 "--out", str(out), "--size", "80", "--steps", "2", "--views", "2", "--param", "maco",
                                 "--no-progress")
    assert code == 0, err
    assert printed.strip() == str(out)
    image = Image.open(out)
    assert image.size == (80, 80) and image.text["featviz:objective"] == "text:a red cube|fog:-0.5"


DREAM_MISTAKES = [
    (["--steps", "0"], "--steps"),
    (["--views", "0"], "--views"),
    (["--size", "4"], "--size"),
    (["--seed", "-1"], "--seed"),
    (["--lr", "nan"], "--lr"),
    (["--param", "pixel"], "invalid choice"),
    (["--optimizer", "sgd"], "invalid choice"),
    (["--device", "cuda:7"], "--device cpu"),
]


@pytest.mark.parametrize("options, hint", DREAM_MISTAKES)
def test_cli_dream_mistakes_exit_2_with_one_line(capsys, tmp_path, options, hint):
    code, _, err = run_cli(capsys, "dream", "efficientnet_lite0", "a dog", "--out", str(tmp_path / "x.png"),
                           "--no-progress", *options)
    assert code == 2 and hint in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_cli_dream_rejects_a_bad_out_and_an_empty_prompt(capsys, tmp_path):
    for prompt, out, hint in [("a dog", tmp_path / "x.jpg", ".png"), (" ", tmp_path / "x.png", "PROMPT is empty")]:
        code, _, err = run_cli(capsys, "dream", "efficientnet_lite0", prompt, "--out", str(out), "--no-progress")
        assert code == 2 and hint in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(capsys, "dream", "efficientnet_lite0", "a dog", "--no-progress")
    assert code == 2 and "--out" in err
    assert not list(tmp_path.iterdir())
