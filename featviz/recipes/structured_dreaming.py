"""Text-guided generation, the recipe of Structured Dreaming (CLIP x StyleGAN2 with ClampSGD), on featviz's renderer.

Every step shows the model many random views of the image (the ``"dream"`` transforms preset: crops of half to all
of the canvas resized to the model's input, flips, perspective, downsampling, cutout, noise) and raises the
objective averaged over them, so the image has to match the prompt at every scale and position. The image is
a canvas larger than the model's input (a Fourier or MACO parameterization) or a generator's output
(``featviz.param.Generator``).
"""
from __future__ import annotations

import inspect
import math
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from featviz import objectives
from featviz import param as param_module
from featviz import transforms
from featviz.errors import FeatvizError, check_int
from featviz.models import Model
from featviz.objectives import Objective
from featviz.objectives.binding import ObjectiveLike, parse_objectives
from featviz.optim import ClampSGD
from featviz.param.arguments import check_size
from featviz.renderer import Renderer, RenderResult

OPTIMIZERS = ("adam", "clampsgd")
DEFAULT_SIZE = 448
# ClampSGD's learning rate is this fraction of the parameterization's Adam `default_lr`: 0.02 for Fourier and
# 0.04 for MACO (measured best: 0.02 of 0.005-0.05 for Fourier, 0.05 of 0.01-0.1 for MACO; benchmarks/RESULTS.md,
# "Dream"), 2e-4 for a generator's weights (Structured Dreaming's rate for StyleGAN2).
CLAMP_SGD_LR_RATIO = 0.4


__all__ = ["dream"]


def dream(
    model: Model | nn.Module | str,
    prompt_or_objective: str | ObjectiveLike | Sequence[str | ObjectiveLike],
    *,
    size: int | Sequence[int] | None = None,
    steps: int = 400,
    views: int = 16,
    param: str | nn.Module = "fft",
    optimizer: str = "adam",
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> RenderResult:
    """Generate an image whose embedding by ``model`` matches a text prompt (or that raises any objective).

    ``prompt_or_objective``: a string is a prompt, maximized as ``featviz.objectives.text(prompt)`` (CLIP models,
    and ImageNet models through their text tower); an Objective, a function ``f(T)`` or a list (one image each)
    is used as is.
    ``param`` is a parameterization kind (``"fft"`` default, ``"maco"``...) drawn on a ``size`` canvas
    (default 448, larger than the model's input), or a parameterization module such as
    ``featviz.param.Generator`` (it brings its own size and batch). Each step averages the objective over
    ``views`` random views (the ``"dream"`` transforms preset). ``optimizer`` is ``"adam"`` (default: it climbs
    faster on canvases) or ``"clampsgd"`` (Structured Dreaming's sign-like SGD with dropout 0.8, its dropout
    seeded by ``seed``, made for tuning a generator's weights); ``lr`` defaults to the parameterization's
    ``default_lr`` for Adam and 0.4 times it for ClampSGD. ``device`` defaults to the model's; ``progress`` shows
    a progress bar.

    Example:
        >>> result = dream("open_clip:featviz-tiny-ViT", "a red cube on a beach", size=64, steps=2, views=2, seed=1,
        ...                progress=False)                  # a tiny random CLIP, to try the recipe
        >>> result.history.shape                            # (steps, images): the cosine similarity
        torch.Size([2, 1])

        With CLIP's weights (downloaded once into the hub cache, or ``weights=PATH``):

        >>> result = dream("open_clip:ViT-B-32/openai", "a red cube on a beach", steps=300, seed=1)  # doctest: +SKIP
        >>> result.save("cube.png")  # doctest: +SKIP
    """
    steps = check_int(steps, "steps", 1)
    views = check_int(views, "views", 1)
    seed = check_int(seed, "seed", 0)
    if optimizer not in OPTIMIZERS:
        raise FeatvizError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {optimizer!r}")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float))
                           or not math.isfinite(lr) or lr <= 0):
        raise FeatvizError(f"lr must be a finite number above 0 (or None for the default), not {lr!r}")
    goals = _objectives(prompt_or_objective)
    renderer = Renderer(model, device=device)
    image = _parameterization(param, size, renderer, count=len(goals), seed=seed)
    augment = transforms.create("dream", renderer.model.input_size, views=views)
    factory = _optimizer(optimizer, lr if lr is not None else _default_lr(image, optimizer), seed)
    return renderer.render(goals, param=image, transforms=augment, optimizer=factory, steps=steps, seed=seed,
                           progress=progress)


def _objectives(prompt_or_objective: str | ObjectiveLike | Sequence[str | ObjectiveLike]) -> list[Objective]:
    """The objectives to render: every string is a prompt; the rest is read as `featviz.render` reads it."""
    items = list(prompt_or_objective) if isinstance(prompt_or_objective, (list, tuple)) else [prompt_or_objective]
    if not items:
        raise FeatvizError("no prompt given; pass a prompt such as 'a lighthouse at dusk' or an objective")
    for item in items:
        if isinstance(item, str) and not item.strip():
            raise FeatvizError("the prompt is empty; describe the image, e.g. 'a lighthouse at dusk'")
    return parse_objectives([objectives.text(item) if isinstance(item, str) else item for item in items])


def _parameterization(param: str | nn.Module, size: int | Sequence[int] | None, renderer: Renderer, *,
                      count: int, seed: int) -> nn.Module:
    if isinstance(param, str):
        canvas = check_size(DEFAULT_SIZE if size is None else size)
        return param_module.create(param, canvas, batch=count, channels=renderer.model.channels, seed=seed,
                                   device=renderer.device)
    if not isinstance(param, nn.Module):
        raise FeatvizError(f"param must be a parameterization kind ({', '.join(param_module.registered_kinds())}) or "
                           f"a parameterization module, not {type(param).__name__}")
    if _needs_input(param):
        raise FeatvizError(f"{type(param).__name__} takes an input, so it is a generator rather than a "
                           "parameterization; wrap it: param=featviz.param.Generator(size, generator=network, "
                           "latent_shape=...)")
    if size is not None:
        raise FeatvizError("size is for a parameterization kind; a parameterization module has its own size, "
                           "so leave size out")
    return param


def _needs_input(module: nn.Module) -> bool:
    try:
        parameters = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(parameter.default is parameter.empty
               and parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
               for parameter in parameters)


def _default_lr(image: nn.Module, optimizer: str) -> float:
    adam_lr = float(getattr(image, "default_lr", 0.05))
    return adam_lr * CLAMP_SGD_LR_RATIO if optimizer == "clampsgd" else adam_lr


def _optimizer(name: str, lr: float, seed: int) -> Callable[[Iterable[torch.Tensor]], torch.optim.Optimizer]:
    if name == "clampsgd":
        dropout = torch.Generator().manual_seed(seed)
        return lambda parameters: ClampSGD(parameters, lr=lr, generator=dropout)
    return lambda parameters: torch.optim.Adam(parameters, lr=lr)
