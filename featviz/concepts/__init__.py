"""Concepts: what a unit stands for. Linear probes on a model's activations (facets), concept labels for every
unit of a layer (CLIP-Dissect), and the numbers behind a unit's story (conditional probabilities).

Each module registers its public names through its ``__all__``; nothing else has to list a new module.
"""
from featviz.discovery import import_modules

__all__ = import_modules(__name__, __path__, globals())
