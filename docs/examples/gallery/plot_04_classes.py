"""
# Classes, and whether other models see them

`"class:NAME"` maximizes a class's logit. A class visualization is convincing when *other* networks also
recognize it: `featviz.metrics.transferability` asks EfficientNet-Lite1 and Lite2, which have other input
sizes and weights, where they rank the class.
"""
import os

import featviz
from featviz import metrics

QUICK = os.environ.get("FEATVIZ_DOCS_QUICK") == "1"  # the docs' CI build: few steps, small images
STEPS, SIZE = (24, 64) if QUICK else (256, 128)

model = featviz.load_model("efficientnet_lite0")
classes = ["goldfish", "lemon", "volcano", "fire engine"]
rendered = featviz.render(model, [f"class:{name}" for name in classes], steps=STEPS, size=SIZE, seed=0,
                          progress=False)

# %%
# Each judge's rank of the intended class (0 = its first choice) and its probability.
for judge in metrics.transferability(rendered.images, classes, ["efficientnet_lite1", "efficientnet_lite2"]):
    for name, rank, probability in zip(classes, judge.rank.tolist(), judge.probability.tolist()):
        print(f"{judge.judge:20s} {name:12s} rank {rank:4d}  probability {probability:.2f}")
