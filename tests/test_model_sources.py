"""Model sources and module objects: the source registry, configs read off timm/open_clip/torchvision/plain
modules, and `load_model` leaving the caller's module or Model exactly as it was."""
import importlib.util
import pkgutil
import re
import threading
import time
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.model import CLIP
from torch import nn

from featviz.cli import main
from featviz.errors import FeatvizError
from featviz.models import imagenet_labels, list_models, list_sources, load_model, sources
from featviz.models import registry
from test_models import no_internet, offline  # noqa: F401 (fixtures: no test here reaches the internet)

HOW_TO = Path(__file__).parents[1] / "docs" / "how-to" / "add-a-model-source.md"
TIMM_MEAN, TIMM_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def tiny_clip(vision_layers=1) -> CLIP:
    """A random-init open_clip CLIP with 32 x 32 input: a ViT tower, or a ModifiedResNet for a tuple of layers."""
    torch.manual_seed(0)
    vision = {"layers": vision_layers, "width": 32, "head_width": 16, "patch_size": 8, "image_size": 32}
    text = {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1}
    return CLIP(embed_dim=16, vision_cfg=vision, text_cfg=text)


def values(tensor: torch.Tensor) -> list[float]:
    return [round(value, 5) for value in tensor.flatten().tolist()]


# The source registry ------------------------------------------------------------------------------------------------

def test_every_module_of_the_sources_folder_registers_its_source():
    modules = {module.name for module in pkgutil.iter_modules(sources.__path__) if not module.name.startswith("_")}
    registered = {source.build.__module__.rpartition(".")[2] for source in list_sources()}
    assert registered == modules == {"open_clip", "timm", "torchvision"}
    assert [source.prefix for source in list_sources()] == ["open_clip", "timm", "torchvision"]
    assert all(source.syntax.startswith(source.prefix + ":") and source.description for source in list_sources())


def test_prefix_lists_derive_from_the_registry(capsys):
    syntax = registry.sources_syntax()
    assert syntax == "open_clip:ARCH/PRETRAINED, timm:NAME or torchvision:NAME"
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = list_models()
    assert lines[:len(names)] == names and len(lines) == len(names) + len(list_sources())
    for line, source in zip(lines[len(names):], list_sources(), strict=True):
        assert line.split()[0] == source.syntax and line.endswith(source.description)
    assert main(["layers", "--help"]) == 0
    assert syntax in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    "name, message",
    [
        ("tim:resnet18", "unknown model source 'tim:' in 'tim:resnet18'; closest: timm:resnet18; use "
                         "open_clip:ARCH/PRETRAINED, timm:NAME or torchvision:NAME"),
        ("Open-Clip:", "model name 'Open-Clip:' lacks the part after 'open_clip:'; use open_clip:ARCH/PRETRAINED"),
        ("ViT-B-32", "unknown model 'ViT-B-32'; closest: open_clip:ViT-B-32; use a registered name"),
    ],
)
def test_source_name_mistakes(name, message):
    with pytest.raises(FeatvizError) as error:
        load_model(name, weights="random")
    assert str(error.value).startswith(message)


def test_source_prefixes_ignore_case_and_hyphens():
    assert load_model("TIMM:test_resnet", weights="random").name == "timm:test_resnet"


def test_register_source_checks_its_arguments():
    def build(name, weights):
        raise AssertionError("never called")

    with pytest.raises(FeatvizError, match="model source 'timm' is already registered"):
        registry.register_source("timm", syntax="timm:NAME", description="again")(build)
    with pytest.raises(FeatvizError, match="the syntax of model source 'mine' must start with 'mine:', not 'NAME'"):
        registry.register_source("mine", syntax="NAME", description="x")(build)
    with pytest.raises(FeatvizError, match="prefix 'my lib' cannot be registered"):
        registry.register_source("my lib", syntax="my lib:NAME", description="x")(build)
    assert "mine" not in registry._SOURCES


@pytest.fixture
def how_to_source(tmp_path):
    """The example source of docs/how-to/add-a-model-source.md, imported from the page's first Python block."""
    code = re.search(r"```python\n(.*?)```", HOW_TO.read_text(), re.DOTALL).group(1)
    path = tmp_path / "tinynet_source.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location("tinynet_source", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        yield module
    finally:
        registry._SOURCES.pop("tinynet", None)


def test_the_how_to_example_source(how_to_source, offline, capsys):
    assert "tinynet:WIDTH" in registry.sources_syntax()
    assert main(["models"]) == 0
    assert "tinynet:WIDTH              TinyNet CIFAR-10 classifiers, WIDTH 16 or 32" in capsys.readouterr().out
    model = load_model("tinynet:16", weights="random")
    assert model.name == "tinynet:16" and model.input_size == (32, 32) and model.labels[3] == "cat"
    assert values(model.std) == [0.25] * 3
    started = time.perf_counter()
    with pytest.raises(FeatvizError, match="weights for tinynet:16 need a download from example.com and there is no"):
        load_model("tinynet:16")
    assert time.perf_counter() - started < 5 and offline == ["example.com"]
    with pytest.raises(FeatvizError, match="unknown TinyNet width '24'.*; use tinynet:16 or tinynet:32"):
        load_model("tinynet:24")
    torch.manual_seed(7)
    saved = how_to_source.TinyNet(16)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / "tinynet-16.pth"
    cached.parent.mkdir(parents=True)
    torch.save(saved.state_dict(), cached)
    pretrained = load_model("tinynet:16")
    assert offline == ["example.com"], "a cached file needs no network"
    assert torch.equal(pretrained.network[0].weight, saved[0].weight)
    from_object = load_model(how_to_source.TinyNet(32))
    assert from_object.name == "TinyNet" and from_object.input_size == (32, 32) and from_object.labels[0] == "airplane"


# Configs read off module objects ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "architecture, mean, std, layer",
    [("vit_tiny_patch16_224", [0.5] * 3, [0.5] * 3, "blocks.0.attn"), ("resnet18", TIMM_MEAN, TIMM_STD, "layer1.0")],
)
def test_timm_objects_bring_their_pretrained_config(architecture, mean, std, layer):
    network = timm.create_model(architecture, pretrained=False)
    model = load_model(network)
    assert model.input_size == (224, 224) and model.channels == 3 and model.labels == imagenet_labels()
    assert values(model.mean) == mean and values(model.std) == std
    assert model.name == type(network).__name__ and layer in model.layer_names()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 224, 224)).shape == (1, 1000)


def test_timm_config_details_and_overrides():
    headless = timm.create_model("resnet18", pretrained=False, num_classes=10)
    assert load_model(headless).labels is None  # the config names ImageNet, but the head has 10 classes
    gray = timm.create_model("resnet18", pretrained=False, in_chans=1)
    with pytest.raises(FeatvizError, match="mean has 3 values but the model takes 1 input channels; give 1 value"):
        load_model(gray)
    model = load_model(gray, mean=[0.5], std=[0.2], input_size=(96, 128), labels=[str(index) for index in range(1000)])
    assert model.channels == 1 and model.input_size == (96, 128) and model.labels[7] == "7"
    assert values(model.mean) == [0.5] and values(model.std) == [0.2]


class DeclaresButHasNoConv(nn.Module):
    """Declares a timm-style config with 2 input channels and has no Conv2d to read them from."""

    pretrained_cfg = {"input_size": (2, 40, 48), "mean": (0.1, 0.2), "std": (0.3, 0.4)}

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(48, 4)

    def forward(self, images):
        return self.linear(images).mean((1, 2))


def test_channels_come_from_the_first_conv_then_the_config_then_the_caller():
    model = load_model(DeclaresButHasNoConv())
    assert model.channels == 2 and model.input_size == (40, 48) and values(model.mean) == [0.1, 0.2]
    assert load_model(nn.Sequential(nn.Identity(), nn.Conv2d(5, 2, 1))).channels == 5
    assert load_model(nn.Flatten(), channels=4).channels == 4
    with pytest.raises(FeatvizError) as error:
        load_model(nn.Flatten())
    assert str(error.value) == (
        "cannot tell how many input channels Flatten takes (it has no Conv2d and declares none); pass channels="
    )


def test_open_clip_model_object_gives_its_image_tower_and_normalization():
    clip = tiny_clip()
    model = load_model(clip)
    assert model.name == "CLIP" and model.labels is None
    assert type(model.network).__name__ == "VisionTransformer" and model.input_size == (32, 32)
    assert values(model.mean) == [round(value, 5) for value in OPENAI_DATASET_MEAN]
    assert values(model.std) == [round(value, 5) for value in OPENAI_DATASET_STD]
    assert "transformer.resblocks.0" in model.layer_names()
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(images), clip.encode_image((images - model.mean) / model.std), atol=1e-5)


def test_open_clip_tower_objects_and_their_declared_preprocessing():
    import open_clip

    clip = tiny_clip()
    open_clip.set_model_preprocess_cfg(clip, {"size": 32, "mean": (0.1, 0.2, 0.3), "std": (0.4, 0.5, 0.6)})
    assert values(load_model(clip).mean) == [0.1, 0.2, 0.3]
    tower = tiny_clip().visual
    tower.image_mean, tower.image_std = (0.3, 0.3, 0.3), (0.2, 0.2, 0.2)  # open_clip's older attributes
    model = load_model(tower)
    assert model.name == "VisionTransformer" and values(model.mean) == [0.3] * 3 and values(model.std) == [0.2] * 3
    resnet = load_model(tiny_clip(vision_layers=(1, 1, 1, 1)))
    assert type(resnet.network).__name__ == "ModifiedResNet" and resnet.input_size == (32, 32)
    with torch.no_grad():
        assert resnet(torch.rand(1, 3, 32, 32)).shape == (1, 16)


def test_torchvision_and_plain_objects_get_224_and_no_normalization():
    for network in (torchvision.models.resnet18(weights=None), nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())):
        model = load_model(network)
        assert model.input_size == (224, 224) and model.channels == 3 and model.labels is None
        assert values(model.mean) == [0.0] * 3 and values(model.std) == [1.0] * 3
    images = torch.rand(1, 3, 16, 16)
    sequential = nn.Sequential(nn.Conv2d(3, 4, 3))
    with torch.no_grad():
        assert torch.equal(load_model(sequential)(images), sequential(images))


# The caller's module stays the caller's -----------------------------------------------------------------------------

def snapshot(module: nn.Module) -> list[tuple]:
    """Everything load_model could change in a module: values, flags, dtype, device, memory format, modes."""
    state = [(module.training, [child.training for child in module.modules()])]
    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        channels_last = tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last)
        state.append((name, tensor.detach().clone(), tensor.requires_grad, tensor.dtype, tensor.device, channels_last))
    return state


def assert_same(before: list[tuple], after: list[tuple]) -> None:
    assert before[0] == after[0]
    for old, new in zip(before[1:], after[1:], strict=True):
        assert old[0] == new[0] and torch.equal(old[1], new[1]) and old[2:] == new[2:], old[0]


def storages(module: nn.Module) -> set[int]:
    return {tensor.untyped_storage().data_ptr() for tensor in list(module.parameters()) + list(module.buffers())}


@pytest.mark.parametrize("kind", ["sequential", "timm", "open_clip"])
def test_load_model_never_changes_the_callers_module(kind, tmp_path):
    torch.manual_seed(0)
    network = {
        "sequential": lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()),
        "timm": lambda: timm.create_model("test_resnet", pretrained=False),
        "open_clip": tiny_clip,
    }[kind]()
    network.train()
    network.to(memory_format=torch.channels_last)
    before = snapshot(network)
    checkpoint = tmp_path / "other.pth"
    torch.save({key: torch.rand_like(value) if value.is_floating_point() else value
                for key, value in network.state_dict().items()}, checkpoint)
    for model in (load_model(network), load_model(network, weights=checkpoint, dtype=torch.float64, input_size=64)):
        assert not model.training and not any(parameter.requires_grad for parameter in model.parameters())
        assert storages(model).isdisjoint(storages(network))
    assert model.dtype == torch.float64 and model.input_size == (64, 64)
    assert_same(before, snapshot(network))


def test_a_ready_model_comes_back_as_is_and_any_change_works_on_a_copy():
    model = load_model(nn.Sequential(nn.Conv2d(3, 4, 3)))
    assert load_model(model) is model and load_model(model, device="cpu", dtype=torch.float32) is model
    assert load_model(model, weights="random") is model
    before = snapshot(model)
    for changed in (
        load_model(model, dtype=torch.float64),
        load_model(model, labels=["a", "b"]),
        load_model(model, mean=[0.5]),
    ):
        assert changed is not model and storages(changed).isdisjoint(storages(model))
    assert_same(before, snapshot(model))
    assert load_model(model, dtype=torch.float64).dtype == torch.float64
    assert load_model(load_model(model, dtype=torch.float64)).dtype == torch.float64, "a Model keeps its dtype"
    model.train()
    model.network[0].weight.requires_grad_(True)
    fixed = load_model(model)
    assert fixed is not model and not fixed.training and not fixed.network[0].weight.requires_grad
    assert model.training and model.network[0].weight.requires_grad


def test_a_module_that_cannot_be_copied_gets_one_line():
    network = nn.Sequential(nn.Conv2d(3, 4, 3))
    network.lock = threading.Lock()
    with pytest.raises(FeatvizError) as error:
        load_model(network)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("cannot copy Sequential (cannot pickle '_thread.lock' object); load_model works on a copy")
    assert "copy.deepcopy" in message


def test_device_defaults_to_the_modules_own_and_is_checked():
    assert load_model(nn.Conv2d(3, 4, 3)).device == torch.device("cpu")
    with pytest.raises(FeatvizError, match="unknown device 'gpu'; use cpu, cuda, cuda:N or mps"):
        load_model(nn.Conv2d(3, 4, 3), device="gpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_copies_leave_the_cpu_module_on_the_cpu():
    network = nn.Sequential(nn.Conv2d(3, 4, 3))
    model = load_model(network, device="cuda")
    assert model.device.type == "cuda" and network[0].weight.device.type == "cpu"
    assert load_model(model) is model and load_model(model, device="cuda") is model
    back = load_model(model, device="cpu")
    assert back.device.type == "cpu" and model.device.type == "cuda"
    on_gpu = nn.Conv2d(3, 4, 3).cuda()
    assert load_model(on_gpu).device.type == "cuda", "a module's own device is the default"



def test_layouts_are_declared_by_layer_name_and_survive_overrides():
    network = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(2))
    model = load_model(network, layouts={"1": "ncl"})
    assert model.layouts == {"1": "ncl"}
    assert load_model(model, labels=["a"] * 4).layouts == {"1": "ncl"}
    with pytest.raises(FeatvizError, match="unknown layer '2' in Sequential"):
        load_model(network, layouts={"2": "ncl"})
