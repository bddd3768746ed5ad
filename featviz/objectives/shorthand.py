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
"""
from __future__ import annotations

import re

from featviz.errors import FeatvizError
from featviz.objectives.language import parse_text, parse_text_direction
from featviz.objectives.units import channel, class_logit, neuron
from featviz.objectives.units import layer as layer_objective
from featviz.objectives.base import Objective

_LAYER = r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*"
_FORMS = (
    ("channel", re.compile(rf"(?P<layer>{_LAYER}):(?P<channel>\d+)")),
    ("neuron", re.compile(rf"(?P<layer>{_LAYER}):(?P<channel>\d+)@(?P<x>\d+),(?P<y>\d+)")),
    ("range", re.compile(rf"(?P<layer>{_LAYER}):(?P<first>\d+)-(?P<last>\d+)")),
    ("list", re.compile(rf"(?P<layer>{_LAYER}):(?P<channels>\d+(?:,\d+)+)")),
    ("layer", re.compile(rf"(?P<layer>{_LAYER})")),
)
_CLASS_PREFIX = "class:"
_TEXT_PREFIX = "text:"
_TEXT_DIRECTION_PREFIX = "text@"
_EXPECTED = "expected LAYER:CHANNEL, LAYER:CHANNEL@X,Y, LAYER:A-B, LAYER, class:LABEL, text:PROMPT or text@LAYER:PROMPT"


def _malformed(text: str) -> FeatvizError:
    return FeatvizError(f"malformed objective '{text}': {_EXPECTED}")


def _parse_positive(text: str, body: str) -> list[Objective]:
    if body.startswith(_TEXT_PREFIX):
        return [parse_text(body[len(_TEXT_PREFIX):])]
    if body.startswith(_TEXT_DIRECTION_PREFIX):
        return [parse_text_direction(body[len(_TEXT_DIRECTION_PREFIX):])]
    if body.startswith(_CLASS_PREFIX):
        label = body[len(_CLASS_PREFIX):].strip()
        if not label:
            raise _malformed(text)
        return [class_logit(int(label) if label.isdigit() else label)]
    compact = re.sub(r"\s+", "", body)
    for form, pattern in _FORMS:
        match = pattern.fullmatch(compact)
        if match is None:
            continue
        layer_name = match["layer"]
        if form == "channel":
            return [channel(layer_name, int(match["channel"]))]
        if form == "neuron":
            return [neuron(layer_name, int(match["channel"]), x=int(match["x"]), y=int(match["y"]))]
        if form == "range":
            first, last = int(match["first"]), int(match["last"])
            if first > last:
                raise FeatvizError(
                    f"malformed objective '{text}': channel range {first}-{last} runs backwards; "
                    f"write {layer_name}:{last}-{first}"
                )
            return [channel(layer_name, index) for index in range(first, last + 1)]
        if form == "list":
            return [channel(layer_name, int(index)) for index in match["channels"].split(",")]
        return [layer_objective(layer_name)]
    raise _malformed(text)


def parse(text: str) -> list[Objective]:
    """Turn objective shorthand into objectives (several for a channel range or list).

    ``"LAYER:C"`` channel, ``"LAYER:C@X,Y"`` neuron at column X, row Y, ``"LAYER:A-B"`` (inclusive) and
    ``"LAYER:A,B,C"`` several channels, ``"LAYER"`` the whole layer (DeepDream), ``"class:LABEL"`` or
    ``"class:INDEX"`` a class, ``"text:PROMPT"`` or ``"text:A|B:-0.5"`` prompts, ``"text@LAYER:PROMPT"`` a
    prompt's text direction in a layer; a leading ``"-"`` negates. Raises FeatvizError on anything else.

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


__all__ = ["parse", "objective"]
