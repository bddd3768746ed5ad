"""
# Judging a render with numbers

`featviz.metrics.score` computes every quality figure of a render: the activation it reaches as rendered
and under held-out random transforms (on a scale where 1 is the best of 15 natural photos), and how
photo-like its power spectrum is. Here the default Fourier parameterization against raw pixels, on the same
channel, steps and seed.
"""
import os

import featviz
from featviz import metrics

QUICK = os.environ.get("FEATVIZ_DOCS_QUICK") == "1"  # the docs' CI build: few steps, small images
STEPS, SIZE = (24, 64) if QUICK else (256, 128)

model = featviz.load_model("efficientnet_lite0")
objective = "blocks.4.0.conv_pwl:12"
fourier = featviz.render(model, objective, param="fft", steps=STEPS, size=SIZE, seed=0, progress=False)
pixel = featviz.render(model, objective, param="pixel", steps=STEPS, size=SIZE, seed=0, progress=False)

# %%
# The table `featviz score` prints. The pixel image reaches about as much activation, keeps less of it
# under the held-out transforms, and has a flatter spectrum with more high-frequency energy.
for name, result in (("fft", fourier), ("pixel", pixel)):
    print(name)
    print(metrics.format_score(metrics.score(result.images, model, objective, samples=8)))
