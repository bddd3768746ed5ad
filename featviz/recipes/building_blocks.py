"""The building blocks of interpretability (Olah et al., Distill 2018) for one image: what the network sees at
each position of a layer, which channels and positions a decision rests on, and the few groups of neurons
that together describe the image's activations.

``spatial_activation_grid`` renders the activation vector of each position (or block of positions) as a
direction; ``attribution`` computes activation x gradient toward a class or unit, per position, per channel
and per neuron group; ``neuron_groups`` factorizes the image's ``(H*W) x C`` activations with non-negative
matrix factorization into groups (a direction in channel space each, with a spatial map); ``render_groups``
renders those directions; ``explain`` does all of it and composes one figure (``Explanation.save``).
A layer's spatial layout (rows x columns) always comes from the model's survey, never from the numbers.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor, nn

from featviz.errors import FeatvizError, check_int
from featviz.hooks import OUTPUT, RESERVED, ActivationCapture, Layout, bind_layers, channels_first
from featviz.io import atomic_path, ensure_writable_dir, write_text
from featviz.metrics.images import resize
from featviz.models import Model, load_model
from featviz.objectives import Objective, class_logit, direction, direction_neuron
from featviz.objectives.binding import bind_objective
from featviz.objectives.shorthand import objective as parse_objective
from featviz.dataset.photo import PhotoLike, load_photo, photo_size
from featviz.recipes.factors import NEGATIVES, fit_nmf, nmf_features
from featviz.renderer import Renderer, RenderResult
from featviz.renderer.image import grid as tile, save_png, to_pil

# Colours of the neuron groups in figures and maps (after the 12th they repeat).
GROUP_COLORS = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 200, 200),
    (240, 50, 230), (150, 170, 40), (128, 0, 0), (0, 128, 128), (170, 110, 40), (0, 0, 128),
)
_POSITIVE = (40, 160, 60)
_NEGATIVE = (210, 50, 50)
_NMF_ITERATIONS = 1000

ModelLike = Model | nn.Module | str | Renderer
TargetLike = str | int | Objective | None


@dataclass
class LayerActivations:
    """One image as a layer sees it: ``image`` ``(1, C, H, W)`` in ``[0, 1]`` at the size the model saw it,
    the ``layer``'s ``layout`` and its ``activations`` read channels-first, ``(channels, rows, columns)``.

    Example:
        >>> seen = layer_activations("cat.jpg", "efficientnet_lite0", "blocks.4")  # doctest: +SKIP
        >>> seen.activations.shape  # doctest: +SKIP
        torch.Size([112, 14, 22])
    """

    image: Tensor
    layer: str
    layout: Layout
    activations: Tensor

    @property
    def grid_shape(self) -> tuple[int, int]:
        """The layer's spatial grid for this image, ``(rows, columns)``."""
        return int(self.activations.shape[1]), int(self.activations.shape[2])


@dataclass
class SpatialGrid:
    """The activation grid: the mean activation vector of each cell of a ``rows x columns`` grid over the layer's
    positions (``vectors``, ``(rows, columns, channels)``) and a render of each as a direction (``result``, one
    image per cell, row by row).

    Example:
        >>> cells = spatial_activation_grid("cat.jpg", "efficientnet_lite0", "blocks.4", pool=2)  # doctest: +SKIP
        >>> cells.shape, cells.save("grid.png")  # doctest: +SKIP
    """

    layer: str
    vectors: Tensor
    result: RenderResult

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, columns)`` of the grid."""
        return int(self.vectors.shape[0]), int(self.vectors.shape[1])

    def save(self, path: str | os.PathLike) -> list[Path]:
        """Write the renders as one PNG laid out like the layer's positions (``path`` ends in .png)."""
        return self.result.save(path, grid_columns=self.shape[1])


@dataclass
class NeuronGroups:
    """Neuron groups found by non-negative matrix factorization of one image's activations at ``layer``.

    ``maps`` ``(groups, rows, columns)``: how much each position uses each group (non-negative);
    ``directions`` ``(groups, channels)``: each group as a unit-norm direction in the layer's channel space;
    ``components``: the factorization's factors as found (``(groups, channels)``, or ``(groups, 2 * channels)``
    with ``negatives="split"``: positive parts, then negative parts); ``error``: the relative reconstruction
    error ``|X - maps @ components| / |X|`` of the factorized matrix ``X``. Groups are ordered by their total
    use over the image, largest first.

    Example:
        >>> found = neuron_groups("cat.jpg", "efficientnet_lite0", "blocks.4", groups=6)  # doctest: +SKIP
        >>> found.maps.shape, found.directions.shape  # doctest: +SKIP
        (torch.Size([6, 14, 22]), torch.Size([6, 112]))
    """

    layer: str
    maps: Tensor
    directions: Tensor
    components: Tensor
    negatives: str
    error: float

    def __len__(self) -> int:
        return int(self.maps.shape[0])

    def dominant(self) -> Tensor:
        """``(rows, columns)`` index of the group each position uses most."""
        return self.maps.argmax(0)


@dataclass
class Attribution:
    """Activation x gradient of ``target`` (its value on the image: ``value``) at ``layer``: ``values``
    ``(channels, rows, columns)``. Summed per position (``per_position``), per channel (``per_channel``) and,
    when neuron groups were given, per group: ``groups`` ``(groups,)`` and ``group_positions``
    ``(groups, rows, columns)``, each group's map times the gradient along its direction.

    Example:
        >>> found = attribution("cat.jpg", "efficientnet_lite0", "blocks.5", target="tabby")  # doctest: +SKIP
        >>> found.top_position(), found.top_channels(3)  # doctest: +SKIP
    """

    layer: str
    target: str
    value: float
    values: Tensor
    gradient: Tensor
    groups: Tensor | None = None
    group_positions: Tensor | None = None

    @property
    def per_position(self) -> Tensor:
        """``(rows, columns)``: the attribution of each position, summed over channels."""
        return self.values.sum(0)

    @property
    def per_channel(self) -> Tensor:
        """``(channels,)``: the attribution of each channel, summed over positions."""
        return self.values.sum((1, 2))

    @property
    def total(self) -> float:
        """The attribution summed over channels and positions."""
        return float(self.values.sum())

    def top_position(self) -> tuple[int, int]:
        """``(row, column)`` of the position with the highest attribution."""
        index = int(self.per_position.argmax())
        return divmod(index, int(self.values.shape[2]))

    def top_channels(self, count: int = 10) -> list[tuple[int, float]]:
        """The ``count`` channels with the highest attribution, as ``(channel, attribution)``."""
        values = self.per_channel
        order = values.argsort(descending=True)[:count]
        return [(int(index), float(values[index])) for index in order]


@dataclass
class Explanation:
    """Everything `explain` found for one image: the ``image`` as analysed ``(1, C, H, W)``, the layer's
    ``activations`` ``(channels, rows, columns)``, the neuron ``groups``, the ``attribution`` toward the target
    (per group included), ``renders`` (one image per group, in group order), the optional activation ``grid``
    and the ``seconds`` each stage took. ``figure()`` composes them into one PIL image, ``save(folder)`` writes
    the figure and its parts.

    Example:
        >>> found = explain("cat.jpg", "efficientnet_lite0", "blocks.4", groups=6, steps=128)  # doctest: +SKIP
        >>> found.save("cat-explained/")  # doctest: +SKIP
    """

    image: Tensor
    layer: str
    activations: Tensor
    groups: NeuronGroups
    attribution: Attribution
    renders: RenderResult
    grid: SpatialGrid | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def figure(self) -> Image.Image:
        """The whole explanation as one image: the photo, where each group is, where the target's attribution
        lies, then one column per group (its render, its map, its attribution bar) and the activation grid."""
        return _figure(self)

    def summary(self) -> dict[str, Any]:
        """The explanation's numbers (as saved in ``explanation.json``)."""
        attributed = self.attribution
        row, column = attributed.top_position()
        rows, columns = self.groups.maps.shape[1:]
        return {
            "layer": self.layer,
            "image_size": list(self.image.shape[-2:]),
            "grid": [int(rows), int(columns)],
            "target": attributed.target,
            "target_value": attributed.value,
            "attribution_total": attributed.total,
            "top_position": {"row": row, "column": column},
            "top_channels": [{"channel": channel, "attribution": value} for channel, value in attributed.top_channels()],
            "nmf": {"negatives": self.groups.negatives, "relative_error": self.groups.error},
            "groups": [
                {
                    "group": index,
                    "attribution": float(attributed.groups[index]) if attributed.groups is not None else None,
                    "share_of_image": float(self.groups.maps[index].sum() / self.groups.maps.sum().clamp(min=1e-12)),
                    "top_channels": self.groups.directions[index].argsort(descending=True)[:5].tolist(),
                    "render_value": float(self.renders.history[-1, index]) if len(self.renders.history) else None,
                }
                for index in range(len(self.groups))
            ],
            "seconds": self.seconds,
        }

    def save(self, folder: str | os.PathLike) -> list[Path]:
        """Write into ``folder``: ``figure.png`` (the composed figure, first in the returned list), ``image.png``,
        ``groups.png`` (every group's map over the image, in its colour), ``group-K-map.png`` and ``group-K.png``
        (each group's map and render), ``attribution-map.png``, ``attribution-bars.png``, ``grid.png`` (with an
        activation grid) and ``explanation.json`` (the numbers). Every file is written atomically."""
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise FeatvizError(f"'{folder}' is a file; give a folder to write the explanation into")
        if folder.suffix.lower() == ".png":
            raise FeatvizError(f"'{folder}' names a PNG; give a folder to write the explanation's files into")
        ensure_writable_dir(folder)
        parts: list[tuple[str, Image.Image]] = [
            ("figure.png", self.figure()),
            ("image.png", to_pil(self.image)[0]),
            ("groups.png", _groups_overlay(self.image, self.groups.maps)),
        ]
        for index in range(len(self.groups)):
            parts.append((f"group-{index}-map.png", _group_overlay(self.image, self.groups.maps[index], _color(index))))
        parts += [
            ("attribution-map.png", _attribution_overlay(self.image, self.attribution.per_position)),
            ("attribution-bars.png", _attribution_bars(self.attribution, len(self.groups))),
        ]
        written = [_save_pil(picture, folder / name) for name, picture in parts]
        for index in range(len(self.groups)):
            path = folder / f"group-{index}.png"
            written.append(save_png(self.renders.images[index], path, self.renders.metadata(index)))
        if self.grid is not None:
            written += self.grid.save(folder / "grid.png")
        written.append(write_text(folder / "explanation.json", json.dumps(self.summary(), indent=2) + "\n"))
        return written


# ---------------------------------------------------------------- the image and its activations


def _check_layer(layer: str) -> str:
    if not isinstance(layer, str) or not layer.strip():
        raise FeatvizError(f"layer must be a layer name such as 'blocks.4', not {layer!r}")
    if layer in RESERVED:
        raise FeatvizError(f"'{layer}' is not a layer of the network; give one such as 'blocks.4' (`featviz layers MODEL`)")
    return layer.strip()


def _seen(image: PhotoLike, model: Model, layer: str, image_size: int | Sequence[int] | None) -> LayerActivations:
    layer = _check_layer(layer)
    photo = load_photo(image, photo_size(model, image_size), model.channels)
    binding = bind_layers(model, [layer], tuple(photo.shape[-2:]))
    photo = resize(photo, binding.size).clamp(0, 1).to(device=model.device, dtype=model.dtype)
    with torch.no_grad(), ActivationCapture(model, [layer], layouts=binding.layouts) as capture:
        activations = capture.run(photo)[layer]
    return LayerActivations(photo.float().cpu(), layer, binding.layouts[layer], activations[0].float().cpu().clone())


def layer_activations(
    image: PhotoLike, model: Model | nn.Module | str, layer: str, *, image_size: int | Sequence[int] | None = None,
    device: str | torch.device | None = None,
) -> LayerActivations:
    """``image`` (a path, PIL image or tensor) resized and read at ``layer`` of ``model``, channels-first.

    The image keeps its aspect ratio with its shorter side at ``image_size`` (default: the model's smaller input
    side); a ``(height, width)`` pair sets both. A model that takes only its input size sees the image resized
    to it. The layer's rows x columns are the ones the model's survey finds at that size. ``device`` defaults
    to the model's.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        >>> seen = layer_activations(torch.rand(3, 30, 60), net, "1", image_size=32)
        >>> seen.image.shape, seen.grid_shape
        (torch.Size([1, 3, 32, 64]), (16, 32))
    """
    return _seen(image, load_model(model, device=device), layer, image_size)


# ---------------------------------------------------------------- neuron groups


def _factorize(seen: LayerActivations, groups: int, negatives: str, seed: int) -> NeuronGroups:
    if negatives not in NEGATIVES:
        raise FeatvizError(f"negatives must be 'split' or 'clip', not {negatives!r}")
    channels, rows, columns = seen.activations.shape
    limit = min(rows * columns, channels)
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or not 1 <= groups <= limit:
        raise FeatvizError(
            f"groups must be an int from 1 to {limit} (the fewer of the {rows}x{columns} positions and {channels} "
            f"channels of '{seen.layer}'), got {groups!r}"
        )
    features = nmf_features(seen.activations.permute(1, 2, 0).reshape(rows * columns, channels), negatives)
    if not features.any():
        kept = "positive " if negatives == "clip" else ""
        raise FeatvizError(f"layer '{seen.layer}' has no {kept}activation on this image; pick another layer")
    fit = fit_nmf(features, int(groups), channels, seed, iterations=_NMF_ITERATIONS)
    return NeuronGroups(
        layer=seen.layer,
        maps=torch.from_numpy(fit.coefficients.T.reshape(int(groups), rows, columns).copy()).float(),
        directions=torch.from_numpy(fit.directions).float(),
        components=torch.from_numpy(fit.components).float(),
        negatives=negatives,
        error=math.sqrt(max(0.0, 1.0 - fit.explained)),
    )


def neuron_groups(
    image: PhotoLike, model: Model | nn.Module | str, layer: str, groups: int = 6, *, negatives: str = "split",
    seed: int = 0, image_size: int | Sequence[int] | None = None, device: str | torch.device | None = None,
) -> NeuronGroups:
    """Group the neurons of ``layer`` by how ``image`` uses them: non-negative matrix factorization (scikit-learn's
    NMF, ``nndsvda`` start, seeded by ``seed``) of the image's ``(rows * columns) x channels`` activations into
    ``groups`` factors, each a spatial map times a direction in channel space.

    NMF needs non-negative numbers; activations of layers that are not followed by a ReLU have negative values
    too. ``negatives="split"`` (default) factorizes ``[max(a, 0), max(-a, 0)]`` (2 x channels columns), so a
    group may also stand for channels being negative: its direction is the positive part minus the negative
    part. ``"clip"`` drops negative values (lucid's choice on post-ReLU layers, where there are none). The
    image is read at ``image_size`` by ``model`` (a name, a featviz `Model` or any ``nn.Module``, on ``device``,
    default: the model's) as `layer_activations` reads it. ``groups`` must be at most the number of positions
    and of channels.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        >>> found = neuron_groups(torch.rand(3, 40, 64), net, "1", groups=4, image_size=(40, 64))
        >>> found.maps.shape, found.directions.shape
        (torch.Size([4, 20, 32]), torch.Size([4, 8]))
    """
    seed = check_int(seed, "seed", 0)
    return _factorize(layer_activations(image, model, layer, image_size=image_size, device=device), groups, negatives, seed)


# ---------------------------------------------------------------- attribution


def _target(target: TargetLike) -> Objective | None:
    """The objective ``target`` names: None (the predicted class, found while attributing), a class (index or
    name), or objective shorthand with a colon ("class:tabby", "blocks.5:3")."""
    if target is None or isinstance(target, Objective):
        return target
    if isinstance(target, bool) or not isinstance(target, (int, str)):
        raise FeatvizError(f"target must be a class name or index, a unit such as 'blocks.5:3', or None, not {target!r}")
    if isinstance(target, int):
        return class_logit(target)
    text = target.strip()
    if not text:
        raise FeatvizError("target is empty; give a class (name or index) or a unit such as 'blocks.5:3'")
    if text.isdigit():
        return class_logit(int(text))
    if ":" in text:
        return parse_objective(text)
    return class_logit(text)


def _predicted_name(model: Model, index: int) -> str:
    labels = getattr(model, "labels", None)
    if labels and index < len(labels) and labels.count(labels[index]) == 1:
        return f"class:{labels[index]}"
    return f"class:{index}"


def _attribute(model: Model, seen: LayerActivations, goal: Objective | None, groups: NeuronGroups | None) -> Attribution:
    """Activation x gradient of ``goal`` (None: the predicted class's logit, read from the same forward pass)."""
    size = tuple(seen.image.shape[-2:])
    bound = bind_objective(model, class_logit(0) if goal is None else goal, size=size)
    module = model.get_layer(seen.layer)
    held: dict[str, Tensor] = {}

    def substitute(module: nn.Module, inputs: Any, output: Any) -> Tensor:
        if not isinstance(output, Tensor):
            raise FeatvizError(f"layer '{seen.layer}' outputs a {type(output).__name__}; attribution needs a layer "
                               "that outputs one tensor")
        if "leaf" in held:
            return None  # a layer run again later in the pass is read at its first call, as everywhere
        held["leaf"] = output.detach().requires_grad_(True)
        # a copy goes on, so that the network may change it in place without touching the leaf
        return held["leaf"].clone()

    photo = seen.image.to(device=model.device, dtype=model.dtype)
    handle = module.register_forward_hook(substitute)
    try:
        with torch.enable_grad(), ActivationCapture(model, bound.target.layers, layouts=bound.layouts) as capture:
            activations = capture.run(photo)
            if goal is None:
                logits = activations[OUTPUT].flatten(1)[0]
                index = int(logits.detach().argmax())
                value, name = logits[index], _predicted_name(model, index)
            else:
                value, name = bound.target(activations).sum(), bound.target.name
    finally:
        handle.remove()
    leaf = held.get("leaf")
    gradient = None if leaf is None else torch.autograd.grad(value, leaf, allow_unused=True)[0]
    if gradient is None:
        raise FeatvizError(
            f"target '{name}' does not depend on layer '{seen.layer}'; pick a target computed after "
            "it (a class, or a unit of a later layer)"
        )
    activations = channels_first(leaf.detach(), seen.layout)[0].float().cpu()
    gradient = channels_first(gradient, seen.layout)[0].float().cpu()
    values = activations * gradient
    group_values = group_positions = None
    if groups is not None:
        along = torch.einsum("kc,chw->khw", groups.directions, gradient)
        scale = _direction_scale(groups, activations)
        group_positions = groups.maps * along * scale[:, None, None]
        group_values = group_positions.sum((1, 2))
    return Attribution(seen.layer, name, float(value.detach()), values, gradient, group_values, group_positions)


def _direction_scale(groups: NeuronGroups, activations: Tensor) -> Tensor:
    """Per group, the length along its unit direction that one unit of its map stands for, so that
    ``maps[k] * scale[k] * directions[k]`` is group ``k``'s share of the activations."""
    channels = activations.shape[0]
    components = groups.components
    if groups.negatives == "split":
        components = components[:, :channels] - components[:, channels:]
    return torch.linalg.vector_norm(components, dim=1)


def attribution(
    image: PhotoLike, model: Model | nn.Module | str, layer: str, target: TargetLike = None, *,
    groups: NeuronGroups | None = None, image_size: int | Sequence[int] | None = None,
    device: str | torch.device | None = None,
) -> Attribution:
    """Activation x gradient of ``target`` with respect to ``layer``'s activations on ``image``: how much each
    channel at each position contributes to it, to first order (lucid's building blocks attribution).

    ``target``: None for the class the model predicts; a class index or name (``"tabby"``); or objective
    shorthand with a colon: ``"class:tabby"``, a unit of a later layer ``"blocks.6:10"`` or
    ``"blocks.6:10@3,2"``, or an Objective. With ``groups`` (from `neuron_groups` on the same image and layer),
    each group's attribution is its map times the gradient along its direction, per position. For a target
    that is linear in the layer's activations (a linear classifier on pooled features) the values sum to the
    target minus its bias. The image is read at ``image_size`` as `layer_activations` reads it; ``device``
    defaults to the model's.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
        >>> found = attribution(torch.rand(3, 24, 40), net, "0", target=2, image_size=(24, 40))
        >>> bias = float(net[3].bias.detach()[2])
        >>> found.per_position.shape, abs(found.total - (found.value - bias)) < 1e-4
        (torch.Size([24, 40]), True)
    """
    loaded = load_model(model, device=device)
    seen = _seen(image, loaded, layer, image_size)
    if groups is not None and (groups.layer != seen.layer or tuple(groups.maps.shape[1:]) != seen.grid_shape):
        raise FeatvizError(
            f"the neuron groups were found at '{groups.layer}' on a {groups.maps.shape[1]}x{groups.maps.shape[2]} grid, "
            f"not at '{seen.layer}' on this image's {seen.grid_shape[0]}x{seen.grid_shape[1]}; find them on the same "
            "image and layer"
        )
    return _attribute(loaded, seen, _target(target), groups)


# ---------------------------------------------------------------- renders


def _renderer(model: ModelLike, device: str | torch.device | None) -> Renderer:
    return model if isinstance(model, Renderer) else Renderer(model, device=device)


def _render(renderer: Renderer, goals: list[Objective], *, size: int | Sequence[int], steps: int, seed: int,
            param: nn.Module | str | None, transforms: Callable | str | Sequence[Callable] | None,
            progress: bool) -> RenderResult:
    return renderer.render(goals, param=param, transforms=transforms, steps=steps, seed=seed, size=size,
                           progress=progress)


def _pooled(seen: LayerActivations, pool: int) -> Tensor:
    """``(rows, columns, channels)``: mean activation vectors over blocks of ``pool x pool`` positions."""
    pool = check_int(pool, "pool", 1)
    rows, columns = seen.grid_shape
    cells = (math.ceil(rows / pool), math.ceil(columns / pool))
    return F.adaptive_avg_pool2d(seen.activations[None], cells)[0].permute(1, 2, 0).contiguous()


def _grid(renderer: Renderer, seen: LayerActivations, pool: int, cossim_pow: float, **options: Any) -> SpatialGrid:
    vectors = _pooled(seen, pool)
    rows, columns, _ = vectors.shape
    goals = [
        direction_neuron(seen.layer, vectors[row, column], cossim_pow=cossim_pow)
        for row in range(rows) for column in range(columns)
    ]
    result = _render(renderer, goals, **options)
    result.objectives = [
        f"direction({seen.layer}) of cell {row},{column}" for row in range(rows) for column in range(columns)
    ]
    return SpatialGrid(seen.layer, vectors, result)


def spatial_activation_grid(
    image: PhotoLike, model: ModelLike, layer: str, *, pool: int = 1, size: int | Sequence[int] = 64,
    steps: int = 256, seed: int = 0, cossim_pow: float = 1.0, param: nn.Module | str | None = None,
    transforms: Callable | str | Sequence[Callable] | None = None, image_size: int | Sequence[int] | None = None,
    device: str | torch.device | None = None, progress: bool = True,
) -> SpatialGrid:
    """The activation grid of lucid's building blocks: what the network sees at each position of ``layer``.

    The image's activation vector at each position (or, with ``pool``, the mean over each ``pool x pool`` block
    of positions) is rendered as a direction (``featviz.objectives.direction_neuron`` at the centre, with
    ``cossim_pow``) in one batched render: cell ``(r, c)`` is image ``r * columns + c``, seed ``seed + r *
    columns + c``. The grid has the layer's rows and columns for this image (from the model's survey), pooled.
    ``model`` may be a `featviz.Renderer` to reuse its prepared network. Each cell is rendered at ``size``
    pixels for ``steps`` steps with ``param`` and ``transforms``, as `featviz.render` takes them (its defaults
    when None); ``progress`` shows a progress bar. The image is read at ``image_size`` as `layer_activations`
    reads it. ``device`` defaults to the model's (a given `featviz.Renderer` keeps its own).

    Example:
        >>> cells = spatial_activation_grid("cat.jpg", "efficientnet_lite0", "blocks.4", pool=2)  # doctest: +SKIP
        >>> cells.shape  # doctest: +SKIP
        (7, 11)
        >>> cells.save("grid.png")  # doctest: +SKIP
    """
    renderer = _renderer(model, device)
    seen = _seen(image, renderer.model, layer, image_size)
    return _grid(renderer, seen, pool, float(cossim_pow), size=size, steps=steps, seed=seed, param=param,
                 transforms=transforms, progress=progress)


def render_groups(
    groups: NeuronGroups, model: ModelLike, *, size: int | Sequence[int] = 96, steps: int = 256, seed: int = 0,
    cossim_pow: float = 1.0, param: nn.Module | str | None = None,
    transforms: Callable | str | Sequence[Callable] | None = None, device: str | torch.device | None = None,
    progress: bool = True,
) -> RenderResult:
    """Render each neuron group's direction (``featviz.objectives.direction`` over all positions, with
    ``cossim_pow``) in one batched render: image ``k`` shows group ``k``, seed ``seed + k``, rendered at
    ``size`` pixels for ``steps`` steps with ``param`` and ``transforms`` as `featviz.render` takes them (its
    defaults when None). ``model`` may be a `featviz.Renderer` (used as it is); otherwise one is made on
    ``device`` (default: the model's). ``progress`` shows a progress bar.

    Example:
        >>> found = neuron_groups("cat.jpg", "efficientnet_lite0", "blocks.4", groups=4)  # doctest: +SKIP
        >>> render_groups(found, "efficientnet_lite0", steps=128).save("groups.png")  # doctest: +SKIP
    """
    renderer = _renderer(model, device)
    goals = [direction(groups.layer, vector, cossim_pow=float(cossim_pow)) for vector in groups.directions]
    result = _render(renderer, goals, size=size, steps=steps, seed=seed, param=param, transforms=transforms,
                     progress=progress)
    result.objectives = [f"direction({groups.layer}) of group {index}" for index in range(len(groups))]
    return result


# ---------------------------------------------------------------- the whole figure


def explain(
    image: PhotoLike, model: ModelLike, layer: str, groups: int = 6, target: TargetLike = None, *,
    negatives: str = "split", size: int | Sequence[int] = 96, steps: int = 256, seed: int = 0,
    cossim_pow: float = 1.0, grid_pool: int | None = None, grid_size: int | Sequence[int] = 48,
    param: nn.Module | str | None = None, transforms: Callable | str | Sequence[Callable] | None = None,
    image_size: int | Sequence[int] | None = None, device: str | torch.device | None = None, progress: bool = True,
) -> Explanation:
    """Explain what ``model`` sees in ``image`` at ``layer`` and why it decides ``target`` (default: its predicted
    class), as in The Building Blocks of Interpretability: ``groups`` neuron groups (`neuron_groups`, with
    ``negatives``), each group's attribution toward the target per position (`attribution`), a render of each
    group's direction (`render_groups`: ``size`` pixels, ``steps``, seeds ``seed + k``, ``cossim_pow``), and,
    with ``grid_pool``, the activation grid pooled over blocks of that many positions
    (`spatial_activation_grid`: ``grid_size`` pixels per cell, seeds from ``seed + groups``). Every render
    uses ``param`` and ``transforms`` as `featviz.render` takes them (its defaults when None); the image is
    read at ``image_size`` as `layer_activations` reads it. One `featviz.Renderer` serves every render:
    ``model`` itself when it is one, else one made on ``device`` (default: the model's). ``progress`` shows
    progress bars.
    ``Explanation.save(folder)`` writes the figure and its parts.

    Example:
        >>> found = explain("cat.jpg", "efficientnet_lite0", "blocks.4", groups=6, steps=128)  # doctest: +SKIP
        >>> found.save("cat-explained/")[0]  # doctest: +SKIP
        PosixPath('cat-explained/figure.png')
    """
    seed = check_int(seed, "seed", 0)
    steps = check_int(steps, "steps", 1)
    if grid_pool is not None:
        grid_pool = check_int(grid_pool, "grid_pool", 1)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    renderer = _renderer(model, device)
    network = renderer.model
    seen = _seen(image, network, layer, image_size)
    seconds["activations"] = time.perf_counter() - started

    started = time.perf_counter()
    found = _factorize(seen, groups, negatives, seed)
    seconds["groups"] = time.perf_counter() - started

    started = time.perf_counter()
    attributed = _attribute(network, seen, _target(target), found)
    seconds["attribution"] = time.perf_counter() - started

    options = dict(steps=steps, param=param, transforms=transforms, progress=progress)
    started = time.perf_counter()
    renders = render_groups(found, renderer, size=size, seed=seed, cossim_pow=cossim_pow, **options)
    seconds["renders"] = time.perf_counter() - started

    cells = None
    if grid_pool is not None:
        started = time.perf_counter()
        cells = _grid(renderer, seen, grid_pool, float(cossim_pow), size=grid_size, seed=seed + len(found), **options)
        seconds["grid"] = time.perf_counter() - started
    return Explanation(seen.image, seen.layer, seen.activations, found, attributed, renders, cells, seconds)


# ---------------------------------------------------------------- drawing (PIL)


def _color(index: int) -> tuple[int, int, int]:
    return GROUP_COLORS[index % len(GROUP_COLORS)]


def _font(size: int = 13) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _save_pil(picture: Image.Image, path: Path) -> Path:
    with atomic_path(path) as temporary:
        picture.save(temporary, format="PNG")
    return path


def _upsampled(values: Tensor, size: tuple[int, int]) -> Tensor:
    """``(..., rows, columns)`` maps resized bilinearly to the image's ``(H, W)``."""
    batch = values.reshape(-1, 1, *values.shape[-2:]).float()
    return F.interpolate(batch, size=size, mode="bilinear", align_corners=False).reshape(*values.shape[:-2], *size)


def _dimmed(image: Tensor, brightness: float = 0.35) -> Tensor:
    """The image in grey, darkened: a background that coloured maps stand out on. ``(3, H, W)``."""
    grey = image[0, :3].mean(0, keepdim=True) if image.shape[1] >= 3 else image[0, :1]
    return (grey * brightness).expand(3, -1, -1)


def _blend(background: Tensor, colors: Tensor, alpha: Tensor) -> Image.Image:
    """``background`` ``(3, H, W)`` with ``colors`` ``(3, H, W)`` laid over it with opacity ``alpha`` ``(H, W)``."""
    mixed = background * (1 - alpha) + colors * alpha
    return to_pil(mixed.clamp(0, 1)[None])[0]


def _groups_overlay(image: Tensor, maps: Tensor) -> Image.Image:
    """Every group's map in its colour over the dimmed image; brighter where the groups are used more."""
    size = tuple(image.shape[-2:])
    weights = _upsampled(maps, size).clamp(min=0)
    palette = torch.tensor([_color(index) for index in range(len(maps))], dtype=torch.float32) / 255.0
    total = weights.sum(0)
    colors = torch.einsum("khw,kc->chw", weights, palette) / total.clamp(min=1e-12)
    alpha = (total / total.max().clamp(min=1e-12)).clamp(0, 1) * 0.85
    return _blend(_dimmed(image), colors, alpha)


def _group_overlay(image: Tensor, values: Tensor, color: tuple[int, int, int]) -> Image.Image:
    size = tuple(image.shape[-2:])
    weights = _upsampled(values, size).clamp(min=0)
    alpha = (weights / weights.max().clamp(min=1e-12)) * 0.9
    tint = torch.tensor(color, dtype=torch.float32).view(3, 1, 1).expand(3, *size) / 255.0
    return _blend(_dimmed(image), tint, alpha)


def _attribution_overlay(image: Tensor, values: Tensor) -> Image.Image:
    """Positive attribution in green, negative in red, over the dimmed image."""
    size = tuple(image.shape[-2:])
    upsampled = _upsampled(values, size)
    alpha = (upsampled.abs() / upsampled.abs().max().clamp(min=1e-12)) * 0.9
    positive = torch.tensor(_POSITIVE, dtype=torch.float32).view(3, 1, 1) / 255.0
    negative = torch.tensor(_NEGATIVE, dtype=torch.float32).view(3, 1, 1) / 255.0
    colors = torch.where(upsampled[None] >= 0, positive, negative)
    return _blend(_dimmed(image), colors, alpha)


def _attribution_bars(attributed: Attribution, groups: int, width: int = 360, row_height: int = 22) -> Image.Image:
    """A horizontal bar per group: its attribution toward the target (green positive, red negative)."""
    values = attributed.groups if attributed.groups is not None else torch.zeros(groups)
    font = _font(12)
    header = 24
    picture = Image.new("RGB", (width, header + row_height * groups + 6), "white")
    draw = ImageDraw.Draw(picture)
    draw.text((6, 5), f"attribution to {attributed.target}", fill="black", font=font)
    label_width, number_width = 84, 62
    zero = label_width + (width - label_width - number_width) // 2
    half = (width - label_width - number_width) // 2 - 4
    largest = float(values.abs().max()) or 1.0
    draw.line([(zero, header - 2), (zero, header + row_height * groups)], fill=(150, 150, 150))
    for index in range(groups):
        top = header + index * row_height
        value = float(values[index])
        length = round(half * abs(value) / largest)
        left, right = (zero, zero + length) if value >= 0 else (zero - length, zero)
        draw.rectangle([6, top + 5, 18, top + row_height - 5], fill=_color(index))
        draw.text((22, top + 4), f"group {index}", fill="black", font=font)
        if length:
            draw.rectangle([left, top + 4, right, top + row_height - 4], fill=_POSITIVE if value >= 0 else _NEGATIVE)
        draw.text((width - number_width + 4, top + 4), f"{value:+.3g}", fill="black", font=font)
    return picture


def _fit(picture: Image.Image, height: int) -> Image.Image:
    width = max(1, round(picture.width * height / picture.height))
    return picture.resize((width, height), Image.Resampling.LANCZOS)


def _figure(found: Explanation) -> Image.Image:
    """Title; the image, the groups' maps and the attribution per position; one card per group (render, map,
    attribution); the attribution bars with the activation grid beside them (below them when it is too wide)."""
    margin, gap, panel, caption = 12, 10, 224, 18
    font, small = _font(14), _font(12)
    attributed = found.attribution
    panels = [
        ("image", _fit(to_pil(found.image)[0], panel)),
        (f"{len(found.groups)} neuron groups (NMF)", _fit(_groups_overlay(found.image, found.groups.maps), panel)),
        ("attribution per position", _fit(_attribution_overlay(found.image, attributed.per_position), panel)),
    ]
    top_width = sum(picture.width for _, picture in panels) + gap * (len(panels) - 1)
    card = max(96, min(160, found.renders.images.shape[-1]))
    renders = [_fit(picture, card) for picture in to_pil(found.renders.images)]
    card_width = max(picture.width for picture in renders)
    map_height = max(24, round(card_width * found.image.shape[-2] / found.image.shape[-1]))
    cards_width = len(found.groups) * (card_width + gap) - gap
    cards_height = caption + card + 4 + map_height + 20
    values = attributed.groups if attributed.groups is not None else torch.zeros(len(found.groups))
    bars = _attribution_bars(attributed, len(found.groups))
    content_width = max(top_width, cards_width, bars.width)

    grid_picture, beside = None, False
    if found.grid is not None:
        grid_picture = to_pil(tile(found.grid.result.images, columns=found.grid.shape[1], padding=1))[0]
        beside = bars.width + gap + grid_picture.width <= content_width
        room = content_width - (bars.width + gap if beside else 0)
        if grid_picture.width > room:
            grid_picture = _fit(grid_picture, max(1, round(grid_picture.height * room / grid_picture.width)))
    if grid_picture is None:
        bottom_height = bars.height
    elif beside:
        bottom_height = max(bars.height, caption + grid_picture.height)
    else:
        bottom_height = bars.height + gap + caption + grid_picture.height

    title_height = 28
    width = 2 * margin + content_width
    height = margin + title_height + caption + panel + gap + cards_height + gap + bottom_height + margin
    figure = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(figure)
    rows, columns = found.groups.maps.shape[1:]
    draw.text((margin, margin), f"{found.layer}: {rows}x{columns} positions; target {attributed.target} = "
              f"{attributed.value:.3g}", fill="black", font=font)
    top, left = margin + title_height, margin
    for label, picture in panels:
        draw.text((left, top), label, fill="black", font=small)
        figure.paste(picture, (left, top + caption))
        left += picture.width + gap
    top += caption + panel + gap
    for index, picture in enumerate(renders):
        left = margin + index * (card_width + gap)
        draw.rectangle([left, top + 2, left + 12, top + 14], fill=_color(index))
        draw.text((left + 16, top), f"group {index}", fill="black", font=small)
        figure.paste(picture, (left, top + caption))
        overlay = _group_overlay(found.image, found.groups.maps[index], _color(index))
        figure.paste(overlay.resize((card_width, map_height), Image.Resampling.LANCZOS), (left, top + caption + card + 4))
        value = float(values[index])
        draw.text((left, top + caption + card + 4 + map_height + 3), f"attribution {value:+.3g}",
                  fill=_POSITIVE if value >= 0 else _NEGATIVE, font=small)
    top += cards_height + gap
    figure.paste(bars, (margin, top))
    if grid_picture is not None:
        left, grid_top = (margin + bars.width + gap, top) if beside else (margin, top + bars.height + gap)
        grid_rows, grid_columns = found.grid.shape
        draw.text((left, grid_top), f"activation grid ({grid_rows}x{grid_columns} cells)", fill="black", font=small)
        figure.paste(grid_picture, (left, grid_top + caption))
    return figure


__all__ = [
    "Attribution", "Explanation", "LayerActivations", "NeuronGroups", "SpatialGrid", "attribution", "explain",
    "layer_activations", "neuron_groups", "render_groups", "spatial_activation_grid",
]
