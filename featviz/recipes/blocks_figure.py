"""The figure of `featviz.recipes.explain` and its parts, drawn with PIL: the groups' maps over the image, the
attribution per position, the bars of each group's attribution, and the composed figure (`Explanation.figure`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from featviz.io import atomic_path
from featviz.renderer.image import grid as tile, to_pil

# Colours of the neuron groups in figures and maps (after the 12th they repeat).
GROUP_COLORS = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 200, 200),
    (240, 50, 230), (150, 170, 40), (128, 0, 0), (0, 128, 128), (170, 110, 40), (0, 0, 128),
)
_POSITIVE = (40, 160, 60)
_NEGATIVE = (210, 50, 50)


def color(index: int) -> tuple[int, int, int]:
    return GROUP_COLORS[index % len(GROUP_COLORS)]


def _font(size: int = 13) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def save_picture(picture: Image.Image, path: Path) -> Path:
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


def groups_overlay(image: Tensor, maps: Tensor) -> Image.Image:
    """Every group's map in its colour over the dimmed image; brighter where the groups are used more."""
    size = tuple(image.shape[-2:])
    weights = _upsampled(maps, size).clamp(min=0)
    palette = torch.tensor([color(index) for index in range(len(maps))], dtype=torch.float32) / 255.0
    total = weights.sum(0)
    colors = torch.einsum("khw,kc->chw", weights, palette) / total.clamp(min=1e-12)
    alpha = (total / total.max().clamp(min=1e-12)).clamp(0, 1) * 0.85
    return _blend(_dimmed(image), colors, alpha)


def group_overlay(image: Tensor, values: Tensor, color: tuple[int, int, int]) -> Image.Image:
    size = tuple(image.shape[-2:])
    weights = _upsampled(values, size).clamp(min=0)
    alpha = (weights / weights.max().clamp(min=1e-12)) * 0.9
    tint = torch.tensor(color, dtype=torch.float32).view(3, 1, 1).expand(3, *size) / 255.0
    return _blend(_dimmed(image), tint, alpha)


def attribution_overlay(image: Tensor, values: Tensor) -> Image.Image:
    """Positive attribution in green, negative in red, over the dimmed image."""
    size = tuple(image.shape[-2:])
    upsampled = _upsampled(values, size)
    alpha = (upsampled.abs() / upsampled.abs().max().clamp(min=1e-12)) * 0.9
    positive = torch.tensor(_POSITIVE, dtype=torch.float32).view(3, 1, 1) / 255.0
    negative = torch.tensor(_NEGATIVE, dtype=torch.float32).view(3, 1, 1) / 255.0
    colors = torch.where(upsampled[None] >= 0, positive, negative)
    return _blend(_dimmed(image), colors, alpha)


def attribution_bars(attributed: Any, groups: int, width: int = 360, row_height: int = 22) -> Image.Image:
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
        draw.rectangle([6, top + 5, 18, top + row_height - 5], fill=color(index))
        draw.text((22, top + 4), f"group {index}", fill="black", font=font)
        if length:
            draw.rectangle([left, top + 4, right, top + row_height - 4], fill=_POSITIVE if value >= 0 else _NEGATIVE)
        draw.text((width - number_width + 4, top + 4), f"{value:+.3g}", fill="black", font=font)
    return picture


def _fit(picture: Image.Image, height: int) -> Image.Image:
    width = max(1, round(picture.width * height / picture.height))
    return picture.resize((width, height), Image.Resampling.LANCZOS)


def explanation_figure(found: Any) -> Image.Image:
    """Title; the image, the groups' maps and the attribution per position; one card per group (render, map,
    attribution); the attribution bars with the activation grid beside them (below them when it is too wide)."""
    margin, gap, panel, caption = 12, 10, 224, 18
    font, small = _font(14), _font(12)
    attributed = found.attribution
    panels = [
        ("image", _fit(to_pil(found.image)[0], panel)),
        (f"{len(found.groups)} neuron groups (NMF)", _fit(groups_overlay(found.image, found.groups.maps), panel)),
        ("attribution per position", _fit(attribution_overlay(found.image, attributed.per_position), panel)),
    ]
    top_width = sum(picture.width for _, picture in panels) + gap * (len(panels) - 1)
    card = max(96, min(160, found.renders.images.shape[-1]))
    renders = [_fit(picture, card) for picture in to_pil(found.renders.images)]
    card_width = max(picture.width for picture in renders)
    map_height = max(24, round(card_width * found.image.shape[-2] / found.image.shape[-1]))
    cards_width = len(found.groups) * (card_width + gap) - gap
    cards_height = caption + card + 4 + map_height + 20
    values = attributed.groups if attributed.groups is not None else torch.zeros(len(found.groups))
    bars = attribution_bars(attributed, len(found.groups))
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
        draw.rectangle([left, top + 2, left + 12, top + 14], fill=color(index))
        draw.text((left + 16, top), f"group {index}", fill="black", font=small)
        figure.paste(picture, (left, top + caption))
        overlay = group_overlay(found.image, found.groups.maps[index], color(index))
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


# Drawing helpers of `building_blocks`, not recipes: nothing for `featviz.recipes` to re-export.
__all__: list[str] = []
