"""The base class of the image parameterizations, their registry, and ``create()``, which builds one by name.

``Parameterization`` takes and checks the arguments every parameterization shares and ends every ``forward()``
with the colour mixing and the sigmoid, so a subclass declares only its own options and produces the values
before those two steps (``components()``). ``@register_parameterization("name")`` on the class makes it
reachable as ``create("name", ...)``; a module in this package is imported by ``featviz.param`` on its own,
so its kinds are also in ``registered_kinds()`` and the command line's ``--param`` choices.
"""
from __future__ import annotations

import abc
import dataclasses
import inspect
from typing import Any, Callable, Sequence, TypeVar

import torch
from torch import Tensor, nn

from featviz.errors import FeatvizError, check_int, suggestion
from featviz.param.arguments import (SeedLike, SizeLike, check_dtype, check_size, draw_per_element,
                                     element_seeds)
from featviz.param.color import mix_channels, mixing_matrix

ParameterizationClass = TypeVar("ParameterizationClass", bound=type)


class Parameterization(nn.Module, metaclass=abc.ABCMeta):
    """Base class of the image parameterizations: ``forward()`` returns ``sigmoid(mix(components()))``, ``(B, C, H, W)``
    images in ``[0, 1]``.

    The shared arguments ``size``, ``batch``, ``channels``, ``seed``, ``alpha``, ``device`` and ``dtype`` are
    validated and stored as ``size`` ``(H, W)``, ``batch``, ``channels`` (colour channels, without alpha),
    ``alpha`` and ``seeds`` (one per element); ``out_channels`` is ``channels + 1`` with alpha. A subclass's
    ``__init__`` takes ``size``, its own keyword options and ``**shared``, which it passes on with
    ``super().__init__(size, **shared)``; its signature then shows the shared arguments too (``help()``,
    ``create()``). It builds its parameters with ``draw()`` (seeded per element) and its constant tensors
    with ``place()``, calls ``decorrelate_colors()`` when it offers colour decorrelation (without it nothing
    is mixed, as for ``CPPN``, whose network mixes channels itself), and defines ``components()``: the
    ``(B, out_channels, H, W)`` values before mixing and sigmoid. ``default_lr`` is the Adam learning rate
    that suits the subclass.

    Example:
        >>> image = featviz.param.Fourier(64, batch=2, seed=0)
        >>> image().shape, image.default_lr
        (torch.Size([2, 3, 64, 64]), 0.05)
    """

    default_lr: float = 0.05

    def __init__(
        self,
        size: SizeLike,
        *,
        batch: int = 1,
        channels: int = 3,
        seed: SeedLike = None,
        alpha: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.size = check_size(size)
        self.batch = check_int(batch, "batch")
        self.channels = check_int(channels, "channels")
        self.seeds = element_seeds(seed, self.batch)
        if not isinstance(alpha, bool):
            raise FeatvizError(f"alpha must be True or False, got {alpha!r}")
        self.alpha = alpha
        # where draw() and place() put tensors while the subclass builds itself; Module.to() moves them later
        self._device = device
        self._dtype = check_dtype(dtype)
        self.register_buffer("mixing", None)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in vars(cls):
            cls.__init__.__signature__ = _with_inherited_arguments(cls)

    @property
    def out_channels(self) -> int:
        """Channels of the returned images: the colour channels, plus one when there is an alpha channel."""
        return self.channels + int(self.alpha)

    def draw(self, sample: Callable[[torch.Generator | None], Tensor]) -> Tensor:
        """``(B, ...)`` starting values: ``sample(generator)`` with each element's seeded generator, stacked.

        Draws happen on the CPU in float32 (see ``draw_per_element``), so a seed gives the same starting image
        on every device and in every precision; the result is on this module's ``device`` in its ``dtype``.

        Example:
            >>> class Noise(Parameterization):
            ...     def __init__(self, size, **shared):
            ...         super().__init__(size, **shared)
            ...         draw = lambda g: torch.randn(self.out_channels, *self.size, generator=g)
            ...         self.pixels = nn.Parameter(self.draw(draw))
            ...     def components(self):
            ...         return self.pixels
            >>> Noise(8, batch=2, seed=[5, 9]).pixels.shape         # element i drawn with seed i
            torch.Size([2, 3, 8, 8])
        """
        return draw_per_element(self.seeds, sample, self._device, self._dtype)

    def place(self, tensor: Tensor) -> Tensor:
        """``tensor`` on the ``device`` and in the ``dtype`` this parameterization was created with.

        Example:
            >>> featviz.param.Fourier(8, dtype=torch.float64).place(torch.ones(2)).dtype
            torch.float64
        """
        return tensor.to(self._device, self._dtype)

    def decorrelate_colors(self, decorrelate: bool, color_sqrt: Tensor | None) -> None:
        """Mix ``components()`` into channels with the colour square root (buffer ``mixing``) in ``forward()``.

        A subclass that offers the ``decorrelate`` and ``color_sqrt`` options calls this at the end of its
        ``__init__`` with their values: ``color_sqrt`` overrides ``color_sqrt(channels)`` (ImageNet statistics for
        3 channels), ``decorrelate=False`` mixes nothing, and an alpha channel is never mixed.

        Example:
            >>> featviz.param.Fourier(8).mixing.shape, featviz.param.Fourier(8, decorrelate=False).mixing
            (torch.Size([3, 3]), None)
        """
        self.mixing = mixing_matrix(
            self.channels,
            alpha=self.alpha,
            decorrelate=decorrelate,
            color_sqrt=color_sqrt,
            device=self._device,
            dtype=self._dtype,
        )

    def components_from_images(self, images: Tensor) -> Tensor:
        """The ``components()`` that make ``forward()`` return ``images``: the sigmoid and the colour mixing undone.

        ``images`` is ``(C, H, W)`` or ``(1 or B, C, H, W)`` in ``[0, 1]`` at this parameterization's size, with
        ``channels`` channels (an alpha channel then starts opaque) or ``out_channels``. Values are clipped to
        ``[0.001, 0.999]`` first, where the sigmoid is still invertible. A subclass that starts from an image
        (``Fourier(init_image=...)``) turns the result into its own parameters. Returns ``(B, out_channels, H,
        W)`` in float64.

        Example:
            >>> image = featviz.param.Fourier(32)
            >>> image.components_from_images(torch.full((3, 32, 32), 0.5)).abs().max()
            tensor(0., dtype=torch.float64)
        """
        if not isinstance(images, Tensor) or images.dim() not in (3, 4) or not images.is_floating_point():
            shown = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise FeatvizError(f"an initial image must be a float tensor (C, H, W) or (B, C, H, W) in [0, 1], got {shown}")
        images = images.detach().to("cpu", torch.float64)
        images = images.unsqueeze(0) if images.dim() == 3 else images
        count, channels, height, width = images.shape
        if (height, width) != self.size:
            raise FeatvizError(f"the initial image is {height}x{width} (height x width) but the parameterization is "
                               f"{self.size[0]}x{self.size[1]}; resize it to that size")
        if channels not in (self.channels, self.out_channels) or count not in (1, self.batch):
            raise FeatvizError(f"the initial image has shape {tuple(images.shape)}; give ({self.channels}, {height}, "
                               f"{width}) or (1 or {self.batch}, {self.channels}, {height}, {width}) in [0, 1]")
        if not torch.isfinite(images).all():
            raise FeatvizError("the initial image contains NaN or infinite values; give values in [0, 1]")
        if channels < self.out_channels:
            images = torch.cat([images, torch.ones_like(images[:, :1])], dim=1)
        images = images.expand(self.batch, -1, -1, -1).clamp(0.001, 0.999)
        logits = torch.log(images) - torch.log1p(-images)
        if self.mixing is None:
            return logits
        mixing = self.mixing.detach().to("cpu", torch.float64)
        return torch.linalg.solve(mixing, logits.flatten(2)).view(logits.shape)

    @abc.abstractmethod
    def components(self) -> Tensor:
        """The ``(B, out_channels, H, W)`` images before the colour mixing and the sigmoid of ``forward()``."""

    def forward(self) -> Tensor:
        return torch.sigmoid(mix_channels(self.components(), self.mixing))

    def extra_repr(self) -> str:
        height, width = self.size
        return f"size=({height}, {width}), batch={self.batch}, channels={self.channels}, alpha={self.alpha}"


def _with_inherited_arguments(cls: type[Parameterization]) -> inspect.Signature:
    """The signature of ``cls.__init__`` with the keyword arguments it passes on through ``**shared`` spelled out."""
    own = inspect.signature(cls.__init__)
    if not any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in own.parameters.values()):
        return own
    parent = next(base.__init__ for base in cls.__mro__[1:] if "__init__" in vars(base))
    inherited = [
        parameter
        for parameter in inspect.signature(parent).parameters.values()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and parameter.name not in own.parameters
    ]
    positional, keyword = [], []
    for parameter in own.parameters.values():
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            keyword.append(parameter)
        elif parameter.kind is not inspect.Parameter.VAR_KEYWORD:
            positional.append(parameter)
    return own.replace(parameters=positional + inherited + keyword)


@dataclasses.dataclass(frozen=True)
class _Registration:
    kind: str
    cls: type[Parameterization]
    order: int | None


# every name a parameterization answers to: its kind (primary name) and its aliases
_REGISTRY: dict[str, _Registration] = {}


def register_parameterization(
    name: str, *, aliases: Sequence[str] = (), order: int | None = None
) -> Callable[[ParameterizationClass], ParameterizationClass]:
    """Class decorator: make a ``Parameterization`` subclass reachable as ``create(name, ...)`` and by ``aliases``.

    Names are matched ignoring case and surrounding spaces. ``order`` places the kind in ``registered_kinds()``
    (so in the command line's ``--param`` choices and error messages): lower first,
    then the kinds registered without one, alphabetically. A name already taken raises FeatvizError.

    Example:
        >>> @register_parameterization("flat")
        ... class Flat(Parameterization):
        ...     def __init__(self, size, *, level: float = 0.0, **shared):
        ...         super().__init__(size, **shared)
        ...         self.level = nn.Parameter(self.place(torch.full((self.batch, self.out_channels, 1, 1), level)))
        ...     def components(self):
        ...         return self.level.expand(-1, -1, *self.size)
        >>> create("flat", 32, level=1.0)().shape
        torch.Size([1, 3, 32, 32])
    """
    if order is not None and (isinstance(order, bool) or not isinstance(order, int)):
        raise FeatvizError(f"order must be an int or None, got {order!r}")
    if isinstance(aliases, str):
        raise FeatvizError(f"aliases must be a sequence of names such as ('{aliases}',), got the string {aliases!r}")
    names = (name, *aliases)
    for candidate in names:
        if not isinstance(candidate, str) or not candidate.strip():
            raise FeatvizError(f"a parameterization name must be a non-empty string, got {candidate!r}")
    keys = [_name_key(candidate) for candidate in names]
    for candidate, key in zip(names, keys):
        if key in _REGISTRY or keys.count(key) > 1:
            raise FeatvizError(f"parameterization name '{candidate}' is already registered; choose another name")

    def register(cls: ParameterizationClass) -> ParameterizationClass:
        if not (isinstance(cls, type) and issubclass(cls, Parameterization)):
            raise FeatvizError(f"@register_parameterization('{name}') needs a Parameterization subclass, got {cls!r}")
        registration = _Registration(keys[0], cls, order)
        _REGISTRY.update((key, registration) for key in keys)
        return cls

    return register


def registered_kinds() -> tuple[str, ...]:
    """The primary names of the registered parameterizations, by their ``order``, then alphabetically.

    Example:
        >>> registered_kinds()[:4]
        ('fft', 'pixel', 'cppn', 'maco')
    """
    registrations = {registration.kind: registration for registration in _REGISTRY.values()}
    ranked = sorted(registrations.values(), key=lambda entry: (entry.order is None, entry.order or 0, entry.kind))
    return tuple(registration.kind for registration in ranked)


def create(kind: str, size: SizeLike, **arguments: Any) -> Parameterization:
    """Build the parameterization registered as ``kind`` (one of ``registered_kinds()``; ``"fourier"`` is ``"fft"``)
    for images of ``size`` (an int or ``(height, width)``).

    ``arguments`` are the shared ones (``batch``, ``channels``, ``seed``, ``alpha``, ``device``, ``dtype``; see
    ``Parameterization``) and the class's own options (``decay`` for fft and maco, ``layers``/``width`` for
    cppn, ``decorrelate``/``color_sqrt`` for fft, pixel and maco...). Unknown kinds or options raise
    FeatvizError with the valid names.

    Example:
        >>> image = create("fft", 128, batch=4, seed=0, decay=1.2)
        >>> optimizer = torch.optim.Adam(image.parameters(), lr=image.default_lr)
    """
    kinds = ", ".join(registered_kinds())
    if not isinstance(kind, str):
        raise FeatvizError(f"parameterization kind must be a string, one of: {kinds}; got {kind!r}")
    name = _name_key(kind)
    if name not in _REGISTRY:
        aliases = [f"{alias} = {registration.kind}" for alias, registration in _REGISTRY.items()
                   if alias != registration.kind]
        listed = f" ({', '.join(aliases)})" if aliases else ""
        raise FeatvizError(
            f"unknown parameterization '{kind}'; valid kinds: {kinds}{listed}{suggestion(name, _REGISTRY)}"
        )
    cls = _REGISTRY[name].cls
    shared = [
        parameter.name
        for parameter in inspect.signature(Parameterization).parameters.values()
        if parameter.kind is parameter.KEYWORD_ONLY
    ]
    options = [
        parameter.name
        for parameter in inspect.signature(cls).parameters.values()
        if parameter.name not in shared and parameter.name != "size" and parameter.kind is not parameter.VAR_KEYWORD
    ]
    for option in arguments:
        if option not in shared and option not in options:
            raise FeatvizError(
                f"'{name}' parameterization has no option '{option}'; valid options: {', '.join(options)}"
                f"{suggestion(option, options)}"
            )
    return cls(size, **arguments)


def _name_key(name: str) -> str:
    return name.strip().lower()


__all__ = ["Parameterization", "create", "register_parameterization", "registered_kinds"]
