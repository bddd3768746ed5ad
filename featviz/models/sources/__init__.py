"""Model sources: one module per library whose models `load_model` takes as ``PREFIX:NAME`` and as objects.

Every module in this folder (except those whose name starts with ``_``) is imported here and registers its
source with `featviz.models.registry.register_source`; adding a source is adding one module, see
docs/how-to/add-a-model-source.md.
"""
from featviz.discovery import import_modules

import_modules(__name__, __path__)
