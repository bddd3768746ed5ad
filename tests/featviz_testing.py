"""Tiny random-init models shared by the tests."""
import torch
from torch import nn

from featviz.models import load_model


class CallCounter(nn.Module):
    """Wraps a module and counts how often its forward ran."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def tiny_convnet(in_channels: int = 3, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, stride=2),
        nn.ReLU(),
        CallCounter(nn.Conv2d(8, 6, 3, padding=1)),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 5),
    )


def tiny_model(in_channels: int = 3, size: int = 32, seed: int = 0):
    labels = ["cat", "dog", "golden retriever", "tench", "palace"]
    return load_model(tiny_convnet(in_channels, seed), input_size=(size, size), labels=labels)
