"""Transferability: whether other networks (judges) see the class that a class visualization was made for."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import torch

from featviz.errors import FeatvizError
from featviz.metrics.images import ImageSource, as_images, resize
from featviz.models import Model, load_model

Label = Union[str, int]


@dataclass
class TransferScore:
    """How one judge sees the images, one entry per image: ``top1`` whether the class is the judge's first
    choice, ``rank`` how many classes the judge scores higher (0 = top), ``probability`` the class's softmax
    probability; ``label`` is the class as given and ``index`` its output index in the judge.

    Example:
        >>> images = torch.rand(3, 3, 64, 64)           # three class visualizations of goldfish
        >>> score = transferability(images, "goldfish", ["efficientnet_lite1"])[0]
        >>> score.judge, score.index, score.rank.shape, 0 <= score.top1_rate <= 1
        ('efficientnet_lite1', [1, 1, 1], torch.Size([3]), True)
    """

    judge: str
    label: list[Label]
    index: list[int]
    top1: torch.Tensor
    rank: torch.Tensor
    probability: torch.Tensor

    @property
    def top1_rate(self) -> float:
        """The share of images whose class is the judge's first choice."""
        return float(self.top1.float().mean())

    @property
    def mean_rank(self) -> float:
        """The class's rank averaged over the images."""
        return float(self.rank.float().mean())

    @property
    def mean_probability(self) -> float:
        """The class's probability averaged over the images."""
        return float(self.probability.mean())

    def to_dict(self) -> dict:
        """Plain Python values, one list entry per image, ready for ``json.dumps``.

        Example:
            >>> scores = transferability(torch.rand(2, 3, 64, 64), "goldfish", ["efficientnet_lite1"])
            >>> found = scores[0].to_dict()
            >>> found["judge"], found["label"], len(found["rank"])
            ('efficientnet_lite1', ['goldfish', 'goldfish'], 2)
            >>> import json
            >>> text = json.dumps([score.to_dict() for score in scores])
        """
        return {
            "judge": self.judge,
            "label": list(self.label),
            "index": list(self.index),
            "top1": [bool(hit) for hit in self.top1.tolist()],
            "rank": [int(rank) for rank in self.rank.tolist()],
            "probability": [float(value) if math.isfinite(value) else None for value in self.probability.tolist()],
            "top1_rate": self.top1_rate,
            "mean_rank": self.mean_rank,
            "mean_probability": self.mean_probability,
        }


def _labels_per_image(label: Label | Sequence[Label], count: int) -> list[Label]:
    if isinstance(label, (str, int)):
        return [label] * count
    labels = list(label)
    if len(labels) != count:
        raise FeatvizError(f"{len(labels)} labels for {count} images; give one label for all, or one per image")
    return labels


def transferability(
    images: ImageSource,
    label: Label | Sequence[Label],
    judges: Sequence[Model | str],
    *,
    batch_size: int = 32,
) -> list[TransferScore]:
    """Score class visualizations by other models: for each judge, per image, whether ``label`` is its top-1
    class, the rank of ``label`` among its classes (0 = top; classes with a strictly higher logit count) and
    the softmax probability of ``label``.

    ``label`` is a class name (resolved by each judge's ``label_index``, so judges with other class lists work)
    or index, or one per image. Each judge sees the images resized (antialiased bilinear) to its own input
    size, ``batch_size`` at a time, without gradients; judges may be models or names for `featviz.load_model`.
    Alpha channels are composited on grey. An image made for model A that B and C also classify correctly
    shows the class rather than A's idiosyncrasies.

    Example:
        >>> result = featviz.render(model, "class:goldfish", steps=16, size=64, seed=0, progress=False)  # steps=512, size=224
        >>> scores = transferability(result.images, "goldfish", ["efficientnet_lite1"])   # more judges: a longer list
        >>> [(score.judge, score.rank.item() < 10) for score in scores]   # goldfish in each judge's top 10
        [('efficientnet_lite1', True)]
    """
    if isinstance(judges, (str, Model)):
        judges = [judges]
    if not judges:
        raise FeatvizError("transferability needs at least one judge; pass e.g. ['efficientnet_lite1']")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise FeatvizError(f"batch_size must be a positive int, not {batch_size!r}")
    if not isinstance(images, torch.Tensor):
        images = as_images(images)  # decode files once, not once per judge
    scores = []
    for judge in judges:
        judge = load_model(judge)
        batch = as_images(images, judge.channels)
        labels = _labels_per_image(label, batch.shape[0])
        indices = [judge.label_index(item) for item in labels]
        logits = []
        with torch.no_grad():
            for start in range(0, batch.shape[0], batch_size):
                chunk = batch[start:start + batch_size].to(device=judge.device, dtype=judge.dtype)
                output = judge(resize(chunk, judge.input_size))
                if not isinstance(output, torch.Tensor) or output.dim() != 2:
                    shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
                    raise FeatvizError(
                        f"judge {judge.name} outputs {shape}, not class logits (B, classes); judge with classifiers"
                    )
                logits.append(output.float().cpu())
        scores_matrix = torch.cat(logits)
        classes = scores_matrix.shape[1]
        if max(indices) >= classes:
            raise FeatvizError(f"class index {max(indices)} is out of range for judge {judge.name} with {classes} outputs; valid: 0-{classes - 1}")
        target = torch.tensor(indices).view(-1, 1)
        chosen = scores_matrix.gather(1, target)
        rank = (scores_matrix > chosen).sum(1)
        probability = torch.softmax(scores_matrix.double(), dim=1).gather(1, target).view(-1).float()
        scores.append(TransferScore(judge.name, labels, indices, rank == 0, rank, probability))
    return scores


__all__ = ["TransferScore", "transferability"]
