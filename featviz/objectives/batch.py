"""Objectives that look at the whole batch: diversity, alignment between neighbours, channel interpolation.

Their value for one element depends on the other elements (or on its position in the batch), so they
render sets of images that belong together. With K views per image (view-major batch ``k * B + b``), pass
``images=B`` so that the views of one image are not compared with each other and positions count images,
not views.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from featviz.errors import FeatvizError, check_int
from featviz.objectives.base import Objective
from featviz.objectives.checks import Activations, Shapes, check_channel, check_layer_name, layer_shape, read


def _check_images(images: int | None) -> int | None:
    if images is None:
        return None
    count = check_int(images, "images", 0)
    if count == 0:
        raise FeatvizError("images must be at least 1 (the number of distinct images in the batch), got 0")
    return count


class _BatchObjective(Objective):
    """Shared by batch objectives: the `images` grouping and per-batch-size constant tensors."""

    elementwise = False

    def __init__(self, layers: tuple[str, ...], name: str, images: int | None) -> None:
        super().__init__(layers, name)
        self.images = _check_images(images)
        self._constants: dict[tuple[Any, ...], Tensor] = {}

    def _image_count(self, batch: int) -> int:
        """How many distinct images the batch holds (the batch itself when `images` is None)."""
        if self.images is None:
            return batch
        if batch % self.images:
            raise FeatvizError(
                f"{self.name} was told the batch holds {self.images} images, but {batch} elements are not "
                f"a whole number of views of {self.images} images; pass images=<images per batch>"
            )
        return self.images

    def _constant(self, batch: int, reference: Tensor, build: Callable[[int, int], Tensor]) -> Tensor:
        """``build(batch, images)`` computed once per batch size, device and dtype."""
        key = (batch, reference.device, reference.dtype)
        found = self._constants.get(key)
        if found is None:
            found = build(batch, self._image_count(batch)).to(device=reference.device, dtype=reference.dtype)
            self._constants[key] = found
        return found


def _image_index(batch: int, images: int) -> Tensor:
    return torch.arange(batch) % images


class Diversity(_BatchObjective):
    """Negated mean style similarity of each element to the others; built by ``diversity()``.

    With ``group=G`` the batch's images form consecutive groups of G (images ``0..G-1``, ``G..2G-1``, ...)
    and each element is compared with the other images of its own group only, so one render holds many
    independent diversity sets.

    Example:
        >>> Diversity("blocks.3").name
        'diversity(blocks.3)'
        >>> Diversity("blocks.3", images=8, group=4).name
        'diversity(blocks.3, group=4)'
    """

    def __init__(self, layer: str, images: int | None = None, group: int | None = None) -> None:
        layer = check_layer_name(layer)
        group = _check_group(group)
        name = f"diversity({layer})" if group is None else f"diversity({layer}, group={group})"
        super().__init__((layer,), name, images)
        self.layer = layer
        self.group = group

    @staticmethod
    def _averaging(batch: int, images: int) -> Tensor:
        image = _image_index(batch, images)
        compared = (image[:, None] != image[None, :]).double()
        return compared / compared.sum(1, keepdim=True).clamp(min=1)

    def __call__(self, acts: Activations) -> Tensor:
        activation = read(acts, self.layer)
        features = activation.flatten(2)
        gram = features @ features.transpose(1, 2)
        styles = F.normalize(gram.flatten(1), dim=1)
        if self.group is not None:
            return self._grouped(styles)
        similarity = styles @ styles.t()
        averaging = self._constant(activation.shape[0], similarity, self._averaging)
        return -(similarity * averaging).sum(1)

    def _grouped(self, styles: Tensor) -> Tensor:
        """Mean similarity to the other images of the same group, in O(batch) instead of O(batch^2): the sum
        of similarities to those images is the dot product with the sum of their styles."""
        batch = styles.shape[0]
        images = self._image_count(batch)
        group = self.group
        if images % group:
            raise FeatvizError(
                f"{self.name} needs a whole number of groups of {group} images, but the batch holds {images} "
                f"images; render a multiple of {group} images"
            )
        views = batch // images
        grid = styles.view(views, images // group, group, -1)
        per_image = grid.sum(0)
        others = per_image.sum(1, keepdim=True) - per_image
        similarity = (grid * others).sum(-1)
        return -(similarity / max(views * (group - 1), 1)).reshape(-1)


def _check_group(group: int | None) -> int | None:
    if group is None:
        return None
    size = check_int(group, "group", 0)
    if size == 0:
        raise FeatvizError("group must be at least 1 (the number of images in each diversity set), got 0")
    return size


def diversity(layer: str, *, images: int | None = None, group: int | None = None) -> Objective:
    """Reward batch elements for differing in style at ``layer`` (lucid's ``diversity``), to be ADDED.

    Each element's Gram matrix (channel x channel correlations of its activations) is compared by cosine
    similarity with every other element's; the value of an element is the NEGATED mean of those
    similarities, in [-1, 0] for post-ReLU layers: higher means more diverse, so write
    ``channel(...) + 100 * diversity(...)``. With K views per image pass ``images=B`` so that views of the
    same image are not pushed apart. A batch of one image scores 0. ``group=G`` splits the images into
    consecutive sets of G that are compared within the set only (several diversity sets in one render;
    set ``s`` then scores exactly as a render of its G images alone).

    Example:
        >>> from featviz.objectives import channel, stack
        >>> goal = channel("blocks.4.0.conv_pwl", 12) + 100 * diversity("blocks.3", images=4)
        >>> sets = stack([channel("blocks.3", c) for c in (0, 0, 1, 1)]) + 100 * diversity("blocks.3", images=4, group=2)
        >>> diversity("blocks.3")({"blocks.3": torch.rand(3, 8, 4, 4)}).shape   # one value per image, <= 0
        torch.Size([3])
    """
    return Diversity(layer, images, group)


class Alignment(_BatchObjective):
    """Negated, distance-weighted L2 distance to neighbouring elements; built by ``alignment()``.

    Example:
        >>> Alignment("blocks.3").name
        'alignment(blocks.3)'
    """

    def __init__(self, layer: str, decay_ratio: float = 2.0, images: int | None = None) -> None:
        layer = check_layer_name(layer)
        decay_ratio = float(decay_ratio)
        if decay_ratio <= 0:
            raise FeatvizError(f"decay_ratio must be positive (2 halves the weight per step of distance), got {decay_ratio:g}")
        super().__init__((layer,), f"alignment({layer})", images)
        self.layer = layer
        self.decay_ratio = decay_ratio

    def _weights(self, batch: int, images: int) -> Tensor:
        image = _image_index(batch, images)
        view = torch.arange(batch) // images
        distance = (image[:, None] - image[None, :]).abs().double()
        compared = (view[:, None] == view[None, :]) & (distance > 0)
        # Each pair's penalty is shared by its two elements, so the batch total is lucid's sum over pairs.
        return torch.where(compared, 0.5 * self.decay_ratio ** -distance, torch.zeros(()).double())

    def __call__(self, acts: Activations) -> Tensor:
        features = read(acts, self.layer).flatten(1)
        squared = features.square().sum(1)
        mean_squared_distance = (squared[:, None] + squared[None, :] - 2 * features @ features.t()).clamp(min=0)
        mean_squared_distance = mean_squared_distance / features.shape[1]
        weights = self._constant(features.shape[0], mean_squared_distance, self._weights)
        return -(mean_squared_distance * weights).sum(1)


def alignment(layer: str, decay_ratio: float = 2.0, *, images: int | None = None) -> Objective:
    """Reward neighbouring batch elements for having similar activations at ``layer`` (lucid's ``alignment``),
    to be ADDED.

    Elements ``i`` and ``j`` are penalized by ``decay_ratio ** -|i - j| * mean((a_i - a_j) ** 2)``; each
    pair's penalty is split between its two elements and returned NEGATED, so higher means better aligned
    (0 when all elements are equal) and ``objective + alignment(...)`` smooths a row of images (e.g. an
    interpolation). Keep its weight small: about 0.1 (the interaction recipe's default); at 1.0 it already
    costs most of the activation, and at 10 it wins over the objective and leaves noise. With K views per
    image pass ``images=B``: only views of the same index are compared and distance counts images.

    Example:
        >>> goal = channel_interpolate("blocks.3", 1, "blocks.3", 7) + 0.1 * alignment("blocks.3")
        >>> same = torch.ones(1, 8, 4, 4).expand(3, -1, -1, -1)
        >>> alignment("blocks.3")({"blocks.3": same}).abs().sum()     # identical neighbours: no penalty
        tensor(0.)
    """
    return Alignment(layer, decay_ratio, images)


class ChannelInterpolate(_BatchObjective):
    """Element ``i`` of ``B`` maximizes ``(1 - i/(B-1))`` of one channel plus ``i/(B-1)`` of another.

    Built by ``channel_interpolate()``.

    Example:
        >>> ChannelInterpolate("blocks.3", 1, "blocks.4", 7).name
        'interpolate(blocks.3:1, blocks.4:7)'
    """

    def __init__(self, layer1: str, channel1: int, layer2: str, channel2: int, images: int | None = None) -> None:
        layer1, layer2 = check_layer_name(layer1), check_layer_name(layer2)
        channel1, channel2 = check_int(channel1, "channel", 0), check_int(channel2, "channel", 0)
        super().__init__((layer1, layer2), f"interpolate({layer1}:{channel1}, {layer2}:{channel2})", images)
        self.layer1, self.channel1, self.layer2, self.channel2 = layer1, channel1, layer2, channel2

    @staticmethod
    def _fractions(batch: int, images: int) -> Tensor:
        return _image_index(batch, images).double() / max(images - 1, 1)

    def __call__(self, acts: Activations) -> Tensor:
        first = read(acts, self.layer1)[:, self.channel1].mean((-2, -1))
        second = read(acts, self.layer2)[:, self.channel2].mean((-2, -1))
        fractions = self._constant(first.shape[0], first, self._fractions)
        return first + fractions * (second - first)

    def bind(self, model: Any, shapes: Shapes) -> None:
        for layer_name, channel_index in ((self.layer1, self.channel1), (self.layer2, self.channel2)):
            shape = layer_shape(model, shapes, layer_name)
            if shape is not None:
                check_channel(channel_index, layer_name, shape)


def channel_interpolate(layer1: str, channel1: int, layer2: str, channel2: int, *, images: int | None = None) -> Objective:
    """Interpolate between two channels across the batch (lucid's ``channel_interpolate``).

    Batch element ``i`` of ``B`` maximizes ``(1 - i/(B-1)) * mean(layer1[channel1]) + i/(B-1) *
    mean(layer2[channel2])``: the first image shows channel 1 only, the last channel 2 only. With K views
    per image pass ``images=B`` so that ``i`` counts images, not views.

    Example:
        >>> goal = channel_interpolate("blocks.3", 1, "blocks.4", 7, images=6) + alignment("blocks.3", images=6)
    """
    return ChannelInterpolate(layer1, channel1, layer2, channel2, images)


__all__ = ["Diversity", "Alignment", "ChannelInterpolate", "diversity", "alignment", "channel_interpolate"]
