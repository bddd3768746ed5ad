"""`RenderSettings`: the options every render shares (steps, size, seed, parameterization, transforms, optimizer,
learning rate, precision, device, progress), in one value that recipes, the gallery and the CLI pass along."""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

from featviz import optim
from featviz.errors import FeatvizError, check_int
from featviz.param.arguments import check_size

OptimizerFactory = Callable[[Iterable[torch.Tensor]], torch.optim.Optimizer]
OPTIMIZERS = ("adam", "clampsgd")
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class RenderSettings:
    """How to render: ``steps``, ``size`` (pixels, an int or ``(height, width)``; None: the model's input
    size), ``seed`` (image i uses ``seed + i``), ``param`` (a parameterization kind; None: "fft"),
    ``transforms`` (a preset name, a list of transforms or a callable; None: "standard"), ``optimizer``
    ("adam" or "clampsgd") at learning rate ``lr`` (None: the parameterization's), ``precision`` of the
    network ("fp32", "bf16" or "fp16" autocast), ``device`` (None: the model's) and ``progress`` (show
    progress bars). Each recipe has its own defaults; ``settings.replace(steps=64)`` changes some fields, and
    the CLI builds one from its common options (`featviz.cli.common.render_settings`).

    Example:
        >>> settings = RenderSettings(steps=64, size=96)
        >>> settings.replace(seed=3).seed, settings.render_options()["steps"]
        (3, 64)
        >>> RenderSettings(steps=0)
        Traceback (most recent call last):
        featviz.errors.FeatvizError: steps must be an int >= 1, not 0
    """

    steps: int = 512
    size: int | tuple[int, int] | None = None
    seed: int = 0
    param: str | None = None
    transforms: Any = None
    optimizer: str = "adam"
    lr: float | None = None
    precision: str = "fp32"
    device: str | torch.device | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", check_int(self.steps, "steps", 1))
        object.__setattr__(self, "seed", check_int(self.seed, "seed", 0))
        if self.size is not None:
            height, width = check_size(self.size)
            object.__setattr__(self, "size", height if height == width else (height, width))
        if self.param is not None and not isinstance(self.param, str):
            kind = "a module" if isinstance(self.param, nn.Module) else type(self.param).__name__
            raise FeatvizError(f"param must be a parameterization kind such as 'fft' or 'pixel', not {kind}")
        if self.optimizer not in OPTIMIZERS:
            raise FeatvizError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}")
        if self.lr is not None and (isinstance(self.lr, bool) or not isinstance(self.lr, (int, float))
                                    or not (math.isfinite(self.lr) and self.lr > 0)):
            raise FeatvizError(f"lr must be a finite number above 0 (e.g. 0.05) or None, got {self.lr!r}")
        if self.precision not in PRECISIONS:
            raise FeatvizError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if not isinstance(self.progress, bool):
            raise FeatvizError(f"progress must be True or False, not {self.progress!r}")

    def replace(self, **changes: Any) -> RenderSettings:
        """A copy with ``changes`` (field name -> value); an unknown name raises FeatvizError naming the fields.

        Example:
            >>> RenderSettings().replace(steps=8, precision="bf16").precision
            'bf16'
        """
        names = [item.name for item in dataclasses.fields(self)]
        for name in changes:
            if name not in names:
                raise FeatvizError(f"unknown render setting '{name}'; valid: {', '.join(names)}")
        return dataclasses.replace(self, **changes) if changes else self

    @property
    def autocast(self) -> torch.dtype | None:
        """The autocast dtype of ``precision`` (None for fp32), as `Renderer` takes it."""
        return PRECISIONS[self.precision]

    def optimizer_factory(self) -> OptimizerFactory | None:
        """A factory for ``optimizer`` at ``lr``, or None for the renderer's default (Adam at the
        parameterization's learning rate). ClampSGD's noise is seeded by ``seed``.

        Example:
            >>> RenderSettings().optimizer_factory() is None
            True
        """
        if self.optimizer == "clampsgd":
            generator = torch.Generator().manual_seed(self.seed)
            return functools.partial(optim.ClampSGD, lr=self.lr if self.lr is not None else 0.01, generator=generator)
        if self.lr is not None:
            return functools.partial(torch.optim.Adam, lr=self.lr)
        return None

    def render_options(self) -> dict[str, Any]:
        """The keyword arguments of `Renderer.render` these settings fix: param, transforms, optimizer, steps,
        seed, size and progress.

        Example:
            >>> sorted(RenderSettings().render_options())
            ['optimizer', 'param', 'progress', 'seed', 'size', 'steps', 'transforms']
        """
        return {
            "param": self.param, "transforms": self.transforms, "optimizer": self.optimizer_factory(),
            "steps": self.steps, "seed": self.seed, "size": self.size, "progress": self.progress,
        }

    def renderer_options(self) -> dict[str, Any]:
        """The keyword arguments of `Renderer` these settings fix: device and autocast.

        Example:
            >>> RenderSettings(precision="bf16").renderer_options()
            {'device': None, 'autocast': torch.bfloat16}
        """
        return {"device": self.device, "autocast": self.autocast}


def settings_from(
    settings: RenderSettings | None, default: RenderSettings, changes: Mapping[str, Any] | None = None, *,
    owner: str = "the recipe",
) -> RenderSettings:
    """``settings`` (or a recipe's ``default`` when None) with ``changes`` applied: how a recipe reads its
    ``settings=`` argument and the fields it was given as keywords (``steps=64`` is short for
    ``settings=default.replace(steps=64)``). A keyword that is no render setting raises FeatvizError naming
    ``owner`` and the valid ones.

    Example:
        >>> settings_from(None, RenderSettings(steps=256, size=80), {"steps": 8}).size
        80
        >>> settings_from(None, RenderSettings(), {"step": 8}, owner="activation_atlas")
        Traceback (most recent call last):
        featviz.errors.FeatvizError: activation_atlas() got an unexpected keyword 'step'; render settings are steps, size, seed, param, transforms, optimizer, lr, precision, device, progress
    """
    base = default if settings is None else settings
    if not isinstance(base, RenderSettings):
        raise FeatvizError(f"settings must be a RenderSettings, not {type(base).__name__}")
    names = [item.name for item in dataclasses.fields(RenderSettings)]
    for name in changes or {}:
        if name not in names:
            raise FeatvizError(
                f"{owner}() got an unexpected keyword '{name}'; render settings are {', '.join(names)}"
            )
    return dataclasses.replace(base, **changes) if changes else base


__all__ = ["RenderSettings", "OPTIMIZERS", "PRECISIONS", "settings_from"]
