"""A linear probe on a model's layers: one weight per channel and a bias per layer, and the model it belongs to.

A probe's logit for an image is the mean over its layers of ``mean over positions of a · weights + bias`` on the
layer's channels-first activation ``a``. It remembers the model it was fitted on (its name and
`weights_fingerprint`) and refuses any other. `featviz.concepts.train_probe` fits one on two folders of images;
`featviz.objectives.facet` steers a render with one; `Probe.save` and `load_probe` keep it in a file.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from featviz.errors import FeatvizError, check_int
from featviz.hooks import ActivationCapture, bind_layers
from featviz.io import save_file
from featviz.models.model import Model
from featviz.models.registry import load_model
from featviz.models.weights import weights_fingerprint

PROBE_FORMAT = 1


@dataclass
class Probe:
    """Logistic regressions, one per layer, on activations averaged over positions; what a facet steers by.

    ``weights[layer]`` holds one weight per channel and ``bias[layer]`` a number: the layer's logit for an
    image is ``mean over positions of a · weights + bias`` on its channels-first activation ``a``; positive
    means the facet (the positive folder). ``accuracy`` is the held-out accuracy, class-balanced (the mean of
    the two folders' accuracies; chance is 0.5), of the layers' logits averaged, and ``layer_accuracy`` that of
    each layer alone. ``model_name`` and ``fingerprint`` (`weights_fingerprint`) say which
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
        return save_file(self.state(), path, "probe")

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


def _model_name(model: Any) -> str:
    network = getattr(model, "network", model)
    return str(getattr(model, "name", type(network).__name__))


__all__ = ["Probe", "load_probe"]
