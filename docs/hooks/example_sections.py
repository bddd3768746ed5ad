"""Griffe extension for the API reference: featviz's docstrings title their examples ``Example:`` (one example
per docstring, the project's convention); Google style, as griffe reads it, calls that section ``Examples:``.
Renaming the title while the docstrings are loaded lets griffe render the ``>>>`` lines as code."""
from __future__ import annotations

import re

import griffe

_TITLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _TITLE.sub(r"\1Examples:", obj.docstring.value)
