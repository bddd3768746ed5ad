"""User-facing errors: one line that says what was wrong and what would be right."""
from __future__ import annotations

import difflib
import operator
from typing import Any, Iterable, Literal, overload


class FeatvizError(ValueError):
    """A mistake the user can fix; the command line prints its message on one line and exits with code 2.

    Example:
        >>> raise FeatvizError("unknown model 'efficientnet_lite9'; closest: efficientnet_lite0")
        Traceback (most recent call last):
        featviz.errors.FeatvizError: unknown model 'efficientnet_lite9'; closest: efficientnet_lite0
    """


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The ``n`` candidates that look most like ``name`` (for "did you mean" hints).

    Example:
        >>> closest("blocks.4.0.conv_pwx", ["blocks.4.0.conv_pwl", "conv_head"])
        ['blocks.4.0.conv_pwl']
    """
    candidates = list(candidates)
    found = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    if not found:
        prefix = [c for c in candidates if c.startswith(name) or name.startswith(c)]
        found = sorted(prefix, key=lambda c: abs(len(c) - len(name)))[:n]
    return found


def suggestion(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """``"; closest: a, b, c"``: the ``n`` ``candidates`` closest to ``name`` (see `closest`), or an empty string
    when nothing is close.

    Example:
        >>> suggestion("blocks.4.0.conv_pwx", ["blocks.4.0.conv_pwl", "conv_head"])
        '; closest: blocks.4.0.conv_pwl'
        >>> suggestion("classifier", ["blocks.4.0.conv_pwl"])
        ''
    """
    found = closest(name, candidates, n)
    return "; closest: " + ", ".join(found) if found else ""


@overload
def check_int(value: Any, what: str, minimum: int = 1, *, allow_none: Literal[False] = False) -> int: ...


@overload
def check_int(value: Any, what: str, minimum: int = 1, *, allow_none: bool) -> int | None: ...


def check_int(value: Any, what: str, minimum: int = 1, *, allow_none: bool = False) -> int | None:
    """``value`` as an int when it is an integer (not a bool; numpy and 0-d torch integers count) of at least
    ``minimum``, else a FeatvizError whose message names the argument as ``what``; None passes when ``allow_none``.
    The one integer check: counts use the default ``minimum=1``, indices ``minimum=0``.

    Example:
        >>> check_int(16, "batch")
        16
        >>> check_int(None, "neuron x", 0, allow_none=True) is None
        True
        >>> check_int(0, "steps")
        Traceback (most recent call last):
        featviz.errors.FeatvizError: steps must be an int >= 1, not 0
    """
    if value is None and allow_none:
        return None
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or number < minimum:
        raise FeatvizError(f"{what} must be an int >= {minimum}, not {value!r}")
    return number
