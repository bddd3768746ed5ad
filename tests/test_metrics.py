"""Quality metrics: spectrum, diversity, activation reached, transferability, score and `featviz score`."""
import functools
import json
import math

import pytest
import torch
from PIL import Image, PngImagePlugin
from torch import nn

import featviz
from featviz import metrics
from featviz.cli import main
from featviz.errors import FeatvizError
from featviz_testing import tiny_model


def power_law_noise(exponent: float, size: int = 64, batch: int = 3, seed: int = 0) -> torch.Tensor:
    """Images whose power spectrum falls as 1 / f**exponent (random phases), scaled into [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    radius = torch.sqrt(torch.fft.fftfreq(size)[:, None] ** 2 + torch.fft.rfftfreq(size)[None] ** 2)
    amplitude = radius.clamp(min=1e-9) ** (-exponent / 2)
    amplitude[0, 0] = 0
    coefficients = torch.randn(batch, 3, size, size // 2 + 1, generator=generator, dtype=torch.complex64)
    images = torch.fft.irfft2(coefficients * amplitude, s=(size, size))
    return (images - images.amin()) / (images.amax() - images.amin())


# ---------------------------------------------------------------- spectrum


@pytest.mark.parametrize("exponent", [1.0, 2.0, 3.0])
def test_spectrum_slope_recovers_the_exponent_of_power_law_noise(exponent):
    report = metrics.spectrum(power_law_noise(exponent))
    assert report.slope.shape == (3,)
    assert report.slope.tolist() == pytest.approx([-exponent] * 3, abs=0.25)
    assert report.mean_slope == pytest.approx(-exponent, abs=0.15)


def test_white_noise_has_a_flat_spectrum_and_most_energy_at_high_frequencies():
    report = metrics.spectrum(torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(1)))
    assert abs(report.mean_slope) < 0.15
    # the rings above half Nyquist (corners included) hold about 80% of the frequency plane
    assert report.mean_high_frequency_share == pytest.approx(0.80, abs=0.05)


def test_checkerboard_has_far_more_high_frequency_energy_than_a_smooth_image():
    rows, columns = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    checkerboard = ((rows + columns) % 2).float().expand(1, 3, 64, 64)
    smooth = (0.5 + 0.4 * torch.sin(2 * math.pi * rows / 64) * torch.cos(2 * math.pi * 2 * columns / 64)).expand(1, 3, 64, 64)
    # a smooth render with a faint checkerboard artifact on top
    artifact = 0.9 * smooth + 0.1 * checkerboard
    shares = metrics.spectrum(torch.cat([checkerboard, smooth, artifact])).high_frequency_share
    assert shares[0] > 0.99 and shares[1] < 0.01
    assert shares[2] > 20 * shares[1]


def test_spectrum_of_a_flat_image_is_undefined_and_tiny_images_are_refused():
    report = metrics.spectrum(torch.full((1, 3, 16, 16), 0.3))
    assert math.isnan(report.slope[0]) and report.to_dict()["mean_slope"] is None
    with pytest.raises(FeatvizError, match="at least 8x8"):
        metrics.spectrum(torch.rand(1, 3, 4, 4))


# ---------------------------------------------------------------- diversity


def test_diversity_is_zero_for_identical_images_and_larger_for_different_ones():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 32, 32, generator=generator)
    different = torch.rand(3, 3, 32, 32, generator=generator)
    model = tiny_model(size=32)
    assert metrics.batch_diversity(image.repeat(3, 1, 1, 1)) == 0.0
    assert metrics.batch_diversity(image.repeat(3, 1, 1, 1), model, "3") == 0.0
    assert metrics.batch_diversity(different) == pytest.approx(1.0, abs=0.1)  # unrelated pixels
    assert metrics.batch_diversity(torch.cat([image, 1 - image])) == pytest.approx(2.0)  # negatives of each other
    # brightness and contrast do not make images different
    assert metrics.batch_diversity(torch.cat([image, 0.2 + 0.5 * image])) == pytest.approx(0.0, abs=1e-9)
    assert metrics.batch_diversity(different, model, "3") > metrics.batch_diversity(torch.cat([image, image, different[:1]]), model, "3") > 0


def test_diversity_needs_two_images_and_both_or_neither_of_model_and_layer():
    model = tiny_model(size=32)
    with pytest.raises(FeatvizError, match="at least 2 images"):
        metrics.batch_diversity(torch.rand(1, 3, 32, 32))
    with pytest.raises(FeatvizError, match="both model and layer"):
        metrics.batch_diversity(torch.rand(2, 3, 32, 32), model)
    with pytest.raises(FeatvizError, match="closest"):
        metrics.batch_diversity(torch.rand(2, 3, 32, 32), model, "33")


# ---------------------------------------------------------------- activation reached


@pytest.fixture(scope="module")
def tiny_render():
    model = tiny_model(size=32)
    result = featviz.render(model, "3:0", steps=64, size=32, seed=0, progress=False,
                            optimizer=functools.partial(torch.optim.Adam, lr=0.2))
    return model, result.images


def test_a_short_render_beats_natural_photos(tiny_render):
    model, images = tiny_render
    report = metrics.activation_reached(model, "3:0", images, samples=8)
    assert report.objectives == ["3:0"] and report.samples == 8 and report.natural_count == 15
    assert report.rendered[0] > report.natural_max[0] > 0
    assert report.rendered_vs_natural[0] > 1.3
    assert report.held_out_mean_vs_natural[0] > 1.3
    assert report.held_out_min[0] <= report.held_out_mean[0]
    best, typical = float(report.natural_max[0]), float(report.natural_mean[0])
    assert typical < best
    assert report.held_out_min_vs_natural[0] == pytest.approx((float(report.held_out_min[0]) - typical) / (best - typical))
    # a random image does not
    noise = metrics.activation_reached(model, "3:0", torch.rand(1, 3, 32, 32), samples=4)
    assert noise.rendered[0] < report.rendered[0]


def test_natural_reference_can_be_a_tensor_and_the_natural_scale_works_for_negative_units(tiny_render):
    model, images = tiny_render
    report = metrics.activation_reached(model, "3:0", images, natural=torch.zeros(2, 3, 16, 16), samples=2)
    with torch.no_grad():
        expected = model.network[:4](torch.zeros(1, 3, 32, 32))[0, 0].mean()
    assert report.natural_count == 2 and report.natural_max[0] == pytest.approx(float(expected), abs=1e-6)
    # identical natural images give no scale
    assert math.isnan(report.rendered_vs_natural[0]) and report.to_dict()["rendered_vs_natural"] == [None]
    # a unit whose natural values are all negative still gets a scale: the render of +3:0 is far below them
    negated = metrics.activation_reached(model, "-3:0", images, samples=2)
    assert negated.natural_max[0] <= 0
    assert negated.rendered_vs_natural[0] < 0


def test_held_out_transforms_are_deterministic_per_seed_and_independent_of_the_batch(tiny_render):
    model, images = tiny_render
    other = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    first = metrics.activation_reached(model, "3:0", images, samples=6, seed=3)
    again = metrics.activation_reached(model, "3:0", images, samples=6, seed=3)
    reseeded = metrics.activation_reached(model, "3:0", images, samples=6, seed=4)
    assert torch.equal(first.held_out, again.held_out)
    assert not torch.equal(first.held_out, reseeded.held_out)
    # the held-out stream differs from the render's own seed stream
    assert metrics.held_out_seed(0, 0) not in range(0, 2**32)
    batched = metrics.activation_reached(model, "3:0", torch.cat([images, other]), samples=6, seed=3, batch_size=4)
    assert torch.allclose(batched.held_out[:, 0], first.held_out[:, 0], atol=1e-6)
    # one objective per image scores image i by objective i, as render does
    per_image = metrics.activation_reached(model, ["3:0", "3:2"], torch.cat([images, other]), samples=2)
    alone = metrics.activation_reached(model, "3:2", other, samples=2)
    assert per_image.objectives == ["3:0", "3:2"]
    assert per_image.rendered[1] == pytest.approx(float(alone.rendered[0]), abs=1e-6)
    assert per_image.natural_max[1] == pytest.approx(float(alone.natural_max[0]), abs=1e-6)


def test_activation_reached_reports_mistakes_with_the_valid_range(tiny_render):
    model, images = tiny_render
    with pytest.raises(FeatvizError, match="valid: 0-7"):
        metrics.activation_reached(model, "3:9", images)
    with pytest.raises(FeatvizError, match="2 objectives for 1 images"):
        metrics.activation_reached(model, "3:0-1", images)
    with pytest.raises(FeatvizError, match="samples"):
        metrics.activation_reached(model, "3:0", images, samples=0)
    with pytest.raises(FeatvizError, match="channels"):
        metrics.activation_reached(model, "3:0", torch.rand(1, 5, 32, 32))


def test_alpha_is_composited_on_grey(tiny_render, tmp_path):
    model, _ = tiny_render
    transparent = torch.cat([torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)], dim=1)
    assert torch.equal(metrics.as_images(transparent, channels=3), torch.full((1, 3, 32, 32), 0.5))
    grey = metrics.activation_reached(model, "3:0", torch.full((1, 3, 32, 32), 0.5), samples=1)
    assert metrics.activation_reached(model, "3:0", transparent, samples=1).rendered[0] == pytest.approx(float(grey.rendered[0]))
    Image.new("RGBA", (16, 16), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    assert torch.allclose(metrics.load_images(tmp_path / "clear.png").images, torch.full((1, 3, 16, 16), 0.5), atol=1 / 255)


# ---------------------------------------------------------------- transferability


class FixedJudge(nn.Module):
    """Logits ``base + brightness * boost``: the class ``boost`` points at wins on bright images only."""

    def __init__(self, base, boost):
        super().__init__()
        self.register_buffer("base", torch.tensor(base))
        self.register_buffer("boost", torch.tensor(boost))
        self.seen = []

    def forward(self, images):
        self.seen.append(tuple(images.shape))
        return self.base + images.mean((1, 2, 3))[:, None] * self.boost


def test_transferability_ranks_the_class_among_each_judges_logits():
    labels = ["cat", "dog", "goldfish", "tench", "palace"]
    network = FixedJudge([0.0, 3.0, 1.0, 2.0, -1.0], [0.0, 0.0, 5.0, 0.0, 0.0])
    judge = featviz.load_model(network, input_size=(16, 24), channels=3, labels=labels)
    images = torch.stack([torch.zeros(3, 32, 32), torch.ones(3, 32, 32)])
    (score,) = metrics.transferability(images, "goldfish", [judge])
    assert judge.network.seen == [(2, 3, 16, 24)]  # resized to the judge's input size (the judge holds a copy)
    assert score.judge == judge.name and score.index == [2, 2]
    assert score.rank.tolist() == [2, 0]  # dark: dog (3) and tench (2) beat goldfish (1); bright: goldfish (6) wins
    assert score.top1.tolist() == [False, True] and score.top1_rate == 0.5
    expected = [torch.softmax(torch.tensor([0.0, 3, 1, 2, -1]), 0)[2], torch.softmax(torch.tensor([0.0, 3, 6, 2, -1]), 0)[2]]
    assert score.probability.tolist() == pytest.approx([float(value) for value in expected], abs=1e-6)
    # a label per image, and by index
    (by_index,) = metrics.transferability(images, [3, 2], [judge])
    assert by_index.rank.tolist() == [1, 0]
    with pytest.raises(FeatvizError, match="goldfish"):
        metrics.transferability(images, "goldfsh", [judge])


# ---------------------------------------------------------------- score and the command line


@pytest.fixture(scope="module")
def rendered_png(tmp_path_factory):
    folder = tmp_path_factory.mktemp("renders")
    code = main(["render", "efficientnet_lite0", "blocks.1.0.conv_pwl:1", "--steps", "12", "--size", "48",
                 "--out", str(folder / "channel.png"), "--no-progress"])
    assert code == 0
    return folder / "channel.png"


def run_cli(capsys, *argv):
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_scores_a_png_written_by_render(capsys, rendered_png):
    code, out, err = run_cli(capsys, "score", rendered_png, "efficientnet_lite0", "-", "--samples", "4")
    assert code == 0, err
    assert "blocks.1.0.conv_pwl:1" in out and "15 shipped photos" in out and "4 held-out transforms" in out
    row = next(line for line in out.splitlines() if line.startswith(str(rendered_png)))
    assert "x)" in row and "slope" in out
    code, out, err = run_cli(capsys, "score", rendered_png.parent, "efficientnet_lite0", "blocks.1.0.conv_pwl:1",
                             "--samples", "4", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["images"] == [str(rendered_png)] and result["size"] == [48, 48]
    activation = result["activation"]
    assert activation["objectives"] == ["blocks.1.0.conv_pwl:1"] and activation["samples"] == 4
    best, typical = activation["natural_max"][0], activation["natural_mean"][0]
    assert activation["rendered_vs_natural"][0] == pytest.approx((activation["rendered"][0] - typical) / (best - typical), rel=1e-5)
    assert result["spectrum"]["slope"][0] < 0 and 0 <= result["spectrum"]["high_frequency_share"][0] <= 1
    assert result["diversity"] is None and result["transfer"] == []


def test_score_of_a_batch_with_a_judge():
    lite0 = featviz.load_model("efficientnet_lite0")
    images = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    result = metrics.score(images, lite0, "class:goldfish", judges=[lite0], samples=2)
    assert result["images"] == ["image 0", "image 1"]
    assert result["diversity"]["features"] == "pixels" and 0.5 < result["diversity"]["value"] < 1.5
    (judged,) = result["transfer"]
    assert judged["judge"] == "efficientnet_lite0" and judged["index"] == [1, 1]
    assert all(0 <= rank < 1000 for rank in judged["rank"]) and len(judged["probability"]) == 2
    table = metrics.format_score(result)
    assert "diversity" in table and "goldfish" in table
    json.dumps(result)


def _save_png(path, text=None):
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    Image.new("RGB", (32, 32), (90, 120, 200)).save(path, pnginfo=info)
    return path


MISTAKES = [
    (lambda tmp: [tmp / "missing.png", "efficientnet_lite0", "-"], "does not exist"),
    (lambda tmp: [tmp / "broken.png", "efficientnet_lite0", "-"], "cannot read image"),
    (lambda tmp: [tmp / "plain.png", "efficientnet_lite0", "-"], "featviz:objective"),
    (lambda tmp: [tmp / "plain.png", "efficientnet_lite9", "blocks.1.0.conv_pwl:1"], "closest: efficientnet_lite"),
    (lambda tmp: [tmp / "plain.png", "efficientnet_lite0", "blocks.1.0.conv_pwl:@"], "malformed objective"),
    (lambda tmp: [tmp / "plain.png", "efficientnet_lite0", "blocks.1.0.conv_pwl:99"], "valid: 0-23"),
    (lambda tmp: [tmp / "plain.png", "efficientnet_lite0", "blocks.1.0.conv_pwl:1", "--judges", "efficientnet_lite0"], "class objective"),
    (lambda tmp: [tmp / "empty", "efficientnet_lite0", "-"], "holds no images"),
    (lambda tmp: [tmp / "*.gif", "efficientnet_lite0", "-"], "no file matches"),
    (lambda tmp: [tmp / "plain.png", tmp / "plain.png", "efficientnet_lite0", "-"], "quoted pattern"),
]


@pytest.mark.parametrize("arguments, hint", MISTAKES)
def test_cli_mistakes_exit_2_with_one_line(capsys, tmp_path, arguments, hint):
    (tmp_path / "broken.png").write_bytes(b"not an image")
    (tmp_path / "empty").mkdir()
    _save_png(tmp_path / "plain.png")
    code, out, err = run_cli(capsys, "score", *arguments(tmp_path), "--samples", "1")
    assert code == 2
    assert hint in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
