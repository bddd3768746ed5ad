"""What a model's layers output, and in which layout: found by running it, never guessed from sizes.

`survey` runs the model twice on a batch of two grey images, at its input size and at a second size that
differs in height and width by different amounts, with a hook on every module. From the two runs it knows
each layer's output shape, which dimension holds the batch (the one of size 2), which dimensions follow the
input's height and width (spatial) and which do not (channels), and whether the model takes other input sizes
at all. `Survey.layout` turns that, the module's type and what the model declares (a ViT's patch grid and
prefix tokens, timm's ``output_fmt``, a user's ``layouts={...}``) into a `Layout`; when nothing can tell, it
raises a FeatvizError that names the choices.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

import torch
from torch import nn

from featviz.errors import FeatvizError
from featviz.hooks.capture import IMAGE, OUTPUT, ActivationCapture, first_tensor
from featviz.hooks.layout import IMAGE_LAYOUT, KINDS, Layout, as_layout, map_shape
from featviz.hooks.memory import check_render_memory

PROBE_BATCH = 2
SECOND_SIZE_STEP = (64, 32)  # height and width grow by different amounts, so each spatial dimension is known

_CHANNELS_FIRST_2D = (
    nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.MaxPool2d, nn.AvgPool2d,
    nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Upsample, nn.PixelShuffle, nn.PixelUnshuffle, nn.Dropout2d,
    nn.LocalResponseNorm, nn.ZeroPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d,
)
_CHANNELS_FIRST_1D = (nn.Conv1d, nn.ConvTranspose1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AvgPool1d, nn.AdaptiveAvgPool1d)
_CHANNELS_LAST = (nn.Linear, nn.LayerNorm)  # exact types: timm's LayerNorm2d subclasses LayerNorm but is NCHW


@dataclass
class Survey:
    """Each layer's output shape at two input sizes (batch of 2), and how to read its layout.

    ``shapes`` and ``other_shapes`` map layer names (and ``"@output"``) to output shapes at ``size`` and
    ``other_size``; ``takes_other_sizes`` is False when the model fails at ``other_size`` (a fixed-size ViT,
    CLIP's attention-pooled ResNet), and ``other_shapes`` then holds the layers that ran before it failed.
    ``elements_per_pixel`` is the number of activation values the model's leaf modules output per input pixel
    and image (for memory estimates). ``network`` is the surveyed network, ``types`` each layer's module type
    name and ``declared`` the layouts the model declares (by layer name).

    Example:
        >>> survey_model(model).layout("blocks.2", (1, 40, 40, 30), (320, 240))
        Layout(kind='nchw', prefix=0, grid=None)
    """

    network: nn.Module
    size: tuple[int, int]
    other_size: tuple[int, int]
    takes_other_sizes: bool
    shapes: dict[str, tuple[int, ...]]
    other_shapes: dict[str, tuple[int, ...]]
    types: dict[str, str]
    elements_per_pixel: float
    declared: dict[str, Layout] = field(default_factory=dict)

    def layout(self, name: str, shape: tuple[int, ...], size: tuple[int, int]) -> Layout:
        """The layout of layer ``name``, whose output has ``shape`` when the model sees images of ``size``.

        Raises FeatvizError naming the choices when nothing the model says decides it.
        """
        if name == IMAGE:
            return IMAGE_LAYOUT
        if name in self.declared:
            return self.declared[name]
        kind = self._kind(name)
        if kind in ("nlc", "lnc"):
            count = shape[0] if kind == "lnc" else shape[1]
            return self._tokens(kind, name, count, size)
        return Layout(kind)

    def _kind(self, name: str) -> str:
        shape = self.shapes.get(name)
        if shape is None:
            raise FeatvizError(f"layer '{name}' did not run in the forward pass; pick layers the model's forward calls")
        rank = len(shape)
        choices = " or ".join(f"'{kind}'" for kind in KINDS if _rank(kind) == rank) or "none fits"
        undecided = (
            f"cannot tell the layout of layer '{name}' (output {_format(shape)} for a batch of {PROBE_BATCH}, "
            f"module {self.types.get(name, '?')}); declare it with load_model(..., layouts={{'{name}': KIND}}), "
            f"KIND {choices}"
        )
        if rank not in (2, 3, 4):
            raise FeatvizError(f"layer '{name}' outputs a {rank}-D tensor ({_format(shape)}); pick a layer with 2-4 dimensions")
        if shape[0] != PROBE_BATCH:
            if rank == 3 and shape[1] == PROBE_BATCH:
                return "lnc"
            raise FeatvizError(undecided)
        if rank == 2:
            return "nc"
        kind = self._from_other_size(name, shape) or self._from_type(name, rank) or self._from_model(name, shape)
        if kind is None:
            raise FeatvizError(undecided)
        return kind

    def _from_other_size(self, name: str, shape: tuple[int, ...]) -> str | None:
        other = self.other_shapes.get(name)
        if other is None or len(other) != len(shape):
            return None
        changed = {index for index in range(1, len(shape)) if shape[index] != other[index]}
        if len(shape) == 3:
            return {frozenset({1}): "nlc", frozenset({2}): "ncl"}.get(frozenset(changed))
        if changed:
            if changed <= {2, 3} and 3 in changed:
                return "nchw"
            if changed <= {1, 2} and 1 in changed:
                return "nhwc"
            return None
        # Nothing follows the input size: a 1x1 map, whose one non-1 dimension is the channels.
        if shape[2] == shape[3] == 1:
            return "nchw"
        if shape[1] == shape[2] == 1:
            return "nhwc"
        return None

    def _from_type(self, name: str, rank: int) -> str | None:
        module = self.network if name == OUTPUT else self.network.get_submodule(name)
        if rank == 4 and isinstance(module, _CHANNELS_FIRST_2D):
            return "nchw"
        if rank == 3 and isinstance(module, _CHANNELS_FIRST_1D):
            return "ncl"
        if type(module) in _CHANNELS_LAST:
            return "nhwc" if rank == 4 else "nlc"
        return None

    def _from_model(self, name: str, shape: tuple[int, ...]) -> str | None:
        if len(shape) == 4 and str(getattr(self.network, "output_fmt", "")).upper() == "NHWC":
            return "nhwc"  # timm's declaration for models that work channels-last throughout (Swin)
        declared = declared_patch_grid(self.network)
        if len(shape) == 3 and declared is not None:
            (patch_height, patch_width), prefix = declared
            tokens = prefix + (self.size[0] // patch_height) * (self.size[1] // patch_width)
            if shape[1] == tokens and shape[2] != tokens:
                return "nlc"
            if shape[2] == tokens and shape[1] != tokens:
                return "ncl"
        return None

    def _tokens(self, kind: str, name: str, count: int, size: tuple[int, int]) -> Layout:
        for patch, prefix in self._patch_candidates(kind, name):
            rows, columns = size[0] // patch[0], size[1] // patch[1]
            if rows * columns > 0 and prefix + rows * columns == count:
                return Layout(kind, prefix, (rows, columns))
        return Layout(kind)

    def _patch_candidates(self, kind: str, name: str) -> list[tuple[tuple[int, int], int]]:
        candidates = []
        declared = declared_patch_grid(self.network)
        if declared is not None:
            candidates.append(declared)
        other = self.other_shapes.get(name)
        if other is not None:
            token_dim = 0 if kind == "lnc" else 1
            count, other_count = self.shapes[name][token_dim], other[token_dim]
            pixels = self.size[0] * self.size[1]
            other_pixels = self.other_size[0] * self.other_size[1]
            if other_count != count and (other_pixels - pixels) % (other_count - count) == 0:
                area = (other_pixels - pixels) // (other_count - count)
                side = math.isqrt(area)
                if side * side == area and side > 0 and pixels % area == 0:
                    prefix = count - pixels // area
                    if prefix >= 0:
                        candidates.append(((side, side), prefix))
        return candidates


def _rank(kind: str) -> int:
    return Layout(kind).rank


def _format(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def declared_patch_grid(network: nn.Module) -> tuple[tuple[int, int], int] | None:
    """The ``((patch_height, patch_width), prefix_tokens)`` that ``network``, a vision transformer, declares, or None.

    timm ViTs declare ``patch_embed.patch_size`` and ``num_prefix_tokens``; open_clip's VisionTransformer
    declares ``patch_size`` and has one class token.

    Example:
        >>> import timm
        >>> declared_patch_grid(timm.create_model("vit_tiny_patch16_224"))
        ((16, 16), 1)
    """
    patch_embed = getattr(network, "patch_embed", None)
    patch = getattr(patch_embed, "patch_size", None) if isinstance(patch_embed, nn.Module) else None
    prefix = getattr(network, "num_prefix_tokens", None)
    if patch is None and hasattr(network, "class_embedding"):
        patch, prefix = getattr(network, "patch_size", None), 1
    if patch is None or not isinstance(prefix, int):
        return None
    pair = (int(patch), int(patch)) if isinstance(patch, int) else tuple(int(side) for side in patch)
    return (pair[0], pair[1]), prefix


def _probe(
    model: Any, size: tuple[int, int], named: list[tuple[str, nn.Module]], partial: bool = False
) -> tuple[dict, int, bool]:
    """Output shapes of every module for a batch of two grey images of ``size``, the values leaf modules output,
    and whether the forward pass finished; with ``partial``, a failing model keeps the shapes seen before."""
    shapes: dict[str, tuple[int, ...]] = {}
    leaf_elements = 0

    def hook_for(name: str, leaf: bool):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            nonlocal leaf_elements
            try:
                tensor = first_tensor(output)
            except FeatvizError:
                return
            shapes.setdefault(name, tuple(tensor.shape))
            if leaf:
                leaf_elements += tensor.numel()

        return hook

    handles = [module.register_forward_hook(hook_for(name, not any(True for _ in module.children())))
               for name, module in named]
    finished = True
    try:
        probe = torch.full((PROBE_BATCH, model.channels, *size), 0.5, device=model.device, dtype=model.dtype)
        with torch.no_grad():
            output = model(probe)
        shapes[OUTPUT] = tuple(first_tensor(output).shape)
    except FeatvizError:
        raise
    except Exception:  # noqa: BLE001 - a model that refuses this size; the layers before the failure still count
        if not partial:
            raise
        finished = False
    finally:
        for handle in handles:
            handle.remove()
    return shapes, leaf_elements, finished


def probe_shapes(model: Any, size: tuple[int, int]) -> dict[str, tuple[int, ...]]:
    """Every layer's output shape (and ``"@output"``'s) for a batch of two grey images of ``size``; a size
    whose forward pass cannot fit in memory is refused first.

    Example:
        >>> probe_shapes(model, (96, 128))["blocks.2"]
        (2, 40, 12, 16)
    """
    check_render_memory(
        survey_model(model), device=model.device, image_size=size, network_size=size, images=PROBE_BATCH, views=1,
        channels=model.channels, network_dtype=model.dtype, parameterized=False,
    )
    named = [(name, module) for name, module in model.network.named_modules() if name]
    shapes, _, finished = _probe(model, size, named, partial=True)
    if not finished:
        height, width = model.input_size
        raise FeatvizError(
            f"{getattr(model, 'name', 'the model')} cannot run at {size[0]}x{size[1]}; use its input size "
            f"{height}x{width} or another size it takes"
        )
    return shapes


def survey_model(model: Any) -> Survey:
    """Survey a featviz `Model` (cached on it): every layer's output shape at two input sizes, and its layouts.

    Example:
        >>> survey_model(model).takes_other_sizes      # EfficientNet-Lite0 renders at any size
        True
    """
    cached = model.__dict__.get("_featviz_survey")
    if cached is not None:
        return cached
    network = model.network
    named = [(name, module) for name, module in network.named_modules() if name]
    size = tuple(model.input_size)
    advice = f"{size[0]}x{size[1]} is its input size; if it takes another, pass it: load_model(..., input_size=(H, W))"
    with _in_one_line(model, size, advice):
        shapes, leaf_elements, _ = _probe(model, size, named)
    other_size = (size[0] + SECOND_SIZE_STEP[0], size[1] + SECOND_SIZE_STEP[1])
    other_shapes, _, takes_other_sizes = _probe(model, other_size, named, partial=True)
    declared = {name: as_layout(layout) for name, layout in (getattr(model, "layouts", None) or {}).items()}
    result = Survey(
        network=network, size=size, other_size=other_size, takes_other_sizes=takes_other_sizes, shapes=shapes,
        other_shapes=other_shapes,
        types={name: type(module).__name__ for name, module in named} | {OUTPUT: type(network).__name__},
        elements_per_pixel=leaf_elements / (PROBE_BATCH * size[0] * size[1]), declared=declared,
    )
    model.__dict__["_featviz_survey"] = result
    return result


def resolve_layouts(model: Any, shapes: Mapping[str, tuple[int, ...]], size: tuple[int, int]) -> dict[str, Layout]:
    """The layout of each layer in ``shapes`` (output shapes when the model sees images of ``size``).

    Example:
        >>> resolve_layouts(model, {"blocks.2": (1, 40, 40, 30)}, (320, 240))
        {'blocks.2': Layout(kind='nchw', prefix=0, grid=None)}
    """
    found = survey_model(model)
    return {name: found.layout(name, tuple(shape), size) for name, shape in shapes.items()}


@dataclass
class LayerBinding:
    """Layers checked against a model at one input size: the ``size`` the model sees (the requested one, or its
    input size for a model that takes no other), each layer's ``layouts`` entry and its channels-first
    ``shapes`` ``(1, C, H, W)`` at that size.

    Example:
        >>> binding = bind_layers(model, ["blocks.2"], (64, 48))
        >>> binding.shapes["blocks.2"], binding.size
        ((1, 40, 8, 6), (64, 48))
    """

    size: tuple[int, int]
    layouts: dict[str, Layout]
    shapes: dict[str, tuple[int, int, int, int]]


def bind_layers(model: Any, layers: Iterable[str], size: Sequence[int] | None = None) -> LayerBinding:
    """Run one grey image through ``model`` at ``size`` (default: its input size) and read each of ``layers``.

    A model that takes only its input size (a fixed-size ViT) is bound at that size, which images are then
    resampled to; a model that takes other sizes but fails at this one raises a FeatvizError saying so. Unknown
    layers raise a FeatvizError with the closest names. ``"@image"`` is the image itself, at ``size``.

    Example:
        >>> bind_layers(model, ["blocks.4.0.conv_pwl"], (128, 96)).shapes["blocks.4.0.conv_pwl"]
        (1, 112, 8, 6)
    """
    requested = (int(size[0]), int(size[1])) if size is not None else tuple(model.input_size)
    names = sorted(set(layers))
    network_layers = [name for name in names if name != IMAGE]
    found = survey_model(model)
    seen = requested if found.takes_other_sizes else tuple(found.size)
    if seen == found.size:
        for name in network_layers:
            if name not in found.shapes:
                model.get_layer(name)  # an unknown name raises with the closest names
                raise FeatvizError(f"layer '{name}' did not run in the forward pass; pick layers the model's forward calls")
        shapes = {name: _one_image(found.shapes[name]) for name in network_layers}
    else:
        shapes = _dry_shapes(model, network_layers, seen, found.size)
    layouts = {name: found.layout(name, shape, seen) for name, shape in shapes.items()}
    result = {name: map_shape(shape, layouts[name]) for name, shape in shapes.items()}
    if IMAGE in names:
        layouts[IMAGE] = IMAGE_LAYOUT
        result[IMAGE] = (1, model.channels, *requested)
    return LayerBinding(seen, layouts, result)


def _one_image(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A surveyed shape (batch of 2) as the shape for one image."""
    batch_dim = 0 if shape[0] == PROBE_BATCH else 1
    return tuple(1 if index == batch_dim else size for index, size in enumerate(shape))


def _dry_shapes(
    model: Any, layers: list[str], size: tuple[int, int], input_size: tuple[int, int]
) -> dict[str, tuple[int, ...]]:
    """Output shapes of ``layers`` for one grey image of ``size``; a model that fails there raises one line."""
    check_render_memory(
        survey_model(model), device=model.device, image_size=size, network_size=size, images=1, views=1,
        channels=model.channels, network_dtype=model.dtype, parameterized=False,
    )
    probe = torch.full((1, model.channels, *size), 0.5, device=model.device, dtype=model.dtype)
    advice = f"use its input size {input_size[0]}x{input_size[1]} or another size it takes"
    with _in_one_line(model, size, advice), torch.no_grad(), ActivationCapture(model, layers) as capture:
        raw = capture.run(probe)
    return {name: tuple(value.shape) for name, value in raw.items()}


@contextlib.contextmanager
def _in_one_line(model: Any, size: tuple[int, int], advice: str) -> Iterator[None]:
    """Run ``model`` at ``size`` inside: its own error becomes one FeatvizError line, ``"NAME cannot run at HxW
    (the error's first line); ADVICE"``. featviz's errors and running out of memory pass unchanged."""
    try:
        yield
    except (FeatvizError, MemoryError, torch.OutOfMemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - the model's own complaint, reported on one line
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise FeatvizError(
            f"{getattr(model, 'name', 'the model')} cannot run at {size[0]}x{size[1]} ({first_line}); {advice}"
        ) from None
