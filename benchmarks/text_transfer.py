"""Text on ImageNet models, measured on classes the text map never saw.

The sentence text tower (`featviz.text.sentence`) is fitted on 900 of the 1000 ImageNet classes (a fixed seed
split) of efficientnet_lite0. For the 100 held-out classes, images are rendered on efficientnet_lite0 for these
objective kinds (``--kinds``; the first three by default):

* ``class``       the class logit, ``class:INDEX``: the baseline, what a render reaches with the class known;
* ``text``        the text objective, ``text("a photo of a LABEL.")``, through the map fitted without the class;
* ``paraphrase``  the text objective with a description that avoids every word of the class name (`PARAPHRASES`,
                  33 of the held-out classes);
* ``weights``     the same text objective aimed at the class's own centred weight vector instead of a mapped
                  prompt: what the map would reach if it predicted that vector exactly;
* ``text-all-fitted``, ``paraphrase-all-fitted``: the prompts of ``text`` and ``paraphrase`` through the shipped
                  tower, fitted on all 1000 classes (so nothing is held out): what ``load_model("efficientnet_lite0")``
                  gives for them.

Each render is classified by efficientnet_lite1 and efficientnet_lite2 (never used in the fit; renders resized
to their input size) and, for reference, by efficientnet_lite0 itself: how often the intended class is their
top-1 and in their top-5. Chance is 0.1% and 0.5%; as an empirical chance, each render is also scored against
another class of the same kind's list ("mismatched"). Before rendering, the map itself is scored (``map.json``):
how often a held-out prompt's mapped vector is closest (cosine) to its class's weight vector among all 1000
classes and among the 100 held-out ones.

Run (the default three kinds, 233 renders: about 45 CPU-minutes, so 25-30 minutes on 2 idle cores):

    python benchmarks/text_transfer.py --out out/text_transfer
    python benchmarks/text_transfer.py --out out/text_transfer --kinds weights,text-all-fitted,paraphrase-all-fitted

Each kind writes ``KIND.json`` (scores, settings, lite1's top-3 per render) and ``KIND.png`` (the renders) to
``--out``; the run ends with the markdown table of every kind found there, so kinds may come from several runs.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

import featviz
from featviz import objectives
from featviz.renderer.image import grid, to_pil
from featviz.text.sentence import SentenceEncoder, attach_text_tower, sentence_encoder
from featviz.models.labels import imagenet_labels
from featviz.text.tower import TextTower

HELD_OUT = 100
LABELS = imagenet_labels()
SPLIT_SEED = 0

#: Descriptions of held-out classes that avoid every word of the class name: class index -> prompt.
PARAPHRASES = {
    6: "a flat fish with wide wing-like fins and a long whip tail gliding over sand",  # stingray
    15: "a small songbird with a red-orange breast hopping on a lawn",  # robin
    23: "a large bald-headed scavenging bird perched on a dead branch",  # vulture
    37: "a small reptile with a high domed yellow-patterned shell walking on forest leaves",  # box turtle
    50: "a huge armored reptile with a broad snout lying in a swamp",  # American alligator
    51: "a dinosaur with three horns and a bony frill around its neck",  # triceratops
    84: "a bird spreading a huge fan of iridescent blue-green tail feathers with eye spots",  # peacock
    102: "a spiny ant-eating mammal with a long thin snout",  # echidna
    122: "a large red crustacean with two big claws served on a plate",  # American lobster
    247: "a giant mountain rescue dog with a brown and white coat",  # Saint Bernard
    254: "a small dog with a wrinkled flat black face and a curled tail",  # pug
    272: "a wild dog-like animal howling in the desert",  # coyote
    343: "a wild African pig with tusks and warts on its face",  # warthog
    385: "a large grey animal with a trunk and small ears carrying people in Asia",  # Indian elephant
    388: "a black and white bear eating bamboo",  # giant panda
    393: "a small orange reef dweller with three white stripes among waving tentacles",  # anemone fish
    483: "a medieval stone fortress with towers and battlements on a hill",  # castle
    486: "a large bowed string instrument played upright between the knees",  # cello
    504: "a ceramic cup with a handle full of hot dark drink",  # coffee mug
    511: "a car with its roof folded down driving along the coast",  # convertible
    561: "a small industrial vehicle lifting pallets with two prongs in a warehouse",  # forklift
    646: "a labyrinth of tall hedges with winding paths",  # maze
    717: "a truck with an open cargo bed at the back",  # pickup
    719: "a ceramic pig with a coin slot on its back for saving money",  # piggy bank
    802: "a motorized sled racing over deep snow",  # snowmobile
    812: "a winged orbiter lifting off beside a huge fuel tank and two rocket boosters",  # space shuttle
    814: "a fast motorboat cutting through the water leaving a white wake",  # speedboat
    815: "a spiral of silk threads covered in dew drops",  # spider web
    839: "a long roadway hung from cables between two tall towers over a bay",  # suspension bridge
    928: "scoops of a frozen sweet dessert in a waffle cone",  # ice cream
    947: "a fungus with a brown cap and a white stem growing on the forest floor",  # mushroom
    950: "a round citrus fruit with a bright peel, cut in half",  # orange
    965: "a flour tortilla wrapped around beans, rice and meat",  # burrito
}


def split(seed: int = SPLIT_SEED, held_out: int = HELD_OUT) -> tuple[list[int], list[int]]:
    """(fitted classes, held-out classes) of the 1000 ImageNet classes, by a fixed seed.

    Example:
        >>> fitted, held = split()
        >>> len(fitted), len(held)
        (900, 100)
    """
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[held_out:]), sorted(order[:held_out])


class ClassVectorTower(TextTower):
    """A stand-in text tower whose "prompt" ``"class N"`` encodes to class N's centred weight vector.

    It makes the ``weights`` row: the same text objective as the real tower's, aimed where the map should point.

    Example:
        >>> ClassVectorTower(weights, "global_pool").encode(["class 6"]).shape
        torch.Size([1, 1280])
    """

    def __init__(self, class_weights: Tensor, image_layer: str) -> None:
        super().__init__()
        self.image_layer = image_layer
        self.register_buffer("vectors", F.normalize(class_weights - class_weights.mean(0), dim=1))

    def encode(self, prompts: Sequence[str]) -> Tensor:
        indices = [int(prompt.split()[-1]) for prompt in prompts]
        return self.vectors[indices].float()


def map_retrieval(model: featviz.Model, held: list[int], encoder: SentenceEncoder) -> dict[str, float]:
    """How often a held-out prompt's mapped vector is closest to its own class's centred weight vector."""
    weights = model.get_layer(model.text.classifier).weight.detach()
    targets = F.normalize(weights - weights.mean(0), dim=1)
    prompts = [f"a photo of a {model.labels[index]}." for index in held]
    mapped = model.text.text_map.apply(encoder.encode(prompts))
    similarity = mapped @ targets.t()
    own = similarity[torch.arange(len(held)), held][:, None]
    rank_all = (similarity > own).sum(1)
    rank_held = (similarity[:, held] > own).sum(1)
    return {
        "top1_of_1000": float((rank_all < 1).float().mean()), "top5_of_1000": float((rank_all < 5).float().mean()),
        "top1_of_held_out": float((rank_held < 1).float().mean()),
        "top5_of_held_out": float((rank_held < 5).float().mean()),
        "mean_cosine_with_own_class": float(own.mean()),
    }


def render_all(renderer: featviz.Renderer, goals: list, steps: int, size: int, batch: int, seed: int) -> Tensor:
    """Render one image per objective, ``batch`` at a time; images ``(N, 3, size, size)`` in ``[0, 1]``."""
    images = []
    for start in range(0, len(goals), batch):
        chunk = goals[start:start + batch]
        result = renderer.render(chunk if len(chunk) > 1 else chunk[0], steps=steps, size=size, seed=seed + start,
                                 progress=False)
        images.append(result.images[:, :3])
    return torch.cat(images)


def classify(judge: featviz.Model, images: Tensor) -> Tensor:
    """``judge``'s logits for ``images`` resized (bilinear) to its input size."""
    resized = F.interpolate(images, size=judge.input_size, mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        return torch.cat([judge(resized[start:start + 32]) for start in range(0, len(resized), 32)])


def hits(logits: Tensor, targets: list[int]) -> dict[str, float]:
    """Fraction of rows whose target is the top-1 and within the top-5 of ``logits``."""
    top = logits.topk(5, dim=1).indices
    wanted = torch.tensor(targets)[:, None]
    return {"top1": float((top[:, :1] == wanted).any(1).float().mean()), "top5": float((top == wanted).any(1).float().mean())}


KINDS = ("class", "text", "paraphrase", "weights", "text-all-fitted", "paraphrase-all-fitted")
JUDGES = ("efficientnet_lite1", "efficientnet_lite2", "efficientnet_lite0")


def report(folder: Path) -> str:
    """The markdown tables of every ``KIND.json`` in ``folder`` (kinds may come from several runs)."""
    lines = [
        "| objective | renders | lite1 top-1 | lite1 top-5 | lite2 top-1 | lite2 top-5 | lite0 top-1 | lite0 top-5 |"
        " lite1 mismatched top-1 / top-5 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        path = folder / f"{kind}.json"
        if not path.is_file():
            continue
        found = json.loads(path.read_text())
        cells = " | ".join(f"{100 * found[name][k]:.0f}%" for name in JUDGES for k in ("top1", "top5"))
        mismatched = found["mismatched"]["efficientnet_lite1"]
        lines.append(f"| {kind} | {found['count']} | {cells} | "
                     f"{100 * mismatched['top1']:.0f}% / {100 * mismatched['top5']:.0f}% |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", default="class,text,paraphrase",
                        help=f"comma-separated, of {', '.join(KINDS)} (default: the three the question needs)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 is faster on a busy machine)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N held-out classes (a quick look)")
    parser.add_argument("--out", type=Path, default=Path("out/text_transfer"))
    arguments = parser.parse_args()
    kinds = [kind.strip() for kind in arguments.kinds.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        parser.error(f"unknown kinds {unknown}; choose from {', '.join(KINDS)}")
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    torch.manual_seed(arguments.seed)
    started = time.time()

    fitted, held = split()
    held = held[: arguments.limit] if arguments.limit else held
    paraphrased = [index for index in held if index in PARAPHRASES]
    for index in paraphrased:
        named = [word for word in LABELS[index].lower().replace("-", " ").split() if len(word) > 2]
        assert not any(word in PARAPHRASES[index].lower() for word in named), (index, PARAPHRASES[index])
    base = featviz.load_model("efficientnet_lite0")
    model = attach_text_tower(base, classes=fitted)
    text_map = model.text.fit()
    encoder = sentence_encoder()
    layer = model.text.image_layer
    base.text.fit()
    summary = {
        "settings": {"steps": arguments.steps, "size": arguments.size, "seed": arguments.seed,
                     "fitted_classes": len(fitted), "held_out_classes": len(held), "paraphrases": len(paraphrased),
                     "split_seed": SPLIT_SEED, "image_layer": layer, "threads": torch.get_num_threads()},
        "map": {"strength": text_map.strength, "validation": text_map.validation,
                "retrieval": map_retrieval(model, held, encoder),
                "strength_all_fitted": base.text.text_map.strength,
                "retrieval_all_fitted": map_retrieval(base, held, encoder)},
    }
    print(json.dumps(summary, indent=2), flush=True)
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "map.json").write_text(json.dumps(summary, indent=2))

    weights = base.get_layer(model.text.classifier).weight.detach()
    oracle = featviz.Model(
        base.network, name=base.name, input_size=base.input_size, channels=base.channels,
        mean=base.mean.flatten().tolist(), std=base.std.flatten().tolist(), labels=base.labels,
        text=ClassVectorTower(weights, layer),
    )
    named_prompts = [f"a photo of a {LABELS[index]}." for index in held]
    plans = {
        "class": (base, lambda: [objectives.class_logit(index) for index in held], held),
        "weights": (oracle, lambda: [objectives.text(f"class {index}") for index in held], held),
        "text": (model, lambda: [objectives.text(prompt) for prompt in named_prompts], held),
        "paraphrase": (model, lambda: [objectives.text(PARAPHRASES[index]) for index in paraphrased], paraphrased),
        # The shipped tower, fitted on all 1000 classes: the same prompts, now naming classes it was fitted on.
        "text-all-fitted": (base, lambda: [objectives.text(prompt) for prompt in named_prompts], held),
        "paraphrase-all-fitted": (
            base, lambda: [objectives.text(PARAPHRASES[index]) for index in paraphrased], paraphrased
        ),
    }
    judges = {name: featviz.load_model(name) for name in JUDGES}
    renderers: dict[int, featviz.Renderer] = {}
    for kind in kinds:
        render_model, goals, targets = plans[kind]
        begun = time.time()
        renderer = renderers.setdefault(id(render_model), featviz.Renderer(render_model))
        images = render_all(renderer, goals(), arguments.steps, arguments.size, arguments.batch, arguments.seed)
        logits = {name: classify(judge, images) for name, judge in judges.items()}
        found: dict = {"count": len(targets), "seconds": round(time.time() - begun, 1),
                       **{name: hits(scores, targets) for name, scores in logits.items()}}
        # Empirical chance: each render scored against another held-out class of the same kind (targets
        # rolled by one), which also counts classes that renders fall into whatever they aim at.
        rolled = targets[1:] + targets[:1]
        found["mismatched"] = {name: hits(scores, rolled) for name, scores in logits.items()}
        seen = logits["efficientnet_lite1"].topk(3, dim=1).indices.tolist()
        found["lite1_top3"] = {LABELS[target]: [LABELS[index] for index in top] for target, top in zip(targets, seen)}
        found["settings"] = summary["settings"]
        (arguments.out / f"{kind}.json").write_text(json.dumps(found, indent=2))
        to_pil(grid(images))[0].save(arguments.out / f"{kind}.png")
        print(f"{kind}: {json.dumps({name: found[name] for name in JUDGES})} in {found['seconds']} s", flush=True)
    print()
    print(report(arguments.out))
    print(f"\ntotal {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
