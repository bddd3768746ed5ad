"""How much memory a render (or a dry forward pass) needs, estimated from the survey before anything is
allocated, and a refusal when it cannot fit."""
from __future__ import annotations

import math
import os
from typing import Any

import torch

from featviz.errors import FeatvizError

# float32 values kept per image value by the parameterization and its optimizer: parameters, their gradient,
# two Adam moments, and the intermediate images (spectrum, colour mix, sigmoid, composite) with their gradients.
PARAMETERIZATION_VALUES_PER_PIXEL = 12
# Per activation value of the network: the value kept for the backward pass and its gradient.
NETWORK_COPIES = 2
_GIB = 1024**3


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` in bytes (CUDA: free device memory; CPU: the system's available memory), or
    None where it cannot be read.

    Example:
        >>> available_bytes(torch.device("cpu")) > 0
        True
    """
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def render_bytes(
    survey: Any, *, image_size: tuple[int, int], network_size: tuple[int, int], images: int, views: int,
    channels: int, network_dtype: torch.dtype, parameterized: bool = True,
) -> int:
    """An estimate of the bytes a render needs: the parameterization and its optimizer state at ``image_size``
    (when ``parameterized``; not for a parameterization module the caller made), and the network's activations
    for ``images * views`` views of ``channels`` channels at ``network_size`` in ``network_dtype`` (from the
    ``survey``'s count of activation values per input pixel), kept for the backward pass with their gradients.

    Example:
        >>> from featviz.hooks import survey_model
        >>> needed = render_bytes(survey_model(model), image_size=(224, 224), network_size=(224, 224), images=1,
        ...                       views=1, channels=3, network_dtype=torch.float32)
        >>> round(needed / 2**20)   # MiB
        200
    """
    image_values = images * channels * image_size[0] * image_size[1]
    parameter_bytes = image_values * 4 * PARAMETERIZATION_VALUES_PER_PIXEL if parameterized else 0
    element_size = torch.empty((), dtype=network_dtype).element_size()
    views_pixels = images * views * network_size[0] * network_size[1]
    network_bytes = views_pixels * (survey.elements_per_pixel * element_size * NETWORK_COPIES + channels * 4 * 3)
    return int(parameter_bytes + network_bytes)


def check_memory(needed: int, *, device: torch.device, what: str, advice: str) -> None:
    """Raise FeatvizError when ``needed`` bytes do not fit in ``device``'s free memory: "``what`` needs about N GiB
    but M GiB is free on DEVICE; ``advice``". Nothing is checked where free memory cannot be read.

    Example:
        >>> check_memory(2**70, device=torch.device("cpu"), what="a 1e10-frame strip", advice="use fewer --frames")
        Traceback (most recent call last):
        featviz.errors.FeatvizError: a 1e10-frame strip needs about 1.1e+12 GiB but ... GiB is free on cpu; use fewer
        --frames
    """
    free = available_bytes(device)
    if free is None or needed <= free:
        return
    raise FeatvizError(
        f"{what} needs about {needed / _GIB:.3g} GiB but {free / _GIB:.3g} GiB is free on {device}; {advice}"
    )


def check_render_memory(
    survey: Any, *, device: torch.device, option: str = "size", count_option: str = "batch",
    views_option: str = "views", **sizes: Any,
) -> None:
    """Raise FeatvizError before a render that cannot fit in ``device``'s free memory, saying what would fit;
    ``survey`` is the model's `featviz.hooks.survey_model`.

    ``sizes`` are `render_bytes`'s keyword arguments. The advice gives the most views (named ``views_option``) or
    images (``count_option``) that fit when one would, else the largest shorter side that fits at the image's
    aspect ratio (named ``option``; a command line passes its own names, such as ``"--image-size"``). Nothing is
    checked where free memory cannot be read.

    Example:
        >>> from featviz.hooks import survey_model
        >>> check_render_memory(survey_model(model), device=torch.device("cpu"), image_size=(100000, 100000),
        ...     network_size=(100000, 100000), images=1, views=1, channels=3, network_dtype=torch.float32)
        Traceback (most recent call last):
        featviz.errors.FeatvizError: a 100000x100000 render of 1 image needs about 3.89e+04 GiB but ... GiB is free
        on cpu; use size ... or less
    """
    needed = render_bytes(survey, **sizes)
    free = available_bytes(device)
    if free is None or needed <= free:
        return
    height, width = sizes["image_size"]
    images, views = sizes["images"], sizes["views"]
    single_view = render_bytes(survey, **{**sizes, "views": 1})
    single_image = render_bytes(survey, **{**sizes, "images": 1, "views": views})
    if views > 1 and single_view <= free:
        per_view = render_bytes(survey, **{**sizes, "views": 2}) - single_view
        advice = f"use {views_option} {1 + int((free - single_view) // max(per_view, 1))} or fewer"
    elif images > 1 and single_image <= free:
        advice = f"use {count_option} {int(free // single_image)} or fewer"
    else:
        # Both parts grow with the number of pixels: the largest shorter side of the same aspect that fits.
        per_pixel = needed / (height * width)
        fits = math.isqrt(int(free / per_pixel * min(height, width) / max(height, width))) if per_pixel > 0 else 0
        if fits >= 8:
            advice = f"use {option} {fits} or less"
        elif max(height, width) > 8 * min(height, width):
            advice = f"the image is {height}x{width} pixels: crop it closer to a square"
        else:
            advice = "use another device with more memory"
    raise FeatvizError(
        f"a {height}x{width} render of {images} image{'s' if images != 1 else ''} needs about "
        f"{needed / _GIB:.3g} GiB but {free / _GIB:.3g} GiB is free on {device}; {advice}"
    )
