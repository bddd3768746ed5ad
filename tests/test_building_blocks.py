"""Tests of featviz.recipes.building_blocks (activation grid, attribution, neuron groups, explain) and
`featviz explain`."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import featviz

from featviz.cli import main
from featviz.dataset.shipped import shipped_photo_paths
from featviz.errors import FeatvizError
from featviz.hooks import ActivationCapture
from featviz.metrics.images import as_images, resize
from featviz.objectives import direction
from featviz.objectives.binding import bind_objective
from featviz.recipes import (attribution, explain, layer_activations, neuron_groups, render_groups,
                             spatial_activation_grid)
from featviz_testing import tiny_model

TINY_TIMM = "timm:test_efficientnet"


@pytest.fixture(scope="module")
def tiny():
    return tiny_model(size=32)


def photo(name: str) -> torch.Tensor:
    (path,) = [path for path in shipped_photo_paths() if path.stem == name]
    return as_images(path)


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------- the image as the layer sees it


def test_activations_follow_the_layers_own_grid_on_a_non_square_image(tiny):
    image = torch.rand(1, 3, 40, 64)
    seen = layer_activations(tiny, "2", image, image_size=(40, 64))
    assert seen.grid_shape == (20, 32)  # stride 2: rows follow the height, columns the width
    with torch.no_grad():
        expected = tiny.network[:3](tiny.shift + image * tiny.scale)[0]
    torch.testing.assert_close(seen.activations, expected)
    # an int keeps the aspect ratio: the shorter side becomes 32
    assert layer_activations(tiny, "2", torch.rand(1, 3, 30, 60), image_size=32).image.shape[-2:] == (32, 64)


def test_a_missing_image_an_unknown_layer_and_a_reserved_name_are_one_line_errors(tiny, tmp_path):
    with pytest.raises(FeatvizError, match="does not exist"):
        layer_activations(tiny, "2", tmp_path / "nope.jpg")
    with pytest.raises(FeatvizError, match="closest: 2"):
        layer_activations(tiny, "22", torch.rand(1, 3, 32, 32))
    with pytest.raises(FeatvizError, match="not a layer"):
        layer_activations(tiny, "@output", torch.rand(1, 3, 32, 32))


# ---------------------------------------------------------------- the activation grid


def test_spatial_grid_has_the_layers_rows_and_columns_and_renders_each_cell(tiny, tmp_path):
    image = torch.rand(1, 3, 40, 64)
    cells = spatial_activation_grid(tiny, "2", image, pool=4, size=16, steps=2, image_size=(40, 64), progress=False)
    assert cells.shape == (5, 8)
    seen = layer_activations(tiny, "2", image, image_size=(40, 64))
    pooled = F.avg_pool2d(seen.activations[None], 4)[0].permute(1, 2, 0)
    torch.testing.assert_close(cells.vectors, pooled)
    assert cells.result.images.shape == (40, 3, 16, 16)
    assert cells.result.objectives[1 * 8 + 3].endswith("cell 1,3")
    (written,) = cells.save(tmp_path / "grid.png")
    assert Image.open(written).size == (8 * 16 + 9 * 2, 5 * 16 + 6 * 2)


# ---------------------------------------------------------------- attribution


def test_attribution_sums_to_the_logit_minus_its_bias_when_the_rest_is_linear(tiny):
    """Layer 4 is followed by average pooling and a linear classifier: activation x gradient is then exact."""
    image = torch.rand(1, 3, 32, 48)
    found = attribution(tiny, "4", image, target="dog", image_size=(32, 48))
    bias = float(tiny.network[7].bias[1])
    assert found.target == "class:dog"
    assert found.total == pytest.approx(found.value - bias, abs=1e-5)
    assert found.values.shape == (6, 16, 24) and found.per_position.shape == (16, 24)
    assert found.per_channel.sum() == pytest.approx(found.total, abs=1e-5)
    predicted = attribution(tiny, "4", image, image_size=(32, 48))
    with torch.no_grad():
        logits = tiny(image)[0]
    assert predicted.target == f"class:{tiny.labels[int(logits.argmax())]}"
    assert predicted.value == pytest.approx(float(logits.max()), abs=1e-5)


class SharedReLU(torch.nn.Module):
    """One ReLU module called twice in forward, as torchvision's ResNet blocks do."""

    def __init__(self):
        super().__init__()
        self.first = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.second = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.relu = torch.nn.ReLU()
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x):
        x = self.relu(self.second(self.relu(self.first(x))))
        return self.head(x.mean((2, 3)))


def test_attribution_at_a_module_run_twice_reads_its_first_call_and_leaves_the_second_alone():
    torch.manual_seed(0)
    net = SharedReLU().eval()
    image = torch.rand(1, 3, 24, 40)
    found = attribution(net, "relu", image, target=1, image_size=(24, 40))
    with torch.no_grad():
        logit = float(net(image)[0, 1])
        first = torch.relu(net.first(image))[0]
    assert found.value == pytest.approx(logit, abs=1e-5)  # the pass after the first call ran on its own values
    torch.testing.assert_close(found.values / found.gradient.where(found.gradient != 0, 1), first.where(found.gradient != 0, 0))


def test_group_attributions_add_up_to_the_attribution_of_what_the_groups_reconstruct(tiny):
    image = torch.rand(1, 3, 32, 48)
    groups = neuron_groups(tiny, "4", image, groups=3, image_size=(32, 48))
    found = attribution(tiny, "4", image, target=2, groups=groups, image_size=(32, 48))
    channels = found.values.shape[0]
    parts = groups.components[:, :channels] - groups.components[:, channels:]
    reconstructed = torch.einsum("khw,kc->chw", groups.maps, parts)
    assert found.groups.sum() == pytest.approx(float((reconstructed * found.gradient).sum()), rel=1e-4, abs=1e-6)
    torch.testing.assert_close(found.group_positions.sum(0), (reconstructed * found.gradient).sum(0), atol=1e-5, rtol=1e-4)


def test_a_unit_target_and_targets_that_cannot_be_attributed(tiny):
    image = torch.rand(1, 3, 32, 32)
    found = attribution(tiny, "2", image, target="4:1")
    assert found.target == "4:1" and found.values.shape[0] == 8
    with pytest.raises(FeatvizError, match="does not depend on layer '4'"):
        attribution(tiny, "4", image, target="2:1")
    with pytest.raises(FeatvizError, match="unknown class 'zebra'"):
        attribution(tiny, "4", image, target="zebra")


def test_attribution_toward_the_predicted_class_lies_on_the_cat(lite0):
    """A cat pasted into the right part of a wide natural background: the position that contributes most to
    the predicted class lies on the cat, and the cat's positions contribute more on average."""
    cat = resize(photo("chelsea"), (112, 168))
    for background in ("brick", "grass"):
        canvas = resize(photo(background), (160, 320)).clone()
        canvas[:, :, 24:136, 140:308] = cat
        found = attribution(lite0, "blocks.4", canvas, image_size=(160, 320))
        assert found.target in ("class:tabby", "class:tiger cat", "class:Egyptian cat")
        assert found.per_position.shape == (10, 20)
        on_cat = torch.zeros(10, 20, dtype=torch.bool)
        on_cat[2:8, 9:19] = True  # positions whose 16-pixel cells lie inside the pasted photo
        row, column = found.top_position()
        assert on_cat[row, column], (background, row, column)
        assert found.per_position[on_cat].mean() > found.per_position[~on_cat].mean()


# ---------------------------------------------------------------- neuron groups


def test_nmf_groups_reconstruct_the_activations_better_than_random_channel_groups(lite0):
    from sklearn.decomposition import non_negative_factorization

    image = resize(photo("chelsea"), (96, 144))
    found = neuron_groups(lite0, "blocks.4", image, groups=6, image_size=(96, 144))
    seen = layer_activations(lite0, "blocks.4", image, image_size=(96, 144))
    channels, rows, columns = seen.activations.shape
    assert found.maps.shape == (6, rows, columns) and (rows, columns) == (6, 9)
    assert found.directions.shape == (6, channels)
    torch.testing.assert_close(found.directions.norm(dim=1), torch.ones(6))
    assert bool((found.maps >= 0).all()) and found.maps.sum((1, 2)).argsort(descending=True).tolist() == list(range(6))
    matrix = seen.activations.permute(1, 2, 0).reshape(-1, channels).double().numpy()
    features = np.concatenate([np.maximum(matrix, 0), np.maximum(-matrix, 0)], axis=1)
    generator = np.random.default_rng(0)
    for _ in range(3):
        membership = np.zeros((6, 2 * channels))
        membership[generator.integers(0, 6, 2 * channels), np.arange(2 * channels)] = 1.0
        maps, _, _ = non_negative_factorization(features, H=membership, n_components=6, init="custom",
                                                update_H=False, max_iter=400)
        random_error = np.linalg.norm(features - maps @ membership) / np.linalg.norm(features)
        assert found.error < 0.8 * random_error
    clipped = neuron_groups(lite0, "blocks.4", image, groups=6, negatives="clip", image_size=(96, 144))
    assert bool((clipped.directions >= 0).all())


def test_groups_out_of_range_and_unknown_negatives_are_featviz_errors(tiny):
    image = torch.rand(1, 3, 32, 32)
    with pytest.raises(FeatvizError, match="groups must be an int from 1 to 6"):
        neuron_groups(tiny, "4", image, groups=7)
    with pytest.raises(FeatvizError, match="groups must be"):
        neuron_groups(tiny, "4", image, groups=0)
    with pytest.raises(FeatvizError, match="'split' or 'clip'"):
        neuron_groups(tiny, "4", image, groups=2, negatives="abs")


def test_each_group_render_activates_its_direction_more_than_a_random_directions_render(lite0):
    image = resize(photo("chelsea"), (96, 144))
    found = neuron_groups(lite0, "blocks.3", image, groups=3, image_size=(96, 144))
    renderer = featviz.Renderer(lite0)
    renders = render_groups(renderer, found, size=64, steps=16, seed=0, progress=False)
    vector = torch.randn(found.directions.shape[1], generator=torch.Generator().manual_seed(0))
    random_render = renderer.render(direction("blocks.3", vector, cossim_pow=1.0), size=64, steps=16, seed=3,
                                    progress=False)
    goals = [direction("blocks.3", vector) for vector in found.directions]
    bound = bind_objective(lite0, goals, size=(64, 64))
    images = torch.cat([renders.images, random_render.images])
    with torch.no_grad(), ActivationCapture(lite0, ["blocks.3"], layouts=bound.layouts) as capture:
        activations = capture.run(images)
    for index, goal in enumerate(goals):
        values = goal(activations)
        assert values[index] > values[3], (index, values)


# ---------------------------------------------------------------- the whole figure


def test_explain_writes_the_figure_and_its_parts_for_a_non_square_image(tiny, tmp_path):
    image = torch.rand(1, 3, 40, 64)
    found = explain(tiny, "2", image, groups=3, target="tench", size=16, steps=2, grid_pool=4, grid_size=12,
                    image_size=(40, 64), progress=False)
    assert found.groups.maps.shape == (3, 20, 32) and found.grid.shape == (5, 8)
    assert found.renders.images.shape == (3, 3, 16, 16) and found.grid.result.images.shape == (40, 3, 12, 12)
    assert set(found.seconds) == {"activations", "groups", "attribution", "renders", "grid"}
    written = found.save(tmp_path / "out")
    names = {path.name for path in written}
    assert written[0].name == "figure.png"
    assert {"image.png", "groups.png", "group-2.png", "group-2-map.png", "attribution-map.png",
            "attribution-bars.png", "grid.png", "explanation.json"} <= names
    assert Image.open(tmp_path / "out" / "groups.png").size == (64, 40)
    summary = json.loads((tmp_path / "out" / "explanation.json").read_text())
    assert summary["target"] == "class:tench" and summary["grid"] == [20, 32]
    assert sum(group["attribution"] for group in summary["groups"]) == pytest.approx(float(found.attribution.groups.sum()))


def test_cli_explain_writes_the_folder_and_prints_the_figure_first(capsys, tmp_path):
    (cat,) = [path for path in shipped_photo_paths() if path.stem == "chelsea"]
    out = tmp_path / "explained"
    code, printed, err = run_cli(capsys, "explain", str(cat), TINY_TIMM, "--weights", "random", "--layer", "blocks.2",
                                 "--groups", "2", "--steps", "2", "--size", "32", "--image-size", "48",
                                 "--out", str(out), "--no-progress")
    assert code == 0, err
    paths = printed.split()
    assert paths[0] == str(out / "figure.png") and (out / "explanation.json").is_file()
    summary = json.loads((out / "explanation.json").read_text())
    assert summary["image_size"] == [48, 72] and summary["grid"] == [6, 9]  # 300x451 photo, stride 8


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["missing.jpg", TINY_TIMM, "--layer", "blocks.2"], "does not exist"),
        (["@cat", TINY_TIMM, "--layer", "blocks.22"], "closest: blocks.2"),
        (["@cat", TINY_TIMM, "--layer", "blocks.2", "--groups", "40"], "groups must be an int from 1 to"),
        (["@cat", TINY_TIMM, "--layer", "blocks.2", "--groups", "0"], "--groups must be at least 1"),
        (["@cat", TINY_TIMM, "--layer", "blocks.2", "--out", "figure.png"], "must be a folder"),
    ],
)
def test_cli_explain_mistakes_exit_2_with_one_line(capsys, tmp_path, arguments, message):
    (cat,) = [path for path in shipped_photo_paths() if path.stem == "chelsea"]
    arguments = [str(cat) if item == "@cat" else str(tmp_path / item) if item == "missing.jpg" else item
                 for item in arguments]
    if "--out" not in arguments:
        arguments += ["--out", str(tmp_path / "out")]
    code, printed, err = run_cli(capsys, "explain", *arguments, "--weights", "random", "--steps", "1", "--size", "32",
                                 "--image-size", "48", "--no-progress")
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
