"""One neuron of the Multimodal Neurons article, end to end: zero-shot search, renders, facets, a concept label and
a one-unit gallery, on CLIP RN50x4 with OpenAI's weights (docs/clip.md).

    python docs/examples/clip_neuron.py --device cuda                      # weights from the open_clip caches
    python docs/examples/clip_neuron.py --weights ~/Downloads/RN50x4.pt     # OpenAI's JIT file, or a checkpoint
    python docs/examples/clip_neuron.py --images DIR --facet-positive faces/ --facet-negative generic/

The default neuron is unit 1330 of ``layer4.5`` (Microscope's ``image_block_4_5_Add_6_0``), which the article
calls the finance neuron: it responds to piggy banks and to the text "$$$", "price" and "cheap" (OpenAI's post
https://openai.com/index/multimodal-neurons/ and the article's source, distillpub/post--multimodal,
src/diagrams/typographic). The script first ranks that unit among the layer's 2560 for the article's prompts:
with the real weights it should be near the top. Without weights it stops at once with one line (exit 2): no
download is tried when the host cannot be reached. ``--model open_clip:featviz-tiny-RN --weights random`` runs
the same steps on a tiny random CLIP (what tests/test_docs_guides.py does); its results mean nothing.

Writes OUT/ (default clip-neuron/): search.txt, the gallery site (OUT/index.html) with the unit's positive,
negative and diversity renders, facet renders (with facet folders), concept label and top words.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import featviz
from featviz.concepts import train_probe
from featviz.errors import FeatvizError
from featviz.gallery import build_gallery
from featviz.text import find_text_direction

ARTICLE_MODEL = "open_clip:RN50x4/openai"
ARTICLE_LAYER = "layer4.5"  # Microscope's image_block_4_5_Add_6_0, after its ReLU (the article's relu(act))
FINANCE_NEURON = 1330
FINANCE_PROMPTS = ("a piggy bank", "$$$", "price", "cheap")


def facet_layers(model: featviz.Model) -> list[str]:
    """The article's probe layers: every other block of ``layer3`` (the odd ones; all of them if it has one)."""
    blocks = sorted(int(name.split(".")[1]) for name in model.layer_names()
                    if name.startswith("layer3.") and name.count(".") == 1)
    chosen = [index for index in blocks if index % 2 == 1] or blocks
    if not chosen:
        raise FeatvizError(f"{model.name} has no layer3 blocks to fit a facet probe on; is it a CLIP ResNet?")
    return [f"layer3.{index}" for index in chosen]


def unit_rank(model: featviz.Model, layer: str, unit: int, prompt: str) -> tuple[int, int]:
    """(rank of ``unit`` among ``layer``'s units for ``prompt``, 0 = first; the number of units)."""
    scores = find_text_direction(model, layer, prompt).vector
    if not 0 <= unit < scores.numel():
        raise FeatvizError(f"--unit {unit} is out of range: {layer} has units 0-{scores.numel() - 1}")
    return int((scores > scores[unit]).sum()), scores.numel()


def run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    model = featviz.load_model(args.model, weights=args.weights, device=args.device)
    model.get_layer(args.layer)  # an unknown layer fails here, with the closest names
    started = time.perf_counter()
    lines = [f"{model.name}, {args.layer}:{args.unit}: rank among the layer's units for each prompt (0 = first)"]
    for prompt in args.prompts:
        rank, count = unit_rank(model, args.layer, args.unit, prompt)
        lines.append(f"  {prompt!r}: rank {rank} of {count}")
    print("\n".join(lines))
    facets = []
    if args.facet_positive:
        layers = facet_layers(model)
        probe = train_probe(model, layers, args.facet_positive, args.facet_negative, size=args.size,
                            progress=not args.no_progress)
        print(f"facet probe on {','.join(layers)}: held-out accuracy {probe.accuracy:.3f}")
        out.mkdir(parents=True, exist_ok=True)
        facets = [probe.save(out / f"{Path(args.facet_positive).name}.pt")]
    words = args.words.split(",") if args.words and "," in args.words else (args.words or True)
    summary = build_gallery(
        model, [args.layer], units=str(args.unit), images=args.images, steps=args.steps, size=args.size,
        out=out, batch=1, device=args.device, progress=not args.no_progress, words=words,
        labels=True, facets=facets or None, facet_strength=args.facet_strength, examples=args.examples,
        title=f"{model.name} {args.layer}:{args.unit}",
    )
    (out / "search.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(summary)
    print(f"total {time.perf_counter() - started:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=ARTICLE_MODEL, help=f"default {ARTICLE_MODEL}")
    parser.add_argument("--weights", default=None,
                        help="OpenAI's RN50x4.pt, an open_clip checkpoint, or 'random' (default: the tag's cached weights)")
    parser.add_argument("--layer", default=ARTICLE_LAYER, help=f"default {ARTICLE_LAYER}")
    parser.add_argument("--unit", type=int, default=FINANCE_NEURON, help=f"default {FINANCE_NEURON} (finance)")
    parser.add_argument("--prompts", nargs="+", default=list(FINANCE_PROMPTS), help="prompts to rank the unit for")
    parser.add_argument("--images", default="shipped", help="a folder of photos for examples and labels")
    parser.add_argument("--words", default=None, help="word list (file or comma-separated; default: featviz's)")
    parser.add_argument("--facet-positive", default=None, metavar="DIR", help="photos of a facet (e.g. faces)")
    parser.add_argument("--facet-negative", default=None, metavar="DIR", help="generic photos, for the probe")
    parser.add_argument("--facet-strength", type=float, default=5.0, help="default 5, the article's typical value")
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--size", type=int, default=None, help="default: the model's input size (288 for RN50x4)")
    parser.add_argument("--examples", type=int, default=6)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default cpu)")
    parser.add_argument("--out", default="clip-neuron")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if bool(args.facet_positive) != bool(args.facet_negative):
        parser.exit(2, "clip_neuron.py: error: give both --facet-positive and --facet-negative, or neither\n")
    try:
        run(args)
    except FeatvizError as error:
        print(f"clip_neuron.py: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
