"""Render one benchmark config with horama's Fourier feature visualization and print one JSON line.

Run with the peers' virtual environment, config as JSON on argv (or a JSON file path, or stdin):

    benchmarks/.venv-peers/bin/python benchmarks/peers/horama_runner.py \
        '{"layer": "blocks.4.0.conv_pwl", "channels": [3], "steps": 64, "size": 128, "out": "/tmp/horama.npz"}'

``horama.fourier`` is called with its own defaults (NAdam lr 1.0, decay power 1.5, 6 random crops per step
resized to the network's input with roi_align + antialiased bicubic, noise 0.05, box size (0.20, 0.25)),
``total_steps = steps``, and these settings from the benchmark:

* ``image_size = size``: the rendered image (horama's default is a 1280 px canvas).
* ``model_input_size = upsample_to`` or, when it is null, ``size``: the side of the crops the network sees.
* ``values_range = (0, 1)``: the model here takes ``[0, 1]`` images and normalizes them itself; horama's
  default ``(-2.5, 2.5)`` assumes a network fed already-normalized images.
* ``device``: the config's (``"cpu"`` by default).

The objective is the mean of ``channel`` of ``layer`` over the crops, read by a forward hook (horama takes
a function of the images). horama renders one image per call, so N channels are N renders one after the
other, image i seeded with ``seed + i``.
"""
from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: no progress bar for every render

import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from importlib.metadata import version  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import common  # noqa: E402


class ChannelObjective:
    """horama's ``objective_function`` for one channel: mean activation of ``channel`` of a hooked layer.

    ``score(images)`` runs the model on horama's crops and returns the channel's mean over crops and space;
    each score is also kept in ``history``.

    Example:
        >>> objective = ChannelObjective(model, "blocks.4.0.conv_pwl")
        >>> objective.channel = 3
        >>> objective.score(torch.rand(6, 3, 128, 128))
    """

    def __init__(self, model: nn.Module, layer: str) -> None:
        self.model = model
        self.channel = 0
        self.history: list[float] = []
        self._activation: torch.Tensor | None = None
        module = dict(model.network.named_modules())[layer]
        self._handle = module.register_forward_hook(self._capture)

    def _capture(self, module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self._activation = output

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """The mean of the channel's activation over the batch of crops ``images``."""
        self.model(images)
        value = self._activation[:, self.channel].mean()
        self._activation = None
        self.history.append(float(value.detach()))
        return value

    def close(self) -> None:
        """Remove the forward hook."""
        self._handle.remove()


def main(argv: list[str]) -> None:
    """Read the config, build EfficientNet-Lite0, render each channel with horama, save and print the figures."""
    setup_start = time.perf_counter()
    config = common.read_config(argv)
    common.limit_threads(config["threads"])
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.script deprecation, via torchvision
    import horama

    device = config["device"]
    model = common.load_efficientnet_lite0(device)
    common.check_layer_and_channels(model, config["layer"], config["channels"], config["size"])
    objective = ChannelObjective(model, config["layer"])
    model_input_size = config["upsample_to"] if config["upsample_to"] is not None else config["size"]

    setup_seconds = time.perf_counter() - setup_start
    setup_rss = common.peak_rss_mb()
    rendered: list[np.ndarray] = []
    histories: list[list[float]] = []
    with common.StepClock(device) as clock:
        for index, channel in enumerate(config["channels"]):
            clock.restart()
            torch.manual_seed(config["seed"] + index)
            objective.channel = channel
            objective.history = []
            image, _transparency = horama.fourier(
                objective.score,
                total_steps=config["steps"],
                image_size=config["size"],
                model_input_size=model_input_size,
                values_range=(0.0, 1.0),
                device=device,
            )
            rendered.append(image.detach().float().cpu().numpy())
            histories.append(objective.history)
    render_rss = common.peak_rss_mb()
    objective.close()
    images = np.ascontiguousarray(np.stack(rendered), dtype=np.float32)
    objective_values = common.channel_means_of_images(
        model, config["layer"], config["channels"], torch.from_numpy(images), config["upsample_to"]
    )
    common.save_result(
        config["out"], images, objective_values, clock.step_seconds, np.asarray(histories, dtype=np.float64), config
    )
    count = len(config["channels"])
    common.print_summary(
        common.summary(
            "horama",
            version("horama"),
            config,
            clock,
            renders=count,
            images=images,
            objective=objective_values,
            setup_seconds=setup_seconds,
            setup_rss_mb=setup_rss,
            render_rss_mb=render_rss,
            notes=(
                f"{count} renders of 1 image one after the other (horama has no batch); "
                f"6 crops per step at {model_input_size} px; values_range (0, 1)"
            ),
        )
    )


if __name__ == "__main__":
    common.exit_on_config_error(main)(sys.argv[1:])
