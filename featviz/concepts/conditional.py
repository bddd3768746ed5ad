"""A unit's story in numbers: conditional-probability plots, as the Multimodal Neurons article shows them.

The unit's value on every image of a labelled set (its mean over positions, or ``reduce="max"``) is measured in
standard deviations from zero (``z = value / std``, the std over the set). The range from the most negative to
the most positive ``z`` is cut into buckets whose edges are whole multiples of ``buckets`` standard deviations
(``floor(min z)`` to ``ceil(max z)`` for the default width 1), or at the edges given. From each bucket at most
``per_bucket`` images are drawn at random (seeded), so crowded buckets near zero do not outweigh the rare
strong activations, and the plot shows, per bucket, the share of the drawn images that belong to each class.
A unit that stands for a class shows that class's share rising towards the positive buckets.

Labels (``labels=``): ``"folders"`` (a folder with one subfolder per class: the subfolder's name), ``"predicted"``
(the model's own top class), ``"concepts"`` (each image's closest concept by the model's text tower, as
CLIP-Dissect compares images with concepts), or a mapping from image path to label.

The result draws itself as a stacked bar chart: `ConditionalProbability.svg` (an inline SVG string, written by
hand: no plotting library needed) and `ConditionalProbability.save` (SVG or PNG, the PNG drawn with Pillow from
the same layout). It also keeps the unit's top examples from the dataset pass, each with the spot where the unit
fires most (`featviz.dataset.TopExample.crop`).
"""
from __future__ import annotations

import html
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from featviz.concepts.dissect import concept_embeddings, resolve_concepts
from featviz.dataset import TopExample, collect_activations, image_folder
from featviz.device import resolve_device
from featviz.errors import FeatvizError, check_int
from featviz.hooks import IMAGE, OUTPUT
from featviz.io import atomic_path, write_text
from featviz.models import Model, load_model
from featviz.objectives.dictionary import Dictionary
from featviz.text.tower import text_tower

LABEL_SOURCES = ("folders", "predicted", "concepts")
REDUCTIONS = ("mean", "max")
MAXIMUM_BUCKETS = 200
OTHER = "other"
#: Colours of the shown classes, in order (a colour-blind-safe qualitative palette), then grey for "other".
PALETTE = (
    "#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#ee8866", "#44aa99", "#994455", "#997700",
    "#6699cc", "#eecc66",
)
OTHER_COLOUR = "#bbbbbb"
WIDTH, HEIGHT = 720, 400
LEFT, RIGHT, TOP, BOTTOM = 56, 180, 44, 64


@dataclass
class ConditionalProbability:
    """Per activation bucket of one unit, the share of each class among up to ``per_bucket`` images drawn from it.

    ``edges`` are the bucket edges in standard deviations (``std``, of the unit's value over the ``images``
    images) from zero; ``population[b]`` images fell in bucket ``b`` and ``sampled[b]`` of them were drawn;
    ``shares[b][c]`` is the share of class ``classes[c]`` among those drawn (each non-empty bucket's shares sum
    to 1; an empty bucket's are all 0). ``classes`` lists the shown classes, most prominent first, and
    ``"other"`` last when more classes were found (``grouped`` of them). ``examples`` are the unit's top dataset
    examples. The plot is of ``unit`` of ``layer``, whose value on an image is its ``reduce`` (``"mean"`` or
    ``"max"``) over positions; ``labels_from`` says where the classes came from (``"folders"``, ``"predicted"``,
    ``"concepts"``, or ``"given"`` for a mapping from image path to label). `conditional_probability` makes it.

    Example:
        >>> story = ConditionalProbability(
        ...     "classifier", 281, "mean", "folders", std=2.1, edges=[-1.0, 0.0, 1.0, 2.0], population=[40, 300, 6],
        ...     sampled=[10, 10, 6], classes=["cat", "other"], shares=[[0.0, 1.0], [0.1, 0.9], [1.0, 0.0]],
        ...     per_bucket=10, images=346, grouped=12)
        >>> [row[0] for row in story.shares]  # the cat share per bucket
        [0.0, 0.1, 1.0]
    """

    layer: str
    unit: int
    reduce: str
    labels_from: str
    std: float
    edges: list[float]
    population: list[int]
    sampled: list[int]
    classes: list[str]
    shares: list[list[float]]
    per_bucket: int
    images: int
    examples: list[TopExample] = field(default_factory=list)
    grouped: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The numbers as plain JSON-ready values (examples as path, value, position and map size).

        Example:
            >>> story = ConditionalProbability("0", 3, "mean", "given", 1.5, [0.0, 1.0], [4], [4], ["a"], [[1.0]], 4, 4)
            >>> story.to_dict()["shares"]
            [[1.0]]
        """
        return {
            "layer": self.layer, "unit": self.unit, "reduce": self.reduce, "labels_from": self.labels_from,
            "std": self.std, "edges": self.edges, "population": self.population, "sampled": self.sampled,
            "classes": self.classes, "grouped": self.grouped, "shares": self.shares, "per_bucket": self.per_bucket,
            "images": self.images,
            "examples": [
                {"path": item.path, "value": item.value, "position": list(item.position),
                 "map_size": list(item.map_size)}
                for item in self.examples
            ],
        }

    def colours(self) -> list[str]:
        """The fill colour of each of ``classes``: the palette in order, grey for ``"other"``."""
        return [
            OTHER_COLOUR if self.grouped and index == len(self.classes) - 1 else PALETTE[index % len(PALETTE)]
            for index in range(len(self.classes))
        ]

    def _layout(self) -> list[tuple]:
        """The chart as drawing steps shared by `svg` and the PNG: rect, line and text tuples in pixels."""
        steps: list[tuple] = []
        plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
        bottom = TOP + plot_height
        count = len(self.population)
        slot = plot_width / count
        title = f"{self.layer} unit {self.unit}: share of each class per activation bucket"
        steps.append(("text", LEFT, 24, title, 14, "start", "#222222", None))
        for share in (0.0, 0.5, 1.0):
            y = bottom - share * plot_height
            steps.append(("line", LEFT, y, LEFT + plot_width, y, "#dddddd"))
            steps.append(("text", LEFT - 6, y + 4, f"{share:.0%}", 11, "end", "#555555", None))
        colours = self.colours()
        for bucket in range(count):
            x = LEFT + bucket * slot + slot * 0.075
            drawn = self.sampled[bucket]
            low, high = self.edges[bucket], self.edges[bucket + 1]
            y = float(bottom)
            for index, share in enumerate(self.shares[bucket]):
                if share <= 0:
                    continue
                height = share * plot_height
                hint = (
                    f"{self.classes[index]}: {share:.0%} of {drawn} drawn images from {_sigma(low)} to "
                    f"{_sigma(high)} std ({self.population[bucket]} in the bucket)"
                )
                steps.append(("rect", x, y - height, slot * 0.85, height, colours[index], hint))
                y -= height
            if count <= 30 and drawn:
                steps.append(("text", x + slot * 0.425, bottom + 26, str(drawn), 9, "middle", "#777777", None))
        every = max(1, math.ceil((count + 1) / 16))
        for index, edge in enumerate(self.edges):
            x = LEFT + index * slot
            steps.append(("line", x, bottom, x, bottom + 4, "#555555"))
            if index % every == 0:
                steps.append(("text", x, bottom + 15, _sigma(edge), 10, "middle", "#333333", None))
        steps.append(("line", LEFT, bottom, LEFT + plot_width, bottom, "#555555"))
        axis = (
            f"{self.reduce} activation in standard deviations from zero (std {self.std:.3g}); below the bars: "
            f"images drawn, up to {self.per_bucket} a bucket, of {self.images}"
        )
        steps.append(("text", LEFT, HEIGHT - 14, axis, 11, "start", "#333333", None))
        legend_x = WIDTH - RIGHT + 16
        for index, name in enumerate(self.classes):
            y = TOP + index * 18
            steps.append(("rect", legend_x, y, 11, 11, colours[index], name))
            shown = name if len(name) <= 24 else name[:21] + "..."
            steps.append(("text", legend_x + 17, y + 10, shown, 11, "start", "#222222", None))
        return steps

    def svg(self) -> str:
        """The stacked bar chart as a standalone SVG string (720 x 400 user units), ready to inline in HTML;
        hovering a bar segment shows its class, share and counts.

        Example:
            >>> story = ConditionalProbability("0", 3, "mean", "given", 1.5, [0.0, 1.0], [4], [4], ["a"], [[1.0]], 4, 4)
            >>> story.svg().startswith("<svg")
            True
        """
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
            f'height="{HEIGHT}" font-family="sans-serif" role="img">',
            f"<title>{html.escape(f'{self.layer} unit {self.unit}: conditional probability of each class')}</title>",
            f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        ]
        for step in self._layout():
            kind = step[0]
            if kind == "rect":
                _, x, y, width, height, fill, hint = step
                tip = f"<title>{html.escape(hint)}</title>" if hint else ""
                parts.append(
                    f'<rect x="{x:.2f}" y="{y:.2f}" width="{width:.2f}" height="{height:.2f}" '
                    f'fill="{fill}">{tip}</rect>'
                )
            elif kind == "line":
                _, x1, y1, x2, y2, stroke = step
                parts.append(f'<line x1="{x1:.2f}" y1="{y1:.2f}" x2="{x2:.2f}" y2="{y2:.2f}" stroke="{stroke}"/>')
            else:
                _, x, y, text, size, anchor, fill, _ = step
                parts.append(
                    f'<text x="{x:.2f}" y="{y:.2f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}">'
                    f"{html.escape(text)}</text>"
                )
        parts.append("</svg>")
        return "\n".join(parts) + "\n"

    def image(self, scale: int = 2):
        """The chart as a PIL image, drawn from the same layout as `svg`, ``scale`` times its size.

        Example:
            >>> story = ConditionalProbability("0", 3, "mean", "given", 1.5, [0.0, 1.0], [4], [4], ["a"], [[1.0]], 4, 4)
            >>> story.image().size
            (1440, 800)
        """
        from PIL import Image, ImageDraw, ImageFont

        scale = check_int(scale, "scale")
        picture = Image.new("RGB", (WIDTH * scale, HEIGHT * scale), "#ffffff")
        draw = ImageDraw.Draw(picture)
        fonts: dict[int, Any] = {}
        anchors = {"start": "ls", "middle": "ms", "end": "rs"}
        for step in self._layout():
            kind = step[0]
            if kind == "rect":
                _, x, y, width, height, fill, _ = step
                draw.rectangle(
                    [x * scale, y * scale, (x + width) * scale - 1, (y + height) * scale - 1], fill=fill
                )
            elif kind == "line":
                _, x1, y1, x2, y2, stroke = step
                draw.line([x1 * scale, y1 * scale, x2 * scale, y2 * scale], fill=stroke, width=scale)
            else:
                _, x, y, text, size, anchor, fill, _ = step
                if size not in fonts:
                    fonts[size] = ImageFont.load_default(size=size * scale)
                draw.text((x * scale, y * scale), text, fill=fill, font=fonts[size], anchor=anchors[anchor])
        return picture

    def save(self, path: str | os.PathLike) -> Path:
        """Write the chart to ``path``: ``.svg`` (the `svg` text) or ``.png`` (drawn with Pillow at twice the size).

        Example:
            >>> story = ConditionalProbability("0", 3, "mean", "given", 1.5, [0.0, 1.0], [4], [4], ["a"], [[1.0]], 4, 4)
            >>> story.save("unit3.png")
            PosixPath('unit3.png')
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".svg":
            return write_text(path, self.svg())
        if suffix == ".png":
            picture = self.image()
            with atomic_path(path) as temporary:
                picture.save(temporary, format="PNG", optimize=True)
            return path
        raise FeatvizError(f"cannot save a chart as '{path.name}'; use a file name ending in .svg or .png")


def _sigma(value: float) -> str:
    return "0" if value == 0 else f"{value:g}"


def bucket_edges(z: torch.Tensor, buckets: float | Sequence[float]) -> list[float]:
    """Bucket edges in standard deviations: whole multiples of the width ``buckets`` from the one at or below the
    smallest of ``z`` to the one at or above its largest, or the increasing edges given.

    Example:
        >>> bucket_edges(torch.tensor([-0.4, 0.2, 2.5]), 1.0)
        [-1.0, 0.0, 1.0, 2.0, 3.0]
    """
    if isinstance(buckets, (int, float)) and not isinstance(buckets, bool):
        width = float(buckets)
        if not (math.isfinite(width) and width > 0):
            raise FeatvizError(
                f"buckets must be a width > 0 in standard deviations (like 1.0) or a list of edges, not {buckets!r}"
            )
        low = math.floor(float(z.min()) / width)
        high = math.ceil(float(z.max()) / width)
        high = max(high, low + 1)
        if high - low > MAXIMUM_BUCKETS:
            raise FeatvizError(
                f"a bucket width of {width:g} std gives {high - low} buckets (values span {float(z.min()):.3g} to "
                f"{float(z.max()):.3g} std); use a width of at least "
                f"{(float(z.max()) - float(z.min())) / MAXIMUM_BUCKETS:.3g}"
            )
        return [index * width for index in range(low, high + 1)]
    try:
        edges = [float(value) for value in buckets]
    except (TypeError, ValueError):
        raise FeatvizError(
            f"buckets must be a width in standard deviations or a list of edges, not {buckets!r}"
        ) from None
    if len(edges) < 2 or any(not math.isfinite(value) for value in edges) or any(
        later <= earlier for earlier, later in zip(edges, edges[1:])
    ):
        raise FeatvizError(f"bucket edges must be at least 2 finite, increasing numbers (in std), not {edges!r}")
    if len(edges) - 1 > MAXIMUM_BUCKETS:
        raise FeatvizError(f"{len(edges) - 1} buckets is too many; give at most {MAXIMUM_BUCKETS}")
    return edges


def _image_labels(
    labels: Any, paths: list[str], root: Path, stats: dict, model: Model, concepts: Any, templates: Any
) -> tuple[list[str], str]:
    """One label per image of ``paths`` and the name of where the labels came from."""
    if isinstance(labels, str):
        if labels == "folders":
            found = []
            for path in paths:
                parts = Path(path).relative_to(root).parts
                if len(parts) < 2:
                    raise FeatvizError(
                        f"labels='folders' needs one subfolder per class, but '{path}' lies directly in '{root}'; "
                        "move images into class folders, or use labels='predicted' or 'concepts'"
                    )
                found.append(parts[0])
            return found, "folders"
        if labels == "predicted":
            logits = stats[OUTPUT].per_image("mean")
            classes = logits.argmax(1).tolist()
            names = model.labels
            if names is not None and len(names) != logits.shape[1]:
                names = None
            return [names[index] if names else f"class {index}" for index in classes], "predicted"
        if labels == "concepts":
            chosen = resolve_concepts(concepts)
            embeddings = F.normalize(stats[text_tower(model).image_layer].per_image("mean"), dim=1)
            targets = concept_embeddings(model, chosen, templates)
            closest = torch.cat([
                (embeddings[start:start + 1024] @ targets.t()).argmax(1)
                for start in range(0, embeddings.shape[0], 1024)
            ])
            return [chosen[index] for index in closest.tolist()], "concepts"
        raise FeatvizError(
            f"labels must be one of {', '.join(LABEL_SOURCES)} or a mapping from image path to label, not {labels!r}"
        )
    if isinstance(labels, Mapping):
        given = {str(Path(key).expanduser().resolve()): str(value) for key, value in labels.items()}
        missing = [path for path in paths if str(Path(path).resolve()) not in given]
        if missing:
            raise FeatvizError(
                f"labels has no label for {len(missing)} of the {len(paths)} images, e.g. '{missing[0]}'; give one "
                "label per image path"
            )
        return [given[str(Path(path).resolve())] for path in paths], "given"
    raise FeatvizError(
        f"labels must be one of {', '.join(LABEL_SOURCES)} or a mapping from image path to label, "
        f"not {type(labels).__name__}"
    )


def conditional_probability(
    model: Model | str,
    layer: str,
    unit: int,
    images: Any,
    labels: str | Mapping[str, str] = "folders",
    buckets: float | Sequence[float] = 1.0,
    per_bucket: int = 50,
    *,
    reduce: str = "mean",
    shown: int = 8,
    concepts: Sequence[str] | str | os.PathLike | None = None,
    templates: Sequence[str] | None = None,
    examples: int = 9,
    seed: int = 0,
    batch_size: int = 32,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> ConditionalProbability:
    """The conditional-probability plot of ``unit`` of ``layer`` over a labelled set of images (``layer`` may be a
    `featviz.objectives.Dictionary` of a layer, ``unit`` one of its features).

    ``images`` is a folder, a list of image files, an `ImageFolder` or ``"shipped"``; ``labels`` ``"folders"``,
    ``"predicted"``, ``"concepts"`` (with ``concepts``: a list, a concept file, or None for the default list; and
    ``templates``) or a mapping from image path to label. ``buckets`` is the bucket width in standard deviations
    or the list of edges; at most ``per_bucket`` images are drawn from each bucket (random, ``seed``). The
    ``shown`` classes with the largest shares summed over the buckets get their own colour, the rest are
    ``"other"``. ``reduce`` is the unit's ``"mean"`` or ``"max"`` over positions. The pass over the images is
    `featviz.dataset.collect_activations` (``batch_size`` images at a time, kept in ``cache_dir``; ``progress``
    shows a progress bar); ``examples`` top examples come with it. ``device`` defaults to the model's (the CPU for a
    model given by name).

    Example:
        >>> story = conditional_probability(model, "classifier", 281, "shipped", labels="predicted", per_bucket=5)
        >>> story.edges, story.population
        ([-1.0, 0.0, 1.0, 2.0, 3.0, 4.0], [7, 7, 0, 0, 1])
        >>> story.save("tabby.svg")
        PosixPath('tabby.svg')
    """
    if isinstance(unit, bool) or not isinstance(unit, int) or unit < 0:
        raise FeatvizError(f"unit must be an int >= 0, not {unit!r}")
    per_bucket = check_int(per_bucket, "per_bucket")
    shown = check_int(shown, "shown")
    examples = check_int(examples, "examples")
    seed = check_int(seed, "seed", 0)
    if reduce not in REDUCTIONS:
        raise FeatvizError(f"reduce must be 'mean' or 'max' (over positions), not {reduce!r}")
    if isinstance(labels, str) and labels not in LABEL_SOURCES:
        raise FeatvizError(
            f"labels must be one of {', '.join(LABEL_SOURCES)} or a mapping from image path to label, not {labels!r}"
        )
    dictionary = layer if isinstance(layer, Dictionary) else None
    if dictionary is None and (not isinstance(layer, str) or not layer or layer == IMAGE):
        raise FeatvizError(
            f"layer must be a layer of the network like 'blocks.5.0' (see `featviz layers MODEL`), not {layer!r}"
        )
    if isinstance(buckets, (int, float)) and not isinstance(buckets, bool):
        bucket_edges(torch.zeros(1), buckets)  # a bad width fails before the pass
    if labels == "concepts":
        resolve_concepts(concepts)  # a bad concept file fails before the pass
    default_device = model.device if isinstance(model, Model) else None
    model = load_model(model, device=resolve_device(device, default=default_device))
    if dictionary is not None:
        dictionary.check_model(model)
        model.get_layer(dictionary.layer)
    elif layer != OUTPUT:
        model.get_layer(layer)
    folder = image_folder(model, images)
    layers = [layer]
    if labels == "predicted":
        layers.append(OUTPUT)
    elif labels == "concepts":
        layers.append(text_tower(model).image_layer)
    layers = list(dict.fromkeys(layers))
    stats = collect_activations(
        model, folder, layers, batch_size=batch_size, cache_dir=cache_dir, k=examples, progress=progress,
        per_image=True,
    )
    layer_stats = stats[layer]
    if unit >= layer_stats.units:
        raise FeatvizError(
            f"unit {unit} is out of range for layer '{layer}' with {layer_stats.units} units; "
            f"valid: 0-{layer_stats.units - 1}"
        )
    paths = list(layer_stats.image_paths or [])
    image_labels, source = _image_labels(labels, paths, folder.root, stats, model, concepts, templates)
    values = layer_stats.per_image(reduce)[:, unit].double()
    finite = torch.isfinite(values)
    if not bool(finite.any()):
        raise FeatvizError(f"unit {unit} of layer '{layer}' has no finite value on these images")
    values = values[finite]
    image_labels = [label for label, keep in zip(image_labels, finite.tolist()) if keep]
    std = float(values.std(unbiased=False))
    if not std > 0:
        raise FeatvizError(
            f"unit {unit} of layer '{layer}' has the same value ({float(values[0]):.4g}) on all {values.numel()} "
            "images; nothing to bucket: pick another unit or more varied images"
        )
    z = values / std
    edges = bucket_edges(z, buckets)
    index = torch.bucketize(z, torch.tensor(edges, dtype=z.dtype), right=True) - 1
    index[z == edges[-1]] = len(edges) - 2  # the last edge belongs to the last bucket
    generator = torch.Generator().manual_seed(seed)
    names = sorted(set(image_labels))
    column = {name: position for position, name in enumerate(names)}
    counts = torch.zeros(len(edges) - 1, len(names), dtype=torch.float64)
    population, sampled = [], []
    for bucket in range(len(edges) - 1):
        members = (index == bucket).nonzero().flatten()
        population.append(int(members.numel()))
        if members.numel() > per_bucket:
            members = members[torch.randperm(members.numel(), generator=generator)[:per_bucket]].sort().values
        sampled.append(int(members.numel()))
        for member in members.tolist():
            counts[bucket, column[image_labels[member]]] += 1
    drawn = torch.tensor(sampled, dtype=torch.float64).clamp(min=1).unsqueeze(1)
    shares = counts / drawn
    prominence = shares.sum(0)
    ranked = sorted(range(len(names)), key=lambda position: (-float(prominence[position]), names[position]))
    kept = ranked[:shown]
    columns = [shares[:, position] for position in kept]
    classes = [names[position] for position in kept]
    rest = ranked[shown:]
    if rest:
        columns.append(shares[:, rest].sum(1))
        classes.append(OTHER if OTHER not in names else f"{OTHER} classes")
    table = torch.stack(columns, 1)
    return ConditionalProbability(
        layer=layer if dictionary is None else dictionary.name, unit=unit, reduce=reduce, labels_from=source, std=std, edges=edges, population=population,
        sampled=sampled, classes=classes, shares=[[float(value) for value in row] for row in table.tolist()],
        per_bucket=per_bucket, images=int(values.numel()), examples=layer_stats.top_examples(unit)[:examples],
        grouped=len(rest),
    )


__all__ = ["ConditionalProbability", "bucket_edges", "conditional_probability"]
