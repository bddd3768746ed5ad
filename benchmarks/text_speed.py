"""Step time of a text objective beside a channel objective on the same model (a script, not a test).

    python benchmarks/text_speed.py [--steps 12] [--models open_clip:RN50,open_clip:ViT-B-32,efficientnet_lite0]

CLIP models are built at random init (the step time does not depend on the weights); a model without a text
tower (efficientnet_lite0 without the `text` extra) is skipped. For each model: median milliseconds per step
of one 224 px image for a channel of the layer before the embedding, for ``text:a photo of a dog``, and for a
batch of 8 text directions (one per image, the gallery's batched path), all with one `featviz.Renderer`.
"""
from __future__ import annotations

import argparse
import statistics

import torch

import featviz
from featviz import objectives
from featviz.errors import FeatvizError
from featviz.text import find_text_direction

LAST_LAYERS = {"open_clip:RN50": "layer4", "open_clip:ViT-B-32": "transformer.resblocks.11",
               "efficientnet_lite0": "bn2"}
PROMPTS = ["a photo of a dog", "a photo of a cat", "a red car", "a bowl of soup", "a mountain lake",
           "a spider", "a happy face", "the letter A"]


def milliseconds_per_step(renderer: featviz.Renderer, goal, steps: int, batch: int | None = None) -> float:
    renderer.render(goal, steps=2, seed=0, progress=False, batch=batch)  # warm-up: binding, allocation
    times = []
    for repeat in range(3):
        result = renderer.render(goal, steps=steps, seed=repeat, progress=False, batch=batch)
        times.append(result.seconds / steps * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--models", default=",".join(LAST_LAYERS))
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps, 224 px")
    print("| model | channel of the last stage (ms/step) | text objective (ms/step) | ratio | 8 text directions, batch of 8 (ms/step) |")
    print("|---|---|---|---|---|")
    for name in args.models.split(","):
        weights = "random" if name.startswith("open_clip:") else None
        model = featviz.load_model(name, weights=weights)
        if model.text is None:
            print(f"| {name} | skipped: no text tower | | | |")
            continue
        layer = LAST_LAYERS[name]
        renderer = featviz.Renderer(model)
        try:
            model.text.encode(["warm up"])
        except FeatvizError as error:
            print(f"| {name} | skipped: {error} | | | |")
            continue
        channel = milliseconds_per_step(renderer, f"{layer}:5", args.steps)
        text = milliseconds_per_step(renderer, "text:a photo of a dog", args.steps)
        directions = [objectives.direction(layer, find_text_direction(model, layer, prompt).vector) for prompt in PROMPTS]
        batched = milliseconds_per_step(renderer, directions, args.steps)
        print(f"| {name} | {channel:.0f} | {text:.0f} | {text / channel:.2f}x | {batched:.0f} |", flush=True)


if __name__ == "__main__":
    main()
