"""Linear probes on a model's layers: tell a folder of facet images (faces, text, textures...) from other images.

A probe is one logistic regression per layer on the layer's activations averaged over positions, fitted on
two folders of images (the facet and the rest), class-balanced, with part of each folder held out to measure
its accuracy. `featviz.objectives.facet` uses a probe to steer a render towards its facet (faceted feature
visualization, Goh et al., Distill 2021). A probe remembers the model it was fitted on (its name and a
fingerprint of its weights) and refuses any other.

The regression is a small float64 L-BFGS fit in torch (full batch on the standardized pooled activations):
no dependency beyond torch, exact and deterministic for the few thousand images a probe is fitted on.
"""
from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from featviz.dataset.activations import weights_fingerprint
from featviz.dataset.folder import ImageFolder
from featviz.errors import FeatvizError, check_int
from featviz.hooks import RESERVED, ActivationCapture, bind_layers
from featviz.io import atomic_path
from featviz.models import Model, load_model

PROBE_FORMAT = 1
MINIMUM_IMAGES = 4  # per folder: at least one held out and a few to fit on
_MINIMUM_FIT = 2
_FIT_ITERATIONS = 500

ImageSource = str | os.PathLike | Sequence[str | os.PathLike] | ImageFolder


@dataclass
class Probe:
    """Logistic regressions, one per layer, on activations averaged over positions; what a facet steers by.

    ``weights[layer]`` holds one weight per channel and ``bias[layer]`` a number: the layer's logit for an
    image is ``mean over positions of a · weights + bias`` on its channels-first activation ``a``; positive
    means the facet (the positive folder). ``accuracy`` is the held-out accuracy, class-balanced (the mean of
    the two folders' accuracies; chance is 0.5), of the layers' logits averaged, and ``layer_accuracy`` that of
    each layer alone. ``model_name`` and ``fingerprint`` (`featviz.dataset.weights_fingerprint`) say which
    model it was fitted on; ``counts`` how many images of each folder it was fitted on and tested on, and
    ``size`` the image size it read them at.

    Example:
        >>> probe = Probe.from_weights(model, {"blocks.4.2": torch.ones(112)}, name="bright")
        >>> probe.layers, probe.model_name
        (('blocks.4.2',), 'efficientnet_lite0')
    """

    weights: dict[str, Tensor]
    bias: dict[str, float]
    model_name: str
    fingerprint: str
    accuracy: float = math.nan
    layer_accuracy: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    size: int | None = None
    name: str = "probe"

    def __post_init__(self) -> None:
        if not self.weights:
            raise FeatvizError("a probe needs weights for at least one layer")
        if set(self.bias) != set(self.weights):
            raise FeatvizError(
                f"a probe needs one bias per layer: weights for {sorted(self.weights)}, bias for {sorted(self.bias)}"
            )
        self.weights = {
            layer: torch.as_tensor(values).detach().float().cpu().reshape(-1) for layer, values in self.weights.items()
        }
        self.bias = {layer: float(value) for layer, value in self.bias.items()}

    @classmethod
    def from_weights(
        cls, model: Model | nn.Module | str, weights: Mapping[str, Tensor], bias: Mapping[str, float] | None = None,
        name: str = "probe",
    ) -> "Probe":
        """A probe on ``model`` with weights you have (fitted elsewhere, or made by hand): ``weights`` maps each
        layer to one weight per channel, ``bias`` each layer to a number (default 0). Its accuracy is unknown
        (NaN). Layers and channel counts are checked when a render binds it.

        Example:
            >>> probe = Probe.from_weights(model, {"blocks.3.2": torch.zeros(80), "blocks.4.2": torch.ones(112)})
            >>> probe.bias
            {'blocks.3.2': 0.0, 'blocks.4.2': 0.0}
        """
        model = load_model(model)
        bias = {layer: 0.0 for layer in weights} if bias is None else dict(bias)
        return cls(weights=dict(weights), bias=bias, model_name=model.name, fingerprint=weights_fingerprint(model), name=name)

    @property
    def layers(self) -> tuple[str, ...]:
        """The layers the probe reads, in the order it was fitted on them."""
        return tuple(self.weights)

    def logits(self, activations: Mapping[str, Tensor]) -> Tensor:
        """The probe's logit per image: each layer's logit, averaged over layers (positive: the facet).

        ``activations`` maps each probe layer to its channels-first ``(B, C, H, W)`` activation.

        Example:
            >>> probe = Probe.from_weights(model, {"blocks.4.2": torch.ones(112)}, bias={"blocks.4.2": -1.0})
            >>> probe.logits({"blocks.4.2": torch.full((2, 112, 14, 14), 0.5)})
            tensor([55., 55.])
        """
        total = 0.0
        for layer in self.layers:
            activation = activations[layer]
            pooled = activation.mean((-2, -1))
            total = total + pooled @ self.weights[layer].to(pooled) + self.bias[layer]
        return total / len(self.layers)

    def score_images(self, model: Model | nn.Module | str, images: Tensor, batch_size: int = 32) -> Tensor:
        """The probe's logit for each of ``images`` (``(B, C, H, W)`` in ``[0, 1]``) seen by ``model``.

        Example:
            >>> probe = Probe.from_weights(model, {"blocks.4.2": torch.ones(112)})
            >>> probe.score_images(model, torch.rand(3, 3, 64, 96)).shape
            torch.Size([3])
        """
        model = load_model(model)
        self.check_model(model)
        batch_size = check_int(batch_size, "batch_size")
        if not isinstance(images, Tensor) or images.dim() != 4:
            shown = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise FeatvizError(f"images must be a (B, C, H, W) tensor in [0, 1], not {shown}")
        binding = bind_layers(model, self.layers, tuple(images.shape[-2:]))
        scores = []
        with torch.no_grad(), ActivationCapture(model, self.layers, layouts=binding.layouts) as capture:
            for start in range(0, images.shape[0], batch_size):
                batch = images[start:start + batch_size].to(device=model.device, dtype=model.dtype)
                scores.append(self.logits(capture.run(batch)).float().cpu())
        return torch.cat(scores)

    def check_model(self, model: Any) -> None:
        """Raise FeatvizError unless ``model`` is the model the probe was fitted on (same weights fingerprint).

        Example:
            >>> probe = Probe.from_weights(model, {"blocks.4.2": torch.ones(112)}, name="bright")
            >>> probe.check_model(load_model("timm:test_efficientnet", weights="random"))
            Traceback (most recent call last):
            featviz.errors.FeatvizError: probe 'bright' was fitted on efficientnet_lite0 (weights ...), not on timm:test_efficientnet ...
        """
        fingerprint = weights_fingerprint(model)
        if fingerprint != self.fingerprint:
            name = _model_name(model)
            raise FeatvizError(
                f"probe '{self.name}' was fitted on {self.model_name} (weights {self.fingerprint[:12]}), not on "
                f"{name} (weights {fingerprint[:12]}); fit a probe on this model with `featviz probe {name} "
                f"--layers ... --positive DIR --negative DIR`"
            )

    def state(self) -> dict[str, Any]:
        """Everything the probe holds, as plain Python values and tensors (what `save` writes)."""
        return {
            "format": PROBE_FORMAT, "name": self.name, "model_name": self.model_name, "fingerprint": self.fingerprint,
            "layers": list(self.layers), "weights": {layer: self.weights[layer].clone() for layer in self.layers},
            "bias": dict(self.bias), "accuracy": float(self.accuracy), "layer_accuracy": dict(self.layer_accuracy),
            "counts": dict(self.counts), "size": self.size,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the probe to ``path`` atomically (a torch file that `load_probe` reads) and return the path.

        Example:
            >>> Probe.from_weights(model, {"blocks.4.2": torch.ones(112)}).save("bright.pt")
            PosixPath('bright.pt')
        """
        path = Path(path)
        if path.is_dir():
            raise FeatvizError(f"'{path}' is a folder; give a file name for the probe, e.g. '{path / 'probe.pt'}'")
        with atomic_path(path) as temporary:
            torch.save(self.state(), temporary)
        return path

    def __repr__(self) -> str:
        return (f"Probe({self.name!r}, model={self.model_name!r}, layers={list(self.layers)}, "
                f"accuracy={self.accuracy:.3f})")


def load_probe(path: str | os.PathLike, model: Model | nn.Module | str | None = None) -> Probe:
    """Read a probe written by `Probe.save` (or `featviz probe`); with ``model``, check it was fitted on it.

    Raises FeatvizError when the file is missing or not a probe, or when ``model`` is another model than the
    one the probe was fitted on.

    Example:
        >>> path = Probe.from_weights(model, {"blocks.4.2": torch.ones(112)}).save("bright.pt")
        >>> load_probe(path, model).layers
        ('blocks.4.2',)
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise FeatvizError(f"probe file '{path}' {what}; give a file written by `featviz probe` or Probe.save")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the same user mistake
        raise FeatvizError(
            f"'{path}' is not a probe file ({type(error).__name__}); give a file written by `featviz probe` or Probe.save"
        ) from None
    if not isinstance(state, dict) or state.get("format") != PROBE_FORMAT or "weights" not in state:
        raise FeatvizError(
            f"'{path}' is not a probe file (format {PROBE_FORMAT}); give a file written by `featviz probe` or Probe.save"
        )
    try:
        weights = {layer: state["weights"][layer] for layer in state["layers"]}
        probe = Probe(
            weights=weights, bias={layer: state["bias"][layer] for layer in weights}, model_name=state["model_name"],
            fingerprint=state["fingerprint"], accuracy=state["accuracy"], layer_accuracy=state["layer_accuracy"],
            counts=state["counts"], size=state["size"], name=state["name"],
        )
    except (KeyError, TypeError, ValueError) as error:  # FeatvizError is a ValueError: a damaged file, said once
        raise FeatvizError(f"'{path}' is not a complete probe file ({error}); write it again with `featviz probe`") from None
    if model is not None:
        probe.check_model(load_model(model))
    return probe


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
    folders = [_folder(source, size, model.channels, what) for source, what in ((positive, "positive"), (negative, "negative"))]
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


def _folder(source: ImageSource, size: int, channels: int, what: str) -> ImageFolder:
    if isinstance(source, ImageFolder):
        if source.channels != channels:
            raise FeatvizError(
                f"the {what} folder reads {source.channels}-channel images but the model takes {channels}; "
                f"use ImageFolder(..., channels={channels})"
            )
        return source
    return ImageFolder(source, size=size, channels=channels)


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


def _model_name(model: Any) -> str:
    network = getattr(model, "network", model)
    return str(getattr(model, "name", type(network).__name__))


__all__ = ["MINIMUM_IMAGES", "Probe", "check_image_count", "load_probe", "train_probe"]
