"""A layer's activations over a folder of images reduced to a few directions: non-negative matrix factorization.

``layer_factors`` samples the layer's activation vectors over the images with bounded memory (the sampler
of activation atlases, `featviz.recipes.atlas.sample_activations`: a few random positions per image, at
most ``samples`` vectors in all) and factorizes the ``samples x channels`` matrix with scikit-learn's NMF
into ``count`` factors. Each factor is a direction in the layer's channel space (``Factors.directions``)
that ``render_factors`` renders with ``objectives.direction``, all of them in one batched render.

NMF needs non-negative numbers. Layers after a ReLU have none below zero; most others (projections,
residual streams) do. ``negatives="split"`` (default) factorizes ``[max(a, 0), max(-a, 0)]`` (twice the
channels), so a factor may also stand for channels being negative, and its direction is its positive part
minus its negative part (lucid's ChannelReducer treats signed activations this way); ``"clip"`` sets negative
values to 0 (the same as split on a post-ReLU layer, where there are none).

Example:
    >>> from featviz.recipes import layer_factors, render_factors
    >>> found = layer_factors("efficientnet_lite0", "blocks.4", "photos/", count=8)  # doctest: +SKIP
    >>> render_factors("efficientnet_lite0", found, steps=256).save("factors.png")  # doctest: +SKIP
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from featviz import objectives
from featviz.errors import FeatvizError, check_int
from featviz.hooks import bind_layers
from featviz.models import Model, load_model
from featviz.recipes.atlas.sampling import ActivationSample, ImagesLike, sample_activations
from featviz.renderer.calls import old_call_forms
from featviz.renderer import Renderer, RenderResult, RenderSettings
from featviz.renderer.settings import settings_from

NEGATIVES = ("split", "clip")
_NMF_ITERATIONS = 500
#: The render settings of `render_factors` unless others are given.
FACTOR_SETTINGS = RenderSettings(steps=256)

ModelLike = Model | nn.Module | str


@dataclass
class Factors:
    """``count`` directions that together reconstruct ``layer``'s activations (see `layer_factors`).

    ``directions`` ``(count, channels)`` float32: each factor as a unit-length direction in the layer's
    channel space, the factor used most first. ``components`` the factors as NMF found them (``(count,
    channels)``, or ``(count, 2 * channels)`` with ``negatives="split"``: positive parts, then negative
    parts), scaled to unit length. ``usage`` ``(count,)``: each factor's share of the summed coefficients
    over the sample. ``explained``: the share of the factorized matrix's squared norm that the factors
    reconstruct, ``1 - |X - W H|^2 / |X|^2`` (1 is perfect). ``sample`` is the activation sample they were
    fitted on.

    Example:
        >>> found = layer_factors(model, "blocks.4", "photos/", count=8)  # doctest: +SKIP
        >>> found.directions.shape, round(found.explained, 2)  # doctest: +SKIP
        (torch.Size([8, 112]), 0.61)
    """

    layer: str
    directions: Tensor
    components: Tensor
    usage: Tensor
    explained: float
    negatives: str
    sample: ActivationSample

    def __len__(self) -> int:
        return int(self.directions.shape[0])

    @property
    def channels(self) -> int:
        """The layer's channel count."""
        return int(self.directions.shape[1])

    def features(self, activations: Tensor) -> Tensor:
        """Activation vectors ``(N, channels)`` as the non-negative matrix the factors were fitted on."""
        return nmf_features(activations, self.negatives)

    def project(self, activations: Tensor) -> Tensor:
        """How much of each factor a channels-first activation map ``(B, channels, H, W)`` holds at each position:
        ``(B, count, H, W)``, the non-negative coefficients that best reconstruct it from the fixed factors.

        Example:
            >>> maps = found.project(activations)  # doctest: +SKIP
            >>> maps.shape  # doctest: +SKIP
            torch.Size([1, 8, 14, 14])
        """
        from sklearn.decomposition import non_negative_factorization

        if activations.dim() != 4 or activations.shape[1] != self.channels:
            raise FeatvizError(
                f"activations must be (batch, {self.channels}, height, width) channels-first, got "
                f"{tuple(activations.shape)}"
            )
        batch, channels, height, width = activations.shape
        flat = activations.detach().permute(0, 2, 3, 1).reshape(-1, channels).float().cpu()
        matrix = self.features(flat).astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: a fixed basis needs only an approximate fit
            coefficients, _, _ = non_negative_factorization(
                matrix, H=self.components.double().numpy(), n_components=len(self), init="custom", update_H=False,
                max_iter=_NMF_ITERATIONS,
            )
        maps = torch.from_numpy(coefficients).float().reshape(batch, height, width, len(self))
        return maps.permute(0, 3, 1, 2).contiguous()


def nmf_features(vectors: Tensor, negatives: str) -> np.ndarray:
    """Activation vectors ``(N, channels)`` as a non-negative float64 matrix: ``[max(a, 0), max(-a, 0)]``
    ``(N, 2 * channels)`` with ``negatives="split"``, ``max(a, 0)`` with ``"clip"``.

    Example:
        >>> nmf_features(torch.tensor([[1.0, -2.0]]), "split").tolist()
        [[1.0, 0.0, 0.0, 2.0]]
    """
    matrix = torch.as_tensor(vectors).detach().double().cpu().numpy()
    if negatives == "split":
        return np.concatenate([np.maximum(matrix, 0.0), np.maximum(-matrix, 0.0)], axis=1)
    return np.maximum(matrix, 0.0)


def explained(features: np.ndarray, coefficients: np.ndarray, components: np.ndarray) -> float:
    """``1 - |X - W H|^2 / |X|^2``: the share of the squared norm of ``features`` (X) that ``coefficients`` (W)
    times ``components`` (H) reconstruct.

    Example:
        >>> explained(np.eye(2), np.eye(2), np.eye(2))
        1.0
    """
    total = float(np.square(features).sum())
    if total == 0.0:
        return 0.0
    return 1.0 - float(np.square(features - coefficients @ components).sum()) / total


@dataclass
class NMFFit:
    """One NMF of a non-negative matrix ``X`` ``(N, F)`` into ``count`` factors, the most used first:
    ``coefficients`` ``(N, count)``, ``components`` ``(count, F)`` scaled to unit length, ``directions``
    ``(count, channels)`` (the components' positive minus negative parts when ``F = 2 * channels``) of unit
    length, and ``explained``, the share of ``X``'s squared norm they reconstruct."""

    coefficients: np.ndarray
    components: np.ndarray
    directions: np.ndarray
    explained: float


def fit_nmf(features: np.ndarray, count: int, channels: int, seed: int = 0, iterations: int = _NMF_ITERATIONS) -> NMFFit:
    """Factorize ``features`` (``(N, channels)``, or ``(N, 2 * channels)`` split as ``[max(a, 0), max(-a, 0)]``)
    with scikit-learn's NMF (``nndsvda`` start, seeded by ``seed``, at most ``iterations`` iterations); the
    factors come most used first.

    Example:
        >>> fit = fit_nmf(np.random.default_rng(0).random((50, 6)), count=2, channels=6)
        >>> fit.coefficients.shape, fit.directions.shape, 0 < fit.explained <= 1
        ((50, 2), (2, 6), True)
    """
    try:
        from sklearn.decomposition import NMF
    except ImportError:
        raise FeatvizError("NMF needs scikit-learn: pip install 'featviz[recipes]'") from None

    factorization = NMF(n_components=count, init="nndsvda", max_iter=iterations, random_state=seed % 2**32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: the fit is judged by `explained`
        coefficients = factorization.fit_transform(features)
    components = factorization.components_.copy()
    share = explained(features, coefficients, components)
    norms = np.linalg.norm(components, axis=1)
    norms[norms == 0] = 1.0
    components /= norms[:, None]
    coefficients = coefficients * norms[None, :]
    order = np.argsort(-coefficients.sum(0), kind="stable")
    coefficients, components = coefficients[:, order], components[order]
    directions = components[:, :channels] - components[:, channels:] if components.shape[1] == 2 * channels else components
    lengths = np.linalg.norm(directions, axis=1, keepdims=True)
    return NMFFit(coefficients, components, directions / np.where(lengths > 0, lengths, 1.0), share)


def factorize(sample: ActivationSample, count: int, negatives: str = "split", seed: int = 0) -> Factors:
    """Factorize an activation sample into ``count`` non-negative factors (see `layer_factors`): ``negatives``
    (``"split"`` or ``"clip"``) says what happens to values below 0, ``seed`` seeds the NMF.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
        >>> from featviz.recipes.atlas import sample_activations
        >>> found = factorize(sample_activations(net, "1", "shipped", samples=200, image_size=32), count=3)
        >>> found.directions.shape
        torch.Size([3, 8])
    """
    if negatives not in NEGATIVES:
        raise FeatvizError(f"negatives must be 'split' or 'clip', not {negatives!r}")
    seed = check_int(seed, "seed", 0)
    rows, channels = sample.vectors.shape
    limit = min(rows, channels if negatives == "clip" else 2 * channels)
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or not 1 <= count <= limit:
        raise FeatvizError(
            f"count must be an int from 1 to {limit} (the fewer of the {rows} sampled vectors and the "
            f"{'' if negatives == 'clip' else 'split '}channels of '{sample.layer}'), got {count!r}"
        )
    features = nmf_features(sample.vectors, negatives)
    if not features.any():
        kept = "positive " if negatives == "clip" else ""
        raise FeatvizError(f"layer '{sample.layer}' has no {kept}activation on these images; pick another layer")
    fit = fit_nmf(features, int(count), channels, seed)
    totals = fit.coefficients.sum(0)
    usage = totals / totals.sum() if totals.sum() > 0 else totals
    return Factors(
        layer=sample.layer,
        directions=torch.from_numpy(fit.directions).float(),
        components=torch.from_numpy(fit.components).float(),
        usage=torch.from_numpy(usage).float(),
        explained=fit.explained,
        negatives=negatives,
        sample=sample,
    )


@old_call_forms(["model", "layer", "images", "count"])
def layer_factors(
    model: ModelLike | Renderer,
    layer: str,
    images: ImagesLike,
    *,
    count: int = 8,
    negatives: str = "split",
    samples: int = 20000,
    positions: int = 4,
    seed: int = 0,
    image_size: int | None = None,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> Factors:
    """Find ``count`` directions of ``layer`` that reconstruct its activations over ``images``: NMF (scikit-learn,
    ``nndsvda`` start, seeded by ``seed``) of a bounded sample of its activation vectors.

    ``images`` is a folder, a list of image files, ``"shipped"`` or an `ImageFolder`; up to ``positions``
    random positions per image and at most ``samples`` vectors in all are used (see
    `featviz.recipes.atlas.sample_activations`, which also shares the images among torchrun processes).
    ``negatives`` says what happens to values below 0: ``"split"`` (default) or ``"clip"`` (see the module
    docstring). ``count`` is at most the number of sampled vectors and of (split) channels. ``model`` is a
    name, a `Model`, any ``nn.Module`` or a `Renderer` (its prepared model is read), loaded on ``device``
    (default: the model's); it reads the images ``batch_size`` at a time, with a progress bar when
    ``progress``.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
        >>> found = layer_factors(net, "1", "shipped", count=3, samples=200, image_size=32)
        >>> len(found), found.layer, 0 < found.explained <= 1
        (3, '1', True)
    """
    if negatives not in NEGATIVES:
        raise FeatvizError(f"negatives must be 'split' or 'clip', not {negatives!r}")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise FeatvizError(f"count must be an int >= 1 (the number of factors), not {count!r}")
    network = model.model if isinstance(model, Renderer) else load_model(model, device=device)
    network.get_layer(layer)
    channels = bind_layers(network, [layer]).shapes[layer][1]
    limit = channels if negatives == "clip" else 2 * channels
    if count > limit:  # said before the pass over the images; the sample size is checked after it
        raise FeatvizError(
            f"count must be an int from 1 to {limit} (the {'' if negatives == 'clip' else 'split '}channels of "
            f"'{layer}'), got {count}"
        )
    sample = sample_activations(
        network, layer, images, samples=samples, positions=positions, image_size=image_size, batch_size=batch_size,
        seed=seed, device=device, progress=progress,
    )
    return factorize(sample, int(count), negatives=negatives, seed=seed)


@old_call_forms(["model", "factors", "steps", "size", "seed"])
def render_factors(
    model: ModelLike | Renderer,
    factors: Factors,
    *,
    cossim_pow: float = 0.0,
    settings: RenderSettings | None = None,
    **render: Any,
) -> RenderResult:
    """Render every factor's direction (``objectives.direction``: all positions of the layer) in one batch;
    image ``i`` shows factor ``i`` and uses seed ``seed + i``. ``factors`` is what `layer_factors` returns.
    ``model`` is a name, a `Model`, any ``nn.Module`` or a `Renderer` (reused; otherwise one is made on
    ``settings.device``, default: the model's). ``cossim_pow`` multiplies each dot product by
    ``max(cos, 0.1) ** cossim_pow`` (0, the default: the plain dot product). ``settings`` is a
    `featviz.RenderSettings` (default ``FACTOR_SETTINGS``: 256 steps at the model's input size); its fields may
    also be given as keywords (``steps=64, size=96``).

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
        >>> found = layer_factors(net, "1", "shipped", count=2, samples=100, image_size=32)
        >>> render_factors(net, found, steps=2, size=32, progress=False).images.shape
        torch.Size([2, 3, 32, 32])
    """
    if not isinstance(factors, Factors):
        raise FeatvizError(f"factors must be the Factors that layer_factors returns, not {type(factors).__name__}")
    if isinstance(cossim_pow, bool) or not isinstance(cossim_pow, (int, float)) or not cossim_pow >= 0:
        raise FeatvizError(f"cossim_pow must be a number >= 0 (0: plain dot product), not {cossim_pow!r}")
    settings = settings_from(settings, FACTOR_SETTINGS, render, owner="render_factors")
    renderer = model if isinstance(model, Renderer) else Renderer(model, **settings.renderer_options())
    goals = [objectives.direction(factors.layer, vector, cossim_pow=float(cossim_pow)) for vector in factors.directions]
    return renderer.render(goals, **settings.render_options())


__all__ = ["Factors", "factorize", "layer_factors", "render_factors"]
