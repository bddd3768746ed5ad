"""Speed and memory of dictionary features (SAEs) on this machine, and what a 16k-feature SAE on every layer of
CLIP ViT-B/32 would take.

1. Rendering: per-step time of rendering a batch of 8 dictionary features of Lite0's ``blocks.5.0.conv_pwl``
   against a batch of 8 of its channels, same size, steps and seeds, interleaved (median of 3 runs each). The
   feature's objective adds one (8 x 192) product per position to the channel's gather.
2. Training: `featviz.concepts.dictionary.fit_dictionary` (overcomplete TopK SAE, Adam, batch 1024) on random
   non-negative vectors of widths 192 (Lite0 block 5) and 768 (ViT-B/32) with 4x and 16k features: activation
   vectors per second, and the process's peak resident memory (each size in its own process).
3. On paper: FLOPs of one training step per vector (encoder and decoder are dense matmuls in overcomplete, 3x for
   forward + backward), scaled to 12 layers x 100M tokens, at this CPU's measured rate and at 30% of an H100's
   dense TF32 peak (about 990 TFLOP/s with sparsity, 495 dense).

Run: python benchmarks/dictionary.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import time

import torch

import featviz
from featviz import objectives
from featviz.concepts.dictionary import fit_dictionary
from featviz.objectives import Dictionary

LAYER = "blocks.5.0.conv_pwl"


def render_seconds(model, goals, steps: int, size: int) -> float:
    started = time.perf_counter()
    featviz.render(model, goals, steps=steps, size=size, seed=0, progress=False)
    return time.perf_counter() - started


def rendering(steps: int, size: int, repeats: int) -> dict:
    model = featviz.load_model("efficientnet_lite0")
    channels = featviz.hooks.bind_layers(model, [LAYER]).shapes[LAYER][1]
    torch.manual_seed(0)
    dictionary = Dictionary(torch.randn(2 * channels, channels), layer=LAYER, model_name=model.name,
                            fingerprint=featviz.models.weights_fingerprint(model))
    features = [objectives.dictionary_feature(dictionary, unit) for unit in range(8)]
    neurons = [objectives.channel(LAYER, unit) for unit in range(8)]
    render_seconds(model, neurons, 2, size)  # warm-up
    times = {"features": [], "channels": []}
    for _ in range(repeats):
        times["channels"].append(render_seconds(model, neurons, steps, size) / steps)
        times["features"].append(render_seconds(model, features, steps, size) / steps)
    result = {name: statistics.median(values) for name, values in times.items()}
    result["ratio"] = result["features"] / result["channels"]
    return result


def _train(queue, dim: int, concepts: int, steps: int, batch: int) -> None:
    torch.manual_seed(0)
    vectors = torch.rand(20000, dim).relu()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    fit_dictionary(vectors, concepts, "topk", top_k=32, steps=steps, batch_size=batch)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put({"dim": dim, "concepts": concepts, "vectors_per_second": steps * batch / seconds,
               "peak_rss_mib": peak / 1024, "rss_added_mib": (peak - base) / 1024})


def training(sizes, steps: int, batch: int) -> list[dict]:
    context = multiprocessing.get_context("spawn")
    found = []
    for dim, concepts in sizes:
        queue = context.Queue()
        process = context.Process(target=_train, args=(queue, dim, concepts, steps, batch))
        process.start()
        found.append(queue.get())
        process.join()
    return found


def flops_per_vector(dim: int, concepts: int) -> float:
    return 3 * 2 * 2 * dim * concepts  # encoder + decoder matmuls, multiply-add = 2 FLOPs, forward + backward = 3x


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    steps, repeats = (16, 1) if args.quick else (48, 3)
    results = {"rendering": rendering(steps, 128, repeats)}
    print(json.dumps(results["rendering"], indent=1), flush=True)
    train_steps = 10 if args.quick else 30
    results["training"] = training([(192, 768), (768, 3072), (768, 16384)], train_steps, 1024)
    for row in results["training"]:
        row["cpu_gflops"] = row["vectors_per_second"] * flops_per_vector(row["dim"], row["concepts"]) / 1e9
        print(json.dumps(row), flush=True)
    measured = results["training"][-1]
    tokens, layers = 100e6, 12
    total = layers * tokens * flops_per_vector(768, 16384)
    parameters = 2 * 768 * 16384 + 16384 + 768
    results["paper"] = {
        "flops_per_vector": flops_per_vector(768, 16384), "total_flops": total,
        "cpu_days": total / (measured["cpu_gflops"] * 1e9) / 86400,
        "h100_hours_at_30pct_tf32": total / (0.3 * 495e12) / 3600,
        "parameters_per_layer": parameters, "adam_state_mib_per_layer": 4 * parameters * 4 / 2**20,
        "activations_gib_per_layer_fp16": tokens * 768 * 2 / 2**30,
    }
    print(json.dumps(results["paper"], indent=1))


if __name__ == "__main__":
    main()
