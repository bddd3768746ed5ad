"""Image parameterizations: modules whose ``forward()`` returns the images being optimized, in ``[0, 1]``.

``Fourier`` (the default) optimizes a 1/f-scaled spectrum; ``Pixel`` the pixels themselves; ``CPPN`` a small
coordinate network per image; ``Maco`` only the phase of a spectrum of fixed magnitude. All take ``size``,
``batch``, ``channels``, ``seed``, ``alpha``, ``device`` and ``dtype``, and carry the Adam learning rate that
suits them as ``default_lr``. ``create(kind, size, ...)`` builds one by name; ``registered_kinds()`` lists the
kinds (those registered outside this package too).

Every module of this package is imported here and its ``__all__`` re-exported, so a new parameterization is
one new module with a ``@register_parameterization`` class (docs/how-to/add-a-parameterization.md).
"""
from featviz.discovery import import_modules

__all__ = import_modules(__name__, __path__, globals())
