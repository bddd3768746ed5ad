"""Speed of concept labels (CLIP-Dissect) and conditional-probability stories, as ratios to the plain dataset pass.

Baseline: `collect_activations` over the same images and layers (no per-image values, no cache), measured in the
same process, in turn with the next two (medians of 3). Then, each as a ratio to it:

* the same pass keeping per-image values (``per_image=True``, what labels and stories read);
* `label_units` end to end without a cache (pass + concept embeddings + soft-WPMI), and again with its pass cached;
* `conditional_probability` for one unit with the pass cached;
* soft-WPMI alone at a realistic size (10,000 images x 1,280 units x 3,510 concepts, top 100), in seconds and as a
  ratio to one matrix product of the same images x concepts size (its similarity matrix).

Images: 12 random crops of each shipped photo (195 images with the photos) saved as JPEGs; model
efficientnet_lite0 at 224 px; layer ``global_pool`` (1,280 units) with the default concept list (3,510 nouns;
its sentence embeddings are cached after the first run, which the figures exclude by a warm-up call).

Run: python benchmarks/label_speed.py
"""
from __future__ import annotations

import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

import featviz
from featviz.concepts import conditional_probability, default_concepts, label_units, soft_wpmi
from featviz.concepts.dissect import concept_embeddings
from featviz.dataset import ImageFolder, collect_activations
from featviz.renderer import save_png
from featviz.text.directions import reference_images

LAYER = "global_pool"


def timed(function, repeats: int = 2) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def interleaved(functions: list, repeats: int = 3) -> list[float]:
    """Median seconds of each function, run in turn ``repeats`` times (so that a change of machine load hits
    them alike)."""
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for index, function in enumerate(functions):
            started = time.perf_counter()
            function()
            times[index].append(time.perf_counter() - started)
    return [statistics.median(found) for found in times]


def main() -> None:
    torch.manual_seed(0)
    model = featviz.load_model("efficientnet_lite0")
    concepts = default_concepts()
    concept_embeddings(model, concepts)  # warm-up: sentence embeddings of the concepts, cached on disk
    with tempfile.TemporaryDirectory() as work:
        folder_path = Path(work) / "images"
        folder_path.mkdir()
        images = reference_images(model, crops_per_photo=12)
        for index, image in enumerate(images):
            save_png(image, folder_path / f"{index:03d}.png")
        folder = ImageFolder(folder_path, 224)
        cache = Path(work) / "cache"
        layers = [LAYER]

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            label_units(model, LAYER, folder, concepts, top_k=10, cache_dir=cache)
            baseline, per_image, uncached = interleaved([
                lambda: collect_activations(model, folder, layers),
                lambda: collect_activations(model, folder, layers, per_image=True),
                lambda: label_units(model, LAYER, folder, concepts, top_k=10),
            ])
            cached = timed(lambda: label_units(model, LAYER, folder, concepts, top_k=10, cache_dir=cache))
        story_cache = Path(work) / "story-cache"
        conditional_probability(model, LAYER, 0, folder, labels="predicted", cache_dir=story_cache)
        story = timed(
            lambda: conditional_probability(model, LAYER, 0, folder, labels="predicted", cache_dir=story_cache)
        )

    print(f"{len(folder)} images, efficientnet_lite0 at 224 px, layer {LAYER}, {len(concepts)} concepts")
    print(f"baseline: plain dataset pass                         {baseline:8.2f} s  1.00x")
    print(f"dataset pass keeping per-image values                {per_image:8.2f} s  {per_image / baseline:.2f}x")
    print(f"label_units, no cache (pass + concepts + soft-WPMI)  {uncached:8.2f} s  {uncached / baseline:.2f}x")
    print(f"label_units, pass cached                             {cached:8.2f} s  {cached / baseline:.2f}x")
    print(f"conditional_probability of one unit, pass cached     {story:8.2f} s  {story / baseline:.2f}x")

    generator = torch.Generator().manual_seed(0)
    count, units, dimension = 10_000, 1280, 1280
    activations = torch.randn(count, units, generator=generator)
    embeddings = torch.randn(count, dimension, generator=generator)
    concept_vectors = torch.randn(len(concepts), dimension, generator=generator)
    product = timed(lambda: embeddings @ concept_vectors.t())
    score = timed(lambda: soft_wpmi(activations, embeddings, concept_vectors, top_k=100), repeats=1)
    print(
        f"soft-WPMI alone, {count} images x {units} units x {len(concepts)} concepts, top 100: {score:.2f} s "
        f"({score / product:.1f}x one {count} x {len(concepts)} similarity product, {product:.2f} s)"
    )


if __name__ == "__main__":
    main()
