"""
# Text prompts on an ImageNet model

EfficientNet-Lite0 has a text tower grounded in its own classes: a prompt becomes a distribution over the 1000
ImageNet classes (by a sentence encoder's similarity to their names and definitions), and its objective is that
mixture of the class weight vectors. An exact class name is exactly its class; a description is the classes it
describes; a prompt that names no class warns. For open-vocabulary text, use a CLIP model, as in the last block.
"""
import os

import featviz
from featviz import objectives as obj

QUICK = os.environ.get("FEATVIZ_DOCS_QUICK") == "1"  # the docs' CI build: few steps, small images
STEPS, SIZE = (24, 64) if QUICK else (256, 128)

model = featviz.load_model("efficientnet_lite0")
for prompt in ("a photo of a lemon", "a photo of a volcano", "a sour yellow citrus fruit"):
    print(model.text.resolve(prompt))            # what each prompt became
prompts = featviz.render(model, ["text:a photo of a lemon", "text:a photo of a volcano"], steps=STEPS, size=SIZE,
                         seed=0, progress=False)
print(prompts.objectives, prompts.history[-1])

# %%
# Prompts can be weighted: towards a lemon and away from a banana.
weighted = featviz.render(model, obj.text({"a photo of a lemon": 1.0, "a photo of a banana": -0.5}),
                          steps=STEPS, size=SIZE, seed=0, progress=False)

# %%
# The same code runs on CLIP. `open_clip:featviz-tiny-ViT` is a tiny CLIP with random weights: it runs
# anywhere but makes no meaningful image, so none is shown here. With real weights, for example OpenAI's
# ViT-B/32 file, load `featviz.load_model("open_clip:ViT-B-32", weights="ViT-B-32.pt")` instead: see the Text page.
clip = featviz.load_model("open_clip:featviz-tiny-ViT", weights="random")
print(featviz.render(clip, "text:a photo of a lemon", steps=4, progress=False).images.shape)
print(clip.text.encode(["a photo of a lemon"]).shape)
