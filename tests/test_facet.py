"""Faceted feature visualization: featviz.objectives.facet (the objective's value and gradient, strengths across
the batch, composition, renders, errors)."""
import functools

import pytest
import torch
from torch import nn

import featviz
from featviz.concepts import Probe
from featviz.models import weights_fingerprint
from featviz.errors import FeatvizError
from featviz.hooks import ActivationCapture
from featviz.models import load_model
from featviz.objectives import channel, facet, stack, total_variation
from featviz.objectives.binding import bind_objective
from featviz_testing import tiny_model

SIZE = (32, 40)  # non-square: activation maps are 32x40, 16x20


def make_probe(model, weights, name="t"):
    return Probe(weights=weights, bias={layer: 0.1 for layer in weights}, model_name=model.name,
                 fingerprint=weights_fingerprint(model), name=name)


@pytest.fixture(scope="module")
def model():
    return tiny_model(size=32)


@pytest.fixture(scope="module")
def probe(model):
    generator = torch.Generator().manual_seed(0)
    return make_probe(model, {"1": torch.randn(8, generator=generator), "3": torch.randn(8, generator=generator)})


def images(batch=3, seed=1):
    return torch.rand(batch, 3, *SIZE, generator=torch.Generator().manual_seed(seed)).requires_grad_()


def evaluate(model, goal, x, autocast=False):
    bound = bind_objective(model, goal, size=SIZE)
    with ActivationCapture(model, bound.target.layers, layouts=bound.layouts) as capture:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            acts = capture.run(x)
        acts = {name: value.float() for name, value in acts.items()}
        return bound.target(acts)


def test_value_and_gradient_follow_the_formula(model, probe):
    """f + s_i * mean_l w_l·(g_l ⊙ relu(∂f/∂g_l)), the gradient held constant, against a hand-written version."""
    x = images()
    value = evaluate(model, facet(channel("4", 2), probe, strength=(1.0, 3.0)), x)
    (gradient,) = torch.autograd.grad(value.sum(), x)

    net = model.network
    y = images()
    first = net[1](net[0]((y - model.mean) / model.std))
    third = net[3](net[2](first))
    f = net[4](third)[:, 2].mean((1, 2))
    filters = torch.autograd.grad(f.sum(), [first, third], retain_graph=True)
    terms = [(probe.weights[layer].view(1, -1, 1, 1) * g * torch.relu(d)).sum((1, 2, 3))
             for layer, g, d in zip(("1", "3"), (first, third), filters)]
    expected = f + torch.tensor([1.0, 2.0, 3.0]) * (terms[0] + terms[1]) / 2
    (plain_gradient,) = torch.autograd.grad(f.sum(), y, retain_graph=True)
    (expected_gradient,) = torch.autograd.grad(expected.sum(), y)

    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(gradient, expected_gradient, rtol=1e-4, atol=1e-9)
    assert not torch.allclose(gradient, plain_gradient, rtol=1e-3, atol=0), "the facet term counts"


class ToChannelsLast(nn.Module):
    def forward(self, x):
        return x.permute(0, 2, 3, 1)


class ToChannelsFirst(nn.Module):
    def forward(self, x):
        return x.permute(0, 3, 1, 2)


@pytest.mark.parametrize("autocast", [False, True])
def test_gradient_through_nhwc_layers_in_place_changes_and_autocast(autocast):
    """Probe layers read through a permuted view (nhwc), copied before an in-place ReLU, or cast by autocast."""
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), ToChannelsLast(), nn.Linear(8, 8),
                            ToChannelsFirst(), nn.ReLU(), nn.Conv2d(8, 6, 3, stride=2, padding=1))
    model = load_model(network, input_size=(32, 32))
    probe = make_probe(model, {"0": torch.randn(8), "3": torch.randn(8)})
    goal = facet(channel("6", 2), probe, strength=(1.0, 3.0))
    x = images()
    for _ in range(2):  # the first pass learns that layer 0 is changed in place and must be copied
        value = evaluate(model, goal, x, autocast)
    (gradient,) = torch.autograd.grad(value.sum(), x)

    y = images()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        conv = network[0]((y - model.mean) / model.std)
        linear = network[3](torch.relu(conv).permute(0, 2, 3, 1))
        f = network[6](torch.relu(linear.permute(0, 3, 1, 2)))[:, 2].float().mean((1, 2))
    filters = torch.autograd.grad(f.sum(), [conv, linear], retain_graph=True)
    terms = [(probe.weights[layer].view(1, -1, 1, 1) * g.float() * torch.relu(d.float())).sum((1, 2, 3))
             for layer, g, d in zip(("0", "3"), (conv, linear.permute(0, 3, 1, 2)), (filters[0], filters[1].permute(0, 3, 1, 2)))]
    expected = f + torch.tensor([1.0, 2.0, 3.0]) * (terms[0] + terms[1]) / 2
    (expected_gradient,) = torch.autograd.grad(expected.sum(), y)
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(gradient, expected_gradient, rtol=1e-3, atol=1e-8)


def test_strengths_spread_across_images_and_views(model, probe):
    spread = facet(channel("4", 2), probe, strength=(0.0, 3.0))
    assert spread.strengths(4).tolist() == [0.0, 1.0, 2.0, 3.0]
    with_views = facet(channel("4", 2), probe, strength=(2.0, 4.0), images=3)
    assert with_views.strengths(6).tolist() == [2.0, 3.0, 4.0, 2.0, 3.0, 4.0]  # view-major: k * B + b
    assert facet(channel("4", 2), probe, strength=(2.0, 4.0)).strengths(1).tolist() == [2.0]
    of_stack = facet(stack([channel("4", c) for c in range(3)]), probe, strength=(0.0, 1.0))
    assert of_stack.strengths(6).tolist() == [0.0, 0.5, 1.0, 0.0, 0.5, 1.0]  # a stack of 3 counts 3 images
    with pytest.raises(FeatvizError, match="images=<images per batch>"):
        with_views.strengths(4)

    x = images(batch=4)
    plain = evaluate(model, channel("4", 2), x)
    unit = evaluate(model, facet(channel("4", 2), probe, strength=1.0), x) - plain
    spread_value = evaluate(model, spread, x) - plain
    torch.testing.assert_close(spread_value, torch.tensor([0.0, 1.0, 2.0, 3.0]) * unit)
    assert (unit.abs() > 0).all()


def test_composes_with_stack_algebra_and_penalties(model, probe):
    x = images(batch=2)
    units = [channel("4", 0), channel("4", 3)]
    of_stack = evaluate(model, facet(stack(units), probe, strength=2.0), x)
    stacked = evaluate(model, stack([facet(unit, probe, strength=2.0) for unit in units]), x)
    torch.testing.assert_close(of_stack, stacked)
    goal = 0.5 * facet("4:0", probe, strength=(0.0, 2.0)) - 0.01 * total_variation() + 1.0
    assert goal.name == "0.5*(facet(4:0, t, 0-2)) - 0.01*total_variation(@image) + 1"
    result = featviz.render(model, goal, steps=2, seed=0, batch=2, size=SIZE, progress=False)
    assert result.images.shape == (2, 3, *SIZE) and torch.isfinite(result.history).all()
    # the article's variant: an alpha channel and its transforms (the "facet" preset)
    alpha = featviz.param.create("fft", (64, 80), batch=2, alpha=True, seed=0)
    result = featviz.render(model, facet(channel("4", 1), probe, strength=(0.0, 2.0)), param=alpha, transforms="facet",
                            steps=2, progress=False)
    assert result.images.shape == (2, 4, 64, 80) and torch.isfinite(result.history).all()


def test_facet_raises_the_probe_score_in_renders(model):
    """A probe on one channel of layer 3: a faceted render scores higher on it than the same render at strength 0."""
    weights = torch.zeros(8)
    weights[0] = 1.0
    probe = make_probe(model, {"3": weights})
    options = dict(steps=12, seed=0, batch=2, size=SIZE, progress=False, transforms="none",
                   optimizer=functools.partial(torch.optim.Adam, lr=0.2))
    plain = featviz.render(model, facet(channel("4", 1), probe, strength=0.0), **options)
    faceted = featviz.render(model, facet(channel("4", 1), probe, strength=30.0), **options)
    before, after = probe.score_images(model, plain.images), probe.score_images(model, faceted.images)
    assert (after > before + 1e-3).all(), (before, after)


def test_mistakes_raise_one_line_errors(model, probe, tmp_path):
    with pytest.raises(FeatvizError, match="does not depend on probe layer '3'.*before the objective's layers \\(1\\)"):
        evaluate(model, facet(channel("1", 0), make_probe(model, {"3": torch.ones(8)}), strength=1.0), images())
    with pytest.raises(FeatvizError, match="7 weights for layer '3' but the layer has 8 channels"):
        bind_objective(model, facet(channel("4", 0), make_probe(model, {"3": torch.ones(7)})), size=SIZE)
    other = tiny_model(size=32, seed=1)
    with pytest.raises(FeatvizError, match="was fitted on .* not on"):
        bind_objective(other, facet(channel("4", 0), probe), size=SIZE)
    with pytest.raises(FeatvizError, match="strength must be a number or a \\(low, high\\) pair"):
        facet(channel("4", 0), probe, strength=(1.0, 2.0, 3.0))
    with pytest.raises(FeatvizError, match="strength must be finite"):
        facet(channel("4", 0), probe, strength=float("nan"))
    with pytest.raises(FeatvizError, match="takes a featviz.concepts.Probe"):
        facet(channel("4", 0), {"3": torch.ones(8)})
    with pytest.raises(FeatvizError, match="use the facet's .objective"):
        with torch.no_grad():
            evaluate(model, facet(channel("4", 0), probe), images())
    path = probe.save(tmp_path / "probe.pt")
    from_path = facet("4:0", path, strength=1.0)  # a saved probe's path and a shorthand objective
    assert from_path.probe.layers == ("1", "3") and from_path.objective.name == "4:0"
