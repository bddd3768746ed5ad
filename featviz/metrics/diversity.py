"""Diversity across a batch: how different the images of one render (e.g. with a diversity term) are."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from featviz.errors import FeatvizError
from featviz.hooks import RESERVED, ActivationCapture, bind_layers
from featviz.metrics.images import ImageSource, as_images, resize
from featviz.models import Model, load_model


def _gram_features(model: Model, layer: str, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Each image's Gram matrix of ``layer`` (channel x channel, averaged over positions), flattened."""
    if layer in RESERVED:
        raise FeatvizError(f"diversity reads a layer of the network, not '{layer}'; give a layer name, or no model for pixels")
    binding = bind_layers(model, [layer], tuple(images.shape[-2:]))
    features = []
    with torch.no_grad(), ActivationCapture(model, [layer], layouts=binding.layouts) as capture:
        for start in range(0, images.shape[0], batch_size):
            chunk = images[start:start + batch_size].to(device=model.device, dtype=model.dtype)
            if tuple(chunk.shape[-2:]) != binding.size:
                chunk = resize(chunk, binding.size)  # a model that takes one input size sees images at it, as renders do
            maps = capture.run(chunk)[layer].flatten(2).double()
            features.append((maps @ maps.transpose(1, 2) / maps.shape[-1]).flatten(1).cpu())
    return torch.cat(features)


def _pixel_features(images: torch.Tensor) -> torch.Tensor:
    """Each image's pixels with every channel standardized (zero mean, unit variance) over the image, flattened."""
    values = images.double().flatten(2)
    centred = values - values.mean(2, keepdim=True)
    spread = centred.square().mean(2, keepdim=True).sqrt()
    return torch.where(spread > 0, centred / spread.clamp(min=1e-12), torch.zeros_like(centred)).flatten(1)


def mean_pairwise_similarity(features: torch.Tensor) -> float:
    """The mean cosine similarity over all pairs of distinct rows of ``features`` ``(B, D)``; two all-zero rows
    count as identical (similarity 1), an all-zero row against any other as unrelated (0).

    Example:
        >>> mean_pairwise_similarity(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        0.0
    """
    count = features.shape[0]
    if count < 2:
        raise FeatvizError(f"diversity compares images with each other: give at least 2 images, got {count}")
    unit = F.normalize(features.double(), dim=1)
    similarity = unit @ unit.t()
    empty = unit.abs().sum(1) == 0
    similarity = torch.where(empty[:, None] & empty[None, :], torch.ones_like(similarity), similarity)
    off_diagonal = similarity.sum() - similarity.diagonal().sum()
    # Rounded far below any meaningful difference, so that identical images give exactly 1 (diversity 0).
    return round(float(off_diagonal / (count * (count - 1))), 12)


def batch_diversity(
    images: ImageSource, model: Model | str | None = None, layer: str | None = None, *, batch_size: int = 32
) -> float:
    """How different the images of a batch are: 1 minus the mean cosine similarity over all pairs of images of
    per-image features; 0 when every image is the same.

    With ``model`` and ``layer``, the features are each image's Gram matrix of the layer's activations (channel
    x channel correlations averaged over positions: what the image contains, wherever it is; the measure
    that `featviz.objectives.diversity` optimizes), and the value lies in [0, 1] since Gram matrices never
    point in opposite directions. Without them, the features are the pixels with each colour channel
    standardized over its image (zero mean, unit variance), so brightness and contrast do not count; the
    value lies in [0, 2], about 1 for unrelated images and above 1 for negatives of each other. Needs at least
    two images; alpha channels are composited on grey. The model runs ``batch_size`` images at a time.

    Example:
        >>> goal = objectives.channel("blocks.4.0.conv_pwl", 12) + 100 * objectives.diversity("blocks.3")
        >>> result = featviz.render(model, goal, batch=2, steps=4, size=64, seed=0, progress=False)
        >>> 0 < batch_diversity(result.images, model, "blocks.3") <= 1        # Gram matrices of blocks.3
        True
        >>> 0 < batch_diversity(result.images) <= 2                             # pixels
        True
    """
    if (model is None) != (layer is None):
        raise FeatvizError("give both model and layer for Gram-matrix diversity, or neither for pixel diversity")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise FeatvizError(f"batch_size must be a positive int, not {batch_size!r}")
    if model is None:
        return max(0.0, 1.0 - mean_pairwise_similarity(_pixel_features(as_images(images))))
    model = load_model(model)
    batch = as_images(images, model.channels)
    if batch.shape[0] < 2:
        raise FeatvizError(f"diversity compares images with each other: give at least 2 images, got {batch.shape[0]}")
    return max(0.0, 1.0 - mean_pairwise_similarity(_gram_features(model, layer, batch, batch_size)))


__all__ = ["batch_diversity", "mean_pairwise_similarity"]
