"""Quality figures for rendered images, computable by anyone with the model: how strongly an image drives its
objective (as rendered, under held-out transforms, against natural photos), whether other models see the
same class, how natural its spectrum is, and how diverse a batch is. `score` gathers them all; the command
line's `featviz score IMAGE MODEL OBJECTIVE` prints them. See docs/metrics.md.

Example:
    >>> from featviz import metrics
    >>> result = featviz.render(model, "blocks.4.0.conv_pwl:12", steps=8, size=64, seed=0, progress=False)  # steps=512
    >>> report = metrics.activation_reached(model, "blocks.4.0.conv_pwl:12", result.images, samples=4)
    >>> bool(report.held_out_mean_vs_natural > 1)   # beyond the best natural photo, even when moved
    True
    >>> -3 < metrics.spectrum(result.images).mean_slope < -2   # photo-like: about -2
    True
"""
from featviz.metrics.activation import (
    ActivationReport, BoundObjective, activation_reached, bind_objective, held_out_seed, parse_objectives,
)
from featviz.metrics.diversity import batch_diversity, mean_pairwise_similarity
from featviz.metrics.images import LoadedImages, as_images, composite_on_grey, image_paths, load_images, natural_images
from featviz.metrics.report import format_score, score
from featviz.metrics.power_spectrum import SpectrumReport, spectrum
from featviz.metrics.transfer import TransferScore, transferability

__all__ = [
    "ActivationReport", "BoundObjective", "LoadedImages",
    "SpectrumReport", "TransferScore", "activation_reached", "as_images", "batch_diversity", "bind_objective",
    "composite_on_grey", "format_score", "held_out_seed", "image_paths", "load_images", "mean_pairwise_similarity",
    "natural_images", "parse_objectives", "score", "spectrum", "transferability",
]
