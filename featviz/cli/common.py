"""Arguments and checks shared by the subcommands."""
from __future__ import annotations

import argparse

import torch

from featviz.errors import FeatvizError


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """MODEL positional plus --weights and --device."""
    parser.add_argument("model", help="efficientnet_lite0, timm:NAME, torchvision:NAME or open_clip:ARCH/PRETRAINED")
    parser.add_argument("--weights", default=None, help="local checkpoint PATH, or 'random' for random init (default: the model's pretrained weights)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps (default: cpu)")


def resolve_device(name: str) -> torch.device:
    """A torch.device for `name`, or a FeatvizError when it is malformed or not available here."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise FeatvizError(f"unknown device '{name}'; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FeatvizError(f"device '{name}' is not available (no CUDA GPU found); use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise FeatvizError(f"device '{name}' does not exist; valid: cuda:0-cuda:{torch.cuda.device_count() - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise FeatvizError(f"device '{name}' is not available; use --device cpu")
    return device
