"""What reads a classifier's text tower, measured against known answers on efficientnet_lite0 (a script, not a test).

* neuron search at a hidden layer (where the text direction is fitted): the top 10 units of ``a photo of a LABEL``
  against the top 10 of the class's gradient direction there (the class vector pulled back through the network,
  linearized at the 15 shipped photos), over ``--classes`` classes of a fixed seed draw;
* CLIP-Dissect's final-layer test: every unit of the classifier (one per class) labelled with the default concept
  list (`featviz.concepts.dissect`), its figures: how often the label is the class's name or a synonym (WordNet
  lemma), and the mean sentence cosine (all-MiniLM-L6-v2) between label and class name; on the 15 shipped photos
  alone and with random crops of each, to show how the figure moves with the number of images.

    python benchmarks/text_readers.py
"""
from __future__ import annotations

import argparse
import time

import torch

import featviz
from featviz.concepts.dissect import concept_embeddings, known_concepts, resolve_concepts, soft_wpmi
from featviz.hooks import ActivationCapture, bind_layers
from featviz.models.model import normalize_label
from featviz.text import text_directions
from featviz.text.directions import _linearized, reference_images
from featviz.text.encoder import embed_sentences
from featviz.text.sentence import class_vocabulary


def hidden_layer_search(model: featviz.Model, layers: list[str], classes: list[int]) -> None:
    weights = model.get_layer("classifier").weight.detach()
    photos = reference_images(model, crops_per_photo=0)
    prompts = [f"a photo of a {model.labels[index]}" for index in classes]
    for layer in layers:
        found = text_directions(model, layer, prompts)
        layout = bind_layers(model, [layer], tuple(model.input_size)).layouts[layer]
        gradients = _linearized(model, layer, layout, photos, weights[classes]).detach()
        overlaps = [len(set(a.topk(10).indices.tolist()) & set(b.topk(10).indices.tolist()))
                    for a, b in zip(found.vectors, gradients)]
        cosine = torch.nn.functional.cosine_similarity(found.vectors, gradients.float(), dim=1)
        print(f"| {layer} | {found.method} (held-out R² {found.r2:.2f}) | {len(classes)} | "
              f"{sum(overlaps) / len(overlaps):.1f} / 10 (min {min(overlaps)}, max {max(overlaps)}) | "
              f"{float(cosine.mean()):.2f} |", flush=True)


def dissect_final_layer(model: featviz.Model, crops: list[int]) -> None:
    concepts = known_concepts(model, resolve_concepts(None))  # as label_units: none that no class is
    embeddings = concept_embeddings(model, concepts, progress=True)
    names, _ = class_vocabulary(model.labels)
    accepted = [{normalize_label(name) for name in group} for group in names]
    for count in crops:
        images = reference_images(model, crops_per_photo=count)
        with torch.no_grad(), ActivationCapture(model, ["classifier", "global_pool"]) as capture:
            parts = [capture.run(images[start:start + 32]) for start in range(0, len(images), 32)]
        logits = torch.cat([part["classifier"] for part in parts]).flatten(1)
        pooled = torch.cat([part["global_pool"] for part in parts]).flatten(1)
        top_k = min(100, max(3, len(images) // 15))
        scores = soft_wpmi(logits, pooled, embeddings, top_k=top_k)
        labels = [concepts[int(index)] for index in scores.argmax(1)]
        right = sum(normalize_label(label) in accepted[unit] for unit, label in enumerate(labels))
        cosine = (embed_sentences(labels) * embed_sentences([names[unit][0] for unit in range(len(labels))])).sum(1)
        examples = ", ".join(f"{model.labels[unit]} → {labels[unit]}" for unit in (1, 2, 107, 388, 817, 951, 980))
        print(f"| {len(images)} ({count} crops a photo) | {top_k} | {100 * right / len(labels):.1f}% | "
              f"{float(cosine.mean()):.2f} | {examples} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--layers", default="blocks.6,blocks.5")
    parser.add_argument("--crops", default="0,4,12")
    parser.add_argument("--skip", default="", help="'search' or 'dissect' to skip that part")
    arguments = parser.parse_args()
    model = featviz.load_model("efficientnet_lite0")
    started = time.time()
    if "search" not in arguments.skip:
        classes = sorted(torch.randperm(1000, generator=torch.Generator().manual_seed(0)).tolist()[:arguments.classes])
        print("| layer | text direction | classes | top-10 overlap with the gradient direction | mean cosine |")
        print("|---|---|---|---|---|")
        hidden_layer_search(model, arguments.layers.split(","), classes)
    if "dissect" not in arguments.skip:
        print("\n| images | top_k | label is the class name or a synonym | mean cosine label / class name | examples |")
        print("|---|---|---|---|---|")
        dissect_final_layer(model, [int(value) for value in arguments.crops.split(",")])
    print(f"\ntotal {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
