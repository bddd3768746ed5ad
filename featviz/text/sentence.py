"""A text tower for any classifier with class names, grounded in its own vocabulary.

A prompt becomes a distribution over the classifier's classes, and its embedding is that distribution's mixture of
the classes' weight vectors (the rows of the final ``nn.Linear``), in the space of that Linear's input: the pooled
features (``global_pool`` on timm's EfficientNet). So a text objective on a classifier maximizes the cosine of the
pooled features with a blend of class vectors, and an exact class name gives exactly that class's vector.

The distribution: all-MiniLM-L6-v2 (`featviz.text.encoder`) embeds the prompt and, once per vocabulary, each
class's keys: its names (the label and, for ImageNet-1k, the other lemmas of its WordNet synset, each in `TEMPLATES`, averaged) and, for
ImageNet-1k, its WordNet definition (``"LABEL: DEFINITION"``). A class's score is the larger cosine of the prompt
with its two keys; the distribution is ``softmax(score / TEMPERATURE)``, kept to its `KEPT_CLASSES` largest
weights. A prompt that is a class name or synonym (after an optional ``a photo of a``) puts all its weight on that
class. The ImageNet lemmas and definitions are the files timm ships (``timm/data/_info``); nothing is downloaded.
`ClassTextTower.resolve` says what a prompt became. A prompt names nothing the classifier knows, and a text
objective warns once per prompt (`ClassTextTower.warn_flat`), when any of these holds:

* its distribution is flat: top weight under `FLAT`, or under twice that for a prompt near no class key (best
  cosine under `NEAR`);
* it is nearer to something no class is than to any class: to one of the phrases of `OUTSIDE` (people,
  characters, ideas, symbols, places, events...) that no class key of this classifier is near, by more than
  `OUTSIDE_MARGIN` in cosine ("happiness" reads as "an emotion");
* it is a proper name the classifier's vocabulary does not hold: every word capitalized, and one of them in no
  class name or definition ("a photo of Spider-Man", which the sentence encoder reads as a spider).

The sentence encoder and the embeddings' caches are `featviz.text.encoder`'s.
"""
from __future__ import annotations

import functools
import operator
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from featviz.errors import FeatvizError
from featviz.hooks.dataflow import feeding_layers
from featviz.text.encoder import EMBEDDING_WIDTH, ENCODER_NAME, SHIPPED, embed_sentences, write_embeddings
from featviz.models.labels import imagenet_labels
from featviz.models.model import Model, normalize_label, register_text_tower
from featviz.text.prompts import check_prompts
from featviz.text.tower import TextTower


#: Templates each class name is put into; a name's key is the mean of their embeddings.
TEMPLATES = ("a photo of a {}.",)
#: Softmax temperature on cosine scores: the one of 0.01-0.1 with the lowest negative log-likelihood of the right
#: class on the 33 development paraphrases of benchmarks/text_transfer.py (`DEVELOPMENT`).
TEMPERATURE = 0.035
#: A prompt's embedding blends at most this many classes (the rest of the distribution is dropped).
KEPT_CLASSES = 10
#: A distribution whose largest weight is below this is flat: the prompt names nothing the classifier knows.
FLAT = 0.25
#: A prompt whose best cosine with any class key is below this is near no class (2% of the benchmark's 171
#: paraphrases score under 0.48; "happiness", "love", "democracy" score 0.22-0.31).
NEAR = 0.45
#: Phrases of things a classifier of everyday objects has no class for (one a line, ``#`` comments): rivals of
#: the classes when telling whether a prompt names any.
OUTSIDE = Path(__file__).resolve().parent / "data" / "outside.txt"
#: An outside phrase with a class key this near (cosine) names that class, and is not a rival on this classifier.
OUTSIDE_NEAR = 0.7
#: A prompt nearer (cosine) to an outside phrase than to any class key by more than this names no class: the
#: prompts naming nothing in ImageNet that this test catches are nearer by 0.07 or more (benchmarks/text_transfer.py
#: `NO_CLASS_TEST`), and 2 of its 171 paraphrases of ImageNet classes by 0.01 at most.
OUTSIDE_MARGIN = 0.05
#: Lower-case words a proper name may hold ("Statue of Liberty").
_NAME_JOINERS = frozenset({"of", "the", "and", "de", "da", "di", "du", "la", "le", "van", "von", "der"})
_WORD = re.compile(r"[\w'’-]+")
#: How a resolution is printed: this many classes.
SHOWN_CLASSES = 3
#: Prefixes stripped before a prompt is compared with the class names ("a photo of a goldfish" is goldfish).
_PREFIX = re.compile(
    r"^\s*(?:(?:a|an|the)\s+)?(?:(?:photo|picture|image|drawing|painting|render|rendering)\s+of\s+)?"
    r"(?:(?:a|an|the|some)\s+)?", re.IGNORECASE,
)


_WARNED: set[tuple[str, int, str]] = set()


def imagenet_sentences() -> list[str]:
    """The sentences the text tower of an ImageNet-1k classifier embeds: each class's names in `TEMPLATES`, and
    ``"LABEL: DEFINITION"`` per class (what `SHIPPED` holds).

    Example:
        >>> sentences = imagenet_sentences()
        >>> "a photo of a goldfish." in sentences, len(sentences) > 2000
        (True, True)
    """
    names, definitions = class_vocabulary(imagenet_labels())
    named = [template.format(name) for group in names for name in group for template in TEMPLATES]
    described = [f"{label}: {definition}" for label, definition in zip(imagenet_labels(), definitions)]
    return list(dict.fromkeys(named + described))


@functools.lru_cache(maxsize=1)
def outside_phrases() -> tuple[str, ...]:
    """The phrases of `OUTSIDE`: things a classifier of everyday objects usually has no class for.

    Example:
        >>> phrases = outside_phrases()
        >>> "an emotion" in phrases, "a superhero" in phrases, len(phrases) > 100
        (True, True, True)
    """
    lines = OUTSIDE.read_text(encoding="utf-8").splitlines()
    return tuple(dict.fromkeys(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")))


def write_shipped_embeddings(path: str | os.PathLike = SHIPPED) -> Path:
    """Embed `imagenet_sentences` and `outside_phrases` with the installed encoder and write them (fp16) to
    ``path``, the file featviz ships; rerun it when the encoder package changes.

    Example:
        >>> write_shipped_embeddings(tmp_path / "sentences.pt").name      # doctest: +SKIP
        'sentences.pt'
    """
    return write_embeddings(list(dict.fromkeys([*imagenet_sentences(), *outside_phrases()])), path)


def check_templates(templates: Sequence[str]) -> tuple[str, ...]:
    """``templates`` as a tuple of strings that each hold ``{}`` once, or a FeatvizError.

    Example:
        >>> check_templates(["a photo of a {}."])
        ('a photo of a {}.',)
    """
    if isinstance(templates, str):
        templates = [templates]
    found = tuple(templates)
    if not found:
        raise FeatvizError("give at least one template, like 'a photo of a {}.'")
    for template in found:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise FeatvizError(f"a template must hold '{{}}' once, like 'a photo of a {{}}.', not {template!r}")
    return found


def class_embeddings(labels: Sequence[str], templates: Sequence[str] = TEMPLATES, progress: bool = True) -> Tensor:
    """Per name of ``labels``, the normalized mean of its sentences' embeddings (the name put into each of
    ``templates``), ``(len(labels), 384)``; cached per sentence by `embed_sentences` (``progress`` shows a bar
    while a long list is embedded).

    Example:
        >>> class_embeddings(["tench", "goldfish"]).shape
        torch.Size([2, 384])
    """
    templates = check_templates(templates)
    labels = [str(label) for label in labels]
    sentences = [template.format(label) for label in labels for template in templates]
    embeddings = embed_sentences(sentences, progress=progress)
    return F.normalize(embeddings.view(len(labels), len(templates), -1).mean(1), dim=-1)


@functools.lru_cache(maxsize=1)
def _imagenet_vocabulary() -> tuple[tuple[tuple[str, ...], ...], tuple[str, ...]]:
    import timm

    folder = Path(timm.__file__).resolve().parent / "data" / "_info"
    synsets = (folder / "imagenet_synsets.txt").read_text().split()
    lemmas = dict(line.split("\t", 1) for line in (folder / "imagenet_synset_to_lemma.txt").read_text().splitlines())
    glosses = dict(
        line.split("\t", 1) for line in (folder / "imagenet_synset_to_definition.txt").read_text().splitlines()
    )
    labels = imagenet_labels()
    names = tuple(
        tuple(dict.fromkeys([label, *(name.strip() for name in lemmas[synset].split(",") if name.strip())]))
        for label, synset in zip(labels, synsets)
    )
    return names, tuple(glosses[synset].strip() for synset in synsets)


def class_vocabulary(labels: Sequence[str]) -> tuple[list[list[str]], list[str | None]]:
    """Each class's names (its label first, then synonyms) and definition (or None), for class names ``labels``.

    ImageNet-1k's 1000 labels get their WordNet synset's lemmas and definition, from the files timm ships; any other
    label list gets its labels alone.

    Example:
        >>> names, definitions = class_vocabulary(featviz.models.imagenet_labels())
        >>> names[2], definitions[1]
        (['great white shark', 'white shark', 'man-eater', 'man-eating shark', 'Carcharodon carcharias'], 'small golden or orange-red freshwater fishes of Eurasia used as pond or aquarium fishes')
        >>> class_vocabulary(["cat", "dog"])
        ([['cat'], ['dog']], [None, None])
    """
    labels = [str(label) for label in labels]
    if labels == imagenet_labels():
        names, definitions = _imagenet_vocabulary()
        return [list(found) for found in names], list(definitions)
    return [[label] for label in labels], [None] * len(labels)


def classifier_layer(model: "Model") -> str:
    """The name of ``model``'s final ``nn.Linear`` with one output per class name (the last such in the network).

    Example:
        >>> classifier_layer(model)                  # EfficientNet-Lite0
        'classifier'
    """
    found = _classifier_layer(model)
    if found is None:
        labels = getattr(model, "labels", None)
        if not labels:
            raise FeatvizError(
                f"{getattr(model, 'name', 'this model')} has no class names; a classifier's text tower needs them "
                "(load_model(network, labels=[...]))"
            )
        raise FeatvizError(
            f"{model.name} has no nn.Linear with {len(labels)} outputs (one per class name); a classifier's text "
            "tower needs a classifier whose last layer is a Linear over its classes"
        )
    return found


def _classifier_layer(model: Any) -> str | None:
    labels = getattr(model, "labels", None)
    if not labels:
        return None
    found = [
        name for name, module in model.network.named_modules()
        if isinstance(module, nn.Linear) and module.out_features == len(labels)
    ]
    return found[-1] if found else None


def image_embedding_layer(network: nn.Module, classifier: str, sample: Tensor) -> str:
    """The layer whose output tensor is the input of layer ``classifier``, found in one forward of ``sample``.

    A layer's output counts when it is the very tensor the classifier receives, or a view of the same memory
    (a flatten); where several nested layers output it, the outermost (last to finish) is named. Layers that
    hand their input on unchanged (Dropout, Identity) are skipped.

    Example:
        >>> image_embedding_layer(model.network, "classifier", torch.zeros(1, 3, 64, 64))
        'global_pool'
    """
    calls = feeding_layers(network, sample, [classifier], views=True)
    if not calls:
        raise FeatvizError(f"layer '{classifier}' did not run in a forward pass; pass a model whose classifier runs")
    found = calls[0][0]
    if found is None:
        raise FeatvizError(
            f"no layer outputs the input of '{classifier}' (it is computed outside any module, e.g. by a "
            "functional pooling); wrap that step in a module so that the image embedding can be read"
        )
    return found


def strip_prompt(prompt: str) -> str:
    """``prompt`` without a leading ``a photo of a`` (or picture, image, drawing...) and a trailing period.

    Example:
        >>> strip_prompt("A photo of a goldfish."), strip_prompt("an image of the great white shark")
        ('goldfish', 'great white shark')
    """
    return _PREFIX.sub("", prompt, count=1).strip().rstrip(".!").strip()


def proper_name(prompt: str, vocabulary: set[str]) -> str | None:
    """The proper name ``prompt`` is, when it is one that ``vocabulary`` (lower-case words) does not hold: after
    `strip_prompt`, every word capitalized (or a joiner like "of"), and one of them unknown; else None.

    Example:
        >>> proper_name("a photo of Spider-Man", {"spider", "man", "web"})
        'Spider-Man'
        >>> proper_name("a Spider Web", {"spider", "web"}), proper_name("a red spider", set())
        (None, None)
    """
    words = _WORD.findall(strip_prompt(prompt))
    if not words or not words[0][:1].isupper():
        return None
    if not all(word[:1].isupper() or word.lower() in _NAME_JOINERS for word in words):
        return None
    if all(word.lower() in vocabulary for word in words if word[:1].isupper()):
        return None
    return " ".join(words)


@dataclass
class Resolution:
    """What a prompt became on a classifier: ``classes``, ``(label, weight)`` pairs largest first (the kept part
    of the distribution, summing to 1); ``exact`` when the prompt is a class name or synonym; ``flat`` when the
    prompt names nothing the classifier knows (see the module docstring), with ``why`` saying how that was told;
    ``nearness`` is the prompt's best cosine with a class key.

    ``str()`` gives the line the command line prints: ``text:PROMPT → LABEL WEIGHT, ...``.

    Example:
        >>> print(model.text.resolve("a photo of a goldfish"))
        text:a photo of a goldfish → goldfish 1.00
    """

    prompt: str
    classes: list[tuple[str, float]]
    exact: bool = False
    flat: bool = False
    nearness: float = 1.0
    why: str = ""

    def __str__(self) -> str:
        shown = ", ".join(f"{label} {weight:.2f}" for label, weight in self.classes[:SHOWN_CLASSES])
        more = ", …" if len(self.classes) > SHOWN_CLASSES else ""
        return f"text:{self.prompt} → {shown}{more}"

    def warning(self, model_name: str) -> str:
        """The one-line warning for a flat distribution (empty when it is not flat).

        Example:
            >>> model.text.resolve("a photo of a goldfish").warning("efficientnet_lite0")
            ''
        """
        if not self.flat:
            return ""
        nearest = ", ".join(f"{label} {weight:.2f}" for label, weight in self.classes[:SHOWN_CLASSES])
        why = self.why or f"largest weight {self.classes[0][1]:.2f}, best cosine {self.nearness:.2f}"
        return f"text:{self.prompt} names no class of {model_name} ({why}); it renders a blend of the nearest: {nearest}"


class ClassTextTower(TextTower):
    """Text tower of a classifier with class names: a prompt is a distribution over its classes (see the module
    docstring), and its embedding the distribution's mixture of the class weight vectors.

    ``image_layer`` is the layer whose output feeds the classifier's final Linear (``global_pool`` on
    EfficientNet-Lite), found by one forward pass on first use. ``classes`` restricts the vocabulary to those
    class indices (default all); ``templates`` put each class name into sentences (default `TEMPLATES`);
    ``temperature`` is the softmax temperature (default `TEMPERATURE`). Nothing is embedded until the first
    `resolve` or `encode`; the keys are then embedded once per machine (cached). The tower holds no parameters:
    it reads the class weights from the network of the model that holds it, on that network's device.

    Example:
        >>> tower = model.text                         # EfficientNet-Lite0's, attached on first use
        >>> tower.image_layer, tower.encode(["a photo of a lemon"]).shape
        ('global_pool', torch.Size([1, 1280]))
        >>> torch.allclose(tower.encode(["goldfish"])[0], F.normalize(model.get_layer("classifier").weight[1], dim=0))
        True
    """

    def __init__(
        self,
        model: "Model",
        classes: Sequence[int] | None = None,
        templates: Sequence[str] = TEMPLATES,
        temperature: float = TEMPERATURE,
    ) -> None:
        super().__init__()
        self.classifier = classifier_layer(model)
        self.labels = list(model.labels or [])
        self.classes = _check_classes(classes, len(self.labels))
        self.templates = check_templates(templates)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise FeatvizError(f"temperature must be a positive number like {TEMPERATURE}, not {temperature!r}")
        self.temperature = float(temperature)
        self.model_name = model.name
        self.input_shape = (model.channels, *model.input_size)
        # The network belongs to the Model that holds this tower; kept unregistered, so that it is neither a
        # submodule of the tower nor counted twice in the Model's state dict.
        object.__setattr__(self, "_network", model.network)
        self._image_layer: str | None = None
        self._exact_layers: frozenset[str] | None = None
        self._keys: tuple[Tensor, Tensor] | None = None
        self._outside: tuple[list[str], Tensor] | None = None
        self._exact: dict[str, list[int]] = {}
        names, definitions = class_vocabulary(self.labels)
        self._words = {
            word.lower() for index in self.classes
            for text in [*names[index], definitions[index] or ""] for word in _WORD.findall(text)
        }
        for position, index in enumerate(self.classes):
            for name in names[index]:
                found = self._exact.setdefault(normalize_label(name), [])
                if position not in found:
                    found.append(position)
        self.eval()

    @property
    def image_layer(self) -> str:  # type: ignore[override]
        """The layer whose output is the classifier's input (found by one forward pass, then remembered)."""
        if self._image_layer is None:
            reference = next(self._network.parameters(), None)
            sample = torch.zeros(
                1, *self.input_shape,
                device=reference.device if reference is not None else None,
                dtype=reference.dtype if reference is not None else None,
            )
            self._image_layer = image_embedding_layer(self._network, self.classifier, sample)
        return self._image_layer

    def exact_layers(self) -> set[str]:
        """Layers where a text direction is exact: the image layer; the layer a global average pool as image layer
        reads (``bn2`` on EfficientNet-Lite), since averaging over positions is linear; and the classifier, whose
        logits are linear in the image embedding.

        Example:
            >>> sorted(model.text.exact_layers())
            ['bn2', 'classifier', 'global_pool']
        """
        if self._exact_layers is not None:
            return set(self._exact_layers)
        found = {self.image_layer, self.classifier}
        pool = self._network.get_submodule(self.image_layer)
        kind = getattr(pool, "pool_type", "avg" if isinstance(pool, nn.AdaptiveAvgPool2d) else None)
        if kind == "avg":
            reference = next(self._network.parameters(), None)
            sample = torch.zeros(1, *self.input_shape, device=reference.device if reference is not None else None,
                                 dtype=reference.dtype if reference is not None else None)
            calls = feeding_layers(self._network, sample, [self.image_layer])
            if calls and calls[0][0] is not None:
                found.add(calls[0][0])
        self._exact_layers = frozenset(found)
        return found

    def keys(self) -> tuple[Tensor, Tensor]:
        """Each kept class's name key and definition key, ``(K, 384)`` each (a class without a definition repeats
        its name key), embedded on first use and cached.

        Example:
            >>> names, definitions = attach_text_tower(model, classes=range(3)).text.keys()   # tench..great white shark
            >>> names.shape, definitions.shape
            (torch.Size([3, 384]), torch.Size([3, 384]))
        """
        if self._keys is None:
            names, definitions = class_vocabulary(self.labels)
            chosen_names = [names[index] for index in self.classes]
            flat = [name for group in chosen_names for name in group]
            embedded = class_embeddings(flat, self.templates, progress=True)
            owners = torch.tensor([row for row, group in enumerate(chosen_names) for _ in group])
            name_keys = F.normalize(torch.zeros(len(self.classes), EMBEDDING_WIDTH).index_add(0, owners, embedded), dim=1)
            described = [row for row, index in enumerate(self.classes) if definitions[index]]
            definition_keys = name_keys.clone()
            if described:
                sentences = [f"{self.labels[self.classes[row]]}: {definitions[self.classes[row]]}" for row in described]
                definition_keys[described] = embed_sentences(sentences, progress=True)
            self._keys = (name_keys, definition_keys)
        return self._keys

    def outside(self) -> tuple[list[str], Tensor]:
        """The phrases of `OUTSIDE` that no kept class key is near (cosine under `OUTSIDE_NEAR`), and their
        embeddings ``(R, 384)``: the rivals of the classes when `resolve` tells whether a prompt names any.

        Example:
            >>> phrases, embeddings = model.text.outside()
            >>> "an emotion" in phrases, embeddings.shape[1]
            (True, 384)
        """
        if self._outside is None:
            phrases = list(outside_phrases())
            embedded = embed_sentences(phrases)
            name_keys, definition_keys = self.keys()
            nearest = torch.maximum(embedded @ name_keys.t(), embedded @ definition_keys.t()).max(1).values
            kept = (nearest < OUTSIDE_NEAR).nonzero().flatten().tolist()
            self._outside = ([phrases[row] for row in kept], embedded[kept])
        return self._outside

    def distribution(self, prompts: Sequence[str]) -> Tensor:
        """``(len(prompts), K)``: each prompt's weights over the kept classes (all of them unless ``classes`` was
        given), summing to 1. Exact class names (or synonyms) share all the weight; other prompts are a softmax
        of their scores at ``temperature``, kept to the `KEPT_CLASSES` largest and renormalized.

        Example:
            >>> weights = model.text.distribution(["goldfish", "crane"])     # exact names: no sentence embedding
            >>> weights[0, 1].item(), weights[1, [134, 517]].tolist()        # "crane" names two classes
            (1.0, [0.5, 0.5])
        """
        return self._distribution(check_prompts(prompts))[0]

    def _distribution(self, prompts: list[str], rivals: bool = False) -> tuple[Tensor, Tensor, list[str]]:
        """The distribution, each prompt's best cosine with a class key (1 for exact names) and, with ``rivals``,
        why each prompt names no class ("" when it names one; see the module docstring)."""
        found = torch.zeros(len(prompts), len(self.classes))
        nearness = torch.ones(len(prompts))
        why = [""] * len(prompts)
        fuzzy = []
        for row, prompt in enumerate(prompts):
            exact = self._exact.get(normalize_label(strip_prompt(prompt)))
            if exact:
                found[row, exact] = 1.0 / len(exact)
            else:
                fuzzy.append(row)
        if fuzzy:
            name_keys, definition_keys = self.keys()
            embedded = embed_sentences([prompts[row] for row in fuzzy])
            scores = torch.maximum(embedded @ name_keys.t(), embedded @ definition_keys.t())
            nearness[fuzzy] = scores.max(1).values
            weights = (scores / self.temperature).softmax(1)
            kept = weights.topk(min(KEPT_CLASSES, weights.shape[1]), dim=1)
            sparse = torch.zeros_like(weights).scatter_(1, kept.indices, kept.values)
            found[fuzzy] = sparse / sparse.sum(1, keepdim=True)
            if rivals:
                phrases, outside = self.outside()
                against = embedded @ outside.t()
                for position, row in enumerate(fuzzy):
                    name = proper_name(prompts[row], self._words)
                    best = int(against[position].argmax()) if phrases else -1
                    if name is not None:
                        why[row] = f"'{name}' is a name no class or definition of the classifier holds"
                    elif phrases and against[position, best] > nearness[row] + OUTSIDE_MARGIN:
                        why[row] = (
                            f"it is nearer to '{phrases[best]}', which no class is, than to any class: cosine "
                            f"{float(against[position, best]):.2f} against {float(nearness[row]):.2f}"
                        )
        return found, nearness, why

    def resolve(self, prompts: str | Sequence[str]) -> Resolution | list[Resolution]:
        """What ``prompts`` became: a `Resolution` for one prompt, a list for a list.

        Example:
            >>> print(model.text.resolve("crane"))       # a description: "a sour yellow citrus fruit" → lemon 0.50, ...
            text:crane → crane bird 0.50, crane 0.50
        """
        single = isinstance(prompts, str)
        found = check_prompts(prompts)
        weights, nearness, reasons = self._distribution(found, rivals=True)
        resolutions = []
        for prompt, row, near, why in zip(found, weights, nearness.tolist(), reasons):
            values, positions = row.topk(min(KEPT_CLASSES, row.numel()))
            kept = sorted((-float(value), int(position)) for value, position in zip(values, positions) if value > 0)
            classes = [(self.labels[self.classes[position]], -value) for value, position in kept]  # ties: class order
            exact = bool(self._exact.get(normalize_label(strip_prompt(prompt))))
            flat = not exact and (bool(why) or classes[0][1] < FLAT or (near < NEAR and classes[0][1] < 2 * FLAT))
            resolutions.append(Resolution(prompt, classes, exact, flat, near, why))
        return resolutions[0] if single else resolutions

    def class_vectors(self) -> Tensor:
        """The kept classes' weight vectors, unit-norm, ``(K, D)``, on the classifier's device.

        Example:
            >>> model.text.class_vectors().shape
            torch.Size([1000, 1280])
        """
        weight = self._network.get_submodule(self.classifier).weight.detach()
        return F.normalize(weight[list(self.classes)].float(), dim=1)

    def encode(self, prompts: Sequence[str]) -> Tensor:
        """Each prompt's mixture of class vectors: ``(len(prompts), D)`` unit vectors, float32, on the device of the
        model that holds the tower.

        Example:
            >>> model.text.encode(["a photo of a lemon", "goldfish"]).shape
            torch.Size([2, 1280])
        """
        prompts = check_prompts(prompts)
        vectors = self.class_vectors()
        return F.normalize(self.distribution(prompts).to(vectors) @ vectors, dim=-1)

    def warn_flat(self, prompts: Sequence[str]) -> None:
        """Warn (`FlatPromptWarning`, one line) about each prompt of ``prompts`` that names no class, once per prompt
        and process;
        text objectives call this when they are bound, bulk encodes (concept lists, word lists) do not.

        Example:
            >>> model.text.warn_flat(["a photo of a goldfish"])          # an exact class name: nothing to say
        """
        for resolution in self.resolve(check_prompts(prompts)):
            if resolution.flat and self._warning_key(resolution.prompt) not in _WARNED:
                _WARNED.add(self._warning_key(resolution.prompt))
                warnings.warn(resolution.warning(self.model_name), FlatPromptWarning, stacklevel=3)

    def report(self, prompts: Sequence[str]) -> list[str]:
        """The lines that say what each of ``prompts`` became: one `Resolution` line per prompt, and a ``warning:``
        line after a prompt that names no class (`warn_flat` then does not warn about it again).

        Example:
            >>> for line in model.text.report(["a photo of a lemon", "crane"]):
            ...     print(line)
            text:a photo of a lemon → lemon 1.00
            text:crane → crane bird 0.50, crane 0.50
        """
        lines = []
        for resolution in self.resolve(check_prompts(prompts)):
            lines.append(str(resolution))
            if resolution.flat:
                lines.append(f"warning: {resolution.warning(self.model_name)}")
                _WARNED.add(self._warning_key(resolution.prompt))
        return lines

    def _warning_key(self, prompt: str) -> tuple[str, int, str]:
        # Renders work on copies of the model, so the prompts already warned about are kept per process.
        return (self.model_name, len(self.classes), prompt)

    def extra_repr(self) -> str:
        return f"encoder={ENCODER_NAME}, classifier={self.classifier}, classes={len(self.classes)}"


class FlatPromptWarning(UserWarning):
    """A prompt names nothing a classifier knows: its distribution over the classes is flat."""


def _check_classes(classes: Sequence[int] | None, count: int) -> tuple[int, ...]:
    if classes is None:
        return tuple(range(count))
    found = []
    for value in classes:
        try:
            if isinstance(value, bool):
                raise TypeError
            found.append(operator.index(value))
        except TypeError:
            raise FeatvizError(f"classes must be class indices (ints), not {value!r}") from None
    outside = [value for value in found if not 0 <= value < count]
    if outside:
        raise FeatvizError(f"class index {outside[0]} is out of range; the classifier has classes 0..{count - 1}")
    if len(set(found)) < 2:
        raise FeatvizError(f"a text tower needs at least 2 distinct classes, got {sorted(set(found))}")
    return tuple(sorted(set(found)))


def attach_text_tower(
    model: "Model", classes: Sequence[int] | None = None, templates: Sequence[str] = TEMPLATES,
    temperature: float = TEMPERATURE,
) -> "Model":
    """The same `Model` with a `ClassTextTower` as ``model.text``, over ``classes`` (default all) with ``templates``
    and ``temperature``. Any classifier with class names gets the default tower on first use of ``model.text``;
    this is for another choice.

    Example:
        >>> resnet = attach_text_tower(featviz.load_model("timm:resnet18", weights="random"), classes=range(20))
        >>> resnet.text.image_layer, len(resnet.text.classes)
        ('global_pool', 20)
    """
    if not isinstance(model, Model):
        raise FeatvizError(f"attach_text_tower takes a featviz Model, not {type(model).__name__}; use featviz.load_model")
    tower = ClassTextTower(model, classes, templates, temperature)
    return Model(
        model.network, name=model.name, input_size=model.input_size, channels=model.channels,
        mean=model.mean.flatten().tolist(), std=model.std.flatten().tolist(), labels=model.labels,
        layouts=model.layouts, text=tower,
    ).to(device=model.device, dtype=model.dtype)


def classifier_text_tower(model: "Model") -> ClassTextTower | None:
    """The default text tower of ``model`` when it is a classifier with class names (a final Linear with one output
    per class), else None; registered with `featviz.models.model.register_text_tower`, so that ``model.text``
    of any such model is this tower, made on first use.

    Example:
        >>> classifier_text_tower(featviz.load_model("timm:resnet18", weights="random")).classifier
        'fc'
    """
    return ClassTextTower(model) if _classifier_layer(model) is not None else None


register_text_tower(classifier_text_tower)

__all__ = [
    "ClassTextTower", "FlatPromptWarning", "Resolution", "attach_text_tower", "check_templates", "class_embeddings",
    "class_vocabulary", "classifier_layer", "classifier_text_tower", "image_embedding_layer", "imagenet_sentences",
    "outside_phrases", "proper_name", "strip_prompt", "write_shipped_embeddings",
]
