"""The speed and quality benchmark: featviz, lucent and horama on EfficientNet-Lite0, in one run.

Every render runs in its own subprocess (so peak memory is that render's), the peers inside their own
virtual environment (made on first use by peers/env.py). The images of every run are scored in this
process with featviz.metrics, the same yardstick for all. Writes a Markdown report (default
benchmarks/RESULTS.md) and prints it.

    python benchmarks/run.py                 # the full run (512 steps; about 75 minutes on 2 CPU cores)
    python benchmarks/run.py --steps 64      # a quick look
    python benchmarks/run.py --device cuda --out benchmarks/RESULTS-cuda.md   # on a GPU

On a GPU every tool renders on it (lucent always does when it sees one), each step is timed after the GPU
finished it, and peak memory is the GPU's (torch's allocator); the scoring stays on the CPU.
`--peer-python` runs the peers with a Python that already has lucent, kornia and horama instead of
making benchmarks/.venv-peers (a machine without a package index).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))
from env import ensure_peer_env  # noqa: E402

LAYERS = {"early": ("blocks.2.0.conv_pwl", 7), "middle": ("blocks.4.0.conv_pwl", 3), "late": ("blocks.6.0.conv_pwl", 11)}
BATCH_LAYER = "blocks.4.0.conv_pwl"


def run_one(tool: str, config: dict, workdir: Path, peer_python: Path | None) -> dict:
    """Render `config` with `tool` in a subprocess and return its JSON figures (plus the npz path)."""
    out = workdir / f"{tool}-{len(os.listdir(workdir))}.npz"
    config = {**config, "out": str(out)}
    python = str(peer_python) if tool != "featviz" else sys.executable
    script = HERE / ("featviz_runner.py" if tool == "featviz" else f"peers/{tool}_runner.py")
    environment = dict(os.environ)
    if config["device"] == "cpu":  # lucent takes any GPU it sees; a CPU run hides them from every tool alike
        environment["CUDA_VISIBLE_DEVICES"] = ""
    started = time.perf_counter()
    completed = subprocess.run([python, str(script), json.dumps(config)], capture_output=True, text=True, env=environment)
    if completed.returncode != 0:
        raise RuntimeError(f"{tool} failed on {config}:\n{completed.stderr[-3000:]}")
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    figures["wall_s"] = time.perf_counter() - started
    figures["peak_mb"] = figures["peak_gpu_mb"] if figures.get("peak_gpu_mb") is not None else figures["peak_rss_mb"]
    figures["tool"] = tool
    return figures


def score(figures: dict, model) -> dict:
    """Add the quality metrics of a run's images: activation under held-out transforms (at the size the
    network saw during the render) and the spectrum of the image as rendered and saved (an image upsampled
    before its spectrum is taken has no energy above its own Nyquist frequency: the upsampler's spectrum,
    not the render's)."""
    from featviz import metrics

    with np.load(figures["out"]) as data:
        images = torch.from_numpy(data["images"])
    spectral = metrics.spectrum(images)
    view = figures["upsample_to"] or figures["size"]
    if images.shape[-1] != view:
        images = F.interpolate(images, size=(view, view), mode="bilinear", align_corners=False)
    goals = [f"{figures['layer']}:{channel}" for channel in figures["channels"]]
    report = metrics.activation_reached(model, goals, images, samples=16, seed=1234)
    figures["held_out_mean"] = float(report.held_out_mean.mean())
    figures["held_out_vs_natural"] = float(report.held_out_mean_vs_natural.mean())
    figures["rendered_vs_natural"] = float(report.rendered_vs_natural.mean())
    figures["high_frequency_share"] = spectral.mean_high_frequency_share
    figures["spectrum_slope"] = spectral.mean_slope
    figures["high_frequency_shares"] = [float(share) for share in spectral.high_frequency_share]
    return figures


def units_per_minute(figures: dict) -> float:
    return 60_000.0 * figures["images"] / (figures["steps"] * figures["ms_per_step_median"])


def machine(device: str = "cpu") -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = ", ".join(flag for flag in ("avx512f", "avx512_bf16", "amx_bf16") if f" {flag}" in text)
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = ""
    if device.startswith("cuda"):
        properties = torch.cuda.get_device_properties(torch.device(device))
        gpu = f"GPU {properties.name} ({properties.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}); "
    return (
        f"{gpu}{cpu} ({flags}), {os.cpu_count()} cores, {memory:.0f} GiB, Python {platform.python_version()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )


def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    lines = ["| " + " | ".join(title for title, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for _, key in columns:
            value = row.get(key, "")
            cells.append(f"{value:.3g}" if isinstance(value, float) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


COLUMNS = [
    ("setting", "setting"), ("tool", "tool"), ("ms/step", "ms_per_step_median"), ("× lucent", "speed_vs_lucent"),
    ("units/min", "units_per_minute"), ("peak MB", "peak_mb"), ("activation", "objective_mean"),
    ("held-out / natural", "held_out_vs_natural"), ("high-freq share", "high_frequency_share"),
    ("spectrum slope", "spectrum_slope"),
]


def finish(rows: list[dict], setting: str) -> list[dict]:
    lucent = next((row for row in rows if row["tool"] == "lucent"), None)
    for row in rows:
        row["setting"] = setting
        row["units_per_minute"] = units_per_minute(row)
        row["objective_mean"] = float(np.mean(row["objective"]))
        if lucent is not None:
            row["speed_vs_lucent"] = row["ms_per_step_median"] / lucent["ms_per_step_median"]
    return rows


DEFAULT_CANDIDATES = (
    ("fft decay 1.3, Adam 0.05, standard (featviz's)", dict(param="fft", lr=0.05, transforms="standard")),
    ("fft decay 1.0, Adam 0.05, standard (lucid's)", dict(param="fft", lr=0.05, transforms="standard", decay=1.0)),
    ("fft decay 1.6, Adam 0.05, standard", dict(param="fft", lr=0.05, transforms="standard", decay=1.6)),
    ("fft decay 1.3, Adam 0.1, standard", dict(param="fft", lr=0.1, transforms="standard")),
    ("fft, Adam 0.05, robust", dict(param="fft", lr=0.05, transforms="robust")),
    ("maco, Adam 0.1, maco", dict(param="maco", lr=0.1, transforms="maco")),
    ("pixel, Adam 0.05, standard", dict(param="pixel", lr=0.05, transforms="standard")),
    ("cppn, Adam 0.005, standard", dict(param="cppn", lr=0.005, transforms="standard")),
)


def defaults_section(model, steps: int, device: str = "cpu") -> str:
    """Quality per second of candidate defaults: 4 units (early to late) rendered at the model's input size,
    scored at several step counts from the render's own snapshots."""
    import featviz
    from featviz import metrics
    from featviz import param as param_module

    goals = [f"{layer}:{channel}" for layer, channel in LAYERS.values()] + ["blocks.3.0.conv_pwl:17"]
    checkpoints = [count for count in (64, 128, 256, 512, 1024) if count <= steps]
    rows = []
    for label, options in DEFAULT_CANDIDATES:
        lr = options["lr"]
        image_param = options["param"]
        if "decay" in options:  # the spectrum's 1 / f**decay scaling: lucid's is 1.0, featviz's default 1.3
            image_param = param_module.create(image_param, model.input_size, batch=len(goals), seed=0, decay=options["decay"])
        started = time.perf_counter()
        result = featviz.render(
            model, goals, param=image_param, transforms=options["transforms"], steps=steps, seed=0, device=device,
            thresholds=checkpoints, optimizer=lambda parameters: torch.optim.Adam(parameters, lr=lr), progress=False,
        )
        seconds_per_step = (time.perf_counter() - started) / steps  # render returns CPU images: the GPU is done
        model.to("cpu")
        for count in checkpoints:
            images = result.snapshots[count]
            report = metrics.activation_reached(model, goals, images, samples=16, seed=1234)
            rows.append({
                "candidate": label, "steps": count, "seconds": seconds_per_step * count,
                "held_out_vs_natural": float(report.held_out_mean_vs_natural.mean()),
                "high_frequency_share": metrics.spectrum(images).mean_high_frequency_share,
            })
    columns = [("candidate", "candidate"), ("steps", "steps"), ("seconds (4 units)", "seconds"),
               ("held-out / natural", "held_out_vs_natural"), ("high-freq share", "high_frequency_share")]
    return (
        f"## Choosing the defaults (4 units {', '.join(goals)}, one batch, {model.input_size[0]} px)\n\n"
        + table(rows, columns)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--scaling-steps", type=int, default=12, help="steps per point of the scaling tables")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: single,batch,wide,levers,defaults,scaling")
    parser.add_argument("--device", default="cpu", help="where every tool renders: cpu (default) or cuda")
    parser.add_argument("--peer-python", default=None, help="a Python with lucent, kornia and horama (default: make benchmarks/.venv-peers)")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    import featviz

    model = featviz.load_model("efficientnet_lite0")
    peer_python = Path(args.peer_python) if args.peer_python else ensure_peer_env()
    workdir = Path(tempfile.mkdtemp(prefix="featviz-bench-"))
    base = {"steps": args.steps, "seed": 0, "threads": args.threads, "device": args.device}
    sections: list[str] = []
    started = time.perf_counter()

    def write_report(sections: list[str]) -> str:
        """Write what is measured so far (after every section, so a stopped run keeps its tables)."""
        header = (
            "# Benchmark results\n\n"
            f"Written by `python benchmarks/run.py --steps {args.steps}"
            + (f" --device {args.device}" if args.device != "cpu" else "")
            + f"` on {time.strftime('%Y-%m-%d')}, "
            f"in {(time.perf_counter() - started) / 60:.0f} minutes.\n\nMachine: {machine(args.device)}.\n\n"
            "Model: EfficientNet-Lite0 with its real ImageNet weights. Every render runs in its own process; ms/step is the "
            "median step time, peak MB "
            + ("the GPU memory torch's allocator held at its peak" if args.device != "cpu" else "the process's peak resident memory")
            + ", activation the channel's mean on the final image "
            "(at the network's input size), held-out / natural the mean over 16 held-out random transforms divided by the best "
            "of the shipped natural photos (docs/metrics.md), the spectrum that of the image as rendered (before any upsampling). lucent 0.1.8 and horama run with their own defaults "
            "(benchmarks/peers/README.md); × lucent is the ratio of ms/step (lower is faster).\n"
        )
        report = header + "\n" + "\n\n".join(sections) + "\n"
        out = Path(args.out)
        temporary = out.with_name(out.name + ".tmp")
        temporary.write_text(report)
        os.replace(temporary, out)
        return report

    if "single" not in skip:
        rows_all = []
        for depth, (layer, channel) in LAYERS.items():
            for size, upsample in ((128, 224), (224, None)):
                if size == 224 and depth != "middle":
                    continue
                config = {**base, "layer": layer, "channels": [channel], "size": size, "upsample_to": upsample}
                setting = f"{depth} {layer}:{channel}, {size} px" + (f" → {upsample}" if upsample else "")
                tools = ("lucent", "featviz", "horama") if upsample else ("lucent", "featviz")
                rows = [score(run_one(tool, config, workdir, peer_python), model) for tool in tools]
                if upsample:  # featviz also as it runs by default: the image as it is, no upsampling
                    native = score(run_one("featviz", {**config, "upsample_to": None}, workdir, peer_python), model)
                    native["tool"] = "featviz, no upsampling"
                    rows.append(native)
                rows_all += finish(rows, setting)
                print(table(rows, COLUMNS), flush=True)
        sections.append("## One image per render\n\n" + table(rows_all, COLUMNS))
        write_report(sections)

    if "batch" not in skip:
        config = {**base, "layer": BATCH_LAYER, "channels": list(range(16)), "size": 128, "upsample_to": 224}
        rows = [score(run_one(tool, config, workdir, peer_python), model) for tool in ("lucent", "featviz")]
        native = score(run_one("featviz", {**config, "upsample_to": None}, workdir, peer_python), model)
        native["tool"] = "featviz, no upsampling"
        rows = finish(rows + [native], f"16 units of {BATCH_LAYER}, 128 px, one batch")
        lucent = rows[0]
        lines = [
            f"- {row['tool']}: **{row['units_per_minute'] / lucent['units_per_minute']:.2f}×** lucent's units per minute, "
            f"{row['peak_mb'] / lucent['peak_mb']:.2f}× its peak memory"
            for row in rows[1:]
        ]
        sections.append("## A batch of 16 units of one layer\n\n" + table(rows, COLUMNS) + "\n\n" + "\n".join(lines))
        print(sections[-1], flush=True)
        write_report(sections)

    if "wide" not in skip:  # quality at the network's own size over 8 channels a layer: one channel's spectrum is noisy
        rows, shares = [], {}
        for depth, (layer, _) in LAYERS.items():
            config = {**base, "layer": layer, "channels": list(range(8)), "size": 224, "upsample_to": None}
            runs = [run_one("lucent", config, workdir, peer_python), run_one("featviz", config, workdir, peer_python)]
            lucid_spectrum = run_one("featviz", {**config, "decay": 1.0}, workdir, peer_python)
            lucid_spectrum["tool"] = "featviz, decay 1.0 (lucid's spectrum)"
            for row in finish([score(figures, model) for figures in runs + [lucid_spectrum]], f"{depth} {layer}:0-7, 224 px, one batch"):
                rows.append(row)
                shares.setdefault(row["tool"], []).extend(row["high_frequency_shares"])
        columns = [("setting", "setting"), ("tool", "tool"), ("activation", "objective_mean"),
                   ("held-out / natural", "held_out_vs_natural"), ("high-freq share", "high_frequency_share"),
                   ("spectrum slope", "spectrum_slope")]
        lucent_shares = np.array(shares["lucent"])
        lines = [
            f"- {tool}: high-frequency share {np.mean(values):.3f} on average over the {len(values)} channels "
            f"(lucent {lucent_shares.mean():.3f}), at or below lucent's on {int((np.array(values) <= lucent_shares).sum())} of them"
            for tool, values in shares.items() if tool != "lucent"
        ]
        sections.append("## Quality at 224 px over eight channels a layer\n\n" + table(rows, columns) + "\n\n" + "\n".join(lines))
        print(sections[-1], flush=True)
        write_report(sections)

    if "levers" not in skip:
        lever_steps = max(16, args.steps // 8)
        rows = []
        for label, extra in (
            ("plain fp32", {"fold_batchnorm": False, "channels_last": False}),
            ("+ folded BatchNorm", {"channels_last": False}),
            ("+ channels_last", {"channels_last": True}),
            ("default layout + bf16 autocast", {"autocast": "bfloat16"}),
            *((("default layout + fp16 autocast", {"autocast": "float16"}),) if args.device != "cpu" else ()),
        ):
            for size, upsample, channels in ((128, 224, [3]), (224, None, [3]), (128, 224, list(range(16)))):
                config = {**base, **extra, "steps": lever_steps, "layer": BATCH_LAYER, "channels": channels, "size": size, "upsample_to": upsample}
                row = score(run_one("featviz", config, workdir, peer_python), model)
                row["lever"] = label
                row["setting"] = f"{len(channels)} × {size} px" + (f" → {upsample}" if upsample else "")
                row["units_per_minute"] = units_per_minute(row)
                row["objective_mean"] = float(np.mean(row["objective"]))
                rows.append(row)
        columns = [("lever", "lever"), ("setting", "setting"), ("ms/step", "ms_per_step_median"), ("peak MB", "peak_mb"),
                   ("activation", "objective_mean"), ("held-out / natural", "held_out_vs_natural")]
        sections.append(f"## Levers (featviz, {lever_steps} steps, {BATCH_LAYER})\n\n" + table(rows, columns))
        print(sections[-1], flush=True)
        write_report(sections)

    if "defaults" not in skip:
        sections.append(defaults_section(model, args.steps, args.device))
        print(sections[-1], flush=True)
        write_report(sections)

    if "scaling" not in skip:
        rows = []
        for size, batch in [(s, 1) for s in (128, 224, 384, 512)] + [(128, b) for b in (4, 16, 64)]:
            config = {**base, "steps": args.scaling_steps, "layer": BATCH_LAYER, "channels": [c % 112 for c in range(batch)], "size": size, "upsample_to": None}
            row = run_one("featviz", config, workdir, peer_python)
            rows.append({"size": size, "batch": batch, "ms_per_step_median": row["ms_per_step_median"],
                         "ms_per_image_step": row["ms_per_step_median"] / batch, "peak_mb": row["peak_mb"]})
        columns = [("size", "size"), ("batch", "batch"), ("ms/step", "ms_per_step_median"), ("ms/image/step", "ms_per_image_step"), ("peak MB", "peak_mb")]
        sections.append(f"## Scaling (featviz, {BATCH_LAYER}, no upsampling, median of {args.scaling_steps} steps)\n\n" + table(rows, columns))
        print(sections[-1], flush=True)
        write_report(sections)

    print(write_report(sections))


if __name__ == "__main__":
    main()
