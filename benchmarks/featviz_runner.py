"""featviz's side of the benchmark: render one config and print one JSON line of figures.

Same config and output as the peer runners (see peers/README.md), plus featviz's own keys:
`param` ("fft"), `transforms` ("standard"), `autocast` (null, "bfloat16" or "float16"), `channels_last` (null: on for the CPU, off for a GPU),
`fold_batchnorm` (true), `redirect_relu_steps` (16): featviz.render's defaults; `decay` (null: the Fourier
parameterization's own default) sets the spectrum's 1 / f**decay when `param` is "fft". `upsample_to` becomes the output size of featviz's fused transform pass; null
means the network sees the image at its own size.

    python benchmarks/featviz_runner.py '{"layer": "blocks.4.0.conv_pwl", "channels": [3], "steps": 64, "size": 128}'
"""
from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
import common  # noqa: E402  (the peers' shared config, timing and output code)

FEATVIZ_DEFAULTS = {
    "param": "fft", "transforms": "standard", "autocast": None, "channels_last": None, "fold_batchnorm": True,
    "redirect_relu_steps": 16, "decay": None,
}


def main(argv: list[str]) -> None:
    setup_start = time.perf_counter()
    raw = json.loads(argv[0]) if argv else {}
    options = {key: raw.pop(key, default) for key, default in FEATVIZ_DEFAULTS.items()}
    config = {**common.read_config([json.dumps(raw)]), **options}
    common.limit_threads(config["threads"])
    import featviz
    from featviz import param, transforms

    device = config["device"]
    model = common.load_efficientnet_lite0(device)
    channels = config["channels"]
    goals = [f"{config['layer']}:{channel}" for channel in channels]
    output_size = (config["upsample_to"],) * 2 if config["upsample_to"] else None
    augment = transforms.create(config["transforms"], output_size=output_size)
    image_param = config["param"]
    if config["decay"] is not None:
        image_param = param.create(image_param, config["size"], batch=len(channels), seed=config["seed"],
                                   decay=config["decay"], device=device)
    autocast = getattr(torch, config["autocast"]) if config["autocast"] else None
    setup_seconds = time.perf_counter() - setup_start
    setup_rss = common.peak_rss_mb()
    with common.StepClock(device) as clock:
        result = featviz.render(
            model, goals, param=image_param, transforms=augment, steps=config["steps"], size=config["size"],
            seed=config["seed"], device=device, progress=False, autocast=autocast, channels_last=config["channels_last"],
            fold_batchnorm=config["fold_batchnorm"], redirect_relu_steps=config["redirect_relu_steps"],
        )
    render_rss = common.peak_rss_mb()
    images = result.images.numpy().astype(np.float32)
    # render leaves the model's values unchanged: the same yardstick as the peers'.
    objective_values = common.channel_means_of_images(model, config["layer"], channels, result.images, config["upsample_to"])
    common.save_result(config["out"], images, objective_values, clock.step_seconds, result.history.numpy(), config)
    options = ", ".join(f"{key}={value}" for key, value in options.items())
    common.print_summary(
        common.summary(
            "featviz", version("featviz"), config, clock, renders=1, images=images,
            objective=objective_values, setup_seconds=setup_seconds, setup_rss_mb=setup_rss,
            render_rss_mb=render_rss, notes=f"one batch of {len(channels)}; {options}",
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
