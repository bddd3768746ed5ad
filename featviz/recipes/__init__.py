"""Recipes: complete renders assembled from featviz's parts for one purpose, with settings that suit it.

``dream(model, "a prompt")`` is text-guided generation (Structured Dreaming): many random views a step of a
large canvas or a generator's output, optimized towards a prompt's embedding with ClampSGD or Adam.

Example:
    >>> from featviz.recipes import dream
    >>> result = dream("open_clip:featviz-tiny-ViT", "a lighthouse in a storm", size=64, steps=2, views=2, progress=False)
    >>> result.images.shape                  # a tiny random CLIP: the recipe runs, the image means nothing
    torch.Size([1, 3, 64, 64])
    >>> dream("open_clip:ViT-B-32/openai", "a lighthouse in a storm", steps=200).save("lighthouse.png")  # doctest: +SKIP
"""
from featviz.discovery import import_modules

# A recipe is one module of this package with an ``__all__``; nothing else has to list it.
__all__ = import_modules(__name__, __path__, globals())
