"""A new user's first tries: raw modules, non-square sizes, known layouts, subclassed and callable objectives,
the caller's model left alone, importable documented names, and one-line errors for bad input."""
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from featviz_testing import tiny_convnet
from PIL import Image
from torch import nn

import featviz
from featviz import metrics, objectives
from featviz.cli import main
from featviz.dataset import collect_activations
from featviz.errors import FeatvizError
from featviz.hooks import ActivationCapture, Layout, bind_layers
from featviz.objectives.binding import bind_objective
from featviz.objectives.units import Channel


def model_state(module: nn.Module) -> dict:
    """Everything featviz must leave as it found it."""
    return {
        "training": [child.training for child in module.modules()],
        "requires_grad": [parameter.requires_grad for parameter in module.parameters()],
        "devices": {parameter.device for parameter in module.parameters()},
        "channels_last": [
            parameter.is_contiguous(memory_format=torch.channels_last)
            for parameter in module.parameters() if parameter.dim() == 4
        ],
        "values": [parameter.detach().clone() for parameter in module.parameters()],
    }


def assert_unchanged(module: nn.Module, before: dict) -> None:
    after = model_state(module)
    for key in ("training", "requires_grad", "devices", "channels_last"):
        assert after[key] == before[key], key
    assert all(torch.equal(a, b) for a, b in zip(after["values"], before["values"]))


# ---------------------------------------------------------------- 1. raw modules, 5. the caller's model stays


def test_render_takes_a_raw_module_and_leaves_it_unchanged():
    network = tiny_convnet()
    network.train()  # a user's module, as they left it
    before = model_state(network)
    result = featviz.render(network, "2:1", steps=4, size=(24, 40), seed=0, progress=False)
    assert result.images.shape == (1, 3, 24, 40)
    assert_unchanged(network, before)


def test_timm_module_object_renders_with_its_own_normalization_at_a_non_square_size():
    network = timm.create_model("resnet18", pretrained=False, num_classes=10)
    before = model_state(network)
    model = featviz.load_model(network)
    assert torch.allclose(model.mean.flatten(), torch.tensor(network.pretrained_cfg["mean"]))
    result = featviz.render(network, "layer2:3", steps=2, size=(64, 96), seed=0, progress=False)
    assert result.images.shape == (1, 3, 64, 96)
    assert_unchanged(network, before)


def test_metrics_and_the_dataset_pass_take_a_raw_module(tmp_path):
    network = tiny_convnet()
    before = model_state(network)
    images = torch.rand(2, 3, 32, 32)
    report = metrics.activation_reached(network, "2:1", images, natural=torch.rand(3, 3, 32, 32), samples=2)
    assert report.rendered.shape == (2,)
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(3):
        Image.new("RGB", (40, 40), (index * 80, 20, 200)).save(folder / f"{index}.png")
    stats = collect_activations(network, folder, ["2"], workers=0)
    assert stats["2"].units == 8
    assert_unchanged(network, before)


def test_gallery_takes_a_raw_module(tmp_path):
    from featviz.gallery import build_gallery

    network = tiny_convnet()
    before = model_state(network)
    summary = build_gallery(network, ["2"], units="0-1", steps=2, size=16, out=tmp_path / "site", progress=False)
    assert summary.rendered == 2 and summary.index.exists()
    assert_unchanged(network, before)


# ---------------------------------------------------------------- 2. layouts known, not guessed


def test_lite0_at_320x240_has_40_channels_in_blocks_2_and_reads_the_right_slice():
    model = featviz.load_model("efficientnet_lite0", weights="random")
    binding = bind_layers(model, ["blocks.2"], (320, 240))
    assert binding.layouts["blocks.2"].kind == "nchw"
    assert binding.shapes["blocks.2"] == (1, 40, 40, 30)  # dims 1 and 2 equal: once mistaken for NHWC
    bound = bind_objective(model, "blocks.2:35", (320, 240))  # refused when 30 channels were reported
    images = torch.rand(1, 3, 320, 240)
    with torch.no_grad(), featviz.hooks.ActivationCapture(model, ["blocks.2"], layouts=bound.layouts) as capture:
        activations = capture.run(images)
    with torch.no_grad():
        direct = {}
        handle = model.network.blocks[2].register_forward_hook(lambda m, i, o: direct.setdefault("out", o))
        model(images)
        handle.remove()
    assert torch.equal(bound.target(activations), direct["out"][:, 35].mean((1, 2)))


def test_vit_tokens_at_a_non_square_render_size_use_the_declared_patch_grid():
    model = featviz.load_model(timm.create_model("vit_tiny_patch16_224", pretrained=False))
    binding = bind_layers(model, ["blocks.3", "patch_embed.proj"], (96, 160))
    assert binding.size == (224, 224)  # a fixed-size ViT sees every view at its input size
    assert binding.layouts["blocks.3"] == Layout("nlc", 1, (14, 14))
    assert binding.shapes["blocks.3"] == (1, 192, 14, 14)
    result = featviz.render(model, "blocks.3:7@3,9", steps=2, size=(96, 160), seed=0, progress=False)
    assert result.images.shape == (1, 3, 96, 160)


def test_a_timm_vit_built_at_another_size_renders_at_the_size_it_was_built_for():
    fixed = featviz.load_model(timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64))
    assert fixed.input_size == (64, 64)  # its pretrained_cfg still says 224
    result = featviz.render(fixed, "blocks.3:7", steps=2, size=(64, 64), seed=0, progress=False)
    assert result.images.shape == (1, 3, 64, 64)
    binding = bind_layers(fixed, ["blocks.3"], (48, 80))
    assert binding.size == (64, 64) and binding.layouts["blocks.3"] == Layout("nlc", 1, (4, 4))
    for built in ({"img_size": 64}, {}):  # dynamic_img_size takes other sizes: each view is read on its own grid
        network = timm.create_model("vit_tiny_patch16_224", pretrained=False, dynamic_img_size=True, **built)
        dynamic = featviz.load_model(network)
        assert dynamic.input_size == (built.get("img_size", 224),) * 2
        binding = bind_layers(dynamic, ["blocks.3"], (64, 96))
        assert binding.size == (64, 96) and binding.layouts["blocks.3"] == Layout("nlc", 1, (4, 6))
        result = featviz.render(dynamic, "blocks.3:7@5,1", steps=2, size=(64, 96), seed=0, progress=False)
        assert result.images.shape == (1, 3, 64, 96)
    with pytest.raises(FeatvizError, match=r"cannot run at 70x96 \(Input height \(70\) should be divisible by patch "
                                           r"size \(16\)\.\); use its input size 224x224 or another size it takes$"):
        bind_layers(dynamic, ["blocks.3"], (70, 96))


class _FixedSize(nn.Module):
    """Asserts one input size, as a timm ViT's patch embedding does."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        assert x.shape[-2:] == (48, 48), f"Input size {tuple(x.shape[-2:])} doesn't match model (48, 48)."
        return self.conv(x)


def test_a_module_that_fails_at_its_input_size_is_told_which_size_and_how_to_pass_one():
    with pytest.raises(FeatvizError, match=(
        r"cannot run at 224x224 \(Input size \(224, 224\) doesn't match model \(48, 48\)\.\); 224x224 is its "
        r"input size; if it takes another, pass it: load_model\(\.\.\., input_size=\(H, W\)\)$"
    )) as error:
        featviz.render(_FixedSize(), "conv:0", steps=1, size=48, progress=False)
    assert "\n" not in str(error.value)
    result = featviz.render(featviz.load_model(_FixedSize(), input_size=48), "conv:0", steps=2, size=48, progress=False)
    assert result.images.shape == (1, 3, 48, 48)


def test_channels_last_stages_are_read_as_nhwc():
    swin = timm.create_model(
        "swin_tiny_patch4_window7_224", pretrained=False, embed_dim=24, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1)
    )
    binding = bind_layers(featviz.load_model(swin), ["layers.0.blocks.0", "layers.1"], (224, 224))
    assert binding.layouts["layers.1"].kind == "nhwc" and binding.shapes["layers.1"] == (1, 48, 28, 28)


class _ChannelsLast(nn.Module):
    def forward(self, x):
        return x.permute(0, 2, 3, 1)


class _SquareOnly(nn.Module):
    """Takes one input size only, and outputs an NHWC map with nothing to tell its layout by."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        self.permute = _ChannelsLast()

    def forward(self, x):
        if x.shape[-1] != 16:
            raise ValueError("takes 16 x 16 images only")
        return self.permute(self.conv(x))


def test_a_non_square_map_of_a_module_that_takes_other_sizes_is_told_by_the_second_probe():
    network = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), _ChannelsLast())
    model = featviz.load_model(network, input_size=(20, 20))
    binding = bind_layers(model, ["1"], (20, 20))  # 1x20x20x6 at the input size: only the probe can tell
    assert binding.layouts["1"].kind == "nhwc" and binding.shapes["1"] == (1, 6, 20, 20)


def test_an_undecidable_layout_names_the_choices_and_a_declared_one_is_used():
    model = featviz.load_model(_SquareOnly(), input_size=16)
    with pytest.raises(FeatvizError, match=r"cannot tell the layout of layer 'permute'.*layouts=.*'nchw' or 'nhwc'"):
        bind_layers(model, ["permute"], (16, 16))
    declared = featviz.load_model(_SquareOnly(), input_size=16, layouts={"permute": "nhwc"})
    assert bind_layers(declared, ["permute"], (16, 16)).shapes["permute"] == (1, 5, 16, 16)


def test_an_activation_overwritten_in_place_is_read_as_the_layer_output_it():
    class InPlace(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            out = self.conv(x)
            out += 100.0  # like ResNet's `out += identity` after the layer ran
            return out

    model = featviz.load_model(InPlace(), input_size=8)
    bound = bind_objective(model, "conv:1", (8, 8))
    images = torch.rand(1, 3, 8, 8)
    with torch.no_grad(), featviz.hooks.ActivationCapture(model, ["conv"], layouts=bound.layouts) as capture:
        value = bound.target(capture.run(images))
        expected = model.network.conv(images)[:, 1].mean((1, 2))
    assert torch.allclose(value, expected)


# ---------------------------------------------------------------- 3. subclassed objectives are called


class ClampedChannel(Channel):
    def __call__(self, acts):
        return super().__call__(acts).clamp(max=0.1)


def test_a_channel_subclass_gives_the_same_value_alone_and_inside_sums_and_stacks():
    acts = {"layer": torch.rand(4, 6, 3, 3) + 1.0}
    clamped = ClampedChannel("layer", 2)
    other = objectives.channel("layer", 3)
    alone = clamped(acts)
    assert torch.allclose(alone, torch.full((4,), 0.1))
    assert torch.allclose((clamped + other)(acts) - other(acts), alone)
    stacked = objectives.stack([clamped, ClampedChannel("layer", 4)])(acts)
    assert torch.allclose(stacked, torch.full((4,), 0.1))


# ---------------------------------------------------------------- 4. callables, as lucid users write them


def test_a_function_objective_and_wrap_objective_render_and_rise():
    @objectives.wrap_objective()
    def channel_squared(layer, n):
        def inner(T):
            return T(layer)[:, n].square().mean((1, 2))
        return inner

    goal = channel_squared("2", 1) - 0.01 * objectives.total_variation()
    assert goal.name.startswith("channel_squared('2', 1)")
    result = featviz.render(tiny_convnet(), goal, steps=24, size=32, seed=0, progress=False)
    assert result.history[-1, 0] > result.history[0, 0]
    plain = featviz.render(
        tiny_convnet(), lambda T: T("2")[:, 1].mean((1, 2)), steps=3, size=32, seed=0, progress=False
    )
    assert plain.objectives == ["<lambda>"]
    with pytest.raises(FeatvizError, match=r"closest: 2|not in the model|unknown layer"):
        featviz.render(tiny_convnet(), lambda T: T("22")[:, 1].mean((1, 2)), steps=1, progress=False)


def test_T_reads_a_vector_layer_as_B_C_as_lucent_does():
    model = featviz.load_model(tiny_convnet(), input_size=(32, 32))
    seen = {}

    def reads(T):
        seen.update({name: tuple(T(name).shape) for name in ("5", "6", "7", "@output", "@image")})
        return T("7")[:, 0]

    bound = bind_objective(model, reads, size=(32, 32))
    images = torch.rand(3, 3, 32, 32)
    with torch.no_grad(), ActivationCapture(model, bound.target.layers, layouts=bound.layouts) as capture:
        bound.target(capture.run(images) | {"@image": images})
    # nn.Linear, Flatten and the logits have no positions; the pooled map is 4-D as the module outputs it
    assert seen == {"5": (3, 6, 1, 1), "6": (3, 6), "7": (3, 5), "@output": (3, 5), "@image": (3, 3, 32, 32)}


def test_the_lucent_weighted_logits_snippet_equals_direction_and_class_logit():
    model = featviz.load_model(tiny_convnet(), input_size=(32, 32))
    weights = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.5])
    images = torch.rand(4, 3, 32, 32)

    def value(objective):
        bound = bind_objective(model, objective, size=(32, 32))
        with torch.no_grad(), ActivationCapture(model, bound.target.layers, layouts=bound.layouts) as capture:
            return bound.target(capture.run(images))

    logits = model(images)
    lucent = value(lambda T: (T("7") * weights).sum(-1))
    assert lucent.shape == (4,)
    assert torch.allclose(lucent, logits @ weights, atol=1e-5)
    assert torch.allclose(lucent, value(objectives.direction("7", weights)), atol=1e-5)
    assert torch.allclose(value(lambda T: T("@output")[:, 2]), value(objectives.class_logit(2)), atol=1e-6)
    rendered = [
        featviz.render(model, goal, steps=4, size=32, seed=0, progress=False).images
        for goal in (lambda T: (T("@output") * weights).sum(-1), objectives.direction("@output", weights))
    ]
    assert torch.allclose(rendered[0], rendered[1], atol=1e-5)


@pytest.mark.parametrize("function, shape", [
    (lambda T: (T("5") * torch.ones(6)).sum(-1), r"\(1, 6, 1\)"),    # a (B, C, 1, 1) map times a (C,) vector broadcasts
    (lambda T: T("2")[:, 1], r"\(1, \d+, \d+\)"),                      # a map left unreduced
    (lambda T: T("@output")[0], r"\(5,\)"),                            # the batch indexed away
])
def test_a_function_that_does_not_return_one_value_per_image_is_refused(function, shape):
    refused = rf"returned shape {shape} for 1 image\(s\); return one value per image"
    with pytest.raises(FeatvizError, match=refused) as error:
        featviz.render(tiny_convnet(), function, steps=1, size=32, progress=False)
    assert "\n" not in str(error.value) and ".sum(-1)" in str(error.value)
    with pytest.raises(FeatvizError, match="returned a 0-d tensor"):
        featviz.render(tiny_convnet(), lambda T: T("7").sum(), steps=1, size=32, progress=False)
    kept = featviz.render(tiny_convnet(), lambda T: T("2")[:, 1:2].mean((2, 3), keepdim=True), steps=2, size=32,
                          progress=False)
    assert kept.history.shape == (2, 1)


def test_one_argument_transforms_and_inline_display():
    result = featviz.render(
        tiny_convnet(), "2:1", transforms=[lambda images: images.flip(-1)], steps=2, size=32, seed=0, progress=False
    )
    png = result._repr_png_()
    assert png.startswith(b"\x89PNG")


# ---------------------------------------------------------------- 6. documented names are importable


def test_every_module_is_reachable_by_its_dotted_name():
    for info in pkgutil.walk_packages(featviz.__path__, "featviz."):
        if info.name == "featviz.__main__":  # running it is `python -m featviz`
            continue
        module = importlib.import_module(info.name)
        reached = featviz
        for part in info.name.split(".")[1:]:
            reached = getattr(reached, part)
        assert reached is module, f"{info.name} is shadowed by {reached!r}"
    import featviz.renderer.renderer as renderer_module

    assert issubclass(renderer_module.NonFiniteObjectiveError, FeatvizError)


# ---------------------------------------------------------------- 7. bad input: one line, exit 2, no file


@pytest.mark.parametrize(
    "options, message",
    [
        (["--size", "100000"], "GiB"),
        (["--lr", "nan"], "--lr must be a finite number"),
        (["--lr", "-1"], "--lr must be a finite number"),
        (["--size", "7"], "--size must be at least 8"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--seed", "-3"], "--seed must be at least 0"),
        (["--precision", "fp16"], "needs a CUDA device"),
        (["--device", "cuda:9"], "cuda"),
    ],
)
def test_cli_render_refuses_bad_options_in_one_line(capsys, tmp_path, options, message):
    out = tmp_path / "out.png"
    code = main(["render", "efficientnet_lite0", "blocks.2:1", "--steps", "2", "--out", str(out), "--no-progress", *options])
    captured = capsys.readouterr()
    assert code == 2
    assert message in captured.err and len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"steps": 0}, "steps must be an int >= 1"),
        ({"seed": -1}, "seed must be an int >= 0"),
        ({"batch": 0}, "batch must be an int >= 1"),
        ({"redirect_relu_steps": -1}, "redirect_relu_steps must be"),
        ({"size": 100000}, "GiB"),
        ({"size": (0, 5)}, "image size"),
        ({"autocast": torch.int8}, "autocast must be"),
        ({"optimizer": lambda parameters: torch.optim.Adam(parameters, lr=float("nan"))}, "optimizer could not be created"),
    ],
)
def test_render_refuses_bad_arguments_in_one_line(arguments, message):
    with pytest.raises(FeatvizError, match=message) as caught:
        featviz.render(tiny_convnet(), "4:1", progress=False, **arguments)
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- 8. test helpers cannot collide


def test_an_installed_tests_package_does_not_break_collection(tmp_path):
    shadow = tmp_path / "site" / "tests"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    (shadow / "helpers.py").write_text("raise ImportError('the wrong tests package')\n")
    root = Path(__file__).resolve().parent.parent
    environment = {"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests/test_render.py", "tests/test_gallery.py", "tests/test_hooks.py", "tests/test_metrics.py"],
        cwd=root, capture_output=True, text=True, env=environment, timeout=300,
    )
    assert collected.returncode == 0, collected.stdout[-2000:] + collected.stderr[-2000:]


@pytest.mark.parametrize("size, message", [("7", "--size must be at least 8"), ("100000", "GiB")])
def test_cli_layers_refuses_sizes_it_cannot_run(capsys, size, message):
    code = main(["layers", "efficientnet_lite0", "--size", size])
    captured = capsys.readouterr()
    assert code == 2 and message in captured.err and len(captured.err.strip().splitlines()) == 1
