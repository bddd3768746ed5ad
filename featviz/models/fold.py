"""Folding frozen BatchNorm layers into the convolutions before them, for faster renders.

A render never trains the network, so each BatchNorm that directly follows a convolution is a fixed
per-channel affine map: it can be folded into the convolution's weights and bias, and its own forward and
backward passes disappear (about a sixth of a step's time on EfficientNet-Lite0). Every layer keeps its name
and its output values; a convolution whose own output an objective reads is left unfolded, since folding would
change what that layer outputs. The folded copy is checked against the original network on a random input and
discarded if anything differs.
"""
from __future__ import annotations

import copy
from typing import Iterable

import torch
from torch import nn

from featviz.hooks.capture import OUTPUT, RESERVED, ActivationCapture
from featviz.hooks.dataflow import feeding_layers


class _DropAct(nn.Module):
    """What remains of timm's BatchNormAct2d once its normalization is folded away: dropout, then activation."""

    def __init__(self, drop: nn.Module, act: nn.Module):
        super().__init__()
        self.drop = drop
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(x))


def _remainder(batchnorm: nn.Module) -> nn.Module | None:
    if type(batchnorm) is nn.BatchNorm2d:
        return nn.Identity()
    if isinstance(batchnorm, nn.BatchNorm2d) and isinstance(getattr(batchnorm, "act", None), nn.Module) and isinstance(getattr(batchnorm, "drop", None), nn.Module):
        return _DropAct(batchnorm.drop, batchnorm.act)
    return None


def conv_batchnorm_pairs(network: nn.Module, sample: torch.Tensor) -> list[tuple[str, str]]:
    """(convolution, batchnorm) name pairs of ``network`` where the batchnorm's input is exactly the convolution's
    output, found in one forward pass of ``sample``.

    Example:
        >>> conv_batchnorm_pairs(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), torch.rand(1, 3, 8, 8))
        [('0', '1')]
    """
    batchnorms = [name for name, module in network.named_modules() if isinstance(module, nn.BatchNorm2d)]
    found = feeding_layers(network, sample, batchnorms, lambda module: isinstance(module, nn.Conv2d))
    pairs = [(conv, batchnorm) for conv, batchnorm in found if conv is not None]
    used = [batchnorm for _, batchnorm in pairs]
    return [pair for pair in pairs if used.count(pair[1]) == 1]


def fold_batchnorm(model: nn.Module, keep: Iterable[str] = ()) -> nn.Module:
    """A copy of a featviz Model whose BatchNorm layers are folded into the convolutions before them.

    Convolutions named in `keep` (the layers an objective reads) are not folded. Returns `model` itself when
    nothing can be folded or when the folded copy does not reproduce the original's outputs.

    Example:
        >>> fast = fold_batchnorm(model, keep=["blocks.4.0.conv_pwl"])      # a copy: model stays as it is
        >>> type(fast.get_layer("blocks.4.0.bn1")).__name__, type(fast.get_layer("blocks.4.0.bn3")).__name__
        ('_DropAct', 'BatchNormAct2d')
    """

    network = model.network
    if not any(isinstance(module, nn.BatchNorm2d) for module in network.modules()):
        return model
    keep = set(keep)
    height, width = model.input_size
    sample = torch.rand(2, model.channels, height, width, generator=torch.Generator().manual_seed(0))
    sample = sample.to(model.device, model.dtype)
    try:
        pairs = conv_batchnorm_pairs(network, sample[:1])
    except Exception:  # noqa: BLE001 - a model that cannot run this probe is simply not folded
        return model
    pairs = [(conv, batchnorm) for conv, batchnorm in pairs if conv not in keep]
    if not pairs:
        return model
    folded = copy.deepcopy(network)
    with torch.no_grad():
        for conv_name, batchnorm_name in pairs:
            conv = folded.get_submodule(conv_name)
            batchnorm = folded.get_submodule(batchnorm_name)
            remainder = _remainder(batchnorm)
            if remainder is None or batchnorm.running_mean is None:
                continue
            scale = torch.rsqrt(batchnorm.running_var + batchnorm.eps)
            if batchnorm.weight is not None:
                scale = scale * batchnorm.weight
            shift = -batchnorm.running_mean * scale
            if batchnorm.bias is not None:
                shift = shift + batchnorm.bias
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            if conv.bias is None:
                conv.bias = nn.Parameter(shift.clone(), requires_grad=False)
            else:
                conv.bias.mul_(scale).add_(shift)
            parent_name, _, child = batchnorm_name.rpartition(".")
            setattr(folded.get_submodule(parent_name) if parent_name else folded, child, remainder)
    result = model.with_network(folded)
    if not _same_outputs(model, result, sample, keep):
        return model
    return result


def _same_outputs(original: nn.Module, folded: nn.Module, sample: torch.Tensor, layers: set[str]) -> bool:
    names = sorted(layers - RESERVED) + [OUTPUT]
    with torch.no_grad():
        with ActivationCapture(original, names) as capture:
            expected = dict(capture.run(sample))
        with ActivationCapture(folded, names) as capture:
            actual = capture.run(sample)
    for name, value in expected.items():
        tolerance = 1e-3 * float(value.abs().max()) + 1e-5
        if (actual[name] - value).abs().max() > tolerance:
            return False
    return True
