"""Dictionary features against neurons of the same Lite0 layer, on the same images: how concentrated each one is.

Images: the 15 shipped photos and 12 random crops of each (195 images at 224 px, each knowing its source photo;
`featviz.text.directions.reference_images`' recipe, one photo at a time). A `topk` dictionary of 2 x channels
features (8 active per position) is learned on the layer's vectors at every position of every image. Then for
64 randomly drawn alive features and 64 randomly drawn neurons (channels) of the layer, each unit's top 9 images
(by its maximum over positions, the dataset pass's top examples) give:

* photo share: the share of the 9 that come from the most common source photo (1: all crops of one photo);
* class share: the crop around the spot where the unit fires most is classified by Lite0; the share of the 9
  crops in the most common predicted class;
* label score: CLIP-Dissect's soft-WPMI of the unit's best concept (`featviz.concepts.label_units`, default
  concepts, top 10 images), through Lite0's text tower.

Chance: the same shares for 9 images drawn at random (mean of 2,000 draws). Also writes a figure of 8 features
and 8 neurons (render at 128 px, 256 steps, and the unit's top 3 crops) to docs/images/dictionaries/.

Run: python benchmarks/dictionary_figures.py [--layer blocks.5.0.conv_pwl] [--steps 1500]
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
from collections import Counter
from pathlib import Path

import numpy
import torch
from PIL import Image, ImageDraw

import featviz
from featviz.concepts.dictionary import learn_dictionary
from featviz.dataset import ImageFolder, collect_activations, shipped_photos
from featviz.objectives import dictionary_feature, load_dictionary
from featviz.renderer import save_png
from featviz.transforms import Compose, RandomSource, random_crops

OUT = Path(__file__).resolve().parent.parent / "docs" / "images" / "dictionaries"
TOP = 9
UNITS = 64


def make_images(model, folder: Path) -> dict[str, int]:
    """The photos and 12 crops of each, saved as PNGs; returns each file's source photo."""
    height, width = model.input_size
    photos = shipped_photos((height, width), model.channels)
    sources = {}
    crops = Compose([random_crops(count=12, area=(0.2, 0.8))], output_size=(height, width))
    for index in range(photos.shape[0]):
        with torch.no_grad():
            cropped = crops(photos[index:index + 1], RandomSource([index]))
        for number, image in enumerate(torch.cat([photos[index:index + 1], cropped])):
            path = folder / f"p{index:02d}-{number:02d}.png"
            if not path.exists():  # kept between runs with --work, so that the pass cache stays valid
                save_png(image, path)
            sources[str(path)] = index
    return sources


def shares(stats, units, sources, classes) -> tuple[list[float], list[float]]:
    photo, predicted = [], []
    for unit in units:
        examples = stats.top_examples(unit)[:TOP]
        counts = Counter(sources[example.path] for example in examples)
        photo.append(counts.most_common(1)[0][1] / len(examples))
        labels = Counter(classes[(example.path, example.position)] for example in examples)
        predicted.append(labels.most_common(1)[0][1] / len(examples))
    return photo, predicted


def crop_classes(model, stats_list, units_list) -> dict:
    """Lite0's predicted class of the crop around each top example's peak."""
    wanted = {}
    for stats, units in zip(stats_list, units_list):
        for unit in units:
            for example in stats.top_examples(unit)[:TOP]:
                wanted[(example.path, example.position)] = example
    keys = list(wanted)
    found = {}
    for start in range(0, len(keys), 64):
        chunk = keys[start:start + 64]
        batch = torch.stack([
            torch.from_numpy(numpy.asarray(wanted[key].crop(224), dtype="float32") / 255).permute(2, 0, 1)
            for key in chunk
        ])
        with torch.no_grad():
            logits = model(batch)
        for key, label in zip(chunk, logits.argmax(1).tolist()):
            found[key] = label
    return found


def figure(model, dictionary, stats_features, stats_neurons, features, neurons, layer, steps) -> Path:
    size, crop = 128, 64
    rows = []
    for kind, units, stats in (("feature", features, stats_features), ("neuron", neurons, stats_neurons)):
        goals = ([dictionary_feature(dictionary, unit) for unit in units] if kind == "feature"
                 else [featviz.objectives.channel(layer, unit) for unit in units])
        result = featviz.render(model, goals, steps=steps, size=size, seed=0, progress=False)
        for index, unit in enumerate(units):
            tiles = [Image.fromarray((result.images[index].permute(1, 2, 0).clamp(0, 1) * 255).byte().numpy())]
            tiles += [example.crop(crop).resize((size // 2, size // 2)) for example in stats.top_examples(unit)[:3]]
            rows.append((f"{kind} {unit}", tiles))
    width = 90 + size + 3 * (size // 2 + 4)
    sheet = Image.new("RGB", (2 * width, (len(rows) // 2) * (size + 6)), "white")
    draw = ImageDraw.Draw(sheet)
    half = len(rows) // 2
    for number, (title, tiles) in enumerate(rows):
        column, row = divmod(number, half)
        x, y = column * width, row * (size + 6)
        draw.text((x + 4, y + size // 2 - 6), title, fill="black")
        sheet.paste(tiles[0], (x + 90, y))
        for index, tile in enumerate(tiles[1:]):
            sheet.paste(tile, (x + 90 + size + 4 + index * (size // 2 + 4), y + size // 4))
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "features-vs-neurons.png"
    sheet.save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layer", default="blocks.5.0.conv_pwl")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--render-steps", type=int, default=256)
    parser.add_argument("--no-labels", action="store_true")
    parser.add_argument("--dictionary", default=None, help="use this dictionary file instead of learning one")
    parser.add_argument("--work", default=None, help="folder for the images and the pass cache (default: temporary)")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = featviz.load_model("efficientnet_lite0")
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(args.work or temporary)
        folder_path = (work / "images").resolve()
        folder_path.mkdir(parents=True, exist_ok=True)
        sources = make_images(model, folder_path)
        folder = ImageFolder(folder_path, 224)
        channels = featviz.hooks.bind_layers(model, [args.layer]).shapes[args.layer][1]
        if args.dictionary:
            dictionary = load_dictionary(args.dictionary, model, args.layer)
        else:
            dictionary = learn_dictionary(
                model, args.layer, folder, 2 * channels, "topk", top_k=8, steps=args.steps, batch_size=512,
                out=work / "lite0-dictionary.pt", cache_dir=work / "cache", progress=True,
            )
        print("dictionary:", dictionary, dictionary.metrics, flush=True)
        stats = collect_activations(model, folder, [dictionary, args.layer], k=TOP)
        alive = [unit for unit in range(dictionary.concepts) if float(stats[dictionary].top_values[unit, 0]) > 0]
        draw = random.Random(0)
        features = sorted(draw.sample(alive, min(UNITS, len(alive))))
        neurons = sorted(draw.sample(range(channels), min(UNITS, channels)))
        classes = crop_classes(model, [stats[dictionary], stats[args.layer]], [features, neurons])
        feature_photo, feature_class = shares(stats[dictionary], features, sources, classes)
        neuron_photo, neuron_class = shares(stats[args.layer], neurons, sources, classes)
        paths = list(sources)
        chance_photo = []
        for _ in range(2000):
            picked = draw.sample(paths, TOP)
            chance_photo.append(Counter(sources[path] for path in picked).most_common(1)[0][1] / TOP)
        mean = lambda values: sum(values) / len(values)  # noqa: E731
        results = {
            "layer": args.layer, "images": len(paths), "channels": channels, "concepts": dictionary.concepts,
            "metrics": dictionary.metrics, "alive": len(alive), "units_compared": [len(features), len(neurons)],
            "photo_share": {"features": mean(feature_photo), "neurons": mean(neuron_photo), "chance": mean(chance_photo)},
            "class_share": {"features": mean(feature_class), "neurons": mean(neuron_class)},
        }
        if not args.no_labels:
            try:
                labels_features = featviz.concepts.label_units(model, dictionary, folder, top_k=10)
                labels_neurons = featviz.concepts.label_units(model, args.layer, folder, top_k=10)
                results["label_score"] = {
                    "features": mean([labels_features[unit].score for unit in features]),
                    "neurons": mean([labels_neurons[unit].score for unit in neurons]),
                }
                results["labels_shown"] = {
                    "features": {unit: labels_features[unit].concept for unit in features[:8]},
                    "neurons": {unit: labels_neurons[unit].concept for unit in neurons[:8]},
                }
            except featviz.errors.FeatvizError as error:
                results["label_score"] = f"not measured: {error}"
        print(json.dumps(results, indent=1), flush=True)
        (OUT / "monosemanticity.json").write_text(json.dumps(results, indent=1) + "\n")
        print(figure(model, dictionary, stats[dictionary], stats[args.layer], features[:8], neurons[:8], args.layer,
                     args.render_steps))


if __name__ == "__main__":
    main()
