"""Make the images and the table of docs/concepts/sparse-directions.md: sparse concept directions of
EfficientNet-Lite0 found through its text tower, and renders of them beside the single unit that each concept's
prompts point to most.

    python docs/examples/sparse_directions.py [--steps 256] [--size 112]

Writes docs/images/sparse-directions/CONCEPT.png and CONCEPT-2.png (the sparse direction, contrasted with the
other concepts' as `render_concept_directions` does by default, at two seeds), CONCEPT-unit.png (the top single
unit) and prints the Markdown table of the page, with the top 3 classes that EfficientNet-Lite1, which never saw
the renders, gives each. The concepts are kinds of things that ImageNet has many classes of: on a classifier a
prompt means the classes it resolves to (``model.text.resolve``; "water" becomes water bottle, "fire" fire
engine). The first description embeds ImageNet's class names once (minutes; cached after).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import featviz
from featviz import objectives
from featviz.recipes import render_concept_directions, sparse_concept_directions
from featviz.recipes.concept_directions import contrasted_directions
from featviz.text import find_text_direction

OUT = Path(__file__).resolve().parents[1] / "images" / "sparse-directions"
LAYER = "global_pool"  # exact for Lite0's text tower: the penultimate features the classifier reads
# The same 1280 channels before pooling, after the ReLU6: what global_pool averages. Before the ReLU6
# (bn2.drop) the many negative weights would ask for unbounded negative pre-activations, which the classifier
# never sees, and Lite1 found one of the four concepts in those renders.
RENDER_LAYER = "bn2"
CONCEPTS = {
    "dog": ["a dog", "a puppy", "a golden retriever", "a dog running on grass", "a sleeping dog", "a terrier",
            "a dog's face", "a sheepdog"],
    "bird": ["a bird", "a small bird on a branch", "a flying bird", "a parrot", "an eagle", "a songbird",
             "feathers of a bird", "a seagull"],
    "fish": ["a fish", "a goldfish", "a shark", "a fish in an aquarium", "a tropical fish", "a fish swimming in the sea",
             "a trout", "a catch of fish"],
    "fruit": ["fruit", "a lemon", "an orange", "a banana", "a bowl of fruit", "a ripe strawberry",
              "a slice of pineapple", "fruit at a market"],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--units", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = featviz.load_model("efficientnet_lite0")
    started = time.perf_counter()
    found = sparse_concept_directions(model, LAYER, CONCEPTS, units=args.units, folds=4)
    print(found)
    print(f"fit in {time.perf_counter() - started:.1f} s")
    # the unit each concept's prompts point to most (what `featviz neurons` ranks first)
    single = {name: int(find_text_direction(model, LAYER, prompts).vector.argmax()) for name, prompts in CONCEPTS.items()}
    count = len(found.concepts)
    started = time.perf_counter()
    # each direction minus the mean of the others (render_concept_directions' default contrast), at two seeds:
    # seeds 0-3 and 4-7; the single units at seeds 8-11
    renders = [render_concept_directions(model, found, layer=RENDER_LAYER, steps=args.steps, size=args.size, seed=seed)
               for seed in (0, count)]
    renders.append(featviz.render(model, [objectives.channel(RENDER_LAYER, unit) for unit in single.values()],
                                  steps=args.steps, size=args.size, seed=2 * count, progress=True))
    print(f"rendered {3 * count} images in {time.perf_counter() - started:.1f} s")
    OUT.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(found.concepts):
        for render, suffix in zip(renders, ("", "-2", "-unit")):
            render.to_pil()[index].save(OUT / f"{name}{suffix}.png", optimize=True)

    judge = featviz.load_model("efficientnet_lite1")  # never saw the renders
    with torch.no_grad():
        probabilities = judge(torch.cat([render.images for render in renders])).softmax(-1)
    seen = [", ".join(f"{judge.labels[index]} {value:.2f}" for value, index in zip(*row.topk(3))) for row in probabilities]

    print("\n| concept | its units (weight) | sparse direction, contrasted | Lite1 sees | another seed | Lite1 sees "
          "| top single unit | Lite1 sees |")
    print("|---|---|---|---|---|---|---|---|")
    for index, (name, direction) in enumerate(found.directions.items()):
        weights = ", ".join(f"{unit} ({weight:+.2f})" for unit, weight in zip(direction.units, direction.weights))
        print(f"| {name} | {weights} | ![{name}](../images/sparse-directions/{name}.png) | {seen[index]} | "
              f"![{name}, seed {count + index}](../images/sparse-directions/{name}-2.png) | {seen[count + index]} | "
              f"![unit {single[name]}](../images/sparse-directions/{name}-unit.png) unit {single[name]} | "
              f"{seen[2 * count + index]} |")
    # what each vector means to Lite0's classifier (its class weights times the vector), as fitted and contrasted
    classes = model.get_layer("classifier").weight.detach()
    for kind, vectors in (("as fitted", found.vectors), ("contrasted", contrasted_directions(found.vectors))):
        for name, vector in zip(found.concepts, vectors):
            top = (classes @ vector).topk(8)
            print(f"{name} {kind}: " + ", ".join(f"{model.labels[index]} {value:.2f}" for value, index in zip(*top)))
    print(f"\nheld-out accuracy {found.accuracy:.2f} (chance {found.chance:.2f}), training {found.train_accuracy:.2f}")


if __name__ == "__main__":
    main()
