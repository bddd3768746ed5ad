"""Rendering on a GPU: the same render as on the CPU, and autocast that keeps the objective.

Skipped where torch sees no CUDA device (CI has none); run on a GPU machine with
`python -m pytest -q tests/test_cuda.py`.
"""
import pytest
import torch
from PIL import Image

import featviz
from featviz.cli import main
from featviz_testing import tiny_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_render_on_cuda_starts_where_the_cpu_render_starts_and_returns_cpu_images():
    on_cpu = featviz.render(tiny_model(), ["2:1", "2:4"], steps=24, seed=5, progress=False)
    on_gpu = featviz.render(tiny_model(), ["2:1", "2:4"], steps=24, seed=5, device="cuda", progress=False)
    assert on_gpu.images.device.type == "cpu" and on_gpu.history.device.type == "cpu"
    assert torch.allclose(on_gpu.history[0], on_cpu.history[0], rtol=1e-3, atol=1e-4)
    assert torch.isfinite(on_gpu.images).all() and 0 <= on_gpu.images.min() and on_gpu.images.max() <= 1
    assert (on_gpu.history[-4:].mean(0) > on_gpu.history[:4].mean(0)).all()


@pytest.mark.parametrize("precision", [torch.bfloat16, torch.float16])
def test_autocast_on_cuda_reaches_the_float32_objective(lite0, precision):
    goal = "blocks.4.0.conv_pwl:3"
    full = featviz.render(lite0, goal, steps=96, size=128, seed=0, device="cuda", progress=False)
    mixed = featviz.render(lite0, goal, steps=96, size=128, seed=0, device="cuda", autocast=precision, progress=False)
    lite0.to("cpu")
    assert mixed.history.dtype == torch.float32
    reached, reference = mixed.history[-8:].mean(), full.history[-8:].mean()
    assert reached > 0.8 * reference, (precision, float(reached), float(reference))


def test_cli_renders_on_cuda_in_half_precision(capsys, tmp_path):
    out_file = tmp_path / "gpu.png"
    code = main([
        "render", "efficientnet_lite0", "blocks.3.0.conv_pwl:2", "--device", "cuda", "--precision", "fp16",
        "--steps", "16", "--size", "96", "--out", str(out_file), "--no-progress",
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.split() == [str(out_file)]
    assert Image.open(out_file).size == (96, 96)


def test_channels_last_stays_off_on_cuda_by_default():
    model = tiny_model()
    featviz.render(model, "2:1", steps=1, seed=0, device="cuda", progress=False, fold_batchnorm=False)
    assert not model.network[0].weight.is_contiguous(memory_format=torch.channels_last)
