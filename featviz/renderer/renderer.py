"""The optimization loop: parameterization -> transforms -> model (hooked) -> objective -> optimizer.

A `Renderer` prepares a model once (its own copy on the device, frozen BatchNorm folded into the convolutions,
channels-last memory) and then renders any number of objective sets; `render` is one renderer used once. The
caller's model is never changed.
"""
from __future__ import annotations

import contextlib
import copy
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from featviz import param as param_module
from featviz import transforms as transforms_module
from featviz.errors import FeatvizError, check_int
from featviz.hooks import IMAGE, RESERVED, ActivationCapture, RedirectedReLU, survey_model
from featviz.models import Model, load_model
from featviz.models.fold import fold_batchnorm as fold_batchnorm_layers
from featviz.objectives import Objective
from featviz.param.arguments import check_size
from featviz.objectives.binding import ObjectiveLike, bind_objective, parse_objectives
from featviz.hooks.memory import check_render_memory
from featviz.renderer.result import RenderResult

OptimizerFactory = Callable[[Iterable[torch.Tensor]], torch.optim.Optimizer]
AUTOCAST_DTYPES = (torch.bfloat16, torch.float16)


class NonFiniteObjectiveError(FeatvizError):
    """The objective became NaN or infinite during a render; nothing was saved."""


@dataclass
class _Run:
    """One render as `Renderer.render` prepared it for the optimization loop: the network and the bound
    objectives, the image, the transforms with their random source, the optimizer, the steps (and those
    whose images are kept, ``wanted``), the images' count and views, and the loop's switches."""

    network: Model
    bound: Any
    image_param: nn.Module
    augment: Callable
    source: Any
    optim: torch.optim.Optimizer
    steps: int
    wanted: list[int]
    seed: int
    count: int
    views: int
    has_alpha: bool
    redirect_relu_steps: int
    progress: bool
    goals: list[Objective]
    importance: bool


class Renderer:
    """A model prepared once for rendering: then `render` any number of objective sets with it.

    The model (a registered name, a featviz `Model` or any ``nn.Module``) is copied onto ``device`` (default:
    the model's); the copy's frozen BatchNorm layers are folded into the convolutions before them (same values,
    faster; per set of layers the objectives read, prepared once and kept) and it uses channels-last memory
    (default, ``channels_last=None``: on the CPU, where it is faster, and off on a GPU, where it measured
    slower). ``fold_batchnorm=False`` keeps the BatchNorm layers as they are. ``autocast`` (e.g.
    ``torch.bfloat16``) runs the network in that precision; images, their parameters and the optimizer stay
    float32. The caller's model is never changed.

    Example:
        >>> renderer = featviz.Renderer(model)          # or featviz.Renderer("efficientnet_lite0")
        >>> first = renderer.render("blocks.4.0.conv_pwl:0-1", steps=2, size=64, seed=0, progress=False)  # steps=512
        >>> second = renderer.render("blocks.4.0.conv_pwl:2-3", steps=2, size=64, seed=0, progress=False)
        >>> first.images.shape, second.objectives[0]
        (torch.Size([2, 3, 64, 64]), 'blocks.4.0.conv_pwl:2')
    """

    def __init__(
        self,
        model: Model | nn.Module | str,
        *,
        device: str | torch.device | None = None,
        channels_last: bool | None = None,
        fold_batchnorm: bool = True,
        autocast: torch.dtype | None = None,
    ) -> None:
        if autocast is not None and autocast not in AUTOCAST_DTYPES:
            raise FeatvizError(f"autocast must be None, torch.bfloat16 or torch.float16, not {autocast!r}")
        for name, value in (("channels_last", channels_last), ("fold_batchnorm", fold_batchnorm)):
            if value is not None and not isinstance(value, bool):
                raise FeatvizError(f"{name} must be True or False, not {value!r}")
        prepared = load_model(model, device=device)
        if prepared is model:  # the copy's layers get folded and switched to channels-last
            prepared = copy.deepcopy(model)
        self.model: Model = prepared
        self.device: torch.device = prepared.device
        if autocast == torch.float16 and self.device.type != "cuda":
            raise FeatvizError("autocast=torch.float16 needs a CUDA device; on the CPU use torch.bfloat16 or None")
        self.autocast = autocast
        self.channels_last = self.device.type == "cpu" if channels_last is None else channels_last
        self.fold_batchnorm = fold_batchnorm
        self._networks: dict[frozenset[str], Model] = {}
        survey_model(self.model)  # once, before any copy made for folding, which then shares it

    def network_for(self, layers: Iterable[str]) -> Model:
        """The prepared network that computes ``layers`` (folded where that leaves them unchanged).

        Example:
            >>> renderer = featviz.Renderer(model)
            >>> network = renderer.network_for({"blocks.4.0.conv_pwl"})
            >>> network is renderer.network_for({"blocks.4.0.conv_pwl"})   # prepared once, then kept
            True
        """
        key = frozenset(layers) - RESERVED
        network = self._networks.get(key)
        if network is None:
            network = fold_batchnorm_layers(self.model, keep=key) if self.fold_batchnorm else self.model
            if self.channels_last:
                network.to(memory_format=torch.channels_last)
            self._networks[key] = network
        return network

    def render(
        self,
        objective: ObjectiveLike | Sequence[ObjectiveLike],
        param: nn.Module | str | None = None,
        transforms: Callable | str | Sequence[Callable] | None = None,
        optimizer: OptimizerFactory | None = None,
        steps: int = 512,
        thresholds: Sequence[int] | None = None,
        seed: int | None = None,
        *,
        size: int | Sequence[int] | None = None,
        batch: int | None = None,
        redirect_relu_steps: int = 16,
        progress: bool = True,
        importance: bool = False,
    ) -> RenderResult:
        """Optimize images so that ``objective`` is as high as possible and return them (see `featviz.render`).

        Example:
            >>> renderer = featviz.Renderer(model)
            >>> result = renderer.render("blocks.4.0.conv_pwl:3", steps=2, size=(48, 64), seed=0, progress=False)
            >>> result.images.shape, result.history.shape
            (torch.Size([1, 3, 48, 64]), torch.Size([2, 1]))
        """
        model, device = self.model, self.device
        steps = check_int(steps, "steps", 1)
        redirect_relu_steps = check_int(redirect_relu_steps, "redirect_relu_steps", 0)
        if not isinstance(importance, bool):
            raise FeatvizError(f"importance must be True or False, not {importance!r}")
        if batch is not None:
            batch = check_int(batch, "batch", 1)
        if seed is not None:
            seed = check_int(seed, "seed", 0)
        goals = parse_objectives(objective)
        if len(goals) > 1 and batch not in (None, len(goals)):
            raise FeatvizError(f"{len(goals)} objectives render one per image, so batch must be {len(goals)} (got {batch})")
        seed = secrets.randbelow(2**31) if seed is None else seed
        count = len(goals) if len(goals) > 1 else (batch or 1)

        if isinstance(param, nn.Module):
            image_param = param.to(device)  # the caller's image is the one optimized
            with torch.no_grad():
                first_images = image_param()
            count = first_images.shape[0]
            image_size = tuple(first_images.shape[-2:])
            image_channels = first_images.shape[1]
        else:
            image_size = check_size(size if size is not None else model.input_size)
            image_channels = model.channels
        if len(goals) > 1 and count != len(goals):
            raise FeatvizError(f"the parameterization holds {count} images but {len(goals)} objectives were given; use batch={len(goals)}")
        has_alpha = image_channels == model.channels + 1
        if image_channels not in (model.channels, model.channels + 1):
            raise FeatvizError(
                f"the parameterization makes {image_channels}-channel images but {model.name} takes {model.channels}; "
                f"create it with channels={model.channels}"
            )
        found = survey_model(model)
        seen_size = image_size if found.takes_other_sizes else tuple(model.input_size)
        augment = transforms_module.resolve(transforms, output_size=seen_size)
        views = int(getattr(augment, "views", 1))
        check_render_memory(
            found, image_size=image_size, network_size=seen_size, images=count, views=views,
            channels=image_channels, device=device, network_dtype=self.autocast or model.dtype,
            parameterized=not isinstance(param, nn.Module),
        )

        # Binding checks layers, channels and labels and learns each layer's layout; a model that takes one
        # input size only (a fixed-size ViT) is bound at that size, and the transforms resample every view to it.
        bound = bind_objective(model, goals, size=image_size)
        target = bound.target
        network = self.network_for(target.layers)
        if not isinstance(param, nn.Module):
            image_param = param_module.create(
                param or "fft", image_size, batch=count, channels=model.channels, seed=seed, device=device,
            )
        source = transforms_module.RandomSource([seed + index for index in range(count)], device=device)

        parameters = [p for p in image_param.parameters() if p.requires_grad]
        if optimizer is None:
            optim = torch.optim.Adam(parameters, lr=float(getattr(image_param, "default_lr", 0.05)))
        else:
            try:
                optim = optimizer(parameters)
            except (ValueError, TypeError) as error:  # torch.optim rejects a bad learning rate with ValueError
                raise FeatvizError(f"the optimizer could not be created: {error}") from None
        wanted = sorted({int(t) for t in (thresholds or ()) if 1 <= int(t) <= steps})
        return self._loop(_Run(
            network=network, bound=bound, image_param=image_param, augment=augment, source=source, optim=optim,
            steps=steps, wanted=wanted, seed=seed, count=count, views=views, has_alpha=has_alpha,
            redirect_relu_steps=redirect_relu_steps, progress=progress, goals=goals, importance=importance,
        ))

    def _loop(self, run: _Run) -> RenderResult:
        network, bound, image_param, augment, source = run.network, run.bound, run.image_param, run.augment, run.source
        optim, steps, wanted, seed, count, views = run.optim, run.steps, run.wanted, run.seed, run.count, run.views
        has_alpha, goals, importance = run.has_alpha, run.goals, run.importance
        redirect_relu_steps, progress = run.redirect_relu_steps, run.progress
        device, channels = self.device, self.model.channels
        target = bound.target
        snapshots: dict[int, torch.Tensor] = {}
        history = torch.empty(steps, count, device=device)
        needs_image = IMAGE in target.layers
        # MACO's importance: |d loss / d image| summed over the steps, on the images the parameterization returns
        accumulated = None
        precision = (
            torch.autocast(device.type, dtype=self.autocast) if self.autocast is not None else contextlib.nullcontext()
        )
        started = time.perf_counter()
        bar = tqdm(total=steps, disable=not progress, desc=_progress_label(goals), unit="step", leave=False)
        try:
            with ActivationCapture(network, target.layers, layouts=bound.layouts) as capture:
                for step in range(steps):
                    redirect = RedirectedReLU() if step < redirect_relu_steps else contextlib.nullcontext()
                    with redirect:
                        images = image_param()
                        if importance:
                            images.retain_grad()
                        visible = images
                        if has_alpha:
                            background = source.uniform(channels, 0.0, 1.0).view(count, channels, 1, 1)
                            visible = param_module.composite(images, background.to(images.dtype))
                        views_batch = augment(visible, source)
                        if self.channels_last:
                            views_batch = views_batch.contiguous(memory_format=torch.channels_last)
                        with precision:
                            activations = capture.run(views_batch)
                        if needs_image:
                            activations[IMAGE] = images.repeat(views, 1, 1, 1) if views > 1 else images
                        if self.autocast is not None:
                            activations = {name: value.float() for name, value in activations.items()}
                        values = target(activations).view(views, count).mean(0)
                    loss = -values.sum()
                    if not torch.isfinite(loss):
                        raise NonFiniteObjectiveError(
                            f"the objective became non-finite at step {step + 1} of {steps}; lower the learning rate or add a penalty"
                        )
                    optim.zero_grad(set_to_none=True)
                    loss.backward()
                    if importance:
                        gradient = images.grad.detach()[:, :channels].abs().mean(1)
                        accumulated = gradient if accumulated is None else accumulated.add_(gradient)
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
            importance=None if accumulated is None else accumulated.float().cpu(),
        )


def render(
    model: Model | nn.Module | str,
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
    importance: bool = False,
    autocast: torch.dtype | None = None,
    channels_last: bool | None = None,
    fold_batchnorm: bool = True,
) -> RenderResult:
    """Optimize images so that `objective` is as high as possible and return them.

    `model` is a registered name, a featviz `Model` or any ``nn.Module`` (timm, torchvision, open_clip or your
    own; it is never changed). `objective` is an Objective, a shorthand string ("layer:channel",
    "layer:channel@x,y", "class:label"), a function ``f(T)`` reading layers with ``T(layer)``, or a list of
    them: N objectives render at once, one per batch element, each exactly as it would alone. `param` is a
    parameterization module or kind ("fft" default, "pixel", "cppn", "maco"); `transforms` a preset name
    ("standard" default), a `featviz.transforms.Compose`, a list of transforms, or any callable ``images ->
    images``; `optimizer` a callable taking the parameters (default Adam at the parameterization's
    `default_lr`, 0.05 for Fourier). `steps` optimization steps; the images at each step listed in `thresholds`
    are kept in ``RenderResult.snapshots``. `size` is the image size (default: the model's input size) and
    `batch` the number of images for one objective. Element i of a batch uses seed `seed + i` (default: a
    random seed). `progress` shows a progress bar. Dead ReLUs get redirected
    gradients for the first `redirect_relu_steps` steps. A non-finite objective stops the render with an
    error naming the step. `importance` also accumulates, over the steps, the absolute gradient of the
    objective with respect to the images (MACO's importance map, ``RenderResult.importance``; save it with
    ``result.save(path, importance=True)``). `device`, `autocast`, `channels_last` and `fold_batchnorm` prepare
    the model as `Renderer` does; to render many objective sets, make one `Renderer` and call its `render`.

    Example:
        >>> model = featviz.load_model("efficientnet_lite0")
        >>> result = featviz.render(model, "blocks.4.0.conv_pwl:3", steps=4, size=64, seed=0)   # 512 steps by default
        >>> result.save("channel3.png")
        [PosixPath('channel3.png')]
    """
    renderer = Renderer(
        model, device=device, channels_last=channels_last, fold_batchnorm=fold_batchnorm, autocast=autocast
    )
    return renderer.render(
        objective, param=param, transforms=transforms, optimizer=optimizer, steps=steps, thresholds=thresholds,
        seed=seed, size=size, batch=batch, redirect_relu_steps=redirect_relu_steps, progress=progress,
        importance=importance,
    )


def _progress_label(goals: list[Objective]) -> str:
    label = goals[0].name if len(goals) == 1 else f"{len(goals)} objectives"
    return label if len(label) <= 40 else label[:37] + "..."
