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
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from featviz.errors import FeatvizError, check_int
from featviz.hooks import OUTPUT, RESERVED, ActivationCapture, Layout, bind_layers, channels_first, leaf_output
from featviz.io import ensure_writable_dir, write_text
from featviz.metrics.images import resize
from featviz.models import Model, load_model
from featviz.objectives import Objective, class_logit, direction, direction_neuron
from featviz.objectives.binding import bind_objective
from featviz.objectives.shorthand import objective as parse_objective
from featviz.dataset.photo import PhotoLike, load_photo, photo_size
from featviz.recipes.blocks_figure import (
    attribution_bars, attribution_overlay, color, explanation_figure, group_overlay, groups_overlay,
    save_picture,
)
from featviz.recipes.factors import NEGATIVES, fit_nmf, nmf_features
from featviz.renderer.calls import old_call_forms
from featviz.renderer import Renderer, RenderResult, RenderSettings
from featviz.renderer.settings import settings_from
from featviz.renderer.image import save_png, to_pil

_NMF_ITERATIONS = 1000

ModelLike = Model | nn.Module | str | Renderer
#: The render settings of `render_groups` and `explain`'s group renders unless others are given.
GROUP_SETTINGS = RenderSettings(steps=256, size=96)
#: The render settings of `spatial_activation_grid`'s cells unless others are given.
GRID_SETTINGS = RenderSettings(steps=256, size=64)
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
        >>> cells = spatial_activation_grid("efficientnet_lite0", "blocks.4", "cat.jpg", pool=2)  # doctest: +SKIP
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
        >>> found = neuron_groups("efficientnet_lite0", "blocks.4", "cat.jpg", groups=6)  # doctest: +SKIP
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
        >>> found = explain("efficientnet_lite0", "blocks.4", "cat.jpg", groups=6, steps=128)  # doctest: +SKIP
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
        return explanation_figure(self)

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
            ("groups.png", groups_overlay(self.image, self.groups.maps)),
        ]
        for index in range(len(self.groups)):
            parts.append((f"group-{index}-map.png", group_overlay(self.image, self.groups.maps[index], color(index))))
        parts += [
            ("attribution-map.png", attribution_overlay(self.image, self.attribution.per_position)),
            ("attribution-bars.png", attribution_bars(self.attribution, len(self.groups))),
        ]
        written = [save_picture(picture, folder / name) for name, picture in parts]
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


@old_call_forms(["image", "model", "layer"])
def layer_activations(
    model: Model | nn.Module | str, layer: str, image: PhotoLike, *, image_size: int | Sequence[int] | None = None,
    device: str | torch.device | None = None,
) -> LayerActivations:
    """``image`` (a path, PIL image or tensor) resized and read at ``layer`` of ``model``, channels-first.

    The image keeps its aspect ratio with its shorter side at ``image_size`` (default: the model's smaller input
    side); a ``(height, width)`` pair sets both. A model that takes only its input size sees the image resized
    to it. The layer's rows x columns are the ones the model's survey finds at that size. ``device`` defaults
    to the model's.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        >>> seen = layer_activations(net, "1", torch.rand(3, 30, 60), image_size=32)
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


@old_call_forms(["image", "model", "layer", "groups"])
def neuron_groups(
    model: Model | nn.Module | str, layer: str, image: PhotoLike, *, groups: int = 6, negatives: str = "split",
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
        >>> found = neuron_groups(net, "1", torch.rand(3, 40, 64), groups=4, image_size=(40, 64))
        >>> found.maps.shape, found.directions.shape
        (torch.Size([4, 20, 32]), torch.Size([4, 8]))
    """
    seed = check_int(seed, "seed", 0)
    return _factorize(layer_activations(model, layer, image, image_size=image_size, device=device), groups, negatives, seed)


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
    photo = seen.image.to(device=model.device, dtype=model.dtype)
    with torch.enable_grad(), leaf_output(model.get_layer(seen.layer), seen.layer, "attribution") as leaf:
        with ActivationCapture(model, bound.target.layers, layouts=bound.layouts) as capture:
            activations = capture.run(photo)
        if goal is None:
            logits = activations[OUTPUT].flatten(1)[0]
            index = int(logits.detach().argmax())
            value, name = logits[index], _predicted_name(model, index)
        else:
            value, name = bound.target(activations).sum(), bound.target.name
        try:
            gradient = leaf.gradient(value)
        except FeatvizError:  # the forward stopped at the target before reaching the layer: it cannot depend on it
            gradient = None
    if gradient is None:
        raise FeatvizError(
            f"target '{name}' does not depend on layer '{seen.layer}'; pick a target computed after "
            "it (a class, or a unit of a later layer)"
        )
    activations = channels_first(leaf.tensor.detach(), seen.layout)[0].float().cpu()
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


@old_call_forms(["image", "model", "layer", "target"])
def attribution(
    model: Model | nn.Module | str, layer: str, image: PhotoLike, *, target: TargetLike = None,
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
        >>> found = attribution(net, "0", torch.rand(3, 24, 40), target=2, image_size=(24, 40))
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


def _renderer(model: ModelLike, settings: RenderSettings) -> Renderer:
    return model if isinstance(model, Renderer) else Renderer(model, **settings.renderer_options())


def _pooled(seen: LayerActivations, pool: int) -> Tensor:
    """``(rows, columns, channels)``: mean activation vectors over blocks of ``pool x pool`` positions."""
    pool = check_int(pool, "pool", 1)
    rows, columns = seen.grid_shape
    cells = (math.ceil(rows / pool), math.ceil(columns / pool))
    return F.adaptive_avg_pool2d(seen.activations[None], cells)[0].permute(1, 2, 0).contiguous()


def _grid(renderer: Renderer, seen: LayerActivations, pool: int, cossim_pow: float, settings: RenderSettings) -> SpatialGrid:
    vectors = _pooled(seen, pool)
    rows, columns, _ = vectors.shape
    goals = [
        direction_neuron(seen.layer, vectors[row, column], cossim_pow=cossim_pow)
        for row in range(rows) for column in range(columns)
    ]
    result = renderer.render(goals, **settings.render_options())
    result.objectives = [
        f"direction({seen.layer}) of cell {row},{column}" for row in range(rows) for column in range(columns)
    ]
    return SpatialGrid(seen.layer, vectors, result)


@old_call_forms(["image", "model", "layer"])
def spatial_activation_grid(
    model: ModelLike, layer: str, image: PhotoLike, *, pool: int = 1, cossim_pow: float = 1.0,
    image_size: int | Sequence[int] | None = None, settings: RenderSettings | None = None, **render: Any,
) -> SpatialGrid:
    """The activation grid of lucid's building blocks: what the network sees at each position of ``layer``.

    The image's activation vector at each position (or, with ``pool``, the mean over each ``pool x pool`` block
    of positions) is rendered as a direction (``featviz.objectives.direction_neuron`` at the centre, with
    ``cossim_pow``) in one batched render: cell ``(r, c)`` is image ``r * columns + c``, seed ``seed + r *
    columns + c``. The grid has the layer's rows and columns for this image (from the model's survey), pooled.
    ``model`` may be a `featviz.Renderer` to reuse its prepared network. Each cell is rendered with
    ``settings`` (a `featviz.RenderSettings`; default ``GRID_SETTINGS``, 256 steps at 64 pixels; its fields may
    also be given as keywords: ``steps=128``). The image is read at ``image_size`` as `layer_activations`
    reads it. ``settings.device`` defaults to the model's (a given `featviz.Renderer` keeps its own).

    Example:
        >>> cells = spatial_activation_grid("efficientnet_lite0", "blocks.4", "cat.jpg", pool=2)  # doctest: +SKIP
        >>> cells.shape  # doctest: +SKIP
        (7, 11)
        >>> cells.save("grid.png")  # doctest: +SKIP
    """
    settings = settings_from(settings, GRID_SETTINGS, render, owner="spatial_activation_grid")
    renderer = _renderer(model, settings)
    seen = _seen(image, renderer.model, layer, image_size)
    return _grid(renderer, seen, pool, float(cossim_pow), settings)


@old_call_forms(["groups", "model"])
def render_groups(
    model: ModelLike, groups: NeuronGroups, *, cossim_pow: float = 1.0, settings: RenderSettings | None = None,
    **render: Any,
) -> RenderResult:
    """Render each neuron group's direction (``featviz.objectives.direction`` over all positions, with
    ``cossim_pow``) in one batched render: image ``k`` shows group ``k``, seed ``seed + k``, rendered with
    ``settings`` (a `featviz.RenderSettings`; default ``GROUP_SETTINGS``, 256 steps at 96 pixels; its fields
    may also be given as keywords: ``steps=128``). ``model`` may be a `featviz.Renderer` (used as it is);
    otherwise one is made on ``settings.device`` (default: the model's).

    Example:
        >>> found = neuron_groups("efficientnet_lite0", "blocks.4", "cat.jpg", groups=4)  # doctest: +SKIP
        >>> render_groups("efficientnet_lite0", found, steps=128).save("groups.png")  # doctest: +SKIP
    """
    settings = settings_from(settings, GROUP_SETTINGS, render, owner="render_groups")
    renderer = _renderer(model, settings)
    goals = [direction(groups.layer, vector, cossim_pow=float(cossim_pow)) for vector in groups.directions]
    result = renderer.render(goals, **settings.render_options())
    result.objectives = [f"direction({groups.layer}) of group {index}" for index in range(len(groups))]
    return result


# ---------------------------------------------------------------- the whole figure


@old_call_forms(["image", "model", "layer", "groups", "target"])
def explain(
    model: ModelLike, layer: str, image: PhotoLike, *, groups: int = 6, target: TargetLike = None,
    negatives: str = "split", cossim_pow: float = 1.0, grid_pool: int | None = None,
    grid_size: int | Sequence[int] = 48, image_size: int | Sequence[int] | None = None,
    settings: RenderSettings | None = None, **render: Any,
) -> Explanation:
    """Explain what ``model`` sees in ``image`` at ``layer`` and why it decides ``target`` (default: its predicted
    class), as in The Building Blocks of Interpretability: ``groups`` neuron groups (`neuron_groups`, with
    ``negatives``), each group's attribution toward the target per position (`attribution`), a render of each
    group's direction (`render_groups`: seeds ``seed + k``, ``cossim_pow``), and, with ``grid_pool``, the
    activation grid pooled over blocks of that many positions (`spatial_activation_grid`: ``grid_size`` pixels
    per cell, seeds from ``seed + groups``). Every render uses ``settings`` (a `featviz.RenderSettings`;
    default ``GROUP_SETTINGS``, 256 steps at 96 pixels; its fields may also be given as keywords:
    ``steps=128``); ``seed`` also seeds the NMF. The image is read at ``image_size`` as `layer_activations`
    reads it. One `featviz.Renderer` serves every render: ``model`` itself when it is one, else one made on
    ``settings.device`` (default: the model's).
    ``Explanation.save(folder)`` writes the figure and its parts.

    Example:
        >>> found = explain("efficientnet_lite0", "blocks.4", "cat.jpg", groups=6, steps=128)  # doctest: +SKIP
        >>> found.save("cat-explained/")[0]  # doctest: +SKIP
        PosixPath('cat-explained/figure.png')
    """
    settings = settings_from(settings, GROUP_SETTINGS, render, owner="explain")
    seed = settings.seed
    if grid_pool is not None:
        grid_pool = check_int(grid_pool, "grid_pool", 1)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    renderer = _renderer(model, settings)
    network = renderer.model
    seen = _seen(image, network, layer, image_size)
    seconds["activations"] = time.perf_counter() - started

    started = time.perf_counter()
    found = _factorize(seen, groups, negatives, seed)
    seconds["groups"] = time.perf_counter() - started

    started = time.perf_counter()
    attributed = _attribute(network, seen, _target(target), found)
    seconds["attribution"] = time.perf_counter() - started

    started = time.perf_counter()
    renders = render_groups(renderer, found, cossim_pow=cossim_pow, settings=settings)
    seconds["renders"] = time.perf_counter() - started

    cells = None
    if grid_pool is not None:
        started = time.perf_counter()
        cells = _grid(renderer, seen, grid_pool, float(cossim_pow), settings.replace(size=grid_size, seed=seed + len(found)))
        seconds["grid"] = time.perf_counter() - started
    return Explanation(seen.image, seen.layer, seen.activations, found, attributed, renders, cells, seconds)


__all__ = [
    "Attribution", "Explanation", "LayerActivations", "NeuronGroups", "SpatialGrid", "attribution", "explain",
    "layer_activations", "neuron_groups", "render_groups", "spatial_activation_grid",
]
