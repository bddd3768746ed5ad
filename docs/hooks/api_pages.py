"""mkdocs hook: the API reference, one page per package of featviz, written from the package's modules.

Each page is generated while the site builds (nothing is written to docs/): a heading per public module and
mkdocstrings' ``::: module`` for it, which renders the module's public functions and classes from their
docstrings. A module added to a package appears on its page without editing anything; a new package needs
one entry in PAGES.
"""
from __future__ import annotations

import importlib
import pkgutil

from mkdocs.structure.files import File

# page name -> (title, what the package does, the packages and modules on the page)
PAGES = {
    "index": ("API reference", "", ()),
    "core": ("featviz: errors, devices, files", "User errors, the device parser, atomic files, module discovery.",
             ("featviz.errors", "featviz.device", "featviz.io", "featviz.discovery")),
    "objectives": ("featviz.objectives", "What a render maximizes.", ("featviz.objectives",)),
    "param": ("featviz.param", "Image parameterizations.", ("featviz.param",)),
    "transforms": ("featviz.transforms", "Random transforms applied every step.", ("featviz.transforms",)),
    "renderer": ("featviz.renderer", "The optimization loop and its results.", ("featviz.renderer",)),
    "models": ("featviz.models", "Loading models, their sources and weights.", ("featviz.models",)),
    "hooks": ("featviz.hooks", "Layers, layouts and activation capture.", ("featviz.hooks",)),
    "optim": ("featviz.optim", "Optimizers beyond torch.optim.", ("featviz.optim",)),
    "text": ("featviz.text", "Text towers, text directions, neuron search.", ("featviz.text",)),
    "metrics": ("featviz.metrics", "Quality figures of rendered images.", ("featviz.metrics",)),
    "dataset": ("featviz.dataset", "Image folders and the dataset pass.", ("featviz.dataset",)),
    "recipes": ("featviz.recipes", "Recipes built on the renderer.", ("featviz.recipes",)),
    "concepts": ("featviz.concepts", "Concepts: probes, labels, vocabularies.", ("featviz.concepts",)),
    "gallery": ("featviz.gallery", "Microscope-style static galleries.", ("featviz.gallery",)),
}


def _modules(name: str) -> list[str]:
    """``name`` when it is a module; the public modules of ``name`` when it is a package (its ``__init__``
    only when it defines something of its own)."""
    module = importlib.import_module(name)
    if not hasattr(module, "__path__"):
        return [name]
    found = []
    for info in sorted(pkgutil.iter_modules(module.__path__, f"{name}."), key=lambda info: info.name):
        if info.name.rpartition(".")[2].startswith("_"):
            continue
        found += _modules(info.name) if info.ispkg else [info.name]
    return found


def _page(key: str) -> str:
    title, summary, targets = PAGES[key]
    lines = [f"# {title}", ""]
    if key == "index":
        lines += ["Every public function and class, generated from the docstrings (their examples run as tests).", ""]
        lines += [f"- [{PAGES[other][0]}]({other}.md): {PAGES[other][1]}" for other in PAGES if other != "index"]
        lines += ["", "The names most programs need are importable from `featviz` itself: `featviz.render`,",
                  "`featviz.Renderer` and `featviz.RenderResult` ([renderer](renderer.md)), `featviz.load_model` and",
                  "`featviz.Model` ([models](models.md)), `featviz.FeatvizError` ([core](core.md)).", ""]
        return "\n".join(lines) + "\n"
    lines += [summary, ""]
    for target in targets:
        for module in _modules(target):
            lines += [f"::: {module}", "    options:", "      show_root_heading: true", "      heading_level: 2", ""]
    return "\n".join(lines)


def on_files(files, config):
    for key in PAGES:
        files.append(File.generated(config, f"api/{key}.md", content=_page(key)))
    return files
