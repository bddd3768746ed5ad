"""Make the images of docs/recipes/style-transfer.md with efficientnet_lite0.

Content: skimage's photo of Chelsea the cat; styles: scikit-learn's flower.jpg and skimage's Hubble deep field.

* the cat in the flower's style, in the Fourier parameterization (default) and in pixels, same steps and seed;
* the cat in the Hubble deep field's style (Fourier).

Content at 128 px on its shorter side (128 x 192), styles at the same shorter side, 256 steps, seed 0, default
layers (style blocks.0-blocks.3, content blocks.4) and weights. Printed: the style and content losses of each
result and of the photo itself. Images go to docs/images/style-transfer/.

Run from the repository root (about ten minutes on two busy CPU cores):
    python docs/examples/style_transfer.py [--steps 256] [--size 128]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image
from skimage import data
from sklearn.datasets import load_sample_image

import featviz
from featviz.recipes import style_transfer, transfer_losses
from featviz.dataset.photo import load_photo
from featviz.renderer.image import to_pil

IMAGES = Path(__file__).resolve().parents[1] / "images" / "style-transfer"


def save_compact(images: torch.Tensor, path: Path) -> None:
    """Write ``images`` (one image or a grid; RGBA shown over white) as a 256-colour PNG: docs images stay small."""
    (picture,) = to_pil(images if images.dim() == 4 else images[None])
    if picture.mode == "RGBA":
        picture = Image.alpha_composite(Image.new("RGBA", picture.size, "white"), picture)
    picture.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    IMAGES.mkdir(parents=True, exist_ok=True)
    model = featviz.load_model("efficientnet_lite0")
    content = load_photo(data.chelsea(), args.size)
    styles = {"flower": load_sample_image("flower.jpg"), "hubble": data.hubble_deep_field()}
    save_compact(content[0], IMAGES / "content.png")
    for name, style in styles.items():
        save_compact(load_photo(style, args.size)[0], IMAGES / f"style-{name}.png")
        print(f"the photo itself against {name}: {transfer_losses(content, content, style, model)}")
    runs = [("flower", "fft"), ("flower", "pixel"), ("hubble", "fft")]
    for name, param in runs:
        result = style_transfer(model, styles[name], content, param=param, size=args.size, steps=args.steps, seed=0,
                                progress=False)
        save_compact(result.images[0], IMAGES / f"{name}-{param}.png")
        losses = transfer_losses(result.images, content, styles[name], model)
        print(f"{name}, {param}: style loss {losses.style.item():.3f}, content loss {losses.content.item():.3f}")


if __name__ == "__main__":
    main()
