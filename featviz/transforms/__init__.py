"""Random, differentiable, batched augmentations applied to the images at every optimization step.

A transform is a callable ``transform(images, source)`` taking float images ``(N, C, H, W)`` and a
``RandomSource`` (one generator per batch element), or any one-argument callable ``images -> images`` (a
lambda, a torchvision transform). ``Compose`` fuses consecutive geometric transforms into one resampling and
resizes to the model's input size in the same pass; ``resolve`` turns a preset name, a list of transforms or
one transform into a ``Compose``.

Every module of this package is imported here and its ``__all__`` re-exported, so a new transform is one new
module (docs/how-to/add-a-transform.md). Presets (none, standard, robust, maco, facet, dream) are registered by
name with ``register_preset`` and built with ``create(name)`` or ``resolve(name)``, never exported as functions.

Example:
    >>> from featviz.transforms import RandomSource, create
    >>> augment = create("standard", output_size=(224, 224))
    >>> augment(torch.rand(2, 3, 128, 128), RandomSource.from_seed(0, batch=2)).shape
    torch.Size([2, 3, 224, 224])
"""
from featviz.discovery import import_modules

__all__: list[str] = import_modules(__name__, __path__, globals())
