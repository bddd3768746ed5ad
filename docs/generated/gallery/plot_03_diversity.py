"""
# Diversity: four faces of one channel

A channel often responds to several different things. Adding `objectives.diversity` to the channel pushes
the images of one batch apart in style (their Gram matrices at the layer), so each image shows a different
facet of what the channel likes.
"""
import os

import featviz
from featviz import metrics
from featviz import objectives as obj

QUICK = os.environ.get("FEATVIZ_DOCS_QUICK") == "1"  # the docs' CI build: few steps, small images
STEPS, SIZE = (24, 64) if QUICK else (256, 112)

model = featviz.load_model("efficientnet_lite0")
layer = "blocks.4.0.conv_pwl"
plain = featviz.render(model, obj.channel(layer, 12), batch=4, steps=STEPS, size=SIZE, seed=0, progress=False)

# %%
# The same batch with the diversity term; its weight is large because similarities are at most 1 while the
# channel's mean reaches tens.
diverse = featviz.render(model, obj.channel(layer, 12) + 100 * obj.diversity(layer), batch=4,
                         steps=STEPS, size=SIZE, seed=0, progress=False)

# %%
# `metrics.batch_diversity` measures it: 0 when all images are alike, up to 1.
print("without diversity:", round(metrics.batch_diversity(plain.images, model, layer), 3))
print("with diversity:   ", round(metrics.batch_diversity(diverse.images, model, layer), 3))
