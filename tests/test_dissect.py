"""Concept labels (CLIP-Dissect): the soft-WPMI score, planted units, Lite0 on real photos, concept files, the CLI."""
import csv
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import featviz
from featviz.cli import main
from featviz.concepts import UnitLabel, default_concepts, label_units, read_concepts, soft_wpmi
from featviz.concepts import dissect
from featviz.dataset import ImageFolder, shipped_photo_paths
from featviz.errors import FeatvizError
from featviz.text import TextTower

CONCEPTS = [
    "dog", "cat", "car", "tree", "house", "boat", "apple", "chair", "bird", "flower", "river", "mountain",
    "bicycle", "lamp", "shoe", "clock",
]


@pytest.fixture(scope="module")
def tiny_clip():
    torch.manual_seed(0)  # random init draws from the global generator
    return featviz.load_model("open_clip:featviz-tiny-ViT", weights="random")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch, request):
    if "lite0" not in request.fixturenames:  # Lite0's text tower is fitted once, in the session's cache
        monkeypatch.setenv("FEATVIZ_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    """48 smooth random colour images, 40x30 pixels (not square)."""
    folder = tmp_path_factory.mktemp("blobs")
    generator = np.random.default_rng(0)
    for index in range(48):
        coarse = (generator.random((4, 4, 3)) * 255).astype(np.uint8)
        Image.fromarray(coarse).resize((40, 30), Image.BICUBIC).save(folder / f"{index:02d}.png")
    return folder


class PlantedSimilarity(nn.Module):
    """An image embedding (pooled colours through a fixed linear map) and a side layer ``similarity`` whose unit
    ``u`` follows concept ``order[u]``: the cosine of the embedding with that concept's text embedding, less the
    mean cosine with all the concepts (what the image shows of that concept beyond what all concepts share; a
    random CLIP's text embeddings are all alike, cosines of 0.7 to 0.97)."""

    def __init__(self, concept_embeddings: torch.Tensor, order: list[int]) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.embed = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, concept_embeddings.shape[1]))
        self.embed[2].weight.data = torch.randn(concept_embeddings.shape[1], 48, generator=generator) / 7
        self.embed[2].bias.data.zero_()
        self.similarity = nn.Linear(concept_embeddings.shape[1], len(order), bias=False)
        self.similarity.weight.data.copy_(concept_embeddings[order] - concept_embeddings.mean(0))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        embedding = self.embed(images)
        self.similarity(F.normalize(embedding, dim=1))
        return embedding


def planted_model(tower, order):
    """A Model of `PlantedSimilarity` with the concepts' embeddings from ``tower`` (a text tower, or a model's)."""
    tower = getattr(tower, "text", tower)
    network = PlantedSimilarity(tower.encode(CONCEPTS), order)
    return featviz.Model(
        network, name="planted", input_size=(32, 32), channels=3, mean=[0.5] * 3, std=[0.25] * 3, text=tower,
    )


def naive_soft_wpmi(activations, image_embeddings, concept_embeddings, top_k, temperature, prior_weight, inclusion):
    """The published formula written out with loops, as a reference."""
    similarity = F.normalize(image_embeddings, dim=1) @ F.normalize(concept_embeddings, dim=1).t()
    probabilities = torch.softmax(similarity / temperature, dim=1)
    units, concepts = activations.shape[1], concept_embeddings.shape[0]
    k = min(top_k, activations.shape[0])
    start, end = inclusion
    conditional = torch.zeros(units, concepts, dtype=torch.float64)
    for unit in range(units):
        ranked = activations[:, unit].argsort(descending=True)[:k]
        for rank, image in enumerate(ranked.tolist()):
            p = start - rank / k * (start - end)
            for concept in range(concepts):
                conditional[unit, concept] += math.log(1 - p + p * float(probabilities[image, concept]) + 1e-7)
    prior = torch.logsumexp(conditional, dim=0) - math.log(units)
    return conditional - prior_weight * prior


def test_soft_wpmi_matches_the_published_formula(monkeypatch):
    generator = torch.Generator().manual_seed(3)
    activations = torch.randn(30, 5, generator=generator)
    images = torch.randn(30, 8, generator=generator)
    concepts = torch.randn(6, 8, generator=generator)
    expected = naive_soft_wpmi(activations, images, concepts, 7, 0.1, 1.0, (0.998, 0.97))
    monkeypatch.setattr(dissect, "PAIRS_PER_BLOCK", 4)  # many blocks, images split across them
    found = soft_wpmi(activations, images, concepts, top_k=7)
    assert torch.allclose(found.double(), expected, atol=2e-4)
    other = soft_wpmi(activations, images, concepts, top_k=4, temperature=0.5, prior_weight=0.5, inclusion=(0.9, 0.5))
    reference = naive_soft_wpmi(activations, images, concepts, 4, 0.5, 0.5, (0.9, 0.5))
    assert torch.allclose(other.double(), reference, atol=2e-4)


def test_soft_wpmi_checks_its_arguments():
    with pytest.raises(FeatvizError, match="temperature"):
        soft_wpmi(torch.randn(4, 2), torch.randn(4, 3), torch.randn(2, 3), temperature=0)
    with pytest.raises(FeatvizError, match="one space"):
        soft_wpmi(torch.randn(4, 2), torch.randn(4, 3), torch.randn(2, 5))
    with pytest.raises(FeatvizError, match="inclusion"):
        soft_wpmi(torch.randn(4, 2), torch.randn(4, 3), torch.randn(2, 3), inclusion=(0.5, 0.9))


def test_planted_units_get_their_concepts(tiny_clip, blobs):
    order = torch.randperm(len(CONCEPTS), generator=torch.Generator().manual_seed(1)).tolist()
    model = planted_model(tiny_clip, order)
    labels = label_units(model, "similarity", blobs, CONCEPTS, top_k=10, runners_up=2)
    assert [label.unit for label in labels] == list(range(len(CONCEPTS)))
    assert [label.concept for label in labels] == [CONCEPTS[index] for index in order]
    for label in labels:
        assert isinstance(label, UnitLabel) and len(label.runners_up) == 2
        assert label.score >= label.runners_up[0][1] >= label.runners_up[1][1]
        assert label.concept not in [concept for concept, _ in label.runners_up]


def test_labels_of_a_clip_layer_and_the_cached_pass(tiny_clip, tmp_path):
    cache = tmp_path / "passes"
    first = label_units(tiny_clip, "transformer.resblocks.1", "shipped", CONCEPTS[:5], top_k=3, cache_dir=cache)
    assert len(first) == 64 and {label.concept for label in first} <= set(CONCEPTS[:5])
    assert len(list(cache.glob("activations-*.pt"))) == 1
    again = label_units(tiny_clip, "transformer.resblocks.1", "shipped", CONCEPTS[:5], top_k=3, cache_dir=cache)
    assert again == first
    with pytest.warns(UserWarning, match="only 15 images"):
        label_units(tiny_clip, "transformer.resblocks.1", "shipped", CONCEPTS[:5], top_k=10, cache_dir=cache)


def test_lite0_classifier_units_are_labelled_by_what_the_photos_show(lite0):
    concepts = [
        "cat", "coffee", "rocket", "motorcycle", "flower", "coin", "moon", "brick", "grass", "temple", "astronaut",
        "camera", "dog", "car", "lemon", "bird", "tree", "house", "boat", "shoe",
    ]
    with pytest.warns(dissect.ConceptsLeftOutWarning, match=r"\(moon, astronaut\)"):  # no class is either
        labels = label_units(lite0, "classifier", ImageFolder(shipped_photo_paths(), 128), concepts, top_k=2)
    assert len(labels) == 1000 and not {"moon", "astronaut"} & {label.concept for label in labels}
    expected = {"tabby": "cat", "espresso": "coffee", "space shuttle": "rocket", "moped": "motorcycle",
                "daisy": "flower", "reflex camera": "camera"}
    for class_name, concept in expected.items():
        assert labels[lite0.label_index(class_name)].concept == concept, class_name


def test_a_classifier_leaves_out_concepts_that_no_class_is(lite0, tiny_clip, tmp_path, capsys):
    with pytest.warns(dissect.ConceptsLeftOutWarning, match=r"2 of 5 concepts .* \(terrorist, sun\)"):
        kept = dissect.known_concepts(lite0, ["espresso", "terrorist", "cat", "sun", "dog"])
    assert kept == ["espresso", "cat", "dog"]  # "dog", a blend of breeds, is a class's kind and stays
    assert dissect.known_concepts(tiny_clip, ["terrorist", "sun"]) == ["terrorist", "sun"]  # CLIP reads any text
    with pytest.raises(FeatvizError, match="give at least 2 such"):
        dissect.known_concepts(lite0, ["terrorist", "sun", "espresso"])
    concepts = tmp_path / "concepts.txt"
    concepts.write_text("espresso\nterrorist\ncat\nsun\nmotorbike\n")
    code = main(["label", "efficientnet_lite0", "--layer", "global_pool", "--images", "shipped", "--concepts",
                 str(concepts), "--top-k", "2", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0 and "terrorist" not in captured.out and "sun " not in captured.out
    assert captured.err.strip().splitlines() == [
        "featviz: warning: 2 of 5 concepts name something no class of efficientnet_lite0 is (terrorist, sun) and are "
        "left out of its labels"]


def test_default_concepts_and_concept_files(tmp_path):
    concepts = default_concepts()
    assert 2000 <= len(concepts) <= 5000 and len(set(concepts)) == len(concepts)
    assert {"dog", "cat", "lemon", "car", "tree", "red"} <= set(concepts)
    assert all(concept == concept.strip() and not concept.startswith("#") for concept in concepts)
    file = tmp_path / "mine.txt"
    file.write_text("# colours\n\n red \ngreen\nred\nsky blue\n", encoding="utf-8")
    assert read_concepts(file) == ["red", "green", "sky blue"]
    file.write_text("# only a comment\n\n", encoding="utf-8")
    with pytest.raises(FeatvizError, match="holds no concepts"):
        read_concepts(file)
    file.write_text("red\nred\n", encoding="utf-8")
    with pytest.raises(FeatvizError, match="at least 2"):
        read_concepts(file)
    file.write_bytes(b"red\n\xff\xfe\n")
    with pytest.raises(FeatvizError, match="UTF-8"):
        read_concepts(file)
    with pytest.raises(FeatvizError, match="does not exist"):
        read_concepts(tmp_path / "missing.txt")


def test_label_errors(tiny_clip, blobs):
    with pytest.raises(FeatvizError, match="closest: transformer.resblocks.1"):
        label_units(tiny_clip, "transformer.resblock.1", blobs, CONCEPTS)
    with pytest.raises(FeatvizError, match="pool"):
        label_units(tiny_clip, "transformer.resblocks.1", blobs, CONCEPTS, pool="median")
    classifier = featviz.Model(nn.Sequential(nn.Conv2d(3, 4, 3)), name="plain", input_size=(32, 32), channels=3,
                               mean=[0.5] * 3, std=[0.5] * 3)
    with pytest.raises(FeatvizError, match="no text tower"):
        label_units(classifier, "0", blobs, CONCEPTS)


def test_cli_label_writes_csv(tmp_path, blobs, capsys):
    concepts = tmp_path / "concepts.txt"
    concepts.write_text("\n".join(CONCEPTS[:4]) + "\n")
    out = tmp_path / "labels.csv"
    code = main([
        "label", "open_clip:featviz-tiny-ViT", "--weights", "random", "--layer", "transformer.resblocks.0",
        "--images", str(blobs), "--concepts", str(concepts), "--top-k", "4", "--no-cache", "--out", str(out),
        "--no-progress",
    ])
    assert code == 0
    rows = list(csv.DictReader(out.open()))
    assert [int(row["unit"]) for row in rows] == list(range(64))
    assert {row["concept"] for row in rows} <= set(CONCEPTS[:4])
    assert rows[0]["runners_up"].count(";") == 2
    assert capsys.readouterr().out.startswith("unit")


@pytest.mark.parametrize("case", ["missing folder", "empty concept file", "unknown layer", "bad out"])
def test_cli_label_errors_exit_2_with_one_line(case, tmp_path, blobs, capsys):
    concepts = tmp_path / "concepts.txt"
    concepts.write_text("\n".join(CONCEPTS[:4]) + "\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n")
    arguments = {
        "missing folder": ["--layer", "conv1", "--images", str(tmp_path / "nowhere"), "--concepts", str(concepts)],
        "empty concept file": ["--layer", "conv1", "--images", str(blobs), "--concepts", str(empty)],
        "unknown layer": ["--layer", "transformer.resblock.9", "--images", str(blobs), "--concepts", str(concepts)],
        "bad out": ["--layer", "conv1", "--images", str(blobs), "--out", str(tmp_path / "labels.txt")],
    }[case]
    code = main(["label", "open_clip:featviz-tiny-ViT", "--weights", "random", "--no-progress", *arguments])
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert error.startswith("featviz: error:") and "\n" not in error and "Traceback" not in error



class FixedTower(TextTower):
    """A text tower without a text network: each of CONCEPTS has a fixed random 32-d embedding."""

    def __init__(self) -> None:
        super().__init__()
        table = torch.randn(len(CONCEPTS), 32, generator=torch.Generator().manual_seed(2))
        self.register_buffer("table", F.normalize(table, dim=1))

    def encode(self, prompts):
        return self.table[[CONCEPTS.index(prompt) for prompt in prompts]]


WORKER = """
import json, os, sys
import torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from featviz.concepts import label_units
from test_dissect import CONCEPTS, FixedTower, planted_model
model = planted_model(FixedTower(), ORDER)
labels = label_units(model, "similarity", sys.argv[1], CONCEPTS, top_k=10, cache_dir=sys.argv[3])
if os.environ["RANK"] == "0":
    json.dump([[label.unit, label.concept, label.score] for label in labels], open(sys.argv[2], "w"))
"""


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not installed")
def test_torchrun_shards_the_images_and_gives_the_same_labels(blobs, tmp_path):
    order = torch.randperm(len(CONCEPTS), generator=torch.Generator().manual_seed(4)).tolist()
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER.format(tests=str(Path(__file__).resolve().parent)).replace("ORDER", repr(order)))
    found, cache = tmp_path / "labels.json", tmp_path / "passes"
    command = ["torchrun", "--standalone", "--nproc-per-node", "2", str(worker), str(blobs), str(found), str(cache)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list(cache.glob("activations-*.pt"))) == 2  # one pass per process, over half of the images each
    expected = label_units(planted_model(FixedTower(), order), "similarity", blobs, CONCEPTS, top_k=10)
    sharded = json.loads(found.read_text())
    assert [concept for _, concept, _ in sharded] == [label.concept for label in expected]
    assert [label.concept for label in expected] == [CONCEPTS[index] for index in order]
    assert [score for _, _, score in sharded] == pytest.approx([label.score for label in expected], abs=1e-4)
