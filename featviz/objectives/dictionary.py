"""Dictionary features (sparse autoencoders, NMF) as units: the `Dictionary` container and its objective.

A dictionary rewrites a layer's activation vector ``x`` (one per position of a CNN map, one per patch token of a
ViT) as a sparse code ``z`` over ``concepts`` rows of a decoder: ``x ≈ (z @ decoder) * scale + mean``. Its
encoder gives the code's *pre-activation* ``((x - mean) / scale) @ encoder.T + encoder_bias``, a linear and so
differentiable function of the layer, which `dictionary_feature` renders like a channel; the code itself
(`Dictionary.codes`: ReLU, then the method's threshold or top-k) is what the dataset pass ranks images by. A
dictionary remembers the model (name and `featviz.models.weights_fingerprint`) and the layer it was fitted on,
and refuses any other in one line, as facet probes do.

Files are plain ``torch.save`` dictionaries of tensors and strings, read with ``weights_only=True``; learn one
with `featviz.concepts.dictionary` (``featviz dictionary``). The shorthand ``dict.pt:17`` (also ``dict.pt:0-7``,
``dict.pt:3@2,1``) names features of a saved dictionary wherever objectives are typed.
"""
from __future__ import annotations

import hashlib
import os
import re
import weakref
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from featviz.errors import FeatvizError, check_int
from featviz.io import save_file
from featviz.models import load_model
from featviz.models.weights import weights_fingerprint
from featviz.objectives.base import Objective
from featviz.objectives.checks import Activations, Shapes, check_position, layer_shape, read
from featviz.objectives.shorthand import register_shorthand

DICTIONARY_FORMAT = 1
_SHORTHAND = re.compile(r"(?P<path>[^:]+\.pt):(?P<first>\d+)(?:-(?P<last>\d+))?(?:@(?P<x>\d+),(?P<y>\d+))?")


def _matrix(values: Any, what: str) -> Tensor:
    tensor = torch.as_tensor(values).detach()
    if tensor.dim() != 2 or 0 in tensor.shape or not tensor.is_floating_point():
        raise FeatvizError(f"{what} must be a (concepts, dim) float tensor, got {tuple(tensor.shape)} {tensor.dtype}")
    if not torch.isfinite(tensor).all():
        raise FeatvizError(f"{what} holds NaN or infinity; give finite numbers")
    return tensor.float().cpu().clone()


def _vector(values: Any, length: int, what: str) -> Tensor:
    tensor = torch.as_tensor(values).detach().float().cpu().reshape(-1).clone()
    if tensor.numel() == 1 and length != 1:
        tensor = tensor.expand(length).clone()
    if tensor.numel() != length:
        raise FeatvizError(f"{what} must hold {length} numbers, got {tensor.numel()}")
    return tensor


class Dictionary(nn.Module):
    """A dictionary of ``concepts`` features of one layer: decoder rows, an encoder, and what it was fitted on.

    ``decoder`` is ``(concepts, dim)``, ``dim`` being the layer's channels; ``encoder`` (default: the decoder's
    rows scaled to unit length, a plain projection) and ``encoder_bias`` give each feature's pre-activation;
    ``mean`` and ``scale`` normalize the layer's activations first (``normalization`` names how they were
    chosen). Codes are ``relu(pre-activation)``, zeroed below ``threshold`` (per feature) and, with ``top_k``,
    outside each position's k largest. ``model_name``, ``fingerprint``, ``layer`` and ``layout`` say what it was
    fitted on; ``method`` how, and ``metrics`` how well (R², mean L0, dead fraction, stability). ``name`` (default:
    the layer, the feature count and a digest) names its gallery page and its objectives.

    Example:
        >>> dictionary = Dictionary(torch.eye(4)[:3], layer="conv", model_name="toy")
        >>> dictionary.concepts, dictionary.dim
        (3, 4)
        >>> dictionary.codes(torch.tensor([[2.0, -1.0, 0.5, 7.0]]))
        tensor([[2.0000, 0.0000, 0.5000]])
    """

    def __init__(
        self,
        decoder: Any,
        *,
        layer: str,
        model_name: str = "",
        fingerprint: str = "",
        encoder: Any = None,
        encoder_bias: Any = None,
        mean: Any = None,
        scale: Any = 1.0,
        threshold: Any = None,
        top_k: int | None = None,
        layout: str = "",
        normalization: str = "none",
        method: str = "external",
        metrics: Mapping[str, float] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(layer, str) or not layer.strip():
            raise FeatvizError(
                "a dictionary needs the name of the layer it decomposes, e.g. layer='blocks.4.0.conv_pwl'"
            )
        decoder = _matrix(decoder, "the decoder")
        concepts, dim = decoder.shape
        if encoder is None:
            encoder = decoder / decoder.norm(dim=1, keepdim=True).clamp(min=1e-12)
        encoder = _matrix(encoder, "the encoder")
        if encoder.shape != decoder.shape:
            raise FeatvizError(
                f"the encoder is {tuple(encoder.shape)} but the decoder {tuple(decoder.shape)}; give one encoder row "
                "per decoder row"
            )
        self.register_buffer("decoder", decoder)
        self.register_buffer("encoder", encoder)
        self.register_buffer("encoder_bias", torch.zeros(concepts) if encoder_bias is None
                             else _vector(encoder_bias, concepts, "encoder_bias"))
        self.register_buffer("mean", torch.zeros(dim) if mean is None else _vector(mean, dim, "mean"))
        self.register_buffer("scale", _vector(scale, 1, "scale"))
        if not float(self.scale) > 0:
            raise FeatvizError(f"scale must be above 0, got {float(self.scale):g}")
        self.register_buffer("threshold", None if threshold is None else _vector(threshold, concepts, "threshold"))
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 < top_k <= concepts):
            raise FeatvizError(f"top_k must be an int in 1..{concepts} (or None), not {top_k!r}")
        self.top_k = top_k
        self.layer = layer.strip()
        self.model_name = str(model_name)
        self.fingerprint = str(fingerprint)
        self.layout = str(layout)
        self.normalization = str(normalization)
        self.method = str(method)
        self.metrics = {key: float(value) for key, value in (metrics or {}).items()}
        self.name = name or f"{self.layer}~dict{concepts}-{self.digest()[:6]}"
        self._checked: weakref.ref | None = None

    @property
    def concepts(self) -> int:
        """The number of features (decoder rows)."""
        return int(self.decoder.shape[0])

    @property
    def dim(self) -> int:
        """The number of channels of the layer."""
        return int(self.decoder.shape[1])

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __repr__(self) -> str:
        fitted = f", model={self.model_name!r}" if self.model_name else ""
        return f"Dictionary({self.concepts} concepts of {self.layer!r}{fitted}, method={self.method!r})"

    def digest(self) -> str:
        """A hex digest of every tensor and setting (what caches of its dataset statistics are keyed by).

        Example:
            >>> Dictionary(torch.eye(4), layer="conv").digest()[:12]
            'd16ef06fb0b3'
        """
        digest = hashlib.sha256(f"{self.layer}|{self.top_k}|{self.fingerprint}".encode())
        for tensor in (self.decoder, self.encoder, self.encoder_bias, self.mean, self.scale, self.threshold):
            if tensor is not None:
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def pre_codes(self, x: Tensor) -> Tensor:
        """Each feature's pre-activation for activation vectors ``x`` ``(..., dim)``: ``(..., concepts)``,
        differentiable (what `dictionary_feature` maximizes).

        Example:
            >>> Dictionary(torch.eye(2), layer="conv", mean=[1.0, 0.0]).pre_codes(torch.tensor([3.0, 4.0]))
            tensor([2., 4.])
        """
        normalized = (x - self.mean.to(x)) / self.scale.to(x)
        return normalized @ self.encoder.to(x).t() + self.encoder_bias.to(x)

    def codes(self, x: Tensor) -> Tensor:
        """The sparse codes of activation vectors ``x`` ``(..., dim)``: ``(..., concepts)``, non-negative.

        Example:
            >>> Dictionary(torch.eye(3), layer="conv", top_k=1).codes(torch.tensor([1.0, 3.0, 2.0]))
            tensor([0., 3., 0.])
        """
        codes = torch.relu(self.pre_codes(x))
        if self.threshold is not None:
            codes = codes * (codes > self.threshold.to(codes))
        if self.top_k is not None and self.top_k < self.concepts:
            top = codes.topk(self.top_k, dim=-1)
            codes = torch.zeros_like(codes).scatter(-1, top.indices, top.values)
        return codes

    def decode(self, codes: Tensor) -> Tensor:
        """Activation vectors ``(..., dim)`` rebuilt from ``codes`` ``(..., concepts)``.

        Example:
            >>> dictionary = Dictionary(torch.eye(2), layer="conv", mean=[1.0, 1.0], scale=2.0)
            >>> dictionary.decode(dictionary.codes(torch.tensor([5.0, 3.0])))
            tensor([5., 3.])
        """
        return (codes @ self.decoder.to(codes)) * self.scale.to(codes) + self.mean.to(codes)

    def maps(self, activation: Tensor) -> Tensor:
        """The codes of a channels-first ``(B, dim, H, W)`` activation map, as a ``(B, concepts, H, W)`` map: what
        `featviz.dataset.collect_activations` ranks images by when given a dictionary in place of a layer.

        Example:
            >>> Dictionary(torch.eye(2), layer="conv").maps(torch.rand(1, 2, 3, 3)).shape
            torch.Size([1, 2, 3, 3])
        """
        self._check_channels(activation.shape[1])
        return self.codes(activation.movedim(1, -1)).movedim(-1, 1)

    def _check_channels(self, channels: int) -> None:
        if channels != self.dim:
            raise FeatvizError(
                f"dictionary '{self.name}' has {self.dim}-dim features but layer '{self.layer}' has {channels} "
                "channels; use a dictionary fitted on this layer"
            )

    def check_model(self, model: Any, layer: str | None = None) -> None:
        """Raise FeatvizError unless ``model`` is the model the dictionary was fitted on (same weights
        fingerprint) and ``layer`` (when given) its layer. A dictionary without a fingerprint (a plain tensor
        loaded without a model) checks nothing but the layer.

        Example:
            >>> dictionary = Dictionary(torch.eye(3), layer="conv", model_name="toy", fingerprint="0" * 64)
            >>> dictionary.check_model(None, layer="fc")
            Traceback (most recent call last):
            featviz.errors.FeatvizError: dictionary 'conv~dict3-...' was fitted on layer 'conv', not on 'fc'; ...
        """
        if layer is not None and layer != self.layer:
            raise FeatvizError(
                f"dictionary '{self.name}' was fitted on layer '{self.layer}', not on '{layer}'; learn one on this "
                f"layer with `featviz dictionary MODEL --layer {layer} ...`"
            )
        if model is None or not self.fingerprint or (self._checked is not None and self._checked() is model):
            return
        fingerprint = weights_fingerprint(model)
        if fingerprint != self.fingerprint:
            name = getattr(model, "name", type(getattr(model, "network", model)).__name__)
            raise FeatvizError(
                f"dictionary '{self.name}' was fitted on {self.model_name or 'another model'} (weights "
                f"{self.fingerprint[:12]}), not on {name} (weights {fingerprint[:12]}); learn one on this model with "
                f"`featviz dictionary {name} --layer {self.layer} --images DIR --out dict.pt`"
            )
        self._checked = weakref.ref(model)

    def state(self) -> dict[str, Any]:
        """Everything the dictionary holds, as tensors, strings and numbers (what `save` writes)."""
        return {
            "format": DICTIONARY_FORMAT, "decoder": self.decoder.clone(), "encoder": self.encoder.clone(),
            "encoder_bias": self.encoder_bias.clone(), "mean": self.mean.clone(), "scale": self.scale.clone(),
            "threshold": None if self.threshold is None else self.threshold.clone(), "top_k": self.top_k,
            "layer": self.layer, "model_name": self.model_name, "fingerprint": self.fingerprint,
            "layout": self.layout, "normalization": self.normalization, "method": self.method,
            "metrics": dict(self.metrics),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the dictionary to ``path`` atomically (a torch file `load_dictionary` reads) and return the path.

        Example:
            >>> Dictionary(torch.eye(3), layer="conv").save("eye.pt")
            PosixPath('eye.pt')
        """
        return save_file(self.state(), path, "dictionary")


def load_dictionary(
    path: str | os.PathLike, model: Any = None, layer: str | None = None, *, encoder: Any = None,
) -> Dictionary:
    """Read a dictionary from ``path``: a file written by `Dictionary.save` (``featviz dictionary``), or a plain
    ``(concepts, dim)`` tensor saved with ``torch.save`` (then ``layer`` is required, and ``encoder`` may give its
    encoder rows; with ``model``, a model or its name, it is recorded as fitted on it). With ``model`` /
    ``layer``, a dictionary fitted on another model or layer is refused in one line. For an `overcomplete` SAE
    module, use `featviz.concepts.dictionary.from_overcomplete`.

    Example:
        >>> torch.save(torch.randn(16, 112), "rows.pt")
        >>> load_dictionary("rows.pt", model, layer="blocks.4.0.conv_pwl").concepts
        16
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise FeatvizError(f"dictionary file '{path}' {what}; learn one with `featviz dictionary MODEL --layer L ...`")
    if model is not None and not isinstance(model, nn.Module):
        model = load_model(model)  # a name
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is one user-facing line
        raise FeatvizError(f"'{path}' is not a dictionary file ({type(error).__name__}); give a file written by "
                           "`featviz dictionary` or a torch.save'd (concepts, dim) tensor") from None
    if isinstance(saved, Tensor):
        if layer is None:
            raise FeatvizError(f"'{path}' holds a plain tensor; say which layer its rows live in (layer=...)")
        fitted = {} if model is None else {"model_name": getattr(model, "name", ""),
                                           "fingerprint": weights_fingerprint(model)}
        return Dictionary(saved, layer=layer, encoder=encoder, **fitted)
    if not isinstance(saved, dict) or saved.get("format") != DICTIONARY_FORMAT or "decoder" not in saved:
        raise FeatvizError(f"'{path}' is not a dictionary file; give a file written by `featviz dictionary`")
    settings = {key: saved[key] for key in ("encoder", "encoder_bias", "mean", "scale", "threshold", "top_k", "layer",
                                            "model_name", "fingerprint", "layout", "normalization", "method",
                                            "metrics") if key in saved}
    dictionary = Dictionary(saved["decoder"], name=path.stem, **settings)
    if model is not None or layer is not None:
        dictionary.check_model(model, layer)
    return dictionary


class DictionaryFeature(Objective):
    """Feature ``index`` of ``dictionary``: its pre-activation in the layer, averaged over positions or, with
    ``point``, at one position (``x`` column, ``y`` row; None = the centre); built by `dictionary_feature`.

    Example:
        >>> DictionaryFeature(Dictionary(torch.eye(4), layer="conv", name="eye"), 2).name
        'eye:2'
    """

    def __init__(self, dictionary: Dictionary, index: int, point: bool = False, x: int | None = None,
                 y: int | None = None) -> None:
        if not isinstance(dictionary, Dictionary):
            raise FeatvizError(f"dictionary_feature needs a featviz Dictionary (load_dictionary), not "
                               f"{type(dictionary).__name__}")
        index = check_int(index, "feature", 0)
        if index >= dictionary.concepts:
            raise FeatvizError(
                f"feature {index} is out of range for dictionary '{dictionary.name}' with {dictionary.concepts} "
                f"features; valid: 0-{dictionary.concepts - 1}"
            )
        self.x = check_int(x, "feature x", 0, allow_none=True)
        self.y = check_int(y, "feature y", 0, allow_none=True)
        where = f"@{'center' if x is None else x},{'center' if y is None else y}" if point else ""
        super().__init__((dictionary.layer,), f"{dictionary.name}:{index}{where}")
        self.dictionary = dictionary
        self.index = index
        self.point = point

    def __call__(self, acts: Activations) -> Tensor:
        activation = read(acts, self.dictionary.layer)
        if self.point:
            height, width = activation.shape[-2:]
            activation = activation[:, :, height // 2 if self.y is None else self.y, width // 2 if self.x is None
                                    else self.x]
        else:
            activation = activation.movedim(1, -1)
        dictionary = self.dictionary
        normalized = (activation - dictionary.mean.to(activation)) / dictionary.scale.to(activation)
        pre = normalized @ dictionary.encoder[self.index].to(activation) + dictionary.encoder_bias[self.index].to(
            activation)
        return pre if self.point else pre.mean((-2, -1))

    def bind(self, model: Any, shapes: Shapes) -> None:
        self.dictionary.check_model(model)
        shape = layer_shape(model, shapes, self.dictionary.layer)
        if shape is None:
            return
        self.dictionary._check_channels(shape[1])
        if self.point:
            check_position(self.x, self.y, self.dictionary.layer, shape)


def dictionary_feature(
    dictionary: Dictionary | str | os.PathLike, index: int, x: int | None = None, y: int | None = None,
    *, point: bool | None = None,
) -> Objective:
    """Maximize feature ``index`` of ``dictionary`` (a `Dictionary` or the path of a saved one): its differentiable
    encoder pre-activation, averaged over the layer's positions, or at column ``x``, row ``y`` when either is
    given (``point=True`` alone: the centre). A render checks that the model is the one it was fitted on.

    Example:
        >>> dictionary = Dictionary(torch.randn(8, 112), layer="blocks.4.0.conv_pwl", name="d")
        >>> goal = dictionary_feature(dictionary, 3)
        >>> goal.name, goal({"blocks.4.0.conv_pwl": torch.rand(2, 112, 4, 4)}).shape
        ('d:3', torch.Size([2]))
    """
    if not isinstance(dictionary, Dictionary):
        dictionary = load_dictionary(dictionary)
    if point is None:
        point = x is not None or y is not None
    return DictionaryFeature(dictionary, index, point, x, y)


_LOADED: dict[tuple[str, int], Dictionary] = {}


@register_shorthand("DICT.pt:F", _SHORTHAND.pattern, first=True)
def _from_shorthand(match: re.Match) -> list[Objective]:
    path = Path(match["path"]).expanduser()
    stamp = path.stat().st_mtime_ns if path.is_file() else -1
    key = (str(path.resolve()), stamp)
    if key not in _LOADED:
        _LOADED[key] = load_dictionary(path)
    dictionary = _LOADED[key]
    first = int(match["first"])
    last = int(match["last"]) if match["last"] is not None else first
    if last < first:
        raise FeatvizError(f"malformed objective '{match[0]}': feature range {first}-{last} runs backwards; "
                           f"write {match['path']}:{last}-{first}")
    point = match["x"] is not None
    x, y = (int(match["x"]), int(match["y"])) if point else (None, None)
    return [DictionaryFeature(dictionary, index, point, x, y) for index in range(first, last + 1)]


__all__ = ["Dictionary", "DictionaryFeature", "dictionary_feature", "load_dictionary"]
