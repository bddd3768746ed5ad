"""mkdocs hook: the API reference, one page per package of featviz, ordered for users.

Each page is generated while the site builds (nothing is written to docs/). It starts with the package's public
names, the ones its ``__all__`` exports, in the order a user meets them (``FIRST``: the most used first, then the
rest of ``__all__`` in its own order), each rendered by mkdocstrings from its docstring. Then come the package's
modules, one heading each, with what they define beyond those names: the internals, for extending featviz. A
module added to a package appears on its page without editing anything; a new package needs one entry in PAGES
(and, to list its main names first, one in FIRST). A name in FIRST that the package no longer has stops the
build, so the order cannot rot.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
from pathlib import Path

import griffe
from mkdocs.structure.files import File, InclusionLevel

ROOT = Path(__file__).resolve().parents[2]

# page name -> (title, what the package does, the packages and modules on the page), in the order of the index
PAGES = {
    "index": ("API reference", "", ()),
    "renderer": ("featviz.renderer", "The optimization loop and its results.", ("featviz.renderer",)),
    "objectives": ("featviz.objectives", "What a render maximizes.", ("featviz.objectives",)),
    "models": ("featviz.models", "Loading models, their sources and weights.", ("featviz.models",)),
    "param": ("featviz.param", "Image parameterizations.", ("featviz.param",)),
    "transforms": ("featviz.transforms", "Random transforms applied every step.", ("featviz.transforms",)),
    "optim": ("featviz.optim", "Optimizers beyond torch.optim.", ("featviz.optim",)),
    "metrics": ("featviz.metrics", "Quality figures of rendered images.", ("featviz.metrics",)),
    "text": ("featviz.text", "Text towers, text directions, neuron search.", ("featviz.text",)),
    "concepts": ("featviz.concepts", "Concepts: probes, labels, vocabularies.", ("featviz.concepts",)),
    "recipes": ("featviz.recipes", "Recipes built on the renderer.", ("featviz.recipes",)),
    "gallery": ("featviz.gallery", "Microscope-style static galleries.", ("featviz.gallery",)),
    "dataset": ("featviz.dataset", "Image folders and the dataset pass.", ("featviz.dataset",)),
    "hooks": ("featviz.hooks", "Layers, layouts and activation capture.", ("featviz.hooks",)),
    "core": ("featviz: errors, devices, files", "User errors, the device parser, atomic files, module discovery.",
             ("featviz.errors", "featviz.device", "featviz.io", "featviz.discovery")),
}

# page name -> the names a user reaches for first, in that order (relative to the page's first package, or full
# paths on pages of plain modules). The rest of the package's __all__ follows in __all__'s order.
FIRST = {
    "renderer": ("render", "Renderer", "RenderResult", "NonFiniteObjectiveError", "grid", "save_png", "save_pngs"),
    "objectives": ("channel", "neuron", "layer", "direction", "direction_neuron", "class_logit", "text",
                   "text_direction", "facet", "diversity", "alignment", "channel_interpolate", "total_variation",
                   "l1", "l2", "blur", "parse", "stack", "Objective", "objective", "wrap_objective"),
    "models": ("load_model", "Model", "list_models", "list_sources", "imagenet_labels", "register_model",
               "register_source"),
    "param": ("create", "Fourier", "Pixel", "CPPN", "Maco", "Generator", "Shared", "composite", "split_alpha",
              "decorrelate", "Parameterization", "register_parameterization"),
    "transforms": ("create", "resolve", "register_preset", "Compose", "RandomSource"),
    "optim": ("ClampSGD",),
    "metrics": ("score", "format_score", "activation_reached", "transferability", "spectrum", "batch_diversity"),
    "text": ("text_tower", "rank_neurons", "format_neurons", "find_text_direction", "text_directions", "TextTower"),
    "concepts": ("label_units", "format_labels", "train_probe", "load_probe", "Probe", "conditional_probability",
                 "default_concepts", "read_concepts"),
    "recipes": ("caricature", "style_transfer", "interaction_grid", "interpolate", "activation_atlas", "explain",
                "layer_factors", "render_factors", "accentuate", "dream", "sparse_concept_directions",
                "render_concept_directions"),
    "gallery": ("build_gallery", "GallerySummary", "parse_units", "write_site"),
    "dataset": ("ImageFolder", "image_source", "shipped_photos", "collect_activations", "load_image", "crop_around"),
    "hooks": ("layer_table", "format_layer_table", "LayerInfo", "ActivationCapture", "survey_model", "Survey",
              "bind_layers", "LayerBinding"),
    "core": ("featviz.errors.FeatvizError", "featviz.device.resolve_device", "featviz.io.atomic_path",
             "featviz.io.cache_folder", "featviz.discovery.import_modules"),
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


@functools.cache
def _griffe(path: str) -> griffe.Object:
    """The griffe object at the dotted ``path`` (loaded statically, as mkdocstrings does)."""
    package, _, rest = path.partition(".")
    found = _load(package)
    for part in rest.split(".") if rest else ():
        found = found[part]
    return found


@functools.cache
def _load(package: str) -> griffe.Object:
    return griffe.load(package, search_paths=[str(ROOT)], resolve_aliases=True, resolve_external=False)


def _canonical(target: str, name: str) -> str | None:
    """Where ``target.name`` is defined (``module.qualname``), for a function or class of featviz; None for
    anything else (constants, type aliases). Read from the imported package: packages that re-export their
    modules' names at import time (``featviz.discovery.import_modules``) hide them from static analysis."""
    value = getattr(importlib.import_module(target), name)
    if not (inspect.isclass(value) or inspect.isfunction(value)):
        return None
    module = getattr(value, "__module__", "") or ""
    return f"{module}.{value.__qualname__}" if module.startswith("featviz.") else None


def public_names(key: str) -> list[str]:
    """The canonical dotted paths of page ``key``'s public functions and classes, in the order the page shows
    them: FIRST, then the rest of the package's ``__all__``."""
    targets = PAGES[key][2]
    package = targets[0] if targets else ""
    paths: list[str] = []
    for name in FIRST.get(key, ()):
        target, _, attribute = (name if name.startswith("featviz.") else f"{package}.{name}").rpartition(".")
        try:
            found = _canonical(target, attribute)
        except AttributeError:
            found = None
        if found is None:
            raise SystemExit(f"docs/hooks/api_pages.py: FIRST['{key}'] names {target}.{attribute}, which is not a "
                             "function or class of featviz")
        if found not in paths:  # an alias (objectives.deepdream is objectives.layer) is shown once
            paths.append(found)
    for target in targets:
        for name in getattr(importlib.import_module(target), "__all__", ()):
            found = _canonical(target, name)
            if found is not None and found not in paths:
                paths.append(found)
    return paths


def _module_members(module: str, shown: set[str]) -> list[str]:
    """The public members ``module`` defines itself (not imports), less those ``shown`` already."""
    found = _griffe(module)
    return [name for name, member in found.members.items()
            if not name.startswith("_") and not member.is_alias and member.canonical_path not in shown]


def _page(key: str) -> str:
    title, summary, targets = PAGES[key]
    lines = [f"# {title}", ""]
    if key == "index":
        lines += ["Every public function and class, generated from the docstrings (their examples run as tests).",
                  "Each page starts with what its package exports, the most used first; its modules' internals",
                  "follow. The command line has its own page: [Command line](../cli.md).", ""]
        lines += [f"- [{PAGES[other][0]}]({other}.md): {PAGES[other][1]}" for other in PAGES if other != "index"]
        lines += ["", "The names most programs need are importable from `featviz` itself: `featviz.render`,",
                  "`featviz.Renderer` and `featviz.RenderResult` ([renderer](renderer.md)), `featviz.load_model` and",
                  "`featviz.Model` ([models](models.md)), `featviz.FeatvizError` ([core](core.md)).", ""]
        return "\n".join(lines) + "\n"
    lines += [summary, ""]
    public = public_names(key)
    lines += ["## Public API", ""]
    for path in public:
        lines += [f"::: {path}", "    options:", "      show_root_heading: true", "      heading_level: 3", ""]
    lines += ["## Modules", "",
              "Each module of the package, with what it defines beyond the names above: helpers for extending featviz.",
              ""]
    shown = set(public)
    for target in targets:
        for module in _modules(target):
            members = _module_members(module, shown)
            lines += [f"::: {module}", "    options:", "      show_root_heading: true", "      heading_level: 3",
                      f"      members: {members if members else 'false'}", ""]
    return "\n".join(lines)


def _navigation() -> str:
    """api/.nav.yml: the pages in PAGES' order (mkdocs-awesome-nav would otherwise sort them by file name)."""
    return "nav:\n" + "".join(f"  - {key}.md\n" for key in PAGES)


def on_files(files, config):
    for key in PAGES:
        files.append(File.generated(config, f"api/{key}.md", content=_page(key)))
    files.append(File.generated(config, "api/.nav.yml", content=_navigation(), inclusion=InclusionLevel.EXCLUDED))
    return files
