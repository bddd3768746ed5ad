"""Make the images of the docs pages Get started, Objectives, Parameterizations and transforms, Text, Dream and
Galleries.

    python docs/examples/docs_images.py            # full quality: what docs/images/ holds (about 25 minutes
                                                   # on two CPU cores)
    python docs/examples/docs_images.py --pages dream,galleries   # only these pages' images
    python docs/examples/docs_images.py --quick    # few steps and small images, to check the script runs

Every image is a render of EfficientNet-Lite0 (the embedded default, real ImageNet weights) with seed 0. The
pages show these files; the site's build does not run this script (the example gallery's scripts do run).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import featviz
from featviz import objectives as obj
from featviz import param, transforms
from featviz.renderer import save_png

IMAGES = Path(__file__).resolve().parents[1] / "images"
LAYER = "blocks.4.0.conv_pwl"


def save(result: featviz.RenderResult, folder: str, names: list[str], shows: list[str | None] | None = None) -> None:
    """Save image i of the result as folder/names[i].png, with featviz render's text chunks (objective, steps,
    seed, value). ``shows[i]``, where given and not None, replaces the stored objective: what image i shows, in shorthand or
    a weighted sum of shorthand terms, where the render's objective was a batch objective (diversity,
    alignment) or carried a penalty. tests/test_docs_figures.py scores every image by its stored objective."""
    target = IMAGES / folder
    target.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        metadata = result.metadata(index)
        if shows is not None and shows[index] is not None:
            metadata["featviz:objective"] = shows[index]
        save_png(result.images[index], target / f"{name}.png", metadata)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 steps at 64 px, written under /tmp instead")
    parser.add_argument("--pages", default=",".join(PAGES), help=f"comma-separated, of {', '.join(PAGES)} (default all)")
    arguments = parser.parse_args()
    pages = [page.strip() for page in arguments.pages.split(",") if page.strip()]
    unknown = sorted(set(pages) - set(PAGES))
    if unknown:
        parser.error(f"unknown page(s) {', '.join(unknown)}; choose from {', '.join(PAGES)}")
    global IMAGES
    steps, size = (16, 64) if arguments.quick else (256, 128)
    if arguments.quick:
        IMAGES = Path("/tmp/featviz-docs-images")
    started = time.perf_counter()

    model = featviz.load_model("efficientnet_lite0")
    renderer = featviz.Renderer(model)

    def render(objective, **options):
        options = {"steps": steps, "size": size, "seed": 0, "progress": False, **options}
        return renderer.render(objective, **options)

    if "get-started" in pages:  # the README's first render
        save(render(f"{LAYER}:12"), "get-started", ["channel12"])

    if "objectives" in pages:
        objective_images(render, size)
    if "parameterizations" in pages:
        parameterization_images(render, size)
    if "text" in pages:
        text_images(render, size if arguments.quick else model.input_size[0])
    if "dream" in pages:
        dream_images(model, arguments.quick)
    if "galleries" in pages:
        gallery_images()
    print(f"wrote {IMAGES} in {time.perf_counter() - started:.0f} s")


def objective_images(render, size: int) -> None:
    """Objectives: units, one batch with one objective per image; the algebra; diversity; interpolation."""
    direction = torch.randn(112, generator=torch.Generator().manual_seed(0))
    units = {
        "channel": obj.channel(LAYER, 12),
        "neuron": obj.neuron(LAYER, 12),
        "negative": -obj.channel(LAYER, 12),
        "layer": obj.layer("blocks.4"),
        "direction": obj.direction(LAYER, direction, cossim_pow=1.0),
        "class": obj.class_logit("goldfish"),
    }
    centre = size // 32  # blocks.4.0.conv_pwl's map is 1/16 of the image; neuron() reads its centre
    shows = [f"{LAYER}:12", f"{LAYER}:12@{centre},{centre}", f"-{LAYER}:12", "blocks.4", None, "class:goldfish"]
    save(render(list(units.values())), "objectives", list(units), shows)
    algebra = {
        "sum": obj.channel(LAYER, 12) + obj.channel(LAYER, 3),
        "difference": obj.channel(LAYER, 12) - obj.channel(LAYER, 3),
        "total-variation": obj.channel(LAYER, 12) - 0.5 * obj.total_variation(),
        "function": lambda T: T(LAYER)[:, 12].clamp(max=4.0).mean((1, 2)),
    }
    shows = [f"{LAYER}:12 + {LAYER}:3", f"{LAYER}:12 - {LAYER}:3", f"{LAYER}:12", f"{LAYER}:12"]
    save(render(list(algebra.values())), "objectives", list(algebra), shows)
    diverse = obj.channel(LAYER, 12) + 100 * obj.diversity(LAYER)
    save(render(diverse, batch=4), "objectives", [f"diversity-{i}" for i in range(4)], [f"{LAYER}:12"] * 4)
    interpolate = obj.channel_interpolate(LAYER, 12, LAYER, 3) + 0.1 * obj.alignment(LAYER)
    shares = [f"{1 - i / 4:g}*{LAYER}:12 + {i / 4:g}*{LAYER}:3" for i in range(5)]
    save(render(interpolate, batch=5), "objectives", [f"interpolate-{i}" for i in range(5)], shares)


def parameterization_images(render, size: int) -> None:
    """The same channel, steps and seed in each parameterization (at its own default learning rate) and under
    each transform preset."""
    for kind in ("fft", "pixel", "cppn", "maco", "generator"):
        save(render(f"{LAYER}:12", param=kind), "parameterizations", [kind])
    transparent = render(f"{LAYER}:12", param=param.create("fft", size, seed=0, alpha=True))
    save(transparent, "parameterizations", ["fft-alpha"])

    # Transforms: the presets, Fourier images.
    for preset in ("none", "standard", "robust", "maco"):
        save(render(f"{LAYER}:12", transforms=transforms.create(preset)), "transforms", [preset])


def text_images(render, size: int) -> None:
    """Prompts through EfficientNet-Lite0's text tower: the whole network's embedding, and a direction inside it,
    at the README's settings (``size`` is the model's input size)."""
    prompts = {"text-goldfish": "text:a photo of a goldfish", "text-volcano": "text:a photo of a volcano",
               "text-lemon-not-orange": "text:a photo of a lemon|a photo of an orange:-0.5",
               "text-direction-volcano": "text@blocks.6:a photo of a volcano"}
    save(render(list(prompts.values()), size=size), "text", list(prompts))


def dream_images(model, quick: bool) -> None:
    """`dream` on EfficientNet-Lite0: a prompt through the text tower and a class, on a canvas larger than the
    model's input."""
    from featviz.recipes import dream

    steps, size, views = (4, 96, 2) if quick else (96, 256, 8)
    goals = ["a goldfish in a bowl", featviz.objectives.class_logit("volcano")]
    result = dream(model, goals, size=size, steps=steps, views=views, seed=0, progress=False)
    save(result, "dream", ["goldfish-prompt", "volcano-class"])


def gallery_images() -> None:
    """A contact sheet of the showcase gallery (gallery/): the positive render of units of each layer, no render."""
    from PIL import Image

    showcase = Path(__file__).resolve().parents[2] / "gallery" / "images"
    layers = ["blocks.1", "blocks.3", "blocks.5", "blocks.6"]
    tiles = [[Image.open(showcase / layer / str(unit) / "positive.png").convert("RGB") for unit in range(8)]
             for layer in layers]
    side = tiles[0][0].width
    sheet = Image.new("RGB", (8 * side, len(layers) * side), "white")
    for row, images in enumerate(tiles):
        for column, image in enumerate(images):
            sheet.paste(image.resize((side, side)), (column * side, row * side))
    target = IMAGES / "galleries"
    target.mkdir(parents=True, exist_ok=True)
    sheet.save(target / "showcase-units.png", optimize=True)


PAGES = ("get-started", "objectives", "parameterizations", "text", "dream", "galleries")


if __name__ == "__main__":
    main()
