"""
# Text prompts on an ImageNet model

EfficientNet-Lite0 has a text tower: a sentence encoder mapped onto its class weights, so
`"text:a photo of a lemon"` is an objective on it (the first use on a machine fits the map, which takes a
minute or two, then it is cached). It knows the 1000 ImageNet classes and prompts close to them; for
open-vocabulary text, use a CLIP model, as in the last block.
"""
import os

import featviz
from featviz import objectives as obj

QUICK = os.environ.get("FEATVIZ_DOCS_QUICK") == "1"  # the docs' CI build: few steps, small images
STEPS, SIZE = (24, 64) if QUICK else (256, 128)

model = featviz.load_model("efficientnet_lite0")
prompts = featviz.render(model, ["text:a photo of a lemon", "text:a photo of a volcano"], steps=STEPS, size=SIZE,
                         seed=0, progress=False)
print(prompts.objectives, prompts.history[-1])

# %%
# Prompts can be weighted: towards a lemon and away from a banana.
weighted = featviz.render(model, obj.text({"a photo of a lemon": 1.0, "a photo of a banana": -0.5}),
                          steps=STEPS, size=SIZE, seed=0, progress=False)

# %%
# The same code runs on CLIP. `open_clip:featviz-tiny-ViT` is a tiny CLIP with random weights (it makes no
# meaningful image, but runs anywhere); with real weights, for example OpenAI's ViT-B/32 file, load
# `featviz.load_model("open_clip:ViT-B-32", weights="ViT-B-32.pt")` instead: see the Text page.
clip = featviz.load_model("open_clip:featviz-tiny-ViT", weights="random")
tiny = featviz.render(clip, "text:a photo of a lemon", steps=4, progress=False)
print(clip.text.encode(["a photo of a lemon"]).shape)
