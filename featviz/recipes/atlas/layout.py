"""Step 2 of an atlas: activation vectors laid out in the unit square (t-SNE or UMAP, cosine distance)."""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from featviz.errors import FeatvizError, check_int

LAYOUTS = ("tsne", "umap")


def embed_2d(vectors: Tensor, method: str = "tsne", seed: int = 0, neighbors: int = 15) -> Tensor:
    """Lay ``vectors`` ``(N, C)`` out in 2-D with cosine distance and return ``(N, 2)`` coordinates in ``[0, 1]``.

    ``method`` is ``"tsne"`` (default: scikit-learn's Barnes-Hut t-SNE, perplexity ``neighbors * 2`` capped by
    the point count) or ``"umap"`` (umap-learn, ``pip install umap-learn``, with ``neighbors`` nearest
    neighbours, as Carter et al. used). Both are seeded by ``seed`` and run on one thread. The layout is shifted and
    scaled into the unit square with one factor for both axes (distances keep their proportions) and
    centred along the shorter axis.

    Example:
        >>> points = embed_2d(torch.randn(60, 8), method="tsne")
        >>> points.shape, bool(points.min() >= 0), bool(points.max() <= 1)
        (torch.Size([60, 2]), True, True)
    """
    if method not in LAYOUTS:
        raise FeatvizError(f"layout method must be one of {', '.join(LAYOUTS)}, not {method!r}")
    seed = check_int(seed, "seed", 0)
    neighbors = check_int(neighbors, "neighbors", 2)
    data = torch.as_tensor(vectors).detach().float().cpu().numpy()
    if data.ndim != 2:
        raise FeatvizError(f"vectors must be 2-D (points x channels), got shape {tuple(data.shape)}")
    count = data.shape[0]
    if count < 4:
        raise FeatvizError(f"a layout needs at least 4 vectors, got {count}; sample more images or positions")
    from threadpoolctl import threadpool_limits

    # One thread: with a seed UMAP runs on one anyway, and t-SNE's OpenMP threads measured 30x slower than one
    # thread on two busy cores (their workers spin while they wait).
    with threadpool_limits(limits=1):
        points = _fit_layout(data, method, seed, neighbors)
    low, high = points.min(0), points.max(0)
    span = float((high - low).max()) or 1.0
    scaled = (points - low) / span
    scaled += (1.0 - scaled.max(0)) / 2  # centre the shorter side
    return torch.from_numpy(scaled.clip(0.0, 1.0)).float()


def _fit_layout(data: np.ndarray, method: str, seed: int, neighbors: int) -> np.ndarray:
    count = data.shape[0]
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise FeatvizError("layout 'umap' needs umap-learn: pip install umap-learn (or use layout='tsne')") from None
        reducer = umap.UMAP(
            n_components=2, n_neighbors=min(neighbors, count - 1), min_dist=0.05, metric="cosine", random_state=seed,
            init="spectral" if count > neighbors + 2 else "random",
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "n_jobs overridden to 1 by random_state": reproducibility is asked for
            points = reducer.fit_transform(data)
    else:
        from sklearn.manifold import TSNE

        perplexity = float(min(2 * neighbors, max(1.0, (count - 1) / 3)))
        points = TSNE(2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed).fit_transform(data)
    return np.asarray(points, dtype=np.float64)


__all__ = ["embed_2d"]
