"""Render one benchmark config with lucent (torch-lucent 0.1.8, kornia 0.4.1) and print one JSON line.

Run with the peers' virtual environment, config as JSON on argv (or a JSON file path, or stdin):

    benchmarks/.venv-peers/bin/python benchmarks/peers/lucent_runner.py \
        '{"layer": "blocks.4.0.conv_pwl", "channels": [3], "steps": 64, "size": 128, "out": "/tmp/lucent.npz"}'

lucent's own defaults are kept: ``param.image(size, batch=N, fft=True, decorrelate=True)``,
``transform.standard_transforms``, Adam with lr 0.05, the objective string ``"layer:channel"`` for one image
and, for N images, lucent's batched objective: the sum over i of ``objectives.channel(layer, c_i, batch=i)``.
Two settings follow the benchmark instead of lucent's defaults, because the model here normalizes its own
input and the config fixes the network's input size:

* ``preprocess=False``: lucent would otherwise append ImageNet mean/std normalization to the transforms,
  normalizing a second time.
* ``fixed_image_size``: ``upsample_to`` when given; when it is null, 0, which turns off lucent's automatic
  bilinear upsampling to 224 of images smaller than 224 (``if new_size:`` in render_vis is falsy for 0).

lucent puts its image on ``cuda:0`` whenever torch sees a GPU, whatever the model's device: the config's
``device`` must agree (benchmarks/run.py hides the GPUs, ``CUDA_VISIBLE_DEVICES=""``, for a CPU run).
"""
from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported

import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from importlib.metadata import version  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import common  # noqa: E402


def lucent_layer_name(layer: str) -> str:
    """lucent's name for the timm layer ``layer`` of a `nn.Module`: ``_``-joined module path.

    Example:
        >>> lucent_layer_name("blocks.4.0.conv_pwl")
        'network_blocks_4_0_conv_pwl'
    """
    return "_".join(["network", *layer.split(".")])


def main(argv: list[str]) -> None:
    """Read the config, build EfficientNet-Lite0, render with lucent, save the npz and print the figures."""
    setup_start = time.perf_counter()
    config = common.read_config(argv)
    common.limit_threads(config["threads"])
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.script deprecation inside kornia 0.4.1
    from lucent.optvis import objectives, param, render, transform

    device = config["device"]
    if torch.cuda.is_available() != device.startswith("cuda"):
        raise common.BenchmarkConfigError(
            f"lucent renders on the GPU whenever torch sees one; with device {device!r} "
            + ("hide it with CUDA_VISIBLE_DEVICES=\"\"" if device == "cpu" else "torch must see a GPU")
        )
    model = common.load_efficientnet_lite0(device)
    common.check_layer_and_channels(model, config["layer"], config["channels"], config["size"])
    channels = config["channels"]
    layer = lucent_layer_name(config["layer"])
    if len(channels) == 1:
        objective = f"{layer}:{channels[0]}"
    else:
        objective = objectives.Objective.sum(
            [objectives.channel(layer, channel, batch=index) for index, channel in enumerate(channels)]
        )
    torch.manual_seed(config["seed"])
    np.random.seed(config["seed"])  # lucent's jitter, scale and rotation draw from numpy's global generator
    random.seed(config["seed"])
    batch = len(channels)
    param_f = lambda: param.image(config["size"], batch=batch, fft=True, decorrelate=True)  # noqa: E731
    fixed_image_size = config["upsample_to"] if config["upsample_to"] is not None else 0

    objective = objectives.as_objective(objective)
    losses: list[float] = []

    def recorded_objective(hook):  # the same objective, its loss kept for loss_history
        loss = objective(hook)
        losses.append(float(loss.detach()))
        return loss

    setup_seconds = time.perf_counter() - setup_start
    setup_rss = common.peak_rss_mb()
    with common.StepClock(device) as clock:
        frames = render.render_vis(
            model,
            recorded_objective,
            param_f=param_f,
            optimizer=lambda params: torch.optim.Adam(params, lr=5e-2),
            transforms=transform.standard_transforms,
            thresholds=(config["steps"],),
            preprocess=False,
            progress=False,
            show_image=False,
            fixed_image_size=fixed_image_size,
        )
    render_rss = common.peak_rss_mb()
    images = np.ascontiguousarray(np.transpose(frames[-1], (0, 3, 1, 2)), dtype=np.float32)
    objective_values = common.channel_means_of_images(
        model, config["layer"], channels, torch.from_numpy(images), config["upsample_to"]
    )
    # lucent's loss is minus the (summed) channel means; history saved as "higher is better".
    loss_history = -np.asarray(losses, dtype=np.float64)
    common.save_result(config["out"], images, objective_values, clock.step_seconds, loss_history, config)
    network_input = (
        f"{config['upsample_to']} px (fixed_image_size)" if config["upsample_to"] else "transformed size (no resize)"
    )
    common.print_summary(
        common.summary(
            "lucent",
            version("torch-lucent"),
            config,
            clock,
            renders=1,
            images=images,
            objective=objective_values,
            setup_seconds=setup_seconds,
            setup_rss_mb=setup_rss,
            render_rss_mb=render_rss,
            notes=f"one batch of {batch}; network input {network_input}; kornia {version('kornia')}",
        )
    )


if __name__ == "__main__":
    common.exit_on_config_error(main)(sys.argv[1:])
