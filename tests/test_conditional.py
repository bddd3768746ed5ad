"""A unit's story in numbers: conditional-probability buckets, shares, the chart and the `featviz story` command."""
import json
import math
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import featviz
from featviz.cli import main
from featviz.concepts import ConditionalProbability, bucket_edges, conditional_probability
from featviz.errors import FeatvizError

CLASSES = {"red": 0, "green": 1, "blue": 2}


def colour_model():
    """Unit c of layer "0" is the mean of colour channel c (a 1x1 convolution that copies the channels)."""
    network = nn.Sequential(nn.Conv2d(3, 3, 1, bias=False))
    network[0].weight.data = torch.eye(3).view(3, 3, 1, 1)
    return featviz.Model(network, name="colours", input_size=(32, 32), channels=3, mean=[0.0] * 3, std=[1.0] * 3,
                         labels=list(CLASSES))


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory):
    """One subfolder per colour class; an image of class c is mostly colour c, at a random strength, with noise.
    Images are 40x28 (not square) and 20 of each class."""
    root = tmp_path_factory.mktemp("colours")
    generator = np.random.default_rng(0)
    for name, channel in CLASSES.items():
        (root / name).mkdir()
        for index in range(20):
            pixels = generator.uniform(0.0, 0.35, size=(28, 40, 3))
            pixels[:, :, channel] = generator.uniform(0.3, 1.0) + generator.uniform(-0.05, 0.05, size=(28, 40))
            Image.fromarray((pixels.clip(0, 1) * 255).astype(np.uint8)).save(root / name / f"{index:02d}.png")
    return root


def unit_values(folder, channel):
    """The unit's per-image value computed here, independently of the dataset pass: the mean of the channel
    over the centred square resized to 32 pixels."""
    from featviz.dataset import load_image

    values = {}
    for path in sorted(folder.rglob("*.png")):
        values[str(path)] = float(load_image(path, 32)[:, :, channel].astype(np.float64).mean() / 255)
    return values


def test_a_unit_that_fires_for_one_class_shows_its_share_rising(colour_folder):
    story = conditional_probability(colour_model(), "0", CLASSES["red"], colour_folder, per_bucket=10)
    assert isinstance(story, ConditionalProbability)
    red = [row[story.classes.index("red")] for row in story.shares]
    filled = [share for share, count in zip(red, story.sampled) if count]
    assert filled[0] == 0.0 and filled[-1] == 1.0
    assert all(later >= earlier for earlier, later in zip(filled, filled[1:]))
    assert story.labels_from == "folders" and set(story.classes) == set(CLASSES) and story.grouped == 0
    # the blue unit tells another story: its top bucket is all blue
    blue = conditional_probability(colour_model(), "0", CLASSES["blue"], colour_folder, per_bucket=10)
    assert blue.shares[-1][blue.classes.index("blue")] == 1.0


def test_bucket_edges_are_in_standard_deviations_from_zero(colour_folder):
    story = conditional_probability(colour_model(), "0", CLASSES["green"], colour_folder, buckets=0.5, per_bucket=100)
    values = torch.tensor(list(unit_values(colour_folder, CLASSES["green"]).values()), dtype=torch.float64)
    std = float(values.std(unbiased=False))
    assert story.std == pytest.approx(std, rel=1e-4)
    z = values / std
    assert all(math.isclose(edge / 0.5, round(edge / 0.5), abs_tol=1e-9) for edge in story.edges)
    assert story.edges[0] <= float(z.min()) < story.edges[0] + 0.5
    assert story.edges[-1] - 0.5 < float(z.max()) <= story.edges[-1]
    expected = [int(((z >= low) & (z < high)).sum()) for low, high in zip(story.edges, story.edges[1:])]
    expected[-1] += int((z == story.edges[-1]).sum())
    assert story.population == expected and sum(story.population) == 60 == story.images
    assert bucket_edges(torch.tensor([-0.4, 0.2, 2.5]), 1.0) == [-1.0, 0.0, 1.0, 2.0, 3.0]


def test_per_bucket_sample_count_is_respected(colour_folder):
    story = conditional_probability(colour_model(), "0", CLASSES["red"], colour_folder, per_bucket=3, seed=5)
    assert story.sampled == [min(3, count) for count in story.population]
    assert any(count > 3 for count in story.population)
    for row, drawn in zip(story.shares, story.sampled):
        assert sum(row) == pytest.approx(1.0 if drawn else 0.0)
        assert all(math.isclose(share * drawn, round(share * drawn), abs_tol=1e-9) for share in row)
    again = conditional_probability(colour_model(), "0", CLASSES["red"], colour_folder, per_bucket=3, seed=5)
    assert again.shares == story.shares


def test_other_label_sources(colour_folder):
    model = colour_model()
    values = unit_values(colour_folder, CLASSES["red"])
    given = {path: ("bright" if value > 0.5 else "dim") for path, value in values.items()}
    story = conditional_probability(model, "0", 0, colour_folder, labels=given, shown=1)
    assert story.labels_from == "given" and story.classes[-1] == "other" and story.grouped == 1
    assert story.shares[-1][0] == 1.0 and story.classes[0] == "bright"
    # the model's own prediction: argmax over the three colour channels (its output's mean over positions)
    predicted = conditional_probability(model, "0", CLASSES["green"], colour_folder, labels="predicted")
    assert predicted.labels_from == "predicted"
    assert predicted.shares[-1][predicted.classes.index("green")] == 1.0
    with pytest.raises(FeatvizError, match="no label for 1 of the 60"):
        conditional_probability(model, "0", 0, colour_folder, labels=dict(list(given.items())[1:]))


def test_concept_labels_on_a_tiny_clip(tmp_path, monkeypatch):
    monkeypatch.setenv("FEATVIZ_CACHE", str(tmp_path))
    model = featviz.load_model("open_clip:featviz-tiny-ViT", weights="random")
    story = conditional_probability(model, "transformer.resblocks.1", 3, "shipped", labels="concepts",
                                    concepts=["sky", "cat", "stone"], per_bucket=4)
    assert story.labels_from == "concepts" and set(story.classes) <= {"sky", "cat", "stone"}
    assert sum(story.population) == 15


def test_chart_as_svg_and_png(colour_folder, tmp_path):
    story = conditional_probability(colour_model(), "0", 0, colour_folder, per_bucket=10, examples=3)
    tree = ElementTree.fromstring(story.svg())
    namespace = "{http://www.w3.org/2000/svg}"
    segments = [rect for rect in tree.iter(f"{namespace}rect") if rect.find(f"{namespace}title") is not None]
    nonzero = sum(share > 0 for row in story.shares for share in row)
    assert len(segments) == nonzero + len(story.classes)  # bar segments and legend swatches
    assert story.save(tmp_path / "chart.svg").read_text() == story.svg()
    with Image.open(story.save(tmp_path / "chart.png")) as picture:
        assert picture.size == (1440, 800)
    with pytest.raises(FeatvizError, match=".svg or .png"):
        story.save(tmp_path / "chart.jpg")
    assert [example.value for example in story.examples] == sorted((e.value for e in story.examples), reverse=True)
    assert len(story.examples) == 3 and all("red" in example.path for example in story.examples)
    assert json.loads(json.dumps(story.to_dict()))["edges"] == story.edges


def test_argument_errors(colour_folder):
    model = colour_model()
    with pytest.raises(FeatvizError, match="out of range"):
        conditional_probability(model, "0", 3, colour_folder)
    with pytest.raises(FeatvizError, match="width of at least"):
        conditional_probability(model, "0", 0, colour_folder, buckets=0.001)
    with pytest.raises(FeatvizError, match="increasing"):
        conditional_probability(model, "0", 0, colour_folder, buckets=[0.0, 2.0, 1.0])
    with pytest.raises(FeatvizError, match="one subfolder per class"):
        conditional_probability(model, "0", 0, sorted((colour_folder / "red").glob("*.png")))
    with pytest.raises(FeatvizError, match="labels must be one of"):
        conditional_probability(model, "0", 0, colour_folder, labels="guess")


def test_cli_story_writes_chart_numbers_and_crops(tmp_path, colour_folder, capsys):
    out = tmp_path / "story"
    code = main([
        "story", "open_clip:featviz-tiny-ViT", "--weights", "random", "--layer", "transformer.resblocks.0",
        "--unit", "5", "--images", str(colour_folder), "--out", str(out), "--per-bucket", "4", "--examples", "2",
        "--crop-size", "48", "--no-cache", "--no-progress",
    ])
    assert code == 0
    assert (out / "story.svg").read_text().startswith("<svg")
    numbers = json.loads((out / "story.json").read_text())
    assert numbers["unit"] == 5 and max(numbers["sampled"]) <= 4
    with Image.open(out / "examples" / "01.png") as crop:
        assert crop.size == (48, 48)
    assert "top bucket" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["missing folder", "negative unit", "unknown layer", "no subfolders"])
def test_cli_story_errors_exit_2_with_one_line(case, tmp_path, colour_folder, capsys):
    arguments = {
        "missing folder": ["--layer", "conv1", "--unit", "0", "--images", str(tmp_path / "nowhere")],
        "negative unit": ["--layer", "conv1", "--unit", "-1", "--images", str(colour_folder)],
        "unknown layer": ["--layer", "transformer.resblock.0", "--unit", "0", "--images", str(colour_folder)],
        "no subfolders": ["--layer", "conv1", "--unit", "0", "--images", str(colour_folder / "red")],
    }[case]
    code = main(["story", "open_clip:featviz-tiny-ViT", "--weights", "random", "--out", str(tmp_path / "out"),
                 "--no-cache", "--no-progress", *arguments])
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert error.startswith("featviz: error:") and "\n" not in error and "Traceback" not in error
