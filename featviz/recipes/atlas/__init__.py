"""Activation atlases (Carter et al., "Exploring Neural Networks with Activation Atlases", Distill 2019).

An atlas shows what a layer can represent, laid out so that similar activations sit side by side:

1. ``sample_activations`` (sampling.py) runs the model over a folder of images and keeps a bounded, uniform
   sample of the layer's activation vectors: up to ``positions`` random spatial positions per image, and at
   most ``samples`` vectors in all (each candidate gets a random key drawn from the image's own seeded stream;
   the ``samples`` smallest keys are kept, so memory stays ``samples x channels`` however many images there
   are, and the sample does not depend on how the folder is split among processes). With ``label`` only
   images whose top ``top`` predictions hold that class, and only their positions whose activation x gradient
   toward the class is positive (the largest first), are sampled: a *class activation atlas*.
2. ``embed_2d`` (layout.py) lays the vectors out in 2-D (t-SNE by default, or UMAP), cosine distance, scaled
   into the unit square with both axes scaled alike.
3. The square is cut into a ``grid x grid`` array of cells at several grid sizes (cells.py); each cell with
   samples gets their mean activation vector and count.
4. Every cell's mean vector is rendered as a direction at the centre position of the layer
   (``objectives.direction_neuron`` with ``cossim_pow``), many cells in one batched ``Renderer.render``.

``activation_atlas`` (recipe.py) runs the four steps; ``write_atlas_site`` (site.py, with the page template
page.html) writes the result as a zoomable static page (no server needed). Under ``torchrun``
(``WORLD_SIZE > 1``) the images are shared among the processes for step 1 and the cells for step 4; every
process returns the same `Atlas` and only rank 0 writes files.

Example:
    >>> from featviz.recipes import activation_atlas, write_atlas_site
    >>> atlas = activation_atlas("efficientnet_lite0", "blocks.4", "photos/", grid=16, steps=128)  # doctest: +SKIP
    >>> write_atlas_site(atlas, "atlas-site")  # doctest: +SKIP
"""
from featviz.recipes.atlas.layout import embed_2d
from featviz.recipes.atlas.recipe import activation_atlas
from featviz.recipes.atlas.result import Atlas, AtlasLevel
from featviz.recipes.atlas.sampling import ActivationSample, sample_activations
from featviz.recipes.atlas.site import write_atlas_site

__all__ = [
    "ActivationSample", "Atlas", "AtlasLevel", "activation_atlas", "embed_2d", "sample_activations", "write_atlas_site",
]
