"""`Model`: a frozen network together with its input normalization, input size and class names."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from featviz.errors import FeatvizError, closest, suggestion


def normalize_label(label: str) -> str:
    """``label`` in the form class names are compared in: lower case, without spaces, underscores or hyphens.

    Example:
        >>> normalize_label("Great_White shark")
        'greatwhiteshark'
    """
    return "".join(character for character in label.lower() if character not in " _-")


TextTowerFactory = Callable[["Model"], "nn.Module | None"]
_TEXT_TOWERS: list[TextTowerFactory] = []


def register_text_tower(factory: TextTowerFactory) -> TextTowerFactory:
    """Register ``factory(model) -> tower or None``: the text tower a `Model` built without one gets, on the first
    read of ``model.text`` (factories are asked in registration order; None from all means no tower).

    `featviz.text` registers the classifier tower here, so that any classifier with class names has text without
    this layer importing the text layer.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
        >>> Model(net, name="tiny", input_size=(64, 64), channels=3, mean=[0.5], std=[0.5]).text is None   # no labels
        True
    """
    if factory not in _TEXT_TOWERS:
        _TEXT_TOWERS.append(factory)
    return factory


def _pair(size: int | Sequence[int], what: str) -> tuple[int, int]:
    values = (size, size) if isinstance(size, int) else tuple(size)
    if len(values) != 2 or not all(isinstance(value, int) and value > 0 for value in values):
        raise FeatvizError(f"{what} must be a positive int or a (height, width) pair of positive ints, not {size!r}")
    return int(values[0]), int(values[1])


def _per_channel(values: float | Sequence[float], channels: int, what: str) -> torch.Tensor:
    numbers = [float(values)] if isinstance(values, (int, float)) else [float(value) for value in values]
    if len(numbers) == 1:
        numbers = numbers * channels
    if len(numbers) != channels:
        raise FeatvizError(
            f"{what} has {len(numbers)} values but the model takes {channels} input channels; "
            f"give {'1 value' if channels == 1 else f'1 or {channels} values'}"
        )
    return torch.tensor(numbers, dtype=torch.float32).view(1, channels, 1, 1)


class Model(nn.Module):
    """A network ready for feature visualization: frozen, in eval mode, fed images in ``[0, 1]``.

    ``forward(images)`` normalizes ``(B, channels, H, W)`` images in ``[0, 1]`` with the network's own
    ``mean``/``std`` (buffers of shape ``(1, C, 1, 1)``) and returns the network's output. Layers are named by
    their dot path in ``network.named_modules()``; class names (``labels``) are optional. ``layouts`` declares
    the activation layout of layers whose layout featviz.hooks cannot tell, by layer name: a kind such as
    ``"nhwc"`` or ``"nlc"`` (see ``featviz.hooks.layout.KINDS``) or a ``featviz.hooks.Layout``. ``text`` is the
    model's text tower (`featviz.text.TextTower`): CLIP's, given here; without one, a classifier with class names gets
    its own on first read of ``model.text`` (`register_text_tower`), and so does a model whose ``text_source`` (the
    rest of a CLIP model, beside its image tower) a registered factory knows.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
        >>> model = Model(net, name="tiny", input_size=(64, 64), channels=3, mean=[0.5] * 3, std=[0.5] * 3)
        >>> model(torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 8, 62, 62])
        >>> model.layer_names()
        ['0', '1']
    """

    def __init__(
        self,
        network: nn.Module,
        *,
        name: str,
        input_size: tuple[int, int],
        channels: int,
        mean: Sequence[float],
        std: Sequence[float],
        labels: Sequence[str] | None = None,
        layouts: Mapping[str, Any] | None = None,
        text: nn.Module | None = None,
        text_source: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(network, nn.Module):
            raise FeatvizError(f"the network must be a torch.nn.Module, not {type(network).__name__}")
        if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
            raise FeatvizError(f"channels must be a positive int, not {channels!r}")
        mean_tensor = _per_channel(mean, channels, "mean")
        std_tensor = _per_channel(std, channels, "std")
        if not bool((std_tensor > 0).all()):
            raise FeatvizError(f"std must be positive, not {std_tensor.flatten().tolist()}")
        self.network = network
        self.name = str(name)
        self.input_size = _pair(input_size, "input_size")
        self.channels = channels
        self.labels = None if labels is None else [str(label) for label in labels]
        self.register_buffer("mean", mean_tensor)
        self.register_buffer("std", std_tensor)
        # (x - mean) / std computed as x * scale + shift: one fused addcmul per forward.
        self.register_buffer("scale", 1.0 / std_tensor, persistent=False)
        self.register_buffer("shift", -mean_tensor / std_tensor, persistent=False)
        self._normalizes = bool((mean_tensor != 0).any() or (std_tensor != 1).any())
        self.layouts: dict[str, Any] = dict(layouts or {})
        if text is not None and not isinstance(text, nn.Module):
            raise FeatvizError(f"text must be a featviz.text.TextTower, not {type(text).__name__}")
        if text is not None:
            self.text = text
        if text_source is not None and not isinstance(text_source, nn.Module):
            raise FeatvizError(f"text_source must be a torch.nn.Module, not {type(text_source).__name__}")
        self.text_source = text_source
        # Without a tower given, ``text`` is made on first read by the registered factories (`register_text_tower`).
        self._automatic_text = text is None
        for layer in self.layouts:
            self.get_layer(layer)
        self._label_indices: dict[str, list[int]] = {}
        for index, label in enumerate(self.labels or []):
            self._label_indices.setdefault(normalize_label(label), []).append(index)
        self.eval()
        self.requires_grad_(False)

    def __getattr__(self, name: str) -> Any:
        modules = self.__dict__.get("_modules")
        if name != "text" or modules is None or "text" in modules:
            return super().__getattr__(name)
        tower = None
        for factory in _TEXT_TOWERS:
            tower = factory(self)
            if tower is not None:
                break
        if tower is not None:
            tower.eval()  # frozen like the rest of the model (load_model returns a frozen model as is)
            tower.requires_grad_(False)
        modules["text"] = tower
        return tower

    @property
    def given_text(self) -> nn.Module | None:
        """The text tower this model was built with (None when ``text`` is made on first read, or absent).

        Example:
            >>> model.given_text is None                         # EfficientNet-Lite0's tower is made on first read
            True
        """
        return None if self._automatic_text else self.text

    @property
    def device(self) -> torch.device:
        """The device the model's normalization buffers (and, after `load_model`, its network) live on.

        Example:
            >>> model.device                                    # EfficientNet-Lite0, loaded on the CPU
            device(type='cpu')
            >>> images = torch.rand(1, model.channels, *model.input_size, device=model.device, dtype=model.dtype)
        """
        return self.mean.device

    @property
    def dtype(self) -> torch.dtype:
        """The floating-point dtype of the model's normalization buffers (and, after `load_model`, its network).

        Example:
            >>> model.dtype
            torch.float32
            >>> from featviz.models import load_model
            >>> load_model(model, dtype=torch.float64).dtype     # a float64 copy
            torch.float64
        """
        return self.mean.dtype

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalize ``images`` (values in ``[0, 1]``, shape ``(B, channels, H, W)``) and run the network.

        Example:
            >>> logits = model(torch.rand(2, model.channels, *model.input_size))
            >>> logits.shape                                    # EfficientNet-Lite0: 1000 ImageNet classes
            torch.Size([2, 1000])
        """
        if images.dim() != 4 or images.shape[1] != self.channels:
            raise FeatvizError(
                f"{self.name} takes images of shape (B, {self.channels}, H, W), not {tuple(images.shape)}"
            )
        if self._normalizes:
            images = torch.addcmul(self.shift, images, self.scale)
        return self.network(images)

    def with_network(self, network: nn.Module) -> "Model":
        """The same model (name, input, normalization, labels, layouts, text tower) around another ``network``.

        Example:
            >>> import copy
            >>> smaller = model.with_network(copy.deepcopy(model.network).half())
            >>> smaller.name, smaller.input_size, smaller.labels[1]
            ('efficientnet_lite0', (224, 224), 'goldfish')
        """
        return Model(
            network, name=self.name, input_size=self.input_size, channels=self.channels,
            mean=self.mean.flatten().tolist(), std=self.std.flatten().tolist(), labels=self.labels,
            layouts=self.layouts, text=self.given_text, text_source=self.text_source,
        ).to(device=self.device, dtype=self.dtype)

    def layer_names(self) -> list[str]:
        """Dot paths of every submodule of the network (the root excluded), in definition order.

        Example:
            >>> "blocks.4.0.conv_pwl" in model.layer_names()
            True
        """
        return [name for name, _ in self.network.named_modules() if name]

    def get_layer(self, name: str) -> nn.Module:
        """The submodule at dot path ``name``; an unknown name raises FeatvizError with the closest names.

        Example:
            >>> model.get_layer("blocks.4.0.conv_pwl")
            Conv2d(480, 112, kernel_size=(1, 1), stride=(1, 1), bias=False)
            >>> model.get_layer("blocks.4.0.conv_pwx")
            Traceback (most recent call last):
            featviz.errors.FeatvizError: unknown layer 'blocks.4.0.conv_pwx' in efficientnet_lite0; closest: blocks.4.0.conv_pw, blocks.4.0.conv_pwl, ...
        """
        if name:
            try:
                return self.network.get_submodule(name)
            except AttributeError:
                pass
        raise FeatvizError(
            f"unknown layer '{name}' in {self.name}{suggestion(name, self.layer_names())} "
            f"(list all with `featviz layers {self.name}`)"
        )

    def label_index(self, label: str | int) -> int:
        """The output index of class ``label``: a class name (any case; spaces, ``_`` and ``-`` ignored) or an index.

        A name that several classes share raises FeatvizError listing their indices; an index is range-checked
        when the model has class names.

        Example:
            >>> model.label_index("Goldfish"), model.label_index("great white shark")
            (1, 2)
        """
        if isinstance(label, bool) or not isinstance(label, (int, str)):
            raise FeatvizError(f"a class must be a name or an int index, not {label!r}")
        if isinstance(label, str):
            found = self._label_indices.get(normalize_label(label))
            if found is not None:
                if len(found) > 1:
                    raise FeatvizError(
                        f"class name '{label}' is ambiguous in {self.name}: it names classes "
                        f"{', '.join(map(str, found))}; pass one of those indices"
                    )
                return found[0]
            if not label.strip().isdigit():
                if self.labels is None:
                    raise FeatvizError(
                        f"{self.name} has no class names; use a class index instead of '{label}'"
                    )
                close = closest(normalize_label(label), list(self._label_indices))
                names = [self.labels[self._label_indices[key][0]] for key in close]
                hint = "; closest: " + ", ".join(names) if names else ""
                raise FeatvizError(
                    f"unknown class '{label}' in {self.name}{hint} "
                    f"(or pass a class index 0..{len(self.labels) - 1})"
                )
            label = int(label.strip())
        if label < 0 or (self.labels is not None and label >= len(self.labels)):
            valid = f"0..{len(self.labels) - 1}" if self.labels is not None else "0 or more"
            raise FeatvizError(f"class index {label} is out of range for {self.name}; valid: {valid}")
        return label

    def extra_repr(self) -> str:
        classes = "no class names" if self.labels is None else f"{len(self.labels)} classes"
        return f"name={self.name!r}, input_size={self.input_size}, channels={self.channels}, {classes}"
