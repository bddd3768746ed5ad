"""Text directions inside the image network: the direction in a layer's channel space that a prompt points to.

Exact where the network is linear (to first order) from the layer to the image embedding: the embedding layer
itself, CLIP ResNet's last stage through the attention pool, a CLIP ViT's last block through the class token's
final norm and projection, a classifier's pooled features. There the direction is the transposed Jacobian of
the embedding applied to the prompt's embedding, linearized at the layer's statistics on the shipped natural
photos. Elsewhere it is fitted: a ridge map from the layer's pooled activations to the image embedding on
those photos and random crops of them, with its held-out R² reported (and a warning when poor).
"""
from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from featviz.dataset import shipped_photos
from featviz.errors import FeatvizError
from featviz.hooks import IMAGE, OUTPUT, ActivationCapture, Layout, bind_layers, leaf_output
from featviz.io import atomic_path, cache_folder
from featviz.models import weights_fingerprint
from featviz.text.prompts import check_prompts, prompt_embeddings, weighted_prompts
from featviz.text.ridge import ridge_fits
from featviz.text.tower import text_tower
from featviz.transforms import Compose, RandomSource, random_crops

CROPS_PER_PHOTO = 12
POOR_FIT = 0.3
RIDGE_CANDIDATES = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
LINEARIZE_CHUNK = 16


@dataclass
class TextDirection:
    """A prompt's direction in ``layer``'s channel space: ``vector`` ``(C,)``, unit norm; ``method`` is
    ``"exact"`` (linearized where the network is linear) or ``"fitted"`` (ridge map, held-out ``r2``).

    Example:
        >>> clip = featviz.load_model("open_clip:featviz-tiny-RN", weights="random")   # a tiny random CLIP
        >>> found = find_text_direction(clip, "layer4", "a photo of a dog")
        >>> found.layer, found.method, found.vector.shape
        ('layer4', 'exact', torch.Size([512]))
        >>> goal = objectives.direction("layer4", found.vector, cossim_pow=1.0)
        >>> result = featviz.render(clip, goal, steps=2, progress=False)
    """

    layer: str
    vector: Tensor
    method: str
    r2: float | None = None


def reference_images(model: Any, crops_per_photo: int = CROPS_PER_PHOTO, seed: int = 0) -> Tensor:
    """The shipped natural photos at the model's input size and ``crops_per_photo`` random crops of each (drawn
    with ``seed``).

    Example:
        >>> reference_images(model).shape         # 15 photos and 12 crops of each, at Lite0's 224 px
        torch.Size([195, 3, 224, 224])
    """
    height, width = model.input_size
    photos = shipped_photos((height, width), model.channels)
    if crops_per_photo == 0:
        return photos
    crops = Compose([random_crops(count=crops_per_photo, area=(0.2, 0.8))], output_size=(height, width))
    source = RandomSource([seed + index for index in range(photos.shape[0])])
    with torch.no_grad():
        cropped = crops(photos, source)
    return torch.cat([photos, cropped])


def exact_layers(model: Any) -> set[str]:
    """The layers of ``model`` from which its image embedding is linear to first order, by what the model is.

    Example:
        >>> sorted(exact_layers(featviz.load_model("open_clip:featviz-tiny-RN", weights="random")))
        ['@output', 'attnpool', 'layer4']
    """
    tower = text_tower(model)
    network = model.network
    found = {tower.image_layer}
    if callable(getattr(tower, "exact_layers", None)):  # a tower that knows more (a classifier's: its pooled layer)
        found |= set(tower.exact_layers())
    if tower.image_layer == OUTPUT:
        if hasattr(network, "attnpool"):
            found |= {"attnpool", "layer4"}
        blocks = getattr(getattr(network, "transformer", None), "resblocks", None)
        if blocks is not None and len(blocks):
            found |= {f"transformer.resblocks.{len(blocks) - 1}", "ln_post"}
    return found


def _channel_sum(raw: Tensor, layout: Layout) -> Tensor:
    """``raw`` summed over everything but the channels (batch, positions and prefix tokens too): ``(C,)``."""
    channel_dim = 1 if layout.kind in ("nchw", "ncl", "nc") else raw.dim() - 1
    return raw.movedim(channel_dim, 0).flatten(1).sum(1)


def _linearized(model: Any, layer: str, layout: Layout, images: Tensor, embedding: Tensor) -> Tensor:
    """``J^T e`` at ``images``: the gradient of ``e . image_embedding`` with respect to the layer's output,
    summed over batch and positions (prefix tokens included). ``embedding`` ``(D,)`` gives ``(C,)``; a stack
    ``(K, D)`` gives ``(K, C)`` from one forward pass (backward passes batched `LINEARIZE_CHUNK` at a time)."""
    tower_layer = text_tower(model).image_layer
    module = model.network if layer == OUTPUT else model.get_layer(layer)
    with torch.enable_grad(), leaf_output(module, layer, "a text direction") as leaf, \
            ActivationCapture(model, [tower_layer], stop_early=False) as capture:
        activation = capture.run(images.to(model.device, model.dtype))[tower_layer]
        if embedding.dim() == 2:
            return _linearized_rows(activation.flatten(1), leaf.tensor, embedding, layer, layout)
        score = (activation.flatten(1) @ embedding.to(activation)).sum()
        gradient = leaf.gradient(score)
    if gradient is None:
        raise FeatvizError(f"the image embedding does not depend on layer '{layer}'; pick a layer before it")
    return _channel_sum(gradient, layout)


def _linearized_rows(activation: Tensor, leaf: Tensor, embeddings: Tensor, layer: str, layout: Layout) -> Tensor:
    """``(K, C)``: `_linearized` for each row of ``embeddings``, sharing the forward pass that made ``activation``."""
    if not activation.requires_grad:
        raise FeatvizError(f"the image embedding does not depend on layer '{layer}'; pick a layer before it")
    rows = []
    for start in range(0, embeddings.shape[0], LINEARIZE_CHUNK):
        chunk = embeddings[start:start + LINEARIZE_CHUNK].to(activation)
        outputs = chunk[:, None, :].expand(-1, activation.shape[0], -1)
        try:
            (gradients,) = torch.autograd.grad(
                activation, leaf, grad_outputs=outputs, is_grads_batched=True, retain_graph=True
            )
        except RuntimeError:  # an operation without a batching rule: one backward pass per row
            gradients = torch.stack([
                torch.autograd.grad(activation, leaf, grad_outputs=output, retain_graph=True)[0] for output in outputs
            ])
        rows += [_channel_sum(gradient, layout) for gradient in gradients]
    return torch.stack(rows)


def _fit_cache(model: Any, layer: str) -> Path:
    root = cache_folder("text-directions")
    key = hashlib.sha256(f"{model.name}|{weights_fingerprint(model)}|{layer}|{CROPS_PER_PHOTO}".encode()).hexdigest()
    return root / f"{key[:24]}.pt"


def fit_linear_map(model: Any, layer: str, target: str, images: Tensor) -> tuple[Tensor, float]:
    """A ridge map ``W`` ``(C, D)`` from ``layer``'s spatially pooled activations to ``target``'s (e.g. the image
    embedding or the logits) in ``model``, fitted on ``images`` with the regularization that predicts a held-out
    fifth best; returns ``W`` and that held-out R².

    Example:
        >>> clip = featviz.load_model("open_clip:featviz-tiny-RN", weights="random")   # a tiny random CLIP
        >>> weights, r2 = fit_linear_map(clip, "layer3", "@output", reference_images(clip))
        >>> weights.shape, r2 <= 1.0                  # layer3's 256 channels onto the 32-d embedding
        (torch.Size([256, 32]), True)
    """
    binding = bind_layers(model, [layer, target], tuple(model.input_size))
    with torch.no_grad(), ActivationCapture(model, [layer, target], layouts=binding.layouts) as capture:
        features, targets = [], []
        for start in range(0, images.shape[0], 32):
            activations = capture.run(images[start:start + 32].to(model.device, model.dtype))
            features.append(activations[layer].flatten(2).mean(2).double().cpu())
            targets.append(activations[target].flatten(2).mean(2).double().cpu())
    inputs, outputs = torch.cat(features), torch.cat(targets)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(inputs.shape[0], generator=generator)
    held = order[: max(1, inputs.shape[0] // 5)]
    kept = order[held.shape[0]:]
    # Strengths are relative to the inputs' variance times the number of samples, so one list suits any layer.
    def absolute(sample: Tensor) -> list[float]:
        scale = float((sample - sample.mean(0)).square().mean().clamp(min=1e-12)) * sample.shape[0]
        return [strength * scale for strength in RIDGE_CANDIDATES]

    best: tuple[float, int] = (-math.inf, 0)
    for index, (weights, bias) in enumerate(ridge_fits(inputs[kept], outputs[kept], absolute(inputs[kept]))):
        residual = (outputs[held] - (inputs[held] @ weights + bias)).square().sum()
        total = (outputs[held] - outputs[held].mean(0)).square().sum().clamp(min=1e-12)
        best = max(best, (float(1 - residual / total), index))
    ((weights, _),) = ridge_fits(inputs, outputs, [absolute(inputs)[best[1]]])
    return weights.float(), best[0]


def find_text_direction(
    model: Any,
    layer: str,
    prompts: Any,
    *,
    templates: Sequence[str] | None = None,
    method: str | None = None,
) -> TextDirection:
    """The direction in ``layer``'s channel space of ``model`` that ``prompts`` point to (see the module docstring).

    ``prompts`` is read like `featviz.objectives.text`'s (one, a list, or ``{prompt: weight}``; ``templates``
    turn each into several sentences whose embeddings are averaged); ``method`` is
    ``"exact"``, ``"fitted"`` or None (exact where the layer allows it, else fitted). Use the vector with
    `featviz.objectives.direction` or `direction_neuron` (``cossim_pow``) at any position.

    Example:
        >>> clip = featviz.load_model("open_clip:featviz-tiny-RN", weights="random")   # a tiny random CLIP
        >>> found = find_text_direction(clip, "layer4", "a photo of a dog")
        >>> found.method, found.vector.shape                 # OpenAI's RN50: torch.Size([2048])
        ('exact', torch.Size([512]))
        >>> find_text_direction(clip, "layer3", "a photo of a dog").method      # a ridge map, with its held-out R²
        'fitted'
    """
    weighted = weighted_prompts(prompts)
    embeddings = prompt_embeddings(model, list(weighted), templates)
    weights = torch.tensor(list(weighted.values()), dtype=embeddings.dtype, device=embeddings.device)
    embedding = (weights[:, None] * embeddings).sum(0, keepdim=True)
    label = " | ".join(f"{prompt}:{weight:g}" for prompt, weight in weighted.items())
    found = text_directions(model, layer, [label], method=method, embeddings=embedding)
    return TextDirection(layer, found.vectors[0], found.method, found.r2)


def text_direction(
    model: Any, layer: str, prompts: Any, *, templates: Sequence[str] | None = None, method: str | None = None,
) -> TextDirection:
    """Deprecated name of `find_text_direction` (same arguments: ``model``, ``layer``, ``prompts``, ``templates``,
    ``method``), kept for one release; `featviz.objectives.text_direction` is the objective of that name.

    Example:
        >>> clip = featviz.load_model("open_clip:featviz-tiny-RN", weights="random")
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     found = text_direction(clip, "layer4", "a dog")
        >>> caught[0].category.__name__, found.method
        ('DeprecationWarning', 'exact')
    """
    warnings.warn(
        "featviz.text.text_direction is now find_text_direction (featviz.objectives.text_direction is the objective); "
        "the old name goes in the next release", DeprecationWarning, stacklevel=2,
    )
    return find_text_direction(model, layer, prompts, templates=templates, method=method)


def _fitted_map(model: Any, layer: str) -> tuple[Tensor, float]:
    """The cached ridge map ``(C, D)`` from ``layer`` to the image embedding and its held-out R² (warns when poor)."""
    cache = _fit_cache(model, layer)
    if cache.exists():
        saved = torch.load(cache, weights_only=True)
        linear_map, r2 = saved["weights"], float(saved["r2"])
    else:
        linear_map, r2 = fit_linear_map(model, layer, text_tower(model).image_layer, reference_images(model))
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as temporary:
            torch.save({"weights": linear_map, "r2": r2}, temporary)
    if r2 < POOR_FIT:
        warnings.warn(
            f"the linear map from layer '{layer}' to the image embedding predicts held-out photos poorly (R² "
            f"{r2:.2f}); the text direction there is unreliable: prefer a later layer", stacklevel=3,
        )
    return linear_map, r2


@dataclass
class TextDirections:
    """Many prompts' directions in one layer: row ``i`` of ``vectors`` ``(P, C)`` is ``prompts[i]``'s unit-norm
    direction, as `find_text_direction` finds it for that prompt alone; ``method`` and ``r2`` as in `TextDirection`.

    Example:
        >>> clip = featviz.load_model("open_clip:featviz-tiny-RN", weights="random")   # a tiny random CLIP
        >>> found = text_directions(clip, "layer4", ["dog", "cat", "car"], templates=["a photo of a {}."])
        >>> found.vectors.shape, found.prompts
        (torch.Size([3, 512]), ['dog', 'cat', 'car'])
    """

    layer: str
    prompts: list[str]
    vectors: Tensor
    method: str
    r2: float | None = None


def text_directions(
    model: Any,
    layer: str,
    prompts: Sequence[str],
    *,
    templates: Sequence[str] | None = None,
    method: str | None = None,
    embeddings: Tensor | None = None,
) -> TextDirections:
    """Each prompt's direction in ``layer``'s channel space, all at once: one text-tower encode of every prompt
    and one linear map (the layer's Jacobian sum where it is exact, found with one forward pass; the cached
    ridge map where it is fitted). Row ``i`` equals ``find_text_direction(model, layer, prompts[i]).vector``.

    ``prompts`` is a list of strings (each with ``templates``, strings holding ``{}`` once, averaged as in
    `featviz.text.prompts.prompt_embeddings`); ``method`` as in `find_text_direction`. ``embeddings``, when
    given, are the prompts' embeddings already encoded that way ``(P, D)``, for a caller that reuses them over
    several layers.

    Example:
        >>> clip = featviz.load_model("open_clip:featviz-tiny-RN", weights="random")
        >>> text_directions(clip, "layer4", ["dog", "cat"], templates=["a photo of a {}."]).vectors.shape
        torch.Size([2, 512])
    """
    if method not in (None, "exact", "fitted"):
        raise FeatvizError(f"method must be 'exact', 'fitted' or None (choose for me), not {method!r}")
    if layer == IMAGE:
        raise FeatvizError("'@image' is the input image, not a layer with channels; pick a layer of the network")
    prompts = check_prompts(prompts)
    if embeddings is None:
        embeddings = prompt_embeddings(model, prompts, templates)
    elif embeddings.dim() != 2 or embeddings.shape[0] != len(prompts):
        raise FeatvizError(f"embeddings must be one row per prompt, ({len(prompts)}, D), not {tuple(embeddings.shape)}")
    embeddings = embeddings.detach().cpu().float()
    exact = layer in exact_layers(model)
    if method == "exact" and not exact:
        raise FeatvizError(
            f"no exact text direction for layer '{layer}': the network is not linear from it to the embedding; "
            f"use method='fitted' or one of {', '.join(sorted(exact_layers(model)))}"
        )
    chosen = method or ("exact" if exact else "fitted")
    r2 = None
    if chosen == "exact" and layer == text_tower(model).image_layer:
        vectors = embeddings.clone()
    elif chosen == "exact" and layer == getattr(text_tower(model), "classifier", None):
        # A classifier's logits are linear in the image embedding: a prompt's direction over the classes is what
        # its embedding scores on each (an exact class name's largest is its own class).
        weight = model.get_layer(layer).weight.detach().cpu().float()
        vectors = embeddings @ weight.t()
    elif chosen == "exact":
        layout = bind_layers(model, [layer], tuple(model.input_size)).layouts[layer]
        photos = reference_images(model, crops_per_photo=0)
        width = embeddings.shape[1]
        # Fewer prompts than embedding dimensions: one backward pass each; more: the whole map, then one product.
        basis = embeddings if embeddings.shape[0] <= width else torch.eye(width)
        rows = _linearized(model, layer, layout, photos, basis).detach().cpu().float()
        vectors = rows if basis is embeddings else embeddings @ rows
    else:
        linear_map, r2 = _fitted_map(model, layer)
        vectors = embeddings.to(linear_map) @ linear_map.t()
    norms = vectors.norm(dim=1, keepdim=True)
    if not torch.isfinite(norms).all() or (norms == 0).any():
        raise FeatvizError(f"a text direction in layer '{layer}' is zero; pick a layer the embedding depends on")
    return TextDirections(layer, prompts, (vectors / norms).float(), chosen, r2)
