"""Step time of a faceted render beside the plain objective on the same model (a script, not a test).

    python benchmarks/facet_speed.py [--steps 8] [--size 128] [--device cpu]

On efficientnet_lite0 with one `featviz.Renderer`: median milliseconds per step of a unit of blocks.5.3 (4
images) plain and faceted with a probe on blocks.3.2 and blocks.4.2 (the probe's weights are random: the step
time does not depend on them), then 8 units of blocks.5.3 (one per image) plain, faceted as one stack
(``facet(stack(units))``, one gradient for the batch) and as a stack of faceted units (one gradient per unit).
Ratios are against the plain objective measured in the same process.
"""
from __future__ import annotations

import argparse
import statistics

import torch

import featviz
from featviz.concepts import Probe
from featviz.objectives import channel, facet, stack

OBJECTIVE_LAYER = "blocks.5.3"
PROBE_LAYERS = {"blocks.3.2": 80, "blocks.4.2": 112}


def milliseconds_per_step(renderer: featviz.Renderer, goal, steps: int, size: int, batch: int | None) -> float:
    renderer.render(goal, steps=2, seed=0, size=size, batch=batch, progress=False)  # warm-up: binding, allocation
    times = []
    for repeat in range(3):
        result = renderer.render(goal, steps=steps, seed=repeat, size=size, batch=batch, progress=False)
        times.append(result.seconds / steps * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    model = featviz.load_model("efficientnet_lite0", device=args.device)
    generator = torch.Generator().manual_seed(0)
    weights = {layer: torch.randn(channels, generator=generator) * 0.05 for layer, channels in PROBE_LAYERS.items()}
    probe = Probe.from_weights(model, weights, name="random")
    renderer = featviz.Renderer(model)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device}, {args.steps} steps, {args.size} px")
    print("| objective | images | ms/step | vs plain |")
    print("|---|---|---|---|")
    unit = channel(OBJECTIVE_LAYER, 17)
    plain = milliseconds_per_step(renderer, unit, args.steps, args.size, 4)
    faceted = milliseconds_per_step(renderer, facet(unit, probe, strength=(0.0, 5.0)), args.steps, args.size, 4)
    print(f"| {OBJECTIVE_LAYER}:17 | 4 | {plain:.0f} | 1.00x |")
    print(f"| facet({OBJECTIVE_LAYER}:17), 2 probe layers | 4 | {faceted:.0f} | {faceted / plain:.2f}x |", flush=True)
    units = [channel(OBJECTIVE_LAYER, index) for index in range(8)]
    plain_stack = milliseconds_per_step(renderer, units, args.steps, args.size, None)  # a list renders as a stack
    facet_of_stack = milliseconds_per_step(renderer, facet(stack(units), probe, strength=5.0), args.steps, args.size, 8)
    stack_of_facets = milliseconds_per_step(
        renderer, [facet(item, probe, strength=5.0) for item in units], args.steps, args.size, None
    )
    print(f"| stack of 8 units | 8 | {plain_stack:.0f} | 1.00x |")
    print(f"| facet(stack of 8 units) | 8 | {facet_of_stack:.0f} | {facet_of_stack / plain_stack:.2f}x |")
    print(f"| stack of 8 faceted units | 8 | {stack_of_facets:.0f} | {stack_of_facets / plain_stack:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
