"""Feature inversion and caricatures (lucid's caricature recipe): an image optimized so that a layer sees in it what
it sees in a photo, reproduced (inversion) or exaggerated (caricature).

Both compare the image's activations ``a`` at a layer with the photo's ``p``, position by position, on the same
random views: each step the photo goes through the very same transforms as the image (``PhotoPair``), so the
comparison stays aligned however the views are jittered, scaled or rotated. Inversion minimizes the relative
squared error ``|a - p|^2 / |p|^2``; caricature maximizes ``(a . p / |p|^2) * max(cos(a, p), 0.1) ** cossim_pow``,
the photo's pattern pushed further wherever the image already points its way. The photo-loading and the paired
views here are shared by the other photo recipes (style transfer, accentuation).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from featviz import param as param_module
from featviz import transforms as transforms_module
from featviz.dataset.photo import PhotoLike, load_photo, photo_size
from featviz.errors import FeatvizError
from featviz.hooks import IMAGE, ActivationCapture, bind_layers, survey_model
from featviz.models import Model
from featviz.objectives import Objective
from featviz.objectives.checks import read
from featviz.renderer.calls import old_call_forms
from featviz.renderer import Renderer, RenderResult, RenderSettings
from featviz.renderer.settings import settings_from
from featviz.transforms import Compose, RandomSource

TransformsLike = str | Compose | Callable | Sequence[Callable] | None

MODES = ("caricature", "inversion")
_EPSILON = 1e-8
_COSINE_FLOOR = 0.1
#: The render settings of `caricature` unless others are given.
CARICATURE_SETTINGS = RenderSettings(steps=512, param="fft", transforms="standard")


class PhotoPair:
    """Photos shown to the model beside the images being optimized, so that objectives can compare the two.

    With random ``transforms`` every step passes the ``2B`` images ``[images; photos]`` through them with a
    ``RandomSource`` whose elements ``b`` and ``B + b`` are seeded alike (``seeds[b]``) and drawn in step: each
    image and its photo get the very same view, so position-by-position comparisons stay aligned. In view-major
    order such a batch is ``(views, 2, B)``; ``split`` separates it. With transforms that draw nothing (the
    "none" preset) the photos' activations are computed once instead, and the batch holds the images only.
    Comparison objectives (`PhotoComparison`) and objectives on the images alone (`OnImages`) read the batch
    through this object; ``render`` runs the renderer with it. ``photos`` is ``(1 or B, C, H, W)`` in ``[0, 1]``
    at the images' size.

    Example:
        >>> pair = PhotoPair(featviz.Renderer(model), torch.rand(1, 3, 48, 64), transforms="standard", seeds=[0])
        >>> pair(torch.rand(1, 3, 48, 64), None).shape                    # the image's view, then the photo's
        torch.Size([2, 3, 48, 64])
    """

    def __init__(self, renderer: Renderer, photos: Tensor, *, transforms: TransformsLike, seeds: Sequence[int]) -> None:
        self.renderer = renderer
        self.count = len(seeds)
        self.seeds = list(seeds)
        self.photos = photos.to(renderer.device).expand(self.count, -1, -1, -1)
        model = renderer.model
        size = tuple(photos.shape[-2:])
        found = survey_model(model)
        self.seen = size if found.takes_other_sizes else tuple(model.input_size)
        self.augment = transforms_module.resolve(transforms, output_size=self.seen)
        self.views = int(getattr(self.augment, "views", 1))
        self.paired = bool(self.augment.transforms)
        self.source = RandomSource(self.seeds * 2, device=renderer.device)
        self.layers: set[str] = set()
        self.fixed: dict[str, Tensor] = {}

    def request(self, layers: Sequence[str]) -> None:
        """Note that an objective compares ``layers`` (their photo activations are computed once when unpaired)."""
        self.layers.update(name for name in layers if name != IMAGE)

    def __call__(self, images: Tensor, source: RandomSource) -> Tensor:
        """The transform the renderer calls: the images' views, and the photos' beside them when paired."""
        if not self.paired:
            return self.augment(images, source)
        photos = self.photos.to(dtype=images.dtype)
        if photos.shape[-2:] != images.shape[-2:]:  # a fixed-size model: the images were resized to its input
            photos = F.interpolate(photos, size=images.shape[-2:], mode="bicubic", align_corners=False, antialias=True)
        return self.augment(torch.cat([images, photos]), self.source)

    def split(self, acts: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """``(image_acts, photo_acts)``, ``(views * B, ...)`` each in view-major order; the photos' are detached.
        ``"@image"`` (the images before transforms) is paired with the photos themselves."""
        once: list[str] = []  # photo entries held once per image, to repeat for every view
        if not self.paired:
            image_acts, photo_acts = dict(acts), dict(self.fixed)
            once += list(photo_acts)
        else:
            image_acts, photo_acts = {}, {}
            for name, value in acts.items():
                if name == IMAGE:  # the renderer adds the images alone
                    image_acts[name] = value
                    continue
                pairs = value.unflatten(0, (-1, 2, self.count))
                image_acts[name] = pairs[:, 0].flatten(0, 1)
                photo_acts[name] = pairs[:, 1].flatten(0, 1).detach()
        if IMAGE in image_acts:
            photo_acts[IMAGE] = self.photos.to(image_acts[IMAGE])
            once.append(IMAGE)
        views = next(iter(image_acts.values())).shape[0] // self.count
        for name in once:
            if views > 1:
                photo_acts[name] = photo_acts[name].repeat(views, *[1] * (photo_acts[name].dim() - 1))
        return image_acts, photo_acts

    def render(self, goal: Objective, image: nn.Module, *, steps: int, progress: bool, importance: bool = False,
               optimizer: Callable | None = None) -> RenderResult:
        """Optimize ``image`` (a parameterization module of ``B`` images) for ``goal`` with the photos beside it."""
        if not self.paired and self.layers:
            binding = bind_layers(self.renderer.model, self.layers, self.seen)
            with torch.no_grad(), ActivationCapture(self.renderer.model, self.layers, layouts=binding.layouts) as capture:
                seen = self.augment(self.photos, RandomSource(self.seeds, device=self.renderer.device))
                self.fixed = {name: value.detach() for name, value in capture.run(seen).items()}
        return self.renderer.render(goal, param=image, transforms=self, optimizer=optimizer, steps=steps,
                                    seed=self.seeds[0], progress=progress, importance=importance)


class PhotoComparison(Objective):
    """An objective that scores the images against the photos of a `PhotoPair`.

    ``compare(image_acts, photo_acts)`` (defined by subclasses) returns one value per image view, ``(views *
    B,)``, from the two halves `PhotoPair.split` makes; ``bind`` checks every layer in ``layers``.

    Example:
        >>> pair = PhotoPair(featviz.Renderer(nn.Sequential(nn.Conv2d(3, 4, 3))), torch.rand(1, 3, 16, 16),
        ...                  transforms="none", seeds=[0])
        >>> class Match(PhotoComparison):
        ...     def compare(self, image_acts, photo_acts):
        ...         return -(image_acts["0"] - photo_acts["0"]).square().mean((1, 2, 3))
        >>> result = pair.render(Match(["0"], "match(0)", pair), featviz.param.Pixel(16), steps=2, progress=False)
        >>> result.history.shape
        torch.Size([2, 1])
    """

    elementwise = False  # it reads the photos' half of the batch

    def __init__(self, layers: Sequence[str], name: str, pair: PhotoPair) -> None:
        super().__init__(layers, name)
        self.pair = pair
        pair.request(list(layers))

    def __call__(self, acts: Mapping[str, Tensor]) -> Tensor:
        return self.compare(*self.pair.split(acts))

    def compare(self, image_acts: dict[str, Tensor], photo_acts: dict[str, Tensor]) -> Tensor:
        """One value per image view, ``(views * B,)``; higher is better."""
        raise NotImplementedError


class OnImages(Objective):
    """Any objective evaluated on the images of a `PhotoPair` batch only (the photos are not scored).

    Example:
        >>> pair = PhotoPair(featviz.Renderer(nn.Sequential(nn.Conv2d(3, 4, 3))), torch.rand(1, 3, 16, 16),
        ...                  transforms="standard", seeds=[0])
        >>> goal = OnImages(objectives.channel("0", 1), pair)
        >>> pair.render(goal, featviz.param.Fourier(16), steps=2, progress=False).images.shape
        torch.Size([1, 3, 16, 16])
    """

    elementwise = False

    def __init__(self, objective: Objective, pair: PhotoPair) -> None:
        super().__init__(objective.layers, objective.name)
        self.objective = objective
        self.pair = pair

    def resolve_layers(self, model: object, read_layer: Callable[[str], Tensor]) -> None:
        self.objective.resolve_layers(model, read_layer)
        self._layers = self.objective.layers

    def bind(self, model: object, shapes: Mapping[str, tuple[int, ...]]) -> None:
        self.objective.bind(model, shapes)

    def __call__(self, acts: Mapping[str, Tensor]) -> Tensor:
        return self.objective(self.pair.split(acts)[0] if self.pair.paired else acts)


class _Caricature(PhotoComparison):
    """Per image ``b``: its ``layers[b]`` compared with the photo's, as inversion or caricature (see the module)."""

    def __init__(self, layers: Sequence[str], mode: str, cossim_pow: float, pair: PhotoPair) -> None:
        shown = layers[0] if len(set(layers)) == 1 else ", ".join(layers)
        super().__init__(sorted(set(layers)), f"{mode}({shown})", pair)
        self.count = len(layers)
        self.per_image = list(layers)
        self.mode = mode
        self.cossim_pow = cossim_pow

    def score(self, image: Tensor, photo: Tensor) -> Tensor:
        """``(N,)`` scores of ``(N, C, H, W)`` image activations against the photo's."""
        image, photo = image.flatten(1), photo.flatten(1)
        photo_energy = photo.square().sum(1) + _EPSILON
        if self.mode == "inversion":
            return -(image - photo).square().sum(1) / photo_energy
        dot = (image * photo).sum(1)
        cosine = dot / (torch.linalg.vector_norm(image, dim=1) * photo_energy.sqrt() + _EPSILON)
        return dot / photo_energy * cosine.clamp(min=_COSINE_FLOOR).pow(self.cossim_pow)

    def compare(self, image_acts: dict[str, Tensor], photo_acts: dict[str, Tensor]) -> Tensor:
        values = None
        for layer in dict.fromkeys(self.per_image):
            scores = self.score(read(image_acts, layer), read(photo_acts, layer))
            if values is None:
                values = torch.zeros_like(scores)
            mine = torch.tensor([name == layer for name in self.per_image], device=scores.device)
            values = torch.where(mine.repeat(scores.shape[0] // self.count), scores, values)
        return values


@old_call_forms(["image", "model", "layer"])
def caricature(
    model: Model | nn.Module | str,
    layer: str | Sequence[str],
    image: PhotoLike,
    *,
    cossim_pow: float = 1.0,
    mode: str = "caricature",
    settings: RenderSettings | None = None,
    **render: Any,
) -> RenderResult:
    """Render what ``layer`` sees in a photo: reproduced (``mode="inversion"``) or exaggerated (``"caricature"``).

    ``image`` is the photo (a path, PIL image, array or tensor; see `load_photo`), loaded at ``size`` (default:
    its shorter side becomes the shorter side of the model's input, its aspect ratio kept, so non-square photos
    stay non-square). ``layer`` is one layer name or a list of them: one image per layer, a batch. The image is
    a ``param`` parameterization ("fft" default, or "pixel", "maco", ...) started from noise with ``seed`` and
    optimized for ``steps`` steps; each step the photo goes through the same random ``transforms`` (a preset
    name, "standard" default, or transforms as `featviz.render` takes them). Caricature maximizes ``(a . p /
    |p|^2) * max(cos(a, p), 0.1) ** cossim_pow`` between the image's and the photo's activations ``a`` and ``p``
    (lucid's dot times cosine power: 0 pushes the photo's pattern as far as it goes, larger values keep the
    image closer to the photo's own pattern); inversion maximizes ``-|a - p|^2 / |p|^2`` (``cossim_pow`` unused).
    Returns a `RenderResult` whose ``history`` is that score per step (1 for caricature and 0 for inversion mean
    the photo's activations exactly). ``size``, ``steps``, ``param``, ``transforms``, ``seed``, ``optimizer``,
    ``lr``, ``precision``, ``device`` and ``progress`` come from ``settings`` (a `featviz.RenderSettings`;
    default ``CARICATURE_SETTINGS``: 512 steps, "fft", "standard"; each field may also be given as a keyword).

    Example:
        >>> from skimage import data
        >>> result = caricature(model, "blocks.3", data.chelsea(), size=32, steps=2,
        ...                     progress=False)         # by default: steps=512 at the model's size
        >>> result.images.shape                     # a 451 x 300 photo keeps its aspect
        torch.Size([1, 3, 32, 48])
    """
    if mode not in MODES:
        raise FeatvizError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if isinstance(cossim_pow, bool) or not isinstance(cossim_pow, (int, float)) or not 0 <= cossim_pow < float("inf"):
        raise FeatvizError(f"cossim_pow must be a number >= 0 (0: plain dot product), not {cossim_pow!r}")
    layers = [layer] if isinstance(layer, str) else list(layer)
    if not layers or not all(isinstance(name, str) and name for name in layers):
        raise FeatvizError(f"layer must be a layer name or a list of layer names, not {layer!r}")
    settings = settings_from(settings, CARICATURE_SETTINGS, render, owner="caricature")
    seed = settings.seed
    renderer = Renderer(model, **settings.renderer_options())
    photo = load_photo(image, photo_size(renderer.model, settings.size), renderer.model.channels)
    picture = param_module.create(settings.param or "fft", tuple(photo.shape[-2:]), batch=len(layers),
                                  channels=renderer.model.channels, seed=seed, device=renderer.device)
    transforms = "standard" if settings.transforms is None else settings.transforms
    pair = PhotoPair(renderer, photo, transforms=transforms, seeds=[seed + index for index in range(len(layers))])
    goal = _Caricature(layers, mode, float(cossim_pow), pair)
    return pair.render(goal, picture, steps=settings.steps, progress=settings.progress,
                       optimizer=settings.optimizer_factory())


__all__ = ["caricature"]
