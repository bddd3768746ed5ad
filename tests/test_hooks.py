import pytest
import torch
import torch.nn.functional as F
from torch import nn

from featviz.errors import FeatvizError
from featviz.hooks import OUTPUT, ActivationCapture, RedirectedReLU, format_layer_table, layer_table
from featviz_testing import CallCounter


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), CallCounter(nn.Conv2d(8, 8, 3, padding=1)), nn.ReLU(), CallCounter(nn.Conv2d(8, 4, 1))
    )


def test_capture_returns_requested_layers_and_stops_after_the_deepest():
    net = small_net()
    with ActivationCapture(net, ["0", "2"]) as capture:
        acts = capture.run(torch.rand(2, 3, 8, 8))
    assert set(acts) == {"0", "2"}
    assert acts["2"].shape == (2, 8, 8, 8)
    assert net[2].calls == 1
    assert net[4].calls == 0, "modules after the deepest requested layer must not run"


def test_capture_runs_whole_network_when_output_is_requested():
    net = small_net()
    with ActivationCapture(net, ["0", OUTPUT]) as capture:
        acts = capture.run(torch.rand(1, 3, 8, 8))
    assert acts[OUTPUT].shape == (1, 4, 8, 8)
    assert net[4].calls == 1


def test_hooks_are_removed_even_when_the_forward_raises():
    net = small_net()
    with pytest.raises(RuntimeError):
        with ActivationCapture(net, ["2"]) as capture:
            capture.run(torch.rand(1, 5, 8, 8))  # wrong channel count
    assert all(not module._forward_hooks for module in net.modules())


def test_hooks_are_only_on_requested_layers():
    net = small_net()
    with ActivationCapture(net, ["2"]):
        hooked = [name for name, module in net.named_modules() if module._forward_hooks]
    assert hooked == ["2"]


def test_tuple_outputs_use_the_first_tensor():
    class Pair(nn.Module):
        def forward(self, x):
            return x * 2, x * 3

    net = nn.Sequential(Pair())
    with ActivationCapture(net, ["0"]) as capture:
        acts = capture.run(torch.ones(1, 3, 2, 2))
    assert torch.equal(acts["0"], torch.full((1, 3, 2, 2), 2.0))


def test_unknown_layer_names_closest():
    with pytest.raises(FeatvizError, match="closest"):
        ActivationCapture(_wrapped(small_net()), ["22"])


def _wrapped(net):
    from featviz.models import load_model

    return load_model(net, input_size=(8, 8))


class FunctionalNet(nn.Module):
    """A unit that is dead for every input in [0, 1]: each ReLU style must still pass gradient early on."""

    def __init__(self, style: str):
        super().__init__()
        self.style = style
        self.conv = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.conv.weight.fill_(0.1)
            self.conv.bias.fill_(-5.0)
        self.relu = nn.ReLU(inplace=style == "inplace")
        self.relu6 = nn.ReLU6()

    def forward(self, x):
        x = self.conv(x)
        if self.style == "functional":
            return F.relu(x)
        if self.style == "tensor":
            return x.relu()
        if self.style == "relu6":
            return self.relu6(x)
        return self.relu(x)


@pytest.mark.parametrize("style", ["module", "inplace", "functional", "tensor", "relu6"])
def test_redirected_relu_gives_dead_units_a_gradient(style):
    net = FunctionalNet(style)
    image = torch.rand(1, 3, 4, 4, requires_grad=True)
    (-net(image).mean()).backward()
    assert image.grad.abs().sum() == 0, "the unit is dead: no ordinary gradient"
    image.grad = None
    with RedirectedReLU():
        out = net(image)
    assert torch.equal(out, torch.zeros_like(out)), "forward values are unchanged"
    (-out.mean()).backward()
    assert image.grad.abs().sum() > 0
    assert (image.grad < 0).all(), "the redirected gradient raises the dead unit's input"


def test_redirected_relu_keeps_ordinary_gradient_when_alive():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU())
    with torch.no_grad():
        net[0].bias.fill_(1.0)
    image = torch.rand(2, 3, 4, 4, requires_grad=True)
    (-net(image).sum()).backward()
    expected = image.grad.clone()
    image.grad = None
    with RedirectedReLU():
        out = net(image)
    (-out.sum()).backward()
    assert expected.abs().sum() > 0
    assert torch.allclose(image.grad, expected)


def test_layer_table_lists_shapes_and_channels():
    rows = layer_table(_wrapped(small_net()))
    by_name = {row.name: row for row in rows}
    assert by_name["0"].shape == (1, 8, 8, 8) and by_name["0"].channels == 8
    assert by_name["4"].channels == 4
    text = format_layer_table(rows)
    assert text.splitlines()[0].split() == ["layer", "type", "output", "shape", "layout", "channels"]
    assert "Conv2d" in text
