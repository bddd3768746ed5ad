"""The shape every recipe and the gallery share, ``recipe(model, target, inputs, *, options)`` (render options in
one `RenderSettings`), and the old call forms they still accept for one release, with a DeprecationWarning."""
from __future__ import annotations

import functools
import inspect
import os
import warnings
from typing import Any, Callable, Mapping, Sequence, TypeVar

from torch import nn

from featviz.models import Model, list_models
from featviz.models.registry import list_sources
from featviz.renderer.renderer import Renderer

Function = TypeVar("Function", bound=Callable[..., Any])
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")


def names_a_model(value: Any) -> bool:
    """Whether ``value`` can be a recipe's first argument: a `Model`, any ``nn.Module``, a `Renderer`, or a string
    that is not a photo's path (a registered name, SOURCE:NAME, or a name that is wrong and gets its error).

    Example:
        >>> names_a_model("efficientnet_lite0"), names_a_model("photos/cat.jpg")
        (True, False)
    """
    if isinstance(value, (Model, nn.Module, Renderer)):
        return True
    if not isinstance(value, str):
        return False  # a PIL image, an array, a tensor, a path object: a photo
    prefix, colon, _ = value.partition(":")
    if value.strip().lower() in {name.lower() for name in list_models()}:
        return True
    if colon and prefix.strip().lower() in {source.prefix for source in list_sources()}:
        return True
    return not (value.lower().endswith(_IMAGE_SUFFIXES) or os.path.exists(value) or value.startswith(("http://", "https://")))


def old_call_forms(old: Sequence[str], defaults: Mapping[str, Any] | None = None) -> Callable[[Function], Function]:
    """Keep the recipe's previous positional form ``old`` (its parameter names in their old order) working for
    one release: a call whose first argument is no model (the old order put the photo first), or that passes
    more arguments by position than the model-first form takes, is mapped by ``old`` onto keywords and warns.
    ``defaults`` fills what the old form could leave out (``style_transfer``'s model).

    Example:
        >>> @old_call_forms(["image", "model", "layer"])
        ... def look(model, layer, image, *, steps=8):
        ...     return model, layer, image
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     look("cat.jpg", "efficientnet_lite0", "blocks.4")
        ('efficientnet_lite0', 'blocks.4', 'cat.jpg')
        >>> str(caught[0].message)
        'look(image, model, layer) is deprecated and stops working in the next release; call look(model, layer, image, *, options)'
    """
    def decorate(function: Function) -> Function:
        positional = [
            parameter.name for parameter in inspect.signature(function).parameters.values()
            if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        ]
        reorders = list(old[: len(positional)]) != positional

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            old_order = reorders and bool(args) and not names_a_model(args[0])
            if not old_order and len(args) <= len(positional):
                return function(*args, **kwargs)
            if len(args) > len(old):
                raise TypeError(
                    f"{function.__name__}() takes {len(positional)} positional arguments but {len(args)} were given"
                )
            given = dict(zip(old, args))
            twice = sorted(set(given) & set(kwargs))
            if twice:
                raise TypeError(f"{function.__name__}() got multiple values for argument '{twice[0]}'")
            warnings.warn(
                f"{function.__name__}({', '.join(old[: len(args)])}) is deprecated and stops working in the next "
                f"release; call {function.__name__}({', '.join(positional)}, *, options)",
                DeprecationWarning, stacklevel=2,
            )
            filled = {name: value for name, value in (defaults or {}).items() if name not in {*given, *kwargs}}
            return function(**given, **filled, **kwargs)

        return call  # type: ignore[return-value]

    return decorate


__all__ = ["names_a_model", "old_call_forms"]
