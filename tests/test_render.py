import pytest
import torch

import featviz
from featviz import objectives
from featviz.errors import FeatvizError
from featviz.renderer import NonFiniteObjectiveError
from featviz_testing import tiny_model


def test_render_raises_its_channel_and_returns_history():
    model = tiny_model()
    result = featviz.render(model, "2:1", steps=24, seed=0, progress=False)
    assert result.images.shape == (1, 3, 32, 32)
    assert 0 <= result.images.min() and result.images.max() <= 1
    assert result.history.shape == (24, 1)
    assert result.history[-4:].mean() > result.history[:4].mean() + 0.1 * result.history[:4].abs().mean()


def test_forward_stops_after_the_deepest_layer_the_objective_reads():
    renderer = featviz.Renderer(tiny_model())
    later = renderer.model.network[4]  # the renderer's own copy: the caller's model is never run or changed
    later.calls = 0
    renderer.render("2:1", steps=3, seed=0, progress=False)
    assert later.calls == 0
    renderer.render("class:dog", steps=2, seed=0, progress=False)
    assert later.calls > 0


def test_same_seed_same_image_and_different_seed_differs():
    model = tiny_model()
    first = featviz.render(model, "2:3", steps=5, seed=7, progress=False)
    second = featviz.render(model, "2:3", steps=5, seed=7, progress=False)
    third = featviz.render(model, "2:3", steps=5, seed=8, progress=False)
    assert torch.equal(first.images, second.images)
    assert not torch.equal(first.images, third.images)


@pytest.mark.parametrize("transforms", ["standard", "maco"])
def test_batch_of_objectives_equals_separate_renders(transforms):
    model = tiny_model()
    goals = ["2:0", "2:4@3,5", "0:2"]
    batch = featviz.render(model, goals, transforms=transforms, steps=6, seed=11, progress=False)
    assert batch.images.shape[0] == 3
    for index, goal in enumerate(goals):
        alone = featviz.render(model, goal, transforms=transforms, steps=6, seed=11 + index, progress=False)
        assert torch.allclose(batch.images[index], alone.images[0], atol=1e-4), goal
        assert torch.allclose(batch.history[:, index], alone.history[:, 0], atol=1e-4)


@pytest.mark.parametrize("dtype, steps, tolerance", [(torch.float64, 8, 0.0), (torch.float32, 1, 1e-6)])
def test_batch_element_is_its_own_render_bit_for_bit_in_float64_and_up_to_rounding_in_float32(dtype, steps, tolerance):
    # What docs/objectives.md and the example "Channels of one layer" state for EfficientNet-Lite0: the same
    # computation, so float64 gives the same bits; float32 kernels round differently for a batch of eight than
    # for one image (about 1e-7 after one step; the optimization amplifies it over the steps).
    model = featviz.load_model("efficientnet_lite0", dtype=dtype)
    batch = featviz.render(model, "blocks.4.0.conv_pwl:0-7", steps=steps, size=64, seed=0, progress=False)
    alone = featviz.render(model, "blocks.4.0.conv_pwl:3", steps=steps, size=64, seed=3, progress=False)
    assert float((alone.images[0] - batch.images[3]).abs().max()) <= tolerance


def test_dead_unit_comes_alive_only_with_redirected_relu():
    model = tiny_model()
    with torch.no_grad():  # channel 5 of the first ReLU: 0.1 * (sum of 27 pixels) - 1.8, dead for a grey image
        model.network[0].weight[5] = 0.1
        model.network[0].bias[5] = -1.8
    adam = lambda p: torch.optim.Adam(p, lr=0.1)
    settings = dict(param="pixel", transforms="none", optimizer=adam, steps=40, seed=0, progress=False)
    dead = featviz.render(model, "1:5", redirect_relu_steps=0, **settings)
    assert dead.history.abs().max() == 0
    alive = featviz.render(model, "1:5", redirect_relu_steps=30, **settings)
    assert alive.history[-1, 0] > 0.1


def test_non_finite_objective_stops_with_the_step():
    model = tiny_model()

    class Explodes(objectives.Objective):
        def __init__(self):
            super().__init__(layers=frozenset({"2"}), name="explodes")

        def __call__(self, acts):
            return acts["2"].mean(dim=(1, 2, 3)) * float("nan")

    with pytest.raises(NonFiniteObjectiveError, match="step 1 of"):
        featviz.render(model, Explodes(), steps=4, seed=0, progress=False)


def test_vit_tokens_channel_and_neuron():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    network = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, depth=2)
    model = featviz.load_model(network, input_size=(32, 32), mean=(0.5,) * 3, std=(0.5,) * 3)
    for goal in ("blocks.1:7", "blocks.1:7@1,0"):
        result = featviz.render(model, goal, steps=12, seed=0, progress=False)
        assert result.history[-1, 0] > result.history[0, 0], goal


def test_vit_with_fixed_input_size_renders_other_image_sizes():
    timm = pytest.importorskip("timm")
    network = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, depth=1)
    model = featviz.load_model(network, input_size=(32, 32))
    result = featviz.render(model, "blocks.0:3", steps=2, size=48, seed=0, progress=False)
    assert result.images.shape[-2:] == (48, 48)


@pytest.mark.parametrize("channels", [1, 5])
def test_grayscale_and_multispectral_models(channels):
    model = tiny_model(in_channels=channels)
    assert model.channels == channels
    result = featviz.render(model, "2:1", steps=10, seed=0, progress=False)
    assert result.images.shape == (1, channels, 32, 32)
    assert result.history[-1, 0] > result.history[0, 0]


@pytest.mark.parametrize("kind", ["pixel", "cppn", "maco", "fft"])
def test_every_parameterization_renders(kind):
    model = tiny_model()
    result = featviz.render(model, "2:2", param=kind, steps=10, seed=0, progress=False)
    assert result.history[-1, 0] > result.history[0, 0], kind


def test_alpha_renders_rgba():
    model = tiny_model()
    param = featviz.param.Fourier(32, channels=3, alpha=True, seed=0)
    result = featviz.render(model, "2:2", param=param, steps=5, seed=0, progress=False)
    assert result.images.shape == (1, 4, 32, 32)
    assert result.to_pil()[0].mode == "RGBA"


def test_any_torch_optimizer_and_clamp_sgd():
    model = tiny_model()
    sgd = featviz.render(model, "2:2", param="pixel", optimizer=lambda p: torch.optim.SGD(p, lr=20.0), steps=8, seed=0, progress=False)
    assert sgd.history[-1, 0] > sgd.history[0, 0]
    factory = lambda p: featviz.optim.ClampSGD(p, lr=0.01, generator=torch.Generator().manual_seed(0))
    first = featviz.render(model, "2:2", param="pixel", optimizer=factory, steps=8, seed=0, progress=False)
    assert first.history[-1, 0] > first.history[0, 0]


def test_thresholds_keep_snapshots():
    model = tiny_model()
    result = featviz.render(model, "2:2", steps=6, thresholds=[2, 6], seed=0, progress=False)
    assert sorted(result.snapshots) == [2, 6]
    assert torch.equal(result.snapshots[6], result.images)


def test_objective_algebra_and_penalties_render():
    def variation(images):
        return float((images.diff(dim=-2).abs().mean() + images.diff(dim=-1).abs().mean()))

    model = tiny_model()
    goal = objectives.channel("2", 1) - 0.1 * objectives.total_variation() + 0.5 * objectives.neuron("2", 3)
    result = featviz.render(model, goal, steps=5, seed=0, progress=False)
    assert result.history.shape == (5, 1) and result.objectives == ["2:1 - 0.1*total_variation(@image) + 0.5*2:3@center"]
    # the penalty term takes part: the same seed renders smoother images with a heavier weight (measured 0.05 -> 0.01)
    plain = featviz.render(model, objectives.channel("2", 1), steps=5, seed=0, progress=False)
    smooth = featviz.render(model, objectives.channel("2", 1) - 5 * objectives.total_variation(), steps=5, seed=0, progress=False)
    assert variation(smooth.images) < 0.5 * variation(plain.images)


def test_diversity_term_makes_the_same_seeds_more_diverse():
    # Each image has its own seed, so images differ without the term: compare with the same seeds without it.
    from featviz.metrics import batch_diversity

    model = tiny_model()
    options = dict(batch=3, steps=8, seed=0, progress=False)
    plain = featviz.render(model, objectives.channel("2", 1), **options)
    diverse = featviz.render(model, objectives.channel("2", 1) + 10 * objectives.diversity("2"), **options)
    assert diverse.images.shape[0] == 3
    # Gram-matrix diversity at the layer the term reads (measured 6x), and the pixels follow
    assert batch_diversity(diverse.images, model, "2") > 2 * batch_diversity(plain.images, model, "2")
    assert batch_diversity(diverse.images) > batch_diversity(plain.images)


def test_user_mistakes_are_featviz_errors():
    model = tiny_model()
    with pytest.raises(FeatvizError, match="valid: 0-7"):
        featviz.render(model, "2:99", steps=1, progress=False)
    with pytest.raises(FeatvizError, match="closest"):
        featviz.render(model, "22:1", steps=1, progress=False)
    with pytest.raises(FeatvizError, match="closest"):
        featviz.render(model, "class:golden retriver", steps=1, progress=False)


def test_save_single_grid_and_folder(tmp_path):
    from PIL import Image

    model = tiny_model()
    one = featviz.render(model, "2:1", steps=2, seed=0, progress=False)
    (path,) = one.save(tmp_path / "one.png")
    image = Image.open(path)
    assert image.size == (32, 32) and image.text["featviz:objective"] == "2:1"
    several = featviz.render(model, ["2:1", "2:2"], steps=2, seed=0, progress=False)
    (grid_path,) = several.save(tmp_path / "grid.png")
    assert Image.open(grid_path).size[0] > 64
    paths = several.save(tmp_path / "folder")
    assert [p.name for p in paths] == ["0-2-1.png", "1-2-2.png"]
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_channels_last_is_the_cpu_default_and_can_be_turned_off():
    model = tiny_model()
    plain = featviz.Renderer(model, fold_batchnorm=False, channels_last=False)
    plain.render("2:1", steps=1, seed=0, progress=False)
    assert not plain.network_for({"2"}).network[0].weight.is_contiguous(memory_format=torch.channels_last)
    default = featviz.Renderer(model, fold_batchnorm=False)
    default.render("2:1", steps=1, seed=0, progress=False)
    assert default.network_for({"2"}).network[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not model.network[0].weight.is_contiguous(memory_format=torch.channels_last), "the caller's model is unchanged"
