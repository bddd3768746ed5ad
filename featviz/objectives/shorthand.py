"""Objective shorthand, as typed on the command line: "blocks.4.0.conv_pwl:12", "class:goldfish"...

Grammar (a leading "-" negates; whitespace inside a layer form is ignored):

    LAYER:C         channel C of LAYER (its spatial mean)
    LAYER:C@X,Y     channel C at column X, row Y
    LAYER:A-B       channels A to B, inclusive (one objective each)
    LAYER:A,B,C     channels A, B and C (one objective each)
    LAYER           the whole layer (DeepDream)
    class:LABEL     a class by name (may contain spaces) or by index
    text:PROMPT     a prompt, on models with a text tower; text:A|B:-0.5 weights prompts
    text@LAYER:PROMPT  the prompt's text direction in LAYER's channel space

Each form is registered by the module that defines its objective (``@register_shorthand``), so a new objective
module adds its own form and nothing here lists it.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Callable, Union

from featviz.errors import FeatvizError
from featviz.objectives.base import Objective

#: A layer's dot path, for the patterns of registered forms: ``rf"(?P<layer>{LAYER_PATTERN}):(?P<channel>\d+)"``.
LAYER_PATTERN = r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*"

Built = Union[Objective, "list[Objective]", None]


@dataclass(frozen=True)
class _Form:
    syntax: str
    build: Callable[..., Built]
    pattern: re.Pattern | None = None
    prefix: str | None = None
    listed: bool = True
    rank: int = 0  # registration order, in which the "expected ..." message lists the forms
    first: bool = False  # tried before the others, listed after them (a special case of a general form)


_PATTERNS: list[_Form] = []
_PREFIXES: dict[str, _Form] = {}
_RANKS = itertools.count()


def register_shorthand(
    syntax: str, pattern: str | None = None, *, prefix: str | None = None, listed: bool = True, first: bool = False,
) -> Callable[[Callable[..., Built]], Callable[..., Built]]:
    """Register the decorated builder as the shorthand form ``syntax`` (as error messages name it).

    Give either ``pattern``, a regular expression matched against the whole shorthand with its whitespace removed
    (the builder gets the ``re.Match``), or ``prefix``, a fixed start such as ``"class:"`` (the builder gets the
    text after it, whitespace kept). Prefix forms are tried before patterns. The builder returns an Objective or
    a list of them, or None for text that is malformed. ``listed=False`` leaves the form out of the "expected
    ..." message; ``first=True`` tries a pattern before those registered so far (for text that a more general
    form would also match, such as ``dict.pt:3`` and ``LAYER:CHANNEL``).

    Example:
        >>> from featviz.objectives import channel
        >>> @register_shorthand("first:LAYER", prefix="first:")
        ... def first_channel(body):
        ...     return channel(body.strip(), 0)
        >>> parse("first:blocks.4.0.conv_pwl")[0].name
        'blocks.4.0.conv_pwl:0'
        >>> _ = _PREFIXES.pop("first:")    # the example's form, removed again
    """
    if (pattern is None) == (prefix is None):
        raise FeatvizError(f"shorthand form '{syntax}' needs exactly one of pattern= or prefix=")
    taken = {form.syntax for form in _PATTERNS} | {form.syntax for form in _PREFIXES.values()}
    if syntax in taken or (prefix is not None and prefix in _PREFIXES):
        raise FeatvizError(f"shorthand form '{prefix or syntax}' is already registered; choose another {'prefix' if prefix else 'syntax'}")

    def register(build: Callable[..., Built]) -> Callable[..., Built]:
        if prefix is not None:
            _PREFIXES[prefix] = _Form(syntax, build, prefix=prefix, listed=listed)
        else:
            form = _Form(syntax, build, pattern=re.compile(pattern), listed=listed, rank=next(_RANKS), first=first)
            _PATTERNS.insert(0 if first else len(_PATTERNS), form)
        return build

    return register


def registered_shorthand() -> tuple[str, ...]:
    """The syntax of every registered form, as the "expected ..." message lists them: patterns in the order
    they were registered (those registered with ``first=True`` last), then prefixes alphabetically.

    Example:
        >>> {"LAYER:CHANNEL", "class:LABEL", "text:PROMPT"} <= set(registered_shorthand())
        True
    """
    patterns = sorted(_PATTERNS, key=lambda form: (form.first, form.rank))
    prefixed = [_PREFIXES[prefix] for prefix in sorted(_PREFIXES)]
    return tuple(form.syntax for form in [*patterns, *prefixed] if form.listed)


def _malformed(text: str) -> FeatvizError:
    syntaxes = registered_shorthand()
    expected = ", ".join(syntaxes[:-1]) + f" or {syntaxes[-1]}" if len(syntaxes) > 1 else "".join(syntaxes)
    return FeatvizError(f"malformed objective '{text}': expected {expected}")


def _parse_positive(text: str, body: str) -> list[Objective]:
    built: Built = None
    for prefix in sorted(_PREFIXES, key=len, reverse=True):
        if body.startswith(prefix):
            built = _PREFIXES[prefix].build(body[len(prefix):])
            break
    else:
        compact = re.sub(r"\s+", "", body)
        for form in _PATTERNS:
            match = form.pattern.fullmatch(compact)
            if match is not None:
                built = form.build(match)
                break
    if built is None:
        raise _malformed(text)
    return [built] if isinstance(built, Objective) else list(built)


def parse(text: str) -> list[Objective]:
    """Turn objective shorthand into objectives (several for a channel range or list).

    ``"LAYER:C"`` channel, ``"LAYER:C@X,Y"`` neuron at column X, row Y, ``"LAYER:A-B"`` (inclusive) and
    ``"LAYER:A,B,C"`` several channels, ``"LAYER"`` the whole layer (DeepDream), ``"class:LABEL"`` or
    ``"class:INDEX"`` a class, ``"text:PROMPT"`` or ``"text:A|B:-0.5"`` prompts, ``"text@LAYER:PROMPT"`` a
    prompt's text direction in a layer, and any form registered with `register_shorthand`; a leading ``"-"``
    negates. Raises FeatvizError on anything else.

    Example:
        >>> [goal.name for goal in parse("blocks.4.0.conv_pwl:3-5")]
        ['blocks.4.0.conv_pwl:3', 'blocks.4.0.conv_pwl:4', 'blocks.4.0.conv_pwl:5']
        >>> parse("class:tiger cat")[0].name
        'class:tiger cat'
    """
    if not isinstance(text, str):
        raise FeatvizError(f"an objective shorthand must be a string like 'blocks.4.0.conv_pwl:3', got {type(text).__name__}")
    body = text.strip()
    negate = body.startswith("-")
    if negate:
        body = body[1:].strip()
    if not body:
        raise _malformed(text)
    found = _parse_positive(text, body)
    return [-item for item in found] if negate else found


def objective(value: str | Objective) -> Objective:
    """``value`` itself if it is an Objective, else the single objective its shorthand names.

    Example:
        >>> objective("blocks.4.0.conv_pwl:3@2,1").name
        'blocks.4.0.conv_pwl:3@2,1'
    """
    if isinstance(value, Objective):
        return value
    found = parse(value)
    if len(found) != 1:
        raise FeatvizError(
            f"objective '{value}' names {len(found)} objectives where one is expected; "
            "give a single LAYER:CHANNEL, or use parse() and stack() to render them side by side"
        )
    return found[0]


__all__ = ["parse", "objective", "register_shorthand", "registered_shorthand", "LAYER_PATTERN"]
