"""Linear probes on a model's layers: tell a folder of facet images (faces, text, textures...) from other images.

A probe is one logistic regression per layer on the layer's activations averaged over positions, fitted on
two folders of images (the facet and the rest), class-balanced, with part of each folder held out to measure
its accuracy. `featviz.objectives.facet` uses a probe to steer a render towards its facet (faceted feature
visualization, Goh et al., Distill 2021). A probe remembers the model it was fitted on (its name and a
fingerprint of its weights) and refuses any other; the `Probe` itself, its file and that check live in
`featviz.models.probe`, below the objectives that read it.

The regression is a small float64 L-BFGS fit in torch (full batch on the standardized pooled activations):
no dependency beyond torch, exact and deterministic for the few thousand images a probe is fitted on.
"""
from __future__ import annotations

import contextlib
import math
import os
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from featviz.dataset import ImageFolder, image_folder
from featviz.errors import FeatvizError, check_int
from featviz.hooks import RESERVED, ActivationCapture, bind_layers
from featviz.models import Model, load_model, weights_fingerprint
from featviz.models.probe import Probe, load_probe

MINIMUM_IMAGES = 4  # per folder: at least one held out and a few to fit on
_MINIMUM_FIT = 2
_FIT_ITERATIONS = 500

ImageSource = str | os.PathLike | Sequence[str | os.PathLike] | ImageFolder


def train_probe(
    model: Model | nn.Module | str,
    layers: Sequence[str] | str,
    positive: ImageSource,
    negative: ImageSource,
    *,
    size: int | None = None,
    holdout: float = 0.25,
    penalty: float = 1.0,
    seed: int = 0,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    name: str | None = None,
    progress: bool = False,
) -> Probe:
    """Fit a `Probe` on ``layers`` of ``model`` telling the ``positive`` images (the facet) from the ``negative``.

    ``positive`` and ``negative`` are folders (read with `featviz.dataset.ImageFolder`: every image under
    them, shorter side resized to ``size`` and centre-cropped; default: the model's input size), lists of image
    files, or ImageFolders. Each image's activations are averaged over positions (only those averages are
    kept, so memory grows with the number of images times channels, not with the layers' maps). A fraction
    ``holdout`` of each folder, drawn with ``seed``, is held out to measure accuracy; on the rest each layer
    gets a logistic regression with the two folders weighted equally, on activations standardized by the
    fitting images' mean and deviation and folded back into weights on the raw activations, with an L2 penalty
    ``penalty / 2 * |w|²`` on the standardized weights (scikit-learn's ``C = 1 / penalty``). ``name`` names the
    probe (default: the positive folder's name). The images are read ``batch_size`` at a time on ``device``
    (default: the model's; the CPU for a model given by name); ``progress`` shows a progress bar per folder.

    Example:
        >>> from featviz.dataset import shipped_photo_paths
        >>> photos = shipped_photo_paths()  # two arbitrary groups here; give a facet and the rest
        >>> probe = train_probe(model, ["blocks.3.2", "blocks.4.2"], photos[:7], photos[7:], size=64)
        >>> probe.counts
        {'positive_fit': 5, 'negative_fit': 6, 'positive_test': 2, 'negative_test': 2}
    """
    layer_names = _check_layers(layers)
    if not (isinstance(holdout, (int, float)) and not isinstance(holdout, bool) and 0 < holdout < 1):
        raise FeatvizError(f"holdout must be a fraction between 0 and 1 (e.g. 0.25), not {holdout!r}")
    if not (isinstance(penalty, (int, float)) and not isinstance(penalty, bool) and math.isfinite(penalty) and penalty > 0):
        raise FeatvizError(f"penalty must be a finite number above 0 (e.g. 1.0), not {penalty!r}")
    seed = check_int(seed, "seed", minimum=0)
    batch_size = check_int(batch_size, "batch_size")
    model = load_model(model, device=device)
    for layer in layer_names:
        model.get_layer(layer)  # an unknown name raises with the closest names
    size = _image_size(model, size)
    binding = bind_layers(model, layer_names, (size, size))
    if tuple(binding.size) != (size, size):
        raise FeatvizError(
            f"{model.name} takes {binding.size[0]}x{binding.size[1]} images only; use size={binding.size[0]}"
        )
    folders = [image_folder(model, source, size, name=f"{what} images") for source, what in ((positive, "positive"), (negative, "negative"))]
    for folder in folders:
        check_image_count(folder.root, len(folder))
    if folders[0].paths == folders[1].paths:
        raise FeatvizError("the positive and negative images are the same; give two different folders")
    pooled = [_pooled_activations(model, folder, layer_names, binding.layouts, batch_size, progress) for folder in folders]
    fit_rows, test_rows = [], []
    generator = torch.Generator().manual_seed(seed)
    for folder, features in zip(folders, pooled):
        count = features[layer_names[0]].shape[0]
        check_image_count(folder.root, count, readable=True)
        held = max(1, round(holdout * count))
        if count - held < _MINIMUM_FIT:
            raise FeatvizError(
                f"holdout {holdout:g} leaves {count - held} of the {count} images of '{folder.root}' to fit on; "
                f"lower holdout or add images"
            )
        order = torch.randperm(count, generator=generator)
        test_rows.append(order[:held])
        fit_rows.append(order[held:])

    weights: dict[str, Tensor] = {}
    bias: dict[str, float] = {}
    layer_accuracy: dict[str, float] = {}
    test_logits = []
    labels_fit = torch.cat([torch.ones(len(fit_rows[0])), -torch.ones(len(fit_rows[1]))]).double()
    labels_test = torch.cat([torch.ones(len(test_rows[0])), -torch.ones(len(test_rows[1]))]).double()
    for layer in layer_names:
        fit = torch.cat([pooled[0][layer][fit_rows[0]], pooled[1][layer][fit_rows[1]]]).double()
        test = torch.cat([pooled[0][layer][test_rows[0]], pooled[1][layer][test_rows[1]]]).double()
        layer_weights, layer_bias = _fit_logistic(fit, labels_fit, penalty)
        weights[layer] = layer_weights.float()
        bias[layer] = float(layer_bias)
        logits = test @ layer_weights + layer_bias
        layer_accuracy[layer] = _balanced_accuracy(logits, labels_test)
        test_logits.append(logits)
    accuracy = _balanced_accuracy(torch.stack(test_logits).mean(0), labels_test)
    counts = {
        "positive_fit": len(fit_rows[0]), "negative_fit": len(fit_rows[1]),
        "positive_test": len(test_rows[0]), "negative_test": len(test_rows[1]),
    }
    return Probe(
        weights=weights, bias=bias, model_name=model.name, fingerprint=weights_fingerprint(model), accuracy=accuracy,
        layer_accuracy=layer_accuracy, counts=counts, size=size, name=name or folders[0].root.name or "probe",
    )


def check_image_count(folder: str | os.PathLike, count: int, readable: bool = False) -> None:
    """Raise FeatvizError when ``count`` images of ``folder`` are too few to fit and test a probe on;
    ``readable=True`` says "readable images" in the message (the count after unreadable files were dropped).

    Example:
        >>> check_image_count("faces/", 2)
        Traceback (most recent call last):
        featviz.errors.FeatvizError: 'faces/' holds 2 images; a probe needs at least 4 per folder (some to fit on, some held out to test)
    """
    if count < MINIMUM_IMAGES:
        what = "readable image" if readable else "image"
        raise FeatvizError(
            f"'{folder}' holds {count} {what}{'s' if count != 1 else ''}; a probe needs at least {MINIMUM_IMAGES} "
            "per folder (some to fit on, some held out to test)"
        )


def _check_layers(layers: Sequence[str] | str) -> list[str]:
    names = [layers] if isinstance(layers, str) else list(layers)
    names = [name.strip() if isinstance(name, str) else name for name in names]
    if not names:
        raise FeatvizError("no layers given; pass at least one layer name (list them with `featviz layers MODEL`)")
    for name in names:
        if not isinstance(name, str) or not name:
            raise FeatvizError(f"layer names must be non-empty strings like 'blocks.4.0', not {name!r}")
        if name in RESERVED:
            raise FeatvizError(f"'{name}' is not a layer of the network; a probe reads network layers (`featviz layers MODEL`)")
    return list(dict.fromkeys(names))


def _image_size(model: Model, size: int | None) -> int:
    if size is not None:
        return check_int(size, "size", minimum=8)
    height, width = model.input_size
    if height != width:
        raise FeatvizError(f"the model's input is {height}x{width}; pass size=N, the square image size to read images at")
    return int(height)


def _pooled_activations(
    model: Model, folder: ImageFolder, layers: list[str], layouts: Mapping[str, Any], batch_size: int, progress: bool,
) -> dict[str, Tensor]:
    """Each layer's activations averaged over positions, ``(images, channels)`` float32 on the CPU."""
    from tqdm.auto import tqdm

    pooled: dict[str, list[Tensor]] = {layer: [] for layer in layers}
    bar = tqdm(total=len(folder), unit="image", desc=f"probe: {folder.root.name}", disable=not progress, leave=False)
    try:
        with torch.no_grad(), ActivationCapture(model, layers, layouts=layouts) as capture, \
                contextlib.closing(folder.batches(batch_size)) as batches:
            for _, images in batches:
                activations = capture.run(images.to(device=model.device, dtype=model.dtype))
                for layer in layers:
                    pooled[layer].append(activations[layer].mean((-2, -1)).float().cpu())
                bar.update(images.shape[0])
    finally:
        bar.close()
    if not pooled[layers[0]]:
        return {layer: torch.empty(0, 0) for layer in layers}
    return {layer: torch.cat(values) for layer, values in pooled.items()}


def _fit_logistic(features: Tensor, labels: Tensor, penalty: float) -> tuple[Tensor, Tensor]:
    """Class-balanced logistic regression on ``features`` (n, d) with labels ±1; weights and bias on the raw
    features. Minimizes ``sum(s_i log(1 + exp(-y_i z_i))) / n + penalty |w|² / (2n)`` on standardized features,
    where ``s_i`` weighs each class to half the total."""
    count = features.shape[0]
    mean = features.mean(0)
    deviation = features.std(0, unbiased=False)
    deviation = torch.where(deviation > 1e-12, deviation, torch.ones_like(deviation))
    standardized = (features - mean) / deviation
    positives = (labels > 0).sum()
    sample_weights = torch.where(labels > 0, count / (2 * positives), count / (2 * (count - positives))).double()
    weights = torch.zeros(features.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weights, bias], lr=1.0, max_iter=_FIT_ITERATIONS, tolerance_grad=1e-10, tolerance_change=1e-14,
        history_size=20, line_search_fn="strong_wolfe",
    )

    def loss_value() -> Tensor:
        optimizer.zero_grad()
        margins = labels * (standardized @ weights + bias)
        loss = (sample_weights * nn.functional.softplus(-margins)).sum() / count
        loss = loss + penalty * weights.square().sum() / (2 * count)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(loss_value)
    raw_weights = (weights.detach() / deviation)
    raw_bias = bias.detach() - (weights.detach() * mean / deviation).sum()
    return raw_weights, raw_bias


def _balanced_accuracy(logits: Tensor, labels: Tensor) -> float:
    correct = (logits > 0) == (labels > 0)
    return 0.5 * (float(correct[labels > 0].double().mean()) + float(correct[labels < 0].double().mean()))


__all__ = ["Probe", "check_image_count", "load_probe", "train_probe"]
