"""
# Combining objectives

Objectives add, subtract and scale like numbers. Here channel 12 of `blocks.4.0.conv_pwl` alone, together
with channel 3, without channel 3, and with a total-variation penalty that smooths the image. A list of
objectives renders one image each, in one batch.
"""
import os

import featviz
from featviz import objectives as obj

QUICK = os.environ.get("FEATVIZ_DOCS_QUICK") == "1"  # the docs' CI build: few steps, small images
STEPS, SIZE = (24, 64) if QUICK else (256, 128)

model = featviz.load_model("efficientnet_lite0")
layer = "blocks.4.0.conv_pwl"
goals = [
    obj.channel(layer, 12),
    obj.channel(layer, 12) + obj.channel(layer, 3),
    obj.channel(layer, 12) - obj.channel(layer, 3),
    obj.channel(layer, 12) - 20 * obj.total_variation(),
]
combined = featviz.render(model, goals, steps=STEPS, size=SIZE, seed=0, progress=False)
for name, value in zip(combined.objectives, combined.history[-1]):
    print(f"{name:50s} {float(value):8.2f}")

# %%
# Any function of the activations is an objective too: `T(layer)` is the layer's activation, channels-first.
# This one caps channel 12 at 4, so the image cannot win by making that channel ever larger.
capped = featviz.render(model, lambda T: T(layer)[:, 12].clamp(max=4.0).mean((1, 2)),
                        steps=STEPS, size=SIZE, seed=0, progress=False)
