"""
# Channels of one layer

Render eight channels of `blocks.4.0.conv_pwl` (a middle layer of EfficientNet-Lite0) at once: a list of
objectives renders as one batch, one objective per image, and image `i` is the same computation as a render of
its objective alone with seed `seed + i`: the same starting image, the same random transforms, and a gradient
that no other image of the batch changes. The pixels agree up to float32 rounding, which the optimization
amplifies (see the end).
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
# One channel on its own, with the seed its place in the batch gave it. A convolution sums in another order for
# a batch of eight than for one image, so float32 rounds differently: after one step the two images differ by
# about 1e-7 (of a pixel range of 1), and every step amplifies the difference, to the visible one printed
# after all the steps. In float64 (`load_model(..., dtype=torch.float64)`) they are equal bit for bit.
alone = featviz.render(model, "blocks.4.0.conv_pwl:3", steps=STEPS, size=SIZE, seed=3, progress=False)
print(float((alone.images[0] - channels.images[3]).abs().max()))   # after all the steps


def batch_vs_alone(steps):
    batch = featviz.render(model, "blocks.4.0.conv_pwl:0-7", steps=steps, size=SIZE, seed=0, progress=False)
    single = featviz.render(model, "blocks.4.0.conv_pwl:3", steps=steps, size=SIZE, seed=3, progress=False)
    return float((single.images[0] - batch.images[3]).abs().max())


print(batch_vs_alone(1))                                              # after one step
