"""
# What a channel responds to in real photos

A feature visualization shows what drives a unit; dataset examples show where it fires in real images.
`featviz.dataset.collect_activations` runs the model once over a folder (here the 15 photos that ship with
scikit-image and scikit-learn) and keeps each unit's top images and the spot where it fires most.
"""
import os

import featviz
from featviz.dataset import ImageFolder, collect_activations, shipped_photo_paths

QUICK = os.environ.get("FEATVIZ_DOCS_QUICK") == "1"  # the docs' CI build: few steps, small images
STEPS, SIZE = (24, 64) if QUICK else (256, 128)

model = featviz.load_model("efficientnet_lite0")
layer, unit = "blocks.4.0.conv_pwl", 12
stats = collect_activations(model, ImageFolder(shipped_photo_paths(), 224), [layer])[layer]
best = stats.top_examples(unit)[:3]
for example in best:
    print(f"{os.path.basename(example.path):24s} max {example.value:6.2f} at row, column {example.position}")

# %%
# The three best photos, cropped around the spot where the channel fires most.
crops = [example.crop(128) for example in best]

# %%
# The channel's visualization, for comparison.
rendered = featviz.render(model, f"{layer}:{unit}", steps=STEPS, size=SIZE, seed=0, progress=False)
