"""End to end on the embedded default model with its real ImageNet weights."""

import torch

import featviz
from featviz.dataset import shipped_photos
from featviz.hooks import ActivationCapture

LAYER, CHANNEL = "blocks.3.0.conv_pwl", 17


def channel_mean(model, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), ActivationCapture(model, [LAYER]) as capture:
        return capture.run(images)[LAYER][:, CHANNEL].mean(dim=(1, 2))


def test_short_render_excites_its_channel_far_more_than_any_photo(lite0):
    size = 128
    result = featviz.render(lite0, f"{LAYER}:{CHANNEL}", steps=48, size=size, seed=0, progress=False)
    rendered = channel_mean(lite0, result.images)
    photos = channel_mean(lite0, shipped_photos(size))
    assert rendered.item() > 2 * photos.max().item(), (rendered, photos)
    assert result.history[-1, 0] > result.history[0, 0]
