"""What the multimodal gallery parts cost (a script, not a test).

    python benchmarks/multimodal_gallery_speed.py [--words 64] [--looped 4] [--units 8] [--steps 32]

1. Text directions of many words in one layer: the batched `text_directions` (one encode, one linear map: the
   Jacobian sum from one forward pass on an exact layer) against a loop of `find_text_direction`, one word at a
   time, on a random-init CLIP RN50 (exact `layer4`) and on `efficientnet_lite0` (fitted `blocks.6`, if its
   text tower is installed).
2. A gallery of ``--units`` units of the tiny random CLIP rendered plainly, then the same gallery given top words
   and concept labels on the shipped photos afterwards: the seconds per unit of each, as a ratio.
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import torch

import featviz
from featviz.errors import FeatvizError
from featviz.gallery import build_gallery
from featviz.text.directions import find_text_direction, text_directions


def words(count: int) -> list[str]:
    from featviz.concepts import default_concepts

    return default_concepts()[:: max(1, 3500 // count)][:count]


def directions(name: str, layer: str, count: int, looped: int) -> None:
    weights = "random" if name.startswith("open_clip:") else None
    try:
        model = featviz.load_model(name, weights=weights)
        if model.text is None:
            raise FeatvizError("no text tower")
    except FeatvizError as error:
        print(f"| {name} | skipped: {error} | | |")
        return
    chosen = words(count)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        find_text_direction(model, layer, chosen[0])  # warm-up: tower loaded, map fitted and cached
        started = time.perf_counter()
        for word in chosen[:looped]:
            find_text_direction(model, layer, word)
        one = (time.perf_counter() - started) / looped
        started = time.perf_counter()
        found = text_directions(model, layer, chosen)
        batched = (time.perf_counter() - started) / count
    print(f"| {name} `{layer}` ({found.method}) | {one * 1000:.1f} | {batched * 1000:.2f} | {one / batched:.0f}x |")


def gallery(units: int, steps: int) -> None:
    torch.manual_seed(0)
    model = featviz.load_model("open_clip:featviz-tiny-ViT", weights="random")
    layer = "transformer.resblocks.1"
    chosen = words(400)
    settings = {"units": f"0-{units - 1}", "steps": steps, "size": 64, "batch": units, "progress": False}
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        site = Path(folder) / "site"
        plain = build_gallery(model, [layer], out=site, **settings)
        extra = build_gallery(model, [layer], out=site, words=chosen, labels="shipped", **settings)
    render, parts = plain.seconds / units, extra.seconds / units
    print(f"| {units} units, {steps} steps, 64 px | {render:.2f} | {parts:.2f} | {parts / render:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=64)
    parser.add_argument("--looped", type=int, default=4, help="words timed one at a time")
    parser.add_argument("--units", type=int, default=8)
    parser.add_argument("--steps", type=int, default=32)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.words} words")
    print("| model and layer | one word at a time (ms/word) | batched (ms/word) | speed-up |")
    print("|---|---|---|---|")
    directions("open_clip:RN50", "layer4", args.words, args.looped)
    directions("efficientnet_lite0", "blocks.6", args.words, args.looped)
    print("\n| tiny CLIP gallery | render (s/unit) | top words + labels added later (s/unit) | ratio |")
    print("|---|---|---|---|")
    gallery(args.units, args.steps)


if __name__ == "__main__":
    main()
