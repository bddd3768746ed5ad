"""Make the images of the docs pages Get started, Objectives, and Parameterizations and transforms.

    python docs/examples/docs_images.py            # full quality: what docs/images/ holds (about 15 minutes
                                                   # on two CPU cores)
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

IMAGES = Path(__file__).resolve().parents[1] / "images"
LAYER = "blocks.4.0.conv_pwl"


def save(result: featviz.RenderResult, folder: str, names: list[str]) -> None:
    """Save image i of the result as folder/names[i].png."""
    target = IMAGES / folder
    target.mkdir(parents=True, exist_ok=True)
    for image, name in zip(result.to_pil(), names):
        image.save(target / f"{name}.png", optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 steps at 64 px, written under /tmp instead")
    arguments = parser.parse_args()
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

    # Get started: the README's first render.
    save(render(f"{LAYER}:12"), "get-started", ["channel12"])

    # Objectives: units, one batch with one objective per image.
    direction = torch.randn(112, generator=torch.Generator().manual_seed(0))
    units = {
        "channel": obj.channel(LAYER, 12),
        "neuron": obj.neuron(LAYER, 12),
        "negative": -obj.channel(LAYER, 12),
        "layer": obj.layer("blocks.4"),
        "direction": obj.direction(LAYER, direction, cossim_pow=1.0),
        "class": obj.class_logit("goldfish"),
    }
    save(render(list(units.values())), "objectives", list(units))
    algebra = {
        "sum": obj.channel(LAYER, 12) + obj.channel(LAYER, 3),
        "difference": obj.channel(LAYER, 12) - obj.channel(LAYER, 3),
        "total-variation": obj.channel(LAYER, 12) - 0.5 * obj.total_variation(),
        "function": lambda T: T(LAYER)[:, 12].clamp(max=4.0).mean((1, 2)),
    }
    save(render(list(algebra.values())), "objectives", list(algebra))
    diverse = obj.channel(LAYER, 12) + 100 * obj.diversity(LAYER)
    save(render(diverse, batch=4), "objectives", [f"diversity-{i}" for i in range(4)])
    interpolate = obj.channel_interpolate(LAYER, 12, LAYER, 3) + 10 * obj.alignment(LAYER)
    save(render(interpolate, batch=5), "objectives", [f"interpolate-{i}" for i in range(5)])
    save(render("text:a photo of a lemon"), "objectives", ["text-lemon"])

    # Parameterizations: the same channel, steps and seed, each at its own default learning rate.
    for kind in ("fft", "pixel", "cppn", "maco", "generator"):
        save(render(f"{LAYER}:12", param=kind), "parameterizations", [kind])
    transparent = render(f"{LAYER}:12", param=param.create("fft", size, seed=0, alpha=True))
    save(transparent, "parameterizations", ["fft-alpha"])

    # Transforms: the presets, Fourier images.
    for preset in ("none", "standard", "robust", "maco"):
        save(render(f"{LAYER}:12", transforms=transforms.create(preset)), "transforms", [preset])

    print(f"wrote {IMAGES} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
