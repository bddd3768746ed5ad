"""The optimization loop: parameterization -> transforms -> model (hooked) -> objective -> optimizer."""
from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from featviz import param as param_module
from featviz import transforms as transforms_module
from featviz.errors import FeatvizError
from featviz.hooks import IMAGE, ActivationCapture, RedirectedReLU
from featviz.models import Model, load_model
from featviz.models.fold import fold_batchnorm as fold_batchnorm_layers
from featviz.objectives import Objective
from featviz.objectives.binding import ObjectiveLike, bind_objective, parse_objectives
from featviz.render.image import grid, save_png, save_pngs, to_numpy, to_pil

OptimizerFactory = Callable[[Iterable[torch.Tensor]], torch.optim.Optimizer]


class NonFiniteObjectiveError(FeatvizError):
    """The objective became NaN or infinite during a render; nothing was saved."""


@dataclass
class RenderResult:
    """What `render` returns: the final images, the objective's value per step, and snapshots.

    `images` is (B, C, H, W) on the CPU with values in [0, 1] (C + 1 channels with an alpha channel);
    `history` is (steps, B): each image's objective value at each step (averaged over its views);
    `snapshots` maps each requested threshold step to the images at that step.

    Example:
        >>> result = featviz.render(model, "blocks.4.0.conv_pwl:3", steps=128)
        >>> result.save("channel3.png")
    """

    images: torch.Tensor
    history: torch.Tensor
    objectives: list[str]
    seed: int
    steps: int
    seconds: float
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)

    def to_pil(self) -> list:
        """The images as PIL images."""
        return to_pil(self.images)

    def to_numpy(self):
        """The images as a uint8 array (B, H, W, C)."""
        return to_numpy(self.images)

    def metadata(self, index: int) -> dict[str, str]:
        """Text stored in the PNG of image `index`: objective, steps, seed, final objective value."""
        return {
            "featviz:objective": self.objectives[index % len(self.objectives)],
            "featviz:steps": str(self.steps),
            "featviz:seed": str(self.seed + index),
            "featviz:value": f"{float(self.history[-1, index]):.6g}" if len(self.history) else "",
        }

    def save(self, path: str | os.PathLike, grid_columns: int | None = None) -> list[Path]:
        """Save the render: one image -> `path`; several -> one grid PNG at `path` when it ends in `.png`,
        otherwise one PNG per image inside the folder `path`. Returns the written paths.

        Example:
            >>> result.save("out/")        # out/0-blocks.4.0.conv_pwl-3.png, ...
        """
        path = Path(path)
        if path.suffix.lower() == ".png":
            if len(self.images) == 1:
                return [save_png(self.images[0], path, self.metadata(0))]
            meta = {"featviz:objectives": " | ".join(self.objectives), "featviz:steps": str(self.steps), "featviz:seed": str(self.seed)}
            return [save_png(grid(self.images, grid_columns), path, meta)]
        names = [f"{index}-{_file_stem(self.objectives[index % len(self.objectives)])}.png" for index in range(len(self.images))]
        return save_pngs(self.images, [path / name for name in names], [self.metadata(i) for i in range(len(self.images))])


def _file_stem(text: str) -> str:
    stem = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in text)
    return stem.strip("-")[:100] or "objective"


def render(
    model: Model | str,
    objective: ObjectiveLike | Sequence[ObjectiveLike],
    param: nn.Module | str | None = None,
    transforms: Callable | str | Sequence[Callable] | None = None,
    optimizer: OptimizerFactory | None = None,
    steps: int = 512,
    thresholds: Sequence[int] | None = None,
    seed: int | None = None,
    device: str | torch.device | None = None,
    *,
    size: int | Sequence[int] | None = None,
    batch: int | None = None,
    redirect_relu_steps: int = 16,
    progress: bool = True,
    autocast: torch.dtype | None = None,
    channels_last: bool | None = None,
    fold_batchnorm: bool = True,
) -> RenderResult:
    """Optimize images so that `objective` is as high as possible and return them.

    `objective` is an Objective, a shorthand string ("layer:channel", "layer:channel@x,y", "class:label"),
    or a list of them: N objectives render at once, one per batch element, each exactly as it would alone.
    `param` is a parameterization module or kind ("fft" default, "pixel", "cppn", "maco"); `transforms` a
    preset name ("standard" default), a `featviz.transforms.Compose`, or a list of transforms; `optimizer`
    a callable taking the parameters (default Adam at the parameterization's `default_lr`, 0.05 for
    Fourier). Element i of a batch uses seed `seed + i`. Dead ReLUs get redirected gradients for the first
    `redirect_relu_steps` steps. A non-finite objective stops the render with an error naming the step.
    `autocast=torch.bfloat16` runs the network in bfloat16 autocast (the image, its parameters and the
    optimizer stay float32); `channels_last` switches the network and its inputs to channels-last memory (default:
    on the CPU, where it is the second largest speed-up, and off on a GPU, where it measured slower)
    (see benchmarks/RESULTS.md for when each pays off). `fold_batchnorm` renders through a copy of the
    network whose frozen BatchNorm layers are folded into the convolutions before them (same values, faster).

    Example:
        >>> model = featviz.load_model("efficientnet_lite0")
        >>> result = featviz.render(model, "blocks.4.0.conv_pwl:3", steps=256, seed=0)
        >>> result.save("channel3.png")
    """
    if steps < 1:
        raise FeatvizError(f"steps must be at least 1, got {steps}")
    model = load_model(model) if isinstance(model, str) else model
    device = torch.device(device) if device is not None else model.device
    if model.device != device:
        model.to(device)
    goals = parse_objectives(objective)
    if len(goals) > 1 and batch not in (None, len(goals)):
        raise FeatvizError(f"{len(goals)} objectives render one per image, so batch must be {len(goals)} (got {batch})")
    seed = secrets.randbelow(2**31) if seed is None else int(seed)

    if isinstance(param, nn.Module):
        image_param = param.to(device)
    else:
        count = len(goals) if len(goals) > 1 else (batch or 1)
        image_param = param_module.create(
            param or "fft", size if size is not None else model.input_size,
            batch=count, channels=model.channels, seed=seed, device=device,
        )
    with torch.no_grad():
        first_images = image_param()
    count = first_images.shape[0]
    if len(goals) > 1 and count != len(goals):
        raise FeatvizError(f"the parameterization holds {count} images but {len(goals)} objectives were given; use batch={len(goals)}")
    has_alpha = first_images.shape[1] == model.channels + 1
    if first_images.shape[1] not in (model.channels, model.channels + 1):
        raise FeatvizError(
            f"the parameterization makes {first_images.shape[1]}-channel images but {model.name} takes {model.channels}; "
            f"create it with channels={model.channels}"
        )

    # Binding checks layers, channels and labels; models that take one input size only (ViTs) are bound at
    # that size, and the transforms then resample every view to it.
    bound = bind_objective(model, goals, size=tuple(first_images.shape[-2:]))
    target = bound.target
    network = fold_batchnorm_layers(model, keep=target.layers) if fold_batchnorm else model
    augment = transforms_module.resolve(transforms, output_size=bound.size)
    views = int(getattr(augment, "views", 1))
    source = transforms_module.RandomSource([seed + index for index in range(count)], device=device)

    parameters = [p for p in image_param.parameters() if p.requires_grad]
    if optimizer is None:
        learning_rate = float(getattr(image_param, "default_lr", 0.05))
        optim = torch.optim.Adam(parameters, lr=learning_rate)
    else:
        optim = optimizer(parameters)

    wanted = sorted({int(t) for t in (thresholds or ()) if 1 <= int(t) <= steps})
    snapshots: dict[int, torch.Tensor] = {}
    history = torch.empty(steps, count, device=device)
    needs_image = IMAGE in target.layers
    if channels_last is None:
        channels_last = device.type == "cpu"
    if channels_last:
        network.to(memory_format=torch.channels_last)
    precision = torch.autocast(device.type, dtype=autocast) if autocast is not None else contextlib.nullcontext()
    started = time.perf_counter()
    bar = tqdm(total=steps, disable=not progress, desc=_progress_label(goals), unit="step", leave=False)
    try:
        with ActivationCapture(network, target.layers) as capture:
            for step in range(steps):
                redirect = RedirectedReLU() if step < redirect_relu_steps else contextlib.nullcontext()
                with redirect:
                    images = image_param()
                    visible = images
                    if has_alpha:
                        background = source.uniform(model.channels, 0.0, 1.0).view(count, model.channels, 1, 1)
                        visible = param_module.composite(images, background.to(images.dtype))
                    views_batch = augment(visible, source)
                    if channels_last:
                        views_batch = views_batch.contiguous(memory_format=torch.channels_last)
                    with precision:
                        activations = capture.run(views_batch)
                    if needs_image:
                        activations[IMAGE] = images.repeat(views, 1, 1, 1) if views > 1 else images
                    if autocast is not None:
                        activations = {name: value.float() for name, value in activations.items()}
                    values = target(activations).view(views, count).mean(0)
                loss = -values.sum()
                if not torch.isfinite(loss):
                    raise NonFiniteObjectiveError(
                        f"the objective became non-finite at step {step + 1} of {steps}; lower the learning rate or add a penalty"
                    )
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()
                history[step] = values.detach()
                if wanted and step + 1 in wanted:
                    with torch.no_grad():
                        snapshots[step + 1] = image_param().detach().float().cpu()
                bar.update(1)
                if step % 16 == 0 or step == steps - 1:
                    bar.set_postfix(objective=f"{float(values.detach().mean()):.4g}", refresh=False)
    finally:
        bar.close()
    with torch.no_grad():
        final = image_param().detach().float().cpu()
    if not torch.isfinite(final).all():
        raise NonFiniteObjectiveError(f"the image became non-finite by step {steps}; lower the learning rate")
    return RenderResult(
        images=final, history=history.cpu(), objectives=[goal.name for goal in goals], seed=seed, steps=steps,
        seconds=time.perf_counter() - started, snapshots=snapshots,
    )


def _progress_label(goals: list[Objective]) -> str:
    label = goals[0].name if len(goals) == 1 else f"{len(goals)} objectives"
    return label if len(label) <= 40 else label[:37] + "..."
