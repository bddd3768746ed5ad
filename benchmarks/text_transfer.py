"""Text on ImageNet classifiers: what prompts resolve to, and whether renders of them are recognized by other models.

The classifier text tower (`featviz.text.sentence.ClassTextTower`) turns a prompt into a distribution over the
classifier's classes and renders the mixture of their weight vectors. This script measures, on efficientnet_lite0:

* the tower alone (``tower.json``, no render): for the `DEVELOPMENT` paraphrases (33, used to choose the key
  design and calibrate the temperature) and the `PARAPHRASES` test set (written before any measurement, across
  many kinds of classes, each avoiding every word of its class name), how often the right class is the
  distribution's top-1 and in its top-5, beside the floor (class names in four templates, ranked by cosine, no
  synonyms or definitions); the temperature's negative log-likelihood on the development set; and what prompts
  naming no ImageNet class (`NO_CLASS`) resolve to;
* renders (``--kinds``, 128 px and 128 steps by default), one per objective:

  - ``class``       the class logit, ``class:INDEX``, for the 100 classes of a fixed seed split: the baseline;
  - ``text``        ``text("a photo of a LABEL.")`` for the same 100 classes (an exact class name: the class vector);
  - ``paraphrase``  ``text(PARAPHRASE)`` for every test paraphrase.

Each render is classified by efficientnet_lite1 and efficientnet_lite2 (renders resized to their input size) and,
for reference, by efficientnet_lite0 itself: how often the intended class is their top-1 and in their top-5. As an
empirical chance, each render is also scored against another class of its list ("mismatched").

Run (the tower figures take seconds once the class keys are cached; renders about 20 s each on a busy 2-core CPU):

    python benchmarks/text_transfer.py --out out/text_transfer --kinds none
    python benchmarks/text_transfer.py --out out/text_transfer --kinds paraphrase --threads 1
    python benchmarks/text_transfer.py --out out/text_transfer --kinds class,text --threads 1

Each kind writes ``KIND.json`` (scores, settings, lite1's top-3 per render) and ``KIND.png`` (the renders) to
``--out``; the run ends with the markdown tables of everything found there, so kinds may come from several runs.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

import featviz
from featviz import objectives
from featviz.models.labels import imagenet_labels
from featviz.renderer.image import grid, to_pil
from featviz.text.encoder import embed_sentences
from featviz.text.sentence import TEMPERATURE, class_embeddings

CLASS_NAMES = 100
LABELS = imagenet_labels()
SPLIT_SEED = 0

#: Development paraphrases (33): the key design and the temperature were chosen on these. Class index -> prompt.
DEVELOPMENT = {
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

#: Test paraphrases, written before any measurement: class index -> a description avoiding every word of the name.
PARAPHRASES = {
    # fish and sea life
    1: "a small orange pet swimming in a round glass bowl",
    2: "a huge predator of the ocean with rows of jagged teeth breaching the surface",
    4: "a shark whose head is flattened into a wide T shape with eyes at the ends",
    107: "a translucent bell-shaped sea creature trailing long stinging tentacles",
    117: "a spiral-shelled cephalopod of the deep ocean with stripes on its shell",
    327: "a five-armed echinoderm lying on the sandy sea floor",
    328: "a round creature covered in long spines on a rocky ocean floor",
    396: "a venomous reef fish with striped feathery spines",
    397: "a fish that inflates itself into a spiky ball when threatened",
    148: "a black and white toothed marine mammal leaping from the sea",
    # birds
    9: "the largest flightless bird, running across the African savanna on two long legs",
    22: "the white-headed national bird of the United States with a hooked yellow beak",
    24: "a big round-faced nocturnal bird of prey of northern forests with yellow eyes",
    94: "a tiny iridescent bird hovering beside a flower and drinking nectar",
    96: "a tropical bird with an enormous colorful bill",
    130: "a tall pink wading bird standing on one leg in shallow water",
    145: "a flightless black and white seabird of Antarctica with orange patches by its neck",
    144: "a large water bird with a huge throat pouch for scooping fish",
    88: "a large long-tailed parrot with bright red, blue and yellow feathers",
    100: "a dark long-necked waterfowl with a red bill gliding on a pond",
    # reptiles, amphibians, arthropods
    29: "a pink Mexican aquatic amphibian with feathery external gills",
    48: "the largest living lizard, a giant monitor from Indonesian islands",
    61: "a large heavy constricting serpent of tropical America with patterned scales",
    71: "an arachnid with pincers and a curved venomous stinger on its tail",
    76: "a huge hairy spider",
    301: "a small round red insect with black spots crawling on a leaf",
    309: "a striped flying insect that collects pollen and makes honey",
    310: "a tiny social insect carrying a crumb back to its colony",
    315: "a green insect with folded front legs held as if praying",
    319: "a long-bodied insect with two pairs of transparent wings hovering over a pond",
    323: "an orange and black butterfly that migrates to Mexico every winter",
    79: "a long segmented creature with many legs, one pair per segment",
    # dogs and wild canids, cats
    207: "a friendly family dog with a long yellow coat that fetches",
    235: "a large police dog with a black and tan coat and pointed ears",
    251: "a white dog covered in black spots, the firehouse breed",
    250: "a sled dog with a thick grey and white coat and pale blue eyes",
    151: "the tiniest dog breed, with big ears, from Mexico",
    162: "a small floppy-eared scent hound with a tricolor coat",
    269: "a grey wild canine of northern forests that hunts in packs",
    277: "a russet wild canine with a bushy white-tipped tail",
    291: "a big tawny cat with a shaggy mane, king of the savanna",
    292: "a big orange cat with black stripes in the jungle",
    293: "the fastest land animal, a slender spotted cat sprinting on grass",
    289: "a pale spotted big cat with a thick long tail living in the high Himalayas",
    283: "a long-haired fluffy pet feline with a flat face",
    # other mammals
    105: "a tree-dwelling marsupial from Australia eating eucalyptus leaves",
    103: "an egg-laying mammal with a duck bill and a beaver tail",
    296: "a white furry predator hunting seals on Arctic floes",
    340: "a striped black and white horse of the African plains",
    344: "a massive river animal of Africa with a huge mouth and tiny ears",
    334: "a rodent covered in long sharp quills",
    337: "a rodent with a flat tail that builds dams from branches",
    361: "a black animal with a white stripe that sprays a foul smell",
    363: "a small mammal covered in armored bands of bony plates",
    364: "a slow mammal hanging upside down from a branch in the rainforest",
    366: "the largest ape, a powerful silverback of African forests",
    365: "a red-haired great ape of Borneo",
    354: "a desert animal with a hump carrying riders across dunes",
    355: "a woolly South American pack animal of the Andes",
    360: "a playful furry swimmer of rivers floating on its back",
    299: "a small desert mongoose standing upright on guard with others of its group",
    386: "the largest land animal with huge ears and long tusks on the savanna",
    # vehicles and transport
    407: "an emergency vehicle with flashing lights that rushes patients to hospital",
    403: "a huge warship with a flat deck where jets take off and land",
    404: "a large passenger jet flying above the clouds",
    405: "a cigar-shaped lighter-than-air craft floating in the sky",
    466: "a high-speed streamlined passenger rail line in Japan",
    555: "a red truck with ladders and hoses that fights blazes",
    569: "a municipal vehicle that collects trash from the curb",
    575: "a small electric vehicle driven between holes on a course",
    576: "a long narrow black boat steered by a standing oarsman on the canals of Venice",
    609: "a rugged military four-wheel-drive vehicle with an open top",
    627: "a long stretched luxury car with a chauffeur",
    670: "a small two-wheeled vehicle with a step-through frame and a floorboard, a Vespa",
    779: "a long yellow vehicle that takes children to class",
    820: "an old railway engine puffing smoke and driven by coal",
    833: "a vessel that travels underwater with a periscope",
    847: "an armored military vehicle with a rotating turret and caterpillar tracks",
    866: "a farm vehicle with big rear wheels that pulls a plough",
    880: "a one-wheeled pedal cycle ridden by a circus performer",
    895: "a military fighter jet armed with missiles",
    # instruments
    401: "a bellows-driven instrument with a keyboard squeezed by a street musician",
    402: "an unplugged six-stringed instrument with a round sound hole",
    420: "a stringed instrument with a round drum-like body played in bluegrass",
    558: "a woodwind tube played by blowing across a hole at its side",
    579: "a large concert keyboard instrument with its lid propped open",
    594: "a large triangular frame of strings plucked with the fingers",
    776: "a curved brass woodwind of jazz played with a single reed",
    875: "a brass instrument with a sliding tube",
    889: "a small four-stringed instrument held under the chin and played with a bow",
    # household objects and tools
    409: "a round timepiece with hands and numbers on a wall",
    453: "shelves full of volumes standing against a wall",
    470: "a wax stick with a burning wick giving soft light",
    491: "a motorized tool with a toothed loop for cutting trees",
    508: "rows of keys for typing on a desk next to a monitor",
    587: "a tool with a heavy metal head for driving nails",
    604: "two glass bulbs connected by a narrow neck with sand running through",
    620: "a portable folding personal computer",
    621: "a machine pushed over the grass in a garden to trim it",
    651: "a kitchen appliance that heats food with radiation in a few minutes",
    760: "a tall kitchen appliance that keeps food cold",
    784: "a hand tool with a flat tip for turning screws",
    849: "a ceramic vessel with a spout for pouring hot brewed leaves",
    859: "a small appliance that browns slices of bread",
    879: "a folding canopy held over the head in the rain",
    # buildings and places
    425: "a red wooden farm building for storing hay and housing cows",
    497: "a building for Christian worship with a steeple and stained glass",
    668: "an Islamic place of worship with domes and minarets",
    698: "a grand royal residence with ornate halls and gardens",
    580: "a glass building where plants are grown warm",
    525: "a concrete wall holding back a reservoir on a river",
    # food
    933: "a grilled beef patty with melted cheese in a bun",
    934: "a sausage in a long bun with mustard",
    963: "a flat round Italian dish of baked dough topped with tomato sauce and mozzarella",
    932: "a twisted knot of baked bread sprinkled with coarse salt",
    931: "a dense ring-shaped bread roll",
    937: "a green vegetable with a thick stalk and a head of tiny florets",
    949: "a red heart-shaped berry with seeds on its skin",
    953: "a tropical fruit with spiky leaves on top and a rough golden skin",
    954: "a long curved yellow fruit that monkeys peel",
    957: "a red fruit full of juicy seeds",
    924: "a green dip of mashed avocado",
    967: "a tiny cup of strong black coffee with crema",
    # nature and scenes
    980: "a mountain erupting lava and ash",
    974: "a hot spring that shoots a column of boiling water into the air",
    973: "a colorful underwater ecosystem of tropical ocean",
    970: "a high snowy mountain peak",
    985: "a white flower with a yellow center in a meadow",
    # clothing, sports, misc
    515: "wide-brimmed headwear worn by ranchers in the American west",
    808: "a broad-brimmed Mexican hat",
    614: "a traditional Japanese robe with wide sleeves and a sash",
    837: "dark tinted eyewear protecting from bright sun",
    805: "a black and white sphere kicked into a goal at a futbol match",
    430: "an orange ball bounced and thrown through a hoop",
    852: "a fuzzy yellow-green sphere hit over a net with a racquet",
    983: "a person in a wetsuit breathing from an air tank deep under water",
    920: "a signal on a pole with red, amber and green lamps at an intersection",
    607: "a carved pumpkin with a glowing face for Halloween",
}

#: Prompts that name no ImageNet class: what do they become?
NO_CLASS = [
    "a photo of Spider-Man", "a unicorn", "a dragon breathing fire", "the Eiffel Tower at night",
    "a portrait of Albert Einstein", "a robot", "a smartphone", "a red square", "the number seven", "happiness",
    "love", "democracy", "a dog", "a cat", "a bird", "a tree", "a person",
]
#: More prompts naming nothing in ImageNet, written before the warning's rules were measured on them (the rules were
#: shaped on `NO_CLASS` and the development paraphrases).
NO_CLASS_TEST = [
    "Batman", "Mickey Mouse", "Harry Potter casting a spell", "a portrait of Barack Obama", "Taylor Swift",
    "the Mona Lisa", "the Statue of Liberty", "the Great Wall of China", "a black hole", "the planet Saturn",
    "a galaxy full of stars", "freedom", "sadness", "the letter A", "a mathematical equation", "a newborn baby",
    "an old man smiling", "a crowd of people", "a zombie", "a ghost", "an angel with wings",
    "a wizard with a long beard", "Pikachu", "Super Mario", "a Pokemon", "the Internet", "a dream", "justice",
    "a mermaid", "a centaur",
]
FLOOR_TEMPLATES = ("a photo of a {}.", "a blurry photo of a {}.", "a close-up photo of a {}.", "a drawing of a {}.")
TEMPERATURES = (0.01, 0.02, 0.03, 0.035, 0.04, 0.05, 0.07, 0.1)


def class_name_classes(seed: int = SPLIT_SEED, count: int = CLASS_NAMES) -> list[int]:
    """The classes whose names are rendered: the first ``count`` of ``torch.randperm(1000)`` with ``seed``.

    Example:
        >>> len(class_name_classes())
        100
    """
    return sorted(torch.randperm(1000, generator=torch.Generator().manual_seed(seed)).tolist()[:count])


def check_paraphrases(paraphrases: dict[int, str]) -> None:
    """Fail when a paraphrase holds a word (of 3 letters or more) of its class name."""
    for index, prompt in paraphrases.items():
        named = [word for word in LABELS[index].lower().replace("-", " ").split() if len(word) > 2]
        assert not any(word in prompt.lower() for word in named), (index, LABELS[index], prompt)


def ranks(scores: Tensor, targets: list[int]) -> Tensor:
    """0-based rank of each row's target among its scores (ties count against the target)."""
    own = scores[torch.arange(len(targets)), targets][:, None]
    return (scores > own).sum(1) + ((scores == own).sum(1) - 1)


def tower_figures(model: featviz.Model) -> dict:
    """The tower's top-1/top-5 on the paraphrase sets beside the floor's, the temperature's fit, and NO_CLASS."""
    tower = model.text
    floor_keys = class_embeddings(LABELS, FLOOR_TEMPLATES)
    name_keys, definition_keys = tower.keys()
    found: dict = {"temperature": tower.temperature, "sets": {}}
    for name, prompts in (("development", DEVELOPMENT), ("test", PARAPHRASES)):
        targets = list(prompts)
        embedded = embed_sentences([prompts[index] for index in targets])
        scores = torch.maximum(embedded @ name_keys.t(), embedded @ definition_keys.t())
        weights = tower.distribution([prompts[index] for index in targets])
        floor = ranks(embedded @ floor_keys.t(), targets)
        own = ranks(scores, targets)
        found["sets"][name] = {
            "count": len(targets),
            "floor_top1": float((floor < 1).float().mean()), "floor_top5": float((floor < 5).float().mean()),
            "floor_median_rank": int(floor.median()) + 1,
            "tower_top1": float((own < 1).float().mean()), "tower_top5": float((own < 5).float().mean()),
            "tower_median_rank": int(own.median()) + 1,
            "mean_weight_of_right_class": float(weights[torch.arange(len(targets)), targets].mean()),
            "flat": sum(item.flat for item in tower.resolve([prompts[index] for index in targets])),
            "nll_by_temperature": {
                str(value): float(-(scores / value).log_softmax(1)[torch.arange(len(targets)), targets].mean())
                for value in TEMPERATURES
            },
        }
    for key, prompts in (("no_class", NO_CLASS), ("no_class_test", NO_CLASS_TEST)):
        found[key] = [{"prompt": item.prompt, "classes": item.classes[:3], "flat": item.flat, "why": item.why}
                      for item in tower.resolve(prompts)]
    return found


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


KINDS = ("class", "text", "paraphrase")
JUDGES = ("efficientnet_lite1", "efficientnet_lite2", "efficientnet_lite0")


def report(folder: Path) -> str:
    """The markdown tables of ``tower.json`` and every ``KIND.json`` in ``folder``."""
    lines = []
    tower_path = folder / "tower.json"
    if tower_path.is_file():
        tower = json.loads(tower_path.read_text())
        lines += [
            "| paraphrases | count | floor top-1 / top-5 (median rank) | tower top-1 / top-5 (median rank) |"
            " mean weight of the right class | flat |",
            "|---|---|---|---|---|---|",
        ]
        for name, item in tower["sets"].items():
            lines.append(
                f"| {name} | {item['count']} | {100 * item['floor_top1']:.0f}% / {100 * item['floor_top5']:.0f}% "
                f"({item['floor_median_rank']}) | {100 * item['tower_top1']:.0f}% / {100 * item['tower_top5']:.0f}% "
                f"({item['tower_median_rank']}) | {item['mean_weight_of_right_class']:.2f} | {item['flat']} |"
            )
        lines += ["", "| temperature | " + " | ".join(tower["sets"]["development"]["nll_by_temperature"]) + " |",
                  "|---|" + "---|" * len(TEMPERATURES)]
        for name, item in tower["sets"].items():
            lines.append(f"| NLL, {name} | " + " | ".join(f"{value:.2f}" for value in item["nll_by_temperature"].values()) + " |")
        for key, title in (("no_class", "naming no ImageNet class"), ("no_class_test", "naming no class, held out")):
            items = tower.get(key, [])
            lines += ["", f"| prompt {title} ({sum(item['flat'] for item in items)} of {len(items)} warn) | resolves to"
                      " | warns: why |", "|---|---|---|"]
            for item in items:
                shown = ", ".join(f"{label} {weight:.2f}" for label, weight in item["classes"])
                why = item.get("why") or ("flat distribution" if item["flat"] else "")
                lines.append(f"| {item['prompt']} | {shown} | {'yes: ' + why if item['flat'] else 'no'} |")
        lines.append("")
    lines += [
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
        lines.append(f"| {kind} | {found['count']} of {found['of']} | {cells} | "
                     f"{100 * mismatched['top1']:.0f}% / {100 * mismatched['top5']:.0f}% |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", default="class,text,paraphrase",
                        help=f"comma-separated, of {', '.join(KINDS)}, or 'none' for the tower figures alone")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 is faster on a busy machine)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N objectives of each kind (a quick look)")
    parser.add_argument("--out", type=Path, default=Path("out/text_transfer"))
    arguments = parser.parse_args()
    kinds = [kind.strip() for kind in arguments.kinds.split(",") if kind.strip() and kind.strip() != "none"]
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        parser.error(f"unknown kinds {unknown}; choose from {', '.join(KINDS)}")
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    torch.manual_seed(arguments.seed)
    started = time.time()
    check_paraphrases(DEVELOPMENT)
    check_paraphrases(PARAPHRASES)
    assert not set(DEVELOPMENT) & set(PARAPHRASES)
    model = featviz.load_model("efficientnet_lite0")
    arguments.out.mkdir(parents=True, exist_ok=True)
    settings = {"steps": arguments.steps, "size": arguments.size, "seed": arguments.seed, "batch": arguments.batch,
                "threads": torch.get_num_threads(), "temperature": TEMPERATURE}
    if not kinds:
        found = tower_figures(model)
        (arguments.out / "tower.json").write_text(json.dumps(found, indent=2))
    named = class_name_classes()
    paraphrased = list(PARAPHRASES)
    limit = arguments.limit or None
    plans = {
        "class": (lambda: [objectives.class_logit(index) for index in named[:limit]], named[:limit]),
        "text": (lambda: [objectives.text(f"a photo of a {LABELS[index]}.") for index in named[:limit]], named[:limit]),
        "paraphrase": (lambda: [objectives.text(PARAPHRASES[index]) for index in paraphrased[:limit]],
                       paraphrased[:limit]),
    }
    judges = {name: featviz.load_model(name) for name in JUDGES} if kinds else {}
    renderer = featviz.Renderer(model)
    # Objectives in a seeded random order, rendered `--batch` at a time, the kinds taking turns, and every kind's
    # figures written after each batch: a run cut short still scores a random sample of each kind.
    order = torch.Generator().manual_seed(arguments.seed)
    queues = {}
    for kind in kinds:
        goals, targets = plans[kind]
        permutation = torch.randperm(len(targets), generator=order).tolist()
        queues[kind] = ([goals()[i] for i in permutation], [targets[i] for i in permutation])
    done: dict[str, dict] = {kind: {"images": [], "logits": {name: [] for name in JUDGES}, "seconds": 0.0} for kind in kinds}
    position = 0
    while any(position < len(queues[kind][1]) for kind in kinds):
        for kind in kinds:
            goals, targets = queues[kind]
            chunk = goals[position:position + arguments.batch]
            if not chunk:
                continue
            begun = time.time()
            result = renderer.render(chunk if len(chunk) > 1 else chunk[0], steps=arguments.steps, size=arguments.size,
                                     seed=arguments.seed + position, progress=False)
            images = result.images[:, :3]
            state = done[kind]
            state["images"].append(images)
            for name, judge in judges.items():
                state["logits"][name].append(classify(judge, images))
            state["seconds"] += time.time() - begun
            count = sum(len(item) for item in state["images"])
            scored = targets[:count]
            logits = {name: torch.cat(values) for name, values in state["logits"].items()}
            found: dict = {"count": count, "of": len(targets), "seconds": round(state["seconds"], 1),
                           **{name: hits(scores, scored) for name, scores in logits.items()}}
            rolled = scored[1:] + scored[:1]
            found["mismatched"] = {name: hits(scores, rolled) for name, scores in logits.items()}
            seen = logits["efficientnet_lite1"].topk(3, dim=1).indices.tolist()
            found["lite1_top3"] = {LABELS[target]: [LABELS[index] for index in top] for target, top in zip(scored, seen)}
            if kind == "paraphrase":
                resolved = model.text.distribution([PARAPHRASES[index] for index in scored]).argmax(1).tolist()
                right = [row for row, top in enumerate(resolved) if top == scored[row]]
                found["tower_top1_right"] = len(right)
                found["lite1_where_tower_top1_right"] = hits(logits["efficientnet_lite1"][right], [scored[i] for i in right])
                found["lite2_where_tower_top1_right"] = hits(logits["efficientnet_lite2"][right], [scored[i] for i in right])
            found["settings"] = settings
            (arguments.out / f"{kind}.json").write_text(json.dumps(found, indent=2))
            to_pil(grid(torch.cat(state["images"])))[0].save(arguments.out / f"{kind}.png")
            print(f"{kind} {count}/{len(targets)}: {json.dumps({name: found[name] for name in JUDGES})}", flush=True)
        position += arguments.batch
    print()
    print(report(arguments.out))
    print(f"\ntotal {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
