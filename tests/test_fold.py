import torch
from torch import nn

import featviz
from featviz.hooks import ActivationCapture
from featviz.models.fold import conv_batchnorm_pairs, fold_batchnorm


def batchnorm_count(model) -> int:
    return sum(isinstance(module, nn.BatchNorm2d) for module in model.network.modules())


def randomized_batchnorm(*modules: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    network = nn.Sequential(*modules)
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(-2, 2)
            module.bias.data.uniform_(-1, 1)
    return network


def test_folding_keeps_every_layer_value_and_removes_batchnorm_work(lite0):
    folded = fold_batchnorm(lite0, keep=["blocks.4.0.conv_pwl"])
    assert folded is not lite0
    assert batchnorm_count(folded) < batchnorm_count(lite0) // 4
    assert "blocks.4.1.bn1.act" in dict(folded.network.named_modules()), "layer names survive folding"
    images = torch.rand(2, 3, 96, 96)
    layers = ["blocks.4.0.conv_pwl", "blocks.4.1.bn1", "blocks.5.0.bn2"]
    with torch.no_grad(), ActivationCapture(lite0, layers) as before, ActivationCapture(folded, layers) as after:
        expected, actual = before.run(images), after.run(images)
    for name in layers:
        assert torch.allclose(expected[name], actual[name], atol=1e-4, rtol=1e-4), name
    assert batchnorm_count(lite0) == 49, "the user's model is not changed"


def test_a_conv_whose_output_is_read_keeps_its_batchnorm():
    model = featviz.load_model(randomized_batchnorm(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)), input_size=(16, 16))
    folded = fold_batchnorm(model, keep=["0"])
    assert isinstance(folded.network[1], nn.BatchNorm2d) and isinstance(folded.network[4], nn.Identity)
    images = torch.rand(2, 3, 16, 16)
    assert torch.allclose(model(images), folded(images), atol=1e-5)


def test_a_conv_output_used_twice_is_not_folded():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    network = Twice()
    randomized_batchnorm(network)
    model = featviz.load_model(network, input_size=(16, 16))
    assert conv_batchnorm_pairs(network, torch.rand(1, 3, 16, 16)) == [("conv", "bn")]
    assert fold_batchnorm(model) is model, "the check against the original rejects a fold that changes values"


def test_render_with_and_without_folding_agree(lite0):
    goal = "blocks.2.0.conv_pwl:3"
    folded = featviz.render(lite0, goal, steps=3, size=64, seed=0, progress=False)
    plain = featviz.render(lite0, goal, steps=3, size=64, seed=0, progress=False, fold_batchnorm=False)
    assert torch.allclose(folded.history, plain.history, rtol=1e-3, atol=1e-3)
