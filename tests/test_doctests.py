"""Every `>>>` example in featviz's docstrings runs and prints what its docstring shows, and every public
function and class says what each of its arguments is.

Each docstring is one test (id: the object's dotted name). The examples run in a fresh temporary folder (the
files they write land there) with a small namespace of objects that docstrings use without defining them:
`featviz`, `torch`, `nn`, `np`, `objectives` and `model`, EfficientNet-Lite0 loaded once for the session
(the `lite0` fixture). Anything else an example needs, it makes itself, at small sizes and few steps. Lines
that would need the network or weights that are not installed carry ``# doctest: +SKIP``.
"""
from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re

import numpy as np
import pytest
import torch
from torch import nn

import featviz
from featviz.models import registry as model_registry
from featviz.param import base as param_base

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
# The examples of register_model, register_source and register_parameterization register something: each
# example's registrations are undone after it, so they cannot leak into other tests.
REGISTRIES = (model_registry._REGISTRY, model_registry._SOURCES, param_base._REGISTRY)


def _module_names() -> list[str]:
    names = ["featviz"]
    for info in pkgutil.walk_packages(featviz.__path__, "featviz."):
        if not info.name.endswith(".__main__"):  # __main__ runs the command line
            names.append(info.name)
    return sorted(names)


def _docstring_examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    examples = []
    for name in _module_names():
        module = importlib.import_module(name)
        examples.extend(test for test in finder.find(module, name) if test.examples)
    return sorted(examples, key=lambda test: test.name)


EXAMPLES = _docstring_examples()


@pytest.fixture(scope="module")
def namespace(lite0):
    return {"featviz": featviz, "torch": torch, "nn": nn, "np": np, "objectives": featviz.objectives, "model": lite0}


def test_examples_were_found():
    # ~300 example lines across the package: a broken finder must not pass by finding none.
    assert sum(len(test.examples) for test in EXAMPLES) > 250
    assert {"featviz.renderer.renderer.render", "featviz.objectives.units.channel"} <= {test.name for test in EXAMPLES}


@pytest.mark.parametrize("example", EXAMPLES, ids=[test.name for test in EXAMPLES])
def test_docstring_example(example, namespace, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = []
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    test = doctest.DocTest(
        example.examples, {**example.globs, **namespace}, example.name, example.filename, example.lineno,
        example.docstring,
    )
    torch.manual_seed(0)
    saved = [dict(registry) for registry in REGISTRIES]
    try:
        runner.run(test, out=report.append, clear_globs=True)
    finally:
        for registry, contents in zip(REGISTRIES, saved):
            registry.clear()
            registry.update(contents)
    assert runner.failures == 0, "".join(report)


def _public_objects() -> list[tuple[str, object]]:
    """(dotted name, object) of every public function and class defined in the checked modules."""
    found = []
    for name in _module_names():
        module = importlib.import_module(name)
        names = getattr(module, "__all__", None)
        if names is None:
            names = [key for key in vars(module) if not key.startswith("_")]
        for key in names:
            value = getattr(module, key, None)
            if (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__ == name:
                found.append((f"{name}.{key}", value))
    return found


def _documented_text(name: str, value: object) -> str:
    """The docstring that documents ``value``'s arguments: a class's own and its ``__init__``'s, plus the docstring
    of the builder function it names (``Built by ``channel()``.``), which documents the same arguments."""
    text = inspect.getdoc(value) or ""
    if inspect.isclass(value) and inspect.isfunction(value.__init__):
        text += "\n" + (inspect.getdoc(value.__init__) or "")
    module = importlib.import_module(name.rsplit(".", 1)[0])
    package = importlib.import_module(module.__name__.rpartition(".")[0] or module.__name__)
    for builder in re.findall(r"[Bb]uilt by ``(\w+)\(\)``", text):
        found = getattr(module, builder, None) or getattr(package, builder, None)
        text += "\n" + (inspect.getdoc(found) or "")
    return text


def test_every_public_function_and_class_documents_its_arguments():
    undocumented = []
    for name, value in _public_objects():
        text = _documented_text(name, value)
        if not text.strip():
            undocumented.append(f"{name}: no docstring")
            continue
        target = value.__init__ if inspect.isclass(value) else value
        if not inspect.isfunction(target):
            continue
        parameters = [
            parameter.name for parameter in inspect.signature(target).parameters.values()
            if parameter.name not in ("self", "cls") and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        ]
        absent = [parameter for parameter in parameters if not re.search(rf"\b{re.escape(parameter)}\b", text)]
        if absent:
            undocumented.append(f"{name}: {', '.join(absent)} not described")
    assert len(_public_objects()) > 200
    assert undocumented == []
