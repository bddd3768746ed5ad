"""How units combine: the neuron interaction grid (every pair of a few units rendered together) and aligned
interpolation between two units (frames that share part of their parameters), after lucid's "neuron
interaction" and "aligned interpolation" notebooks and Differentiable Image Parameterizations (Distill 2018)."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from torch import nn

from featviz import objectives
from featviz.errors import FeatvizError, check_int
from featviz.models import Model
from featviz.objectives import Objective
from featviz.objectives.shorthand import objective as parse_objective
from featviz.objectives.shorthand import parse
from featviz.param.arguments import check_size
from featviz.param.shared import DEFAULT_FACTORS, Shared
from featviz.renderer.calls import old_call_forms
from featviz.renderer import Renderer, RenderResult, RenderSettings
from featviz.renderer.settings import settings_from

UnitLike = str | Objective
ModelLike = Model | nn.Module | str | Renderer
# Alignment's weight in `interpolate`. On efficientnet_lite0 (blocks.4 channels 3 and 7, 5 frames, 64 px, 40 steps)
# adjacent frames correlated 0.04 rendered independently, 0.47 with shared parameters, 0.55 adding alignment at
# 0.1 (the frames' objective 2% lower) and 0.60 at 1.0 (the objective halved).
DEFAULT_ALIGNMENT = 0.1
#: The render settings of `interaction_grid` and `interpolate` unless others are given.
DEFAULT_SETTINGS = RenderSettings(steps=256, size=96)


@dataclass
class InteractionResult(RenderResult):
    """A `RenderResult` holding the interaction grid row by row: image ``i * n + j`` maximizes unit ``i`` plus
    unit ``j`` of the ``n`` ``units`` (the diagonal: one unit alone). The grid is symmetric: the pair ``(i, j)``
    is rendered once and shown at ``(i, j)`` and ``(j, i)``. ``save`` to a .png writes the ``n x n`` grid. The
    other fields are `RenderResult`'s, laid out in the same ``n x n`` order: ``history`` ``(steps, n * n)``,
    ``objectives`` each cell's name, ``snapshots`` and ``importance`` (empty and None: `interaction_grid`
    keeps neither); ``seed`` is the render's first seed and ``seconds`` its duration.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
        >>> found = interaction_grid(net, ["1:0", "1:1", "1:2"], size=24, steps=2, progress=False)
        >>> found.units, found.images.shape, found.objectives[1]
        (['1:0', '1:1', '1:2'], torch.Size([9, 3, 24, 24]), '1:0 + 1:1')
    """

    units: list[str] = field(default_factory=list)

    def save(self, path: str | os.PathLike, grid_columns: int | None = None, **options: Any) -> list[Path]:
        """Write the grid (``path`` ends in .png, ``n`` columns by default) or one PNG per cell into a folder;
        ``options`` as `RenderResult.save`."""
        return super().save(path, grid_columns or len(self.units) or None, **options)


@dataclass
class InterpolationResult(RenderResult):
    """A `RenderResult` holding the frames of an interpolation: frame ``i`` maximizes ``(1 - t) * unit_a + t *
    unit_b`` with ``t = fractions[i]``. ``save`` to a .png writes one row of frames. The other fields are
    `RenderResult`'s, one entry per frame: ``history`` ``(steps, frames)`` and ``objectives``, each frame's mix
    of the two units by name; ``snapshots`` and ``importance`` are empty and None (`interpolate` keeps
    neither); ``seed`` is the first frame's seed and ``seconds`` the render's duration.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
        >>> frames = interpolate(net, "1:0", "1:1", frames=6, size=24, steps=2, progress=False)
        >>> frames.fractions, frames.images.shape
        ([0.0, 0.2, 0.4, 0.6, 0.8, 1.0], torch.Size([6, 3, 24, 24]))
    """

    fractions: list[float] = field(default_factory=list)

    def save(self, path: str | os.PathLike, grid_columns: int | None = None, **options: Any) -> list[Path]:
        """Write the frames as one row (``path`` ends in .png) or one PNG per frame into a folder; ``options``
        as `RenderResult.save`."""
        return super().save(path, grid_columns or len(self.images), **options)


def _renderer(model: ModelLike, settings: RenderSettings) -> Renderer:
    return model if isinstance(model, Renderer) else Renderer(model, **settings.renderer_options())


def _units(units: Sequence[UnitLike]) -> list[Objective]:
    """Each unit as an objective; shorthand naming several (``"blocks.4:0-3"``) gives several."""
    if isinstance(units, (str, Objective)):
        units = [units]
    found: list[Objective] = []
    for unit in units:
        if isinstance(unit, Objective):
            found.append(unit)
        elif isinstance(unit, str):
            found.extend(parse(unit))
        else:
            raise FeatvizError(f"a unit must be shorthand such as 'blocks.4:3' or an Objective, not {type(unit).__name__}")
    names = [unit.name for unit in found]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise FeatvizError(f"unit {repeated[0]} is given twice; give each unit once (the diagonal shows it alone)")
    if len(found) < 2:
        raise FeatvizError(f"an interaction grid needs at least 2 units, got {len(found)}; e.g. blocks.4:3 blocks.4:7")
    return found


def interaction_grid(
    model: ModelLike, units: Sequence[UnitLike], *, settings: RenderSettings | None = None, **render: Any,
) -> InteractionResult:
    """Render every pair of ``units`` together (lucid's neuron interaction): cell ``(i, j)`` maximizes unit ``i``
    plus unit ``j``, the diagonal each unit alone.

    ``units`` are objective shorthand (``"blocks.4:3"``, ``"blocks.5:7@2,2"``, ``"class:tabby"``; a range such
    as ``"blocks.4:0-3"`` gives several) or Objectives, at least 2. The ``n (n + 1) / 2`` distinct cells are
    rendered in one batch (pair ``p`` in row-major order of the upper triangle uses seed ``seed + p``) and
    mirrored into an ``n x n`` grid, rendered with ``settings`` (a `featviz.RenderSettings`; default
    ``DEFAULT_SETTINGS``, 256 steps at 96 pixels; its fields may also be given as keywords: ``steps=128``).
    ``model`` may be a `featviz.Renderer` (used as it is); otherwise one is made on ``settings.device``
    (default: the model's).

    Example:
        >>> found = interaction_grid("efficientnet_lite0", ["blocks.4:3", "blocks.4:7", "blocks.4:11"])  # doctest: +SKIP
        >>> found.save("interaction.png")  # doctest: +SKIP
    """
    found = _units(units)
    count = len(found)
    pairs = [(row, column) for row in range(count) for column in range(row, count)]
    goals = [found[row] if row == column else found[row] + found[column] for row, column in pairs]
    settings = settings_from(settings, DEFAULT_SETTINGS, render, owner="interaction_grid")
    renderer = _renderer(model, settings)
    result = renderer.render(goals, **settings.render_options())
    cell = {pair: index for index, pair in enumerate(pairs)}
    order = [cell[(min(row, column), max(row, column))] for row in range(count) for column in range(count)]
    values = _fields(result)
    values.update(
        images=result.images[order], history=result.history[:, order], objectives=[goals[index].name for index in order],
        snapshots={step: images[order] for step, images in result.snapshots.items()},
    )
    if getattr(result, "importance", None) is not None:
        values["importance"] = result.importance[order]
    return InteractionResult(**values, units=[unit.name for unit in found])


def _fields(result: RenderResult) -> dict[str, Any]:
    return {item.name: getattr(result, item.name) for item in dataclasses.fields(RenderResult)}


@old_call_forms(["model", "unit_a", "unit_b", "frames"])
def interpolate(
    model: ModelLike, unit_a: UnitLike, unit_b: UnitLike, *, frames: int = 8, shared: bool = True,
    alignment: float = DEFAULT_ALIGNMENT, alignment_layer: str | None = None,
    factors: Sequence[int] = DEFAULT_FACTORS, settings: RenderSettings | None = None, **render: Any,
) -> InterpolationResult:
    """Interpolate between two units (lucid's aligned interpolation): frame ``i`` of ``frames`` maximizes
    ``(1 - t) * unit_a + t * unit_b`` with ``t = i / (frames - 1)``, all frames in one batch.

    With ``shared`` (default) the frames are one `featviz.param.Shared` parameterization: each frame's own
    Fourier spectrum plus low-resolution grids (``factors`` times coarser than the image) common to all
    frames, so the frames keep one composition and change in details only; ``shared=False`` gives each frame
    its own Fourier image. ``alignment`` adds that weight of `featviz.objectives.alignment` (neighbouring
    frames rewarded for similar activations) at ``alignment_layer`` (default: the layer ``unit_a`` reads);
    0 turns it off. Units are objective shorthand naming one unit (``"blocks.4:3"``, ``"class:tabby"``) or
    Objectives. The frames are rendered with ``settings`` (a `featviz.RenderSettings`; default
    ``DEFAULT_SETTINGS``, 256 steps at 96 pixels; its fields may also be given as keywords: ``steps=128``;
    with ``shared`` its ``param`` is unused). ``model`` may be a `featviz.Renderer` (used as it is); otherwise
    one is made on ``settings.device`` (default: the model's). Frame ``i`` starts from seed ``seed + i``.

    Example:
        >>> frames = interpolate("efficientnet_lite0", "blocks.4:3", "blocks.4:7", frames=8)  # doctest: +SKIP
        >>> frames.save("interpolation.png")  # doctest: +SKIP
    """
    frames = check_int(frames, "frames", 2)
    settings = settings_from(settings, DEFAULT_SETTINGS, render, owner="interpolate")
    seed = settings.seed
    if isinstance(alignment, bool) or not isinstance(alignment, (int, float)) or not alignment >= 0:
        raise FeatvizError(f"alignment must be a number >= 0 (0 turns it off), not {alignment!r}")
    first, second = parse_objective(unit_a), parse_objective(unit_b)
    if first.name == second.name:
        raise FeatvizError(f"unit_a and unit_b are the same unit ({first.name}); give two different units")
    fractions = [index / (frames - 1) for index in range(frames)]
    goals = [first if fraction == 0 else second if fraction == 1 else first * (1.0 - fraction) + second * fraction
             for fraction in fractions]
    goal: Objective = objectives.stack(goals)
    if alignment > 0:
        layer = alignment_layer or _first_layer(first)
        goal = goal + float(alignment) * objectives.alignment(layer, images=frames)
    renderer = _renderer(model, settings)
    network = renderer.model
    image_size = check_size(settings.size if settings.size is not None else network.input_size)
    image = (
        Shared(image_size, factors=factors, batch=frames, channels=network.channels, seed=seed, device=renderer.device)
        if shared else None
    )
    options = {**settings.render_options(), "size": image_size}
    if shared:
        options["param"] = image
    result = renderer.render(goal, batch=frames, **options)
    values = _fields(result)
    values["objectives"] = [item.name for item in goals]
    return InterpolationResult(**values, fractions=fractions)


def _first_layer(unit: Objective) -> str:
    layers = sorted(name for name in unit.layers if not name.startswith("@"))
    if not layers:
        raise FeatvizError(f"unit {unit.name} reads no layer of the network; give alignment_layer= (e.g. 'blocks.4')")
    return layers[0]


__all__ = ["InteractionResult", "InterpolationResult", "interaction_grid", "interpolate"]
