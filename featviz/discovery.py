"""Packages whose modules register themselves: import every module of a package, and re-export their names.

Adding a parameterization, a transform or a model source is adding one module to its package; the package's
``__init__`` calls `import_modules` so that nothing else has to list the new module.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Iterable, MutableMapping


def import_modules(package: str, path: Iterable[str], namespace: MutableMapping[str, Any] | None = None) -> list[str]:
    """Import every module of ``package`` (found on ``path``; names starting with ``_`` skipped) and, with
    ``namespace``, copy each module's ``__all__`` into it; return the names copied.

    Example:
        >>> import featviz.param
        >>> namespace = {}
        >>> "Fourier" in import_modules("featviz.param", featviz.param.__path__, namespace)
        True
        >>> namespace["Fourier"] is featviz.param.Fourier
        True

        In a package's ``__init__.py``: ``__all__ = import_modules(__name__, __path__, globals())``.
    """
    exported: list[str] = []
    for info in pkgutil.iter_modules(path, prefix=f"{package}."):
        if info.name.rpartition(".")[2].startswith("_"):
            continue
        module = importlib.import_module(info.name)
        if namespace is not None:
            names = list(getattr(module, "__all__", ()))
            namespace.update((name, getattr(module, name)) for name in names)
            exported += names
    return exported
