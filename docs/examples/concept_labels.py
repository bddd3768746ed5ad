"""Make the images of docs/concepts/labels.md and docs/concepts/unit-story.md with efficientnet_lite0.

The image set: 24 random crops of each of the 15 photos that ship with scikit-image and scikit-learn, saved in
one subfolder per photo named by what it shows (cat, coffee, rocket, ...), 360 JPEGs in all. Then:

* `featviz label` on the penultimate layer ``global_pool`` and on the ``classifier`` with the default concepts
  (docs/images/labels/units.png: the top images of a few units with their labels; tables printed);
* `featviz story` for the classifier's "tabby" unit with the subfolders as labels, and for a penultimate unit
  with the model's own predictions as labels (docs/images/unit-story/).

Run from the repository root (a few minutes on two CPU cores; the pass and the concept embeddings are cached):
    python docs/examples/concept_labels.py --work /tmp/featviz-docs
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

import featviz
from featviz.concepts import conditional_probability, format_labels, label_units
from featviz.dataset import crop_around, shipped_photo_paths

SUBJECTS = {
    "astronaut": "astronaut", "brick": "brick", "camera": "camera", "chelsea": "cat", "coffee": "coffee",
    "coins": "coins", "grass": "grass", "gravel": "gravel", "hubble_deep_field": "galaxy", "moon": "moon",
    "motorcycle_left": "motorcycle", "retina": "retina", "rocket": "rocket", "china": "temple", "flower": "flower",
}
CROPS = 24
DOCS = Path("docs/images")


def make_folder(root: Path, seed: int = 0) -> Path:
    """24 random square crops (15 to 60 % of the shorter side, some flipped) of each shipped photo, 224 px."""
    folder = root / "photos"
    if folder.is_dir() and len(list(folder.rglob("*.jpg"))) == CROPS * len(SUBJECTS):
        return folder
    generator = torch.Generator().manual_seed(seed)
    for path in shipped_photo_paths():
        subject = SUBJECTS[path.stem]
        (folder / subject).mkdir(parents=True, exist_ok=True)
        with Image.open(path) as opened:
            photo = opened.convert("RGB")
        for index in range(CROPS):
            side = int(min(photo.size) * (0.15 + 0.45 * float(torch.rand(1, generator=generator))))
            left = int(float(torch.rand(1, generator=generator)) * (photo.width - side))
            top = int(float(torch.rand(1, generator=generator)) * (photo.height - side))
            crop = photo.resize((224, 224), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))
            if float(torch.rand(1, generator=generator)) < 0.5:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            crop.save(folder / subject / f"{index:02d}.jpg", quality=90)
    return folder


def unit_sheet(model, layer, units, labels, folder, cache, path: Path, size: int = 72) -> None:
    """One row per unit: its label, score and runners-up above its 5 top images."""
    from featviz.dataset import collect_activations

    stats = collect_activations(model, folder, [layer, model.text.image_layer], cache_dir=cache, per_image=True)[layer]
    font = ImageFont.load_default(size=13)
    small = ImageFont.load_default(size=11)
    row_height = size + 38
    sheet = Image.new("RGB", (5 * (size + 4) + 8, len(units) * row_height + 4), "white")
    draw = ImageDraw.Draw(sheet)
    for row, unit in enumerate(units):
        label = labels[unit]
        top = 4 + row * row_height
        draw.text((6, top), f"unit {unit}: {label.concept} ({label.score:.2f})", fill="#222222", font=font)
        others = ", ".join(concept for concept, _ in label.runners_up)
        draw.text((6, top + 16), f"then: {others}", fill="#666666", font=small)
        for column, example in enumerate(stats.top_examples(unit)[:5]):
            crop = crop_around(example.path, example.position, example.map_size, size, crop_fraction=1.0)
            sheet.paste(crop, (6 + column * (size + 4), top + 32))
    sheet.quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/featviz-docs"))
    args = parser.parse_args()
    folder = make_folder(args.work)
    cache = args.work / "cache"
    model = featviz.load_model("efficientnet_lite0")
    (DOCS / "labels").mkdir(parents=True, exist_ok=True)
    (DOCS / "unit-story").mkdir(parents=True, exist_ok=True)

    classifier = label_units(model, "classifier", folder, top_k=10, cache_dir=cache, progress=True)
    shown = ["tabby", "espresso", "space shuttle", "moped", "daisy", "reflex camera", "brass", "stone wall"]
    print("classifier units (class name -> label):")
    print(format_labels([classifier[model.label_index(name)] for name in shown]))
    for name in shown:
        print(f"  {name}: {classifier[model.label_index(name)].concept}")

    pooled = label_units(model, "global_pool", folder, top_k=10, cache_dir=cache, progress=True)
    scores = torch.tensor([label.score for label in pooled])
    best, seen = [], set()
    for unit in scores.argsort(descending=True).tolist():  # the best unit of each of the 6 best labels
        if pooled[unit].concept not in seen:
            seen.add(pooled[unit].concept)
            best.append(unit)
        if len(best) == 6:
            break
    print("global_pool units, the best scoring one of each of the 6 best labels:")
    print(format_labels([pooled[unit] for unit in best]))
    unit_sheet(model, "global_pool", best, pooled, folder, cache, DOCS / "labels" / "global-pool-units.png")
    sheet_classes = ["tabby", "espresso", "moped", "reflex camera", "brass"]
    unit_sheet(model, "classifier", [model.label_index(name) for name in sheet_classes], classifier, folder, cache,
               DOCS / "labels" / "classifier-units.png")

    tabby = conditional_probability(model, "classifier", model.label_index("tabby"), folder, labels="folders",
                                    per_bucket=30, cache_dir=cache, examples=9)
    tabby.save(DOCS / "unit-story" / "tabby-folders.png")
    tabby.save(DOCS / "unit-story" / "tabby-folders.svg")
    print("tabby unit, folders:", tabby.edges, tabby.population, tabby.classes)
    unit = best[1]  # the tabby unit above already tells a cat story
    penultimate = conditional_probability(model, "global_pool", unit, folder, labels="folders", per_bucket=30,
                                          cache_dir=cache, examples=9)
    penultimate.save(DOCS / "unit-story" / f"global-pool-{unit}-folders.png")
    predicted = conditional_probability(model, "global_pool", unit, folder, labels="predicted", per_bucket=30,
                                        cache_dir=cache, examples=9)
    predicted.save(DOCS / "unit-story" / f"global-pool-{unit}-predicted.png")
    strip = Image.new("RGB", (6 * 100 + 4, 104), "white")
    for column, example in enumerate(penultimate.examples[:6]):
        strip.paste(example.crop(96, crop_fraction=1.0), (4 + column * 100, 4))
    strip.quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(
        DOCS / "unit-story" / f"global-pool-{unit}-examples.png", optimize=True
    )
    print(f"global_pool unit {unit}:", pooled[unit], penultimate.population, penultimate.classes)


if __name__ == "__main__":
    main()
