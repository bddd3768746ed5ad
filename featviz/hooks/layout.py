"""Read any activation channels-first, from a layout that is known, never guessed from coincidences of sizes.

A layer's `Layout` says where its batch, channels and positions are: ``nchw`` (convolutions), ``nhwc``
(Swin stages, ConvNeXt's channels-last MLPs), ``nlc`` (transformer tokens, batch first), ``lnc`` (tokens,
sequence first, as in older CLIP transformers), ``ncl`` (1-D convolutions) or ``nc`` (vectors: logits, pooled
features). Tokens carry how many leading tokens (CLS, registers) to drop and the patch grid they lie on.
`featviz.hooks.survey` decides each layer's layout from what the model says: a layout the user or model
declares, how the output's dimensions change when the input size changes, the module's type, and the patch
grid a ViT declares. `channels_first` then views the activation as ``(B, C, H, W)`` without copying it.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

from torch import Tensor

from featviz.errors import FeatvizError

KINDS = ("nchw", "nhwc", "nlc", "lnc", "ncl", "nc")
_RANKS = {"nchw": 4, "nhwc": 4, "nlc": 3, "lnc": 3, "ncl": 3, "nc": 2}


class Layout(NamedTuple):
    """Where an activation keeps its batch, channels and positions.

    ``kind`` is one of ``KINDS``. For tokens (``nlc``, ``lnc``), ``prefix`` leading tokens are dropped and the
    rest lie on a ``grid`` of (rows, columns), or on one row when ``grid`` is None.

    Example:
        >>> Layout("nlc", prefix=1, grid=(14, 14))  # ViT-B/16 at 224 px: CLS + 14x14 patches
        Layout(kind='nlc', prefix=1, grid=(14, 14))
    """

    kind: str
    prefix: int = 0
    grid: tuple[int, int] | None = None

    @property
    def rank(self) -> int:
        """The number of dimensions an activation in this layout has, batch included."""
        return _RANKS[self.kind]

    def describe(self) -> str:
        """A short description for tables and messages, e.g. ``"nlc, 1 prefix + 14x14"``."""
        if self.kind not in ("nlc", "lnc"):
            return self.kind
        grid = f"{self.grid[0]}x{self.grid[1]}" if self.grid else "one row"
        return f"{self.kind}, {self.prefix} prefix + {grid}" if self.prefix else f"{self.kind}, {grid}"


IMAGE_LAYOUT = Layout("nchw")


def as_layout(value: Layout | str) -> Layout:
    """``value`` as a `Layout`: a `Layout`, or one of the names in ``KINDS``; anything else is a FeatvizError.

    Example:
        >>> as_layout("nhwc")
        Layout(kind='nhwc', prefix=0, grid=None)
    """
    if isinstance(value, Layout):
        if value.kind not in KINDS:
            raise FeatvizError(f"unknown activation layout '{value.kind}'; valid: {', '.join(KINDS)}")
        return value
    if isinstance(value, str) and value.strip().lower() in KINDS:
        return Layout(value.strip().lower())
    raise FeatvizError(f"unknown activation layout {value!r}; valid: {', '.join(KINDS)} (or a featviz.hooks.Layout)")


def _describe(shape: Sequence[int]) -> str:
    return "x".join(str(size) for size in shape)


def channels_first(activation: Tensor, layout: Layout | str) -> Tensor:
    """View ``activation`` as ``(B, C, H, W)`` according to its ``layout`` (no data is copied).

    ``nhwc`` is permuted; tokens lose their ``prefix`` tokens and become a ``(B, C, rows, columns)`` grid, or
    ``(B, C, 1, N)`` on one row; ``ncl`` becomes ``(B, C, 1, L)``; vectors become ``(B, C, 1, 1)``.

    Example:
        >>> channels_first(torch.zeros(2, 197, 768), Layout("nlc", 1, (14, 14))).shape
        torch.Size([2, 768, 14, 14])
    """
    layout = as_layout(layout)
    if activation.dim() != layout.rank:
        raise FeatvizError(
            f"an activation of shape {_describe(activation.shape)} cannot be read as {layout.kind} "
            f"({layout.rank} dimensions); declare the layer's layout with layouts={{layer: kind}}"
        )
    kind = layout.kind
    if kind == "nchw":
        return activation
    if kind == "nhwc":
        return activation.permute(0, 3, 1, 2)
    if kind == "nc":
        return activation[:, :, None, None]
    if kind == "ncl":
        return activation.unsqueeze(2)
    tokens = activation.transpose(0, 1) if kind == "lnc" else activation
    if layout.prefix:
        tokens = tokens[:, layout.prefix:]
    if layout.grid is None:
        return tokens.transpose(1, 2).unsqueeze(2)
    rows, columns = layout.grid
    if tokens.shape[1] != rows * columns:
        raise FeatvizError(
            f"{tokens.shape[1]} tokens do not fill the {rows}x{columns} patch grid this layer was bound with; "
            "render at the size the objective was bound at"
        )
    return tokens.unflatten(1, (rows, columns)).permute(0, 3, 1, 2)


def map_shape(shape: Sequence[int], layout: Layout | str) -> tuple[int, int, int, int]:
    """The ``(B, C, H, W)`` shape `channels_first` gives an activation of ``shape`` in ``layout``.

    Example:
        >>> map_shape((1, 40, 30, 40), "nhwc")
        (1, 40, 40, 30)
    """
    layout = as_layout(layout)
    if len(shape) != layout.rank:
        raise FeatvizError(
            f"an activation of shape {_describe(shape)} cannot be read as {layout.kind} ({layout.rank} dimensions)"
        )
    kind = layout.kind
    if kind == "nchw":
        return tuple(shape)  # type: ignore[return-value]
    if kind == "nhwc":
        return shape[0], shape[3], shape[1], shape[2]
    if kind == "nc":
        return shape[0], shape[1], 1, 1
    if kind == "ncl":
        return shape[0], shape[1], 1, shape[2]
    batch, count, channels = (shape[1], shape[0], shape[2]) if kind == "lnc" else tuple(shape)
    if layout.grid is None:
        return batch, channels, 1, count - layout.prefix
    return batch, channels, layout.grid[0], layout.grid[1]
