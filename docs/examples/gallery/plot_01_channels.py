"""
# Channels of one layer

Render eight channels of `blocks.4.0.conv_pwl` (a middle layer of EfficientNet-Lite0) at once: a list of
objectives renders as one batch, one objective per image, and image `i` is exactly the image that a render
of its objective alone with seed `seed + i` would make.
"""
import os

import featviz

QUICK = os.environ.get("FEATVIZ_DOCS_QUICK") == "1"  # the docs' CI build: few steps, small images
STEPS, SIZE = (24, 64) if QUICK else (256, 128)

model = featviz.load_model("efficientnet_lite0")
channels = featviz.render(model, "blocks.4.0.conv_pwl:0-7", steps=STEPS, size=SIZE, seed=0, progress=False)

# %%
# `history` holds each image's objective value at every step; the last row is where each one ended.
print(channels.objectives)
print(channels.history[-1])

# %%
# One channel on its own, with the seed its place in the batch gave it, is the same image.
alone = featviz.render(model, "blocks.4.0.conv_pwl:3", steps=STEPS, size=SIZE, seed=3, progress=False)
print(float((alone.images[0] - channels.images[3]).abs().max()))
