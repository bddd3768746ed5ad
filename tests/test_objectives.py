import functools
import math

import pytest
import torch
import torch.nn.functional as F

from featviz.errors import FeatvizError
from featviz.hooks import Layout, channels_first, map_shape
from featviz.objectives import (
    Objective,
    alignment,
    blur,
    channel,
    channel_interpolate,
    class_logit,
    deepdream,
    direction,
    direction_neuron,
    diversity,
    l1,
    l2,
    layer,
    neuron,
    objective,
    parse,
    stack,
    total_variation,
)
from featviz.objectives.shorthand import registered_shorthand

LAYER = "blocks.4.0.conv_pwl"


def random_acts(batch=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {
        LAYER: torch.randn(batch, 8, 3, 5, generator=generator),
        "blocks.2": torch.rand(batch, 6, 4, 4, generator=generator),
        "@image": torch.rand(batch, 3, 6, 6, generator=generator),
        "@output": torch.randn(batch, 5, 1, 1, generator=generator),
    }


def shapes_of(acts):
    return {name: value.shape for name, value in acts.items()}


class FakeModel:
    labels = ["tench", "goldfish", "great white shark", "tiger cat", "hen"]

    def label_index(self, label):
        if label not in self.labels:
            raise FeatvizError(f"unknown class label '{label}'")
        return self.labels.index(label)


# ---------------------------------------------------------------- layout (decided in featviz.hooks)


def test_layouts_are_read_as_declared_without_copy():
    activation = torch.randn(1, 7, 7, 12)
    result = channels_first(activation, "nhwc")
    assert result.shape == (1, 12, 7, 7) and result.data_ptr() == activation.data_ptr()
    assert channels_first(torch.randn(1, 12, 7, 7), "nchw").shape == (1, 12, 7, 7)
    tokens = torch.randn(2, 197, 6)
    grid = channels_first(tokens, Layout("nlc", 1, (14, 14)))
    assert torch.equal(grid[1, 4, 3, 9], tokens[1, 1 + 3 * 14 + 9, 4])
    sequence_first = tokens.transpose(0, 1)
    assert torch.equal(channels_first(sequence_first, Layout("lnc", 1, (14, 14))), grid)
    row = torch.randn(2, 35, 3)
    assert torch.equal(channels_first(row, "nlc")[1, 2, 0], row[1, :, 2])
    assert channels_first(torch.randn(3, 10), "nc").shape == (3, 10, 1, 1)
    assert map_shape((1, 40, 30, 40), "nhwc") == (1, 40, 40, 30)
    with pytest.raises(FeatvizError, match="valid: nchw, nhwc, nlc"):
        channels_first(activation, "hwc")
    with pytest.raises(FeatvizError, match="cannot be read as nhwc"):
        channels_first(torch.randn(1, 5, 3), "nhwc")


# ---------------------------------------------------------------- units


def test_channel_is_spatial_mean_in_any_layout():
    acts = random_acts()
    values = channel(LAYER, 3)(acts)
    assert values.shape == (4,)
    assert torch.allclose(values, acts[LAYER][:, 3].mean((1, 2)))


def test_neuron_reads_row_y_column_x_on_non_square_map():
    acts = random_acts()
    assert torch.equal(neuron(LAYER, 2, x=4, y=2)(acts), acts[LAYER][:, 2, 2, 4])
    assert torch.equal(neuron(LAYER, 2, x=0, y=1)(acts), acts[LAYER][:, 2, 1, 0])
    assert torch.equal(neuron(LAYER, 2)(acts), acts[LAYER][:, 2, 1, 2]), "default is the centre (H//2, W//2)"
    assert torch.equal(neuron(LAYER, 2, x=3)(acts), acts[LAYER][:, 2, 1, 3])


def test_layer_is_mean_of_squares():
    acts = random_acts()
    assert torch.allclose(layer(LAYER)(acts), acts[LAYER].square().mean((1, 2, 3)))
    assert deepdream is layer


def test_direction_matches_hand_computation():
    acts = random_acts()
    vector = torch.randn(8, generator=torch.Generator().manual_seed(3))
    activation = acts[LAYER]
    dots = torch.zeros(4, 3, 5)
    cosines = torch.zeros(4, 3, 5)
    for b in range(4):
        for row in range(3):
            for column in range(5):
                a = activation[b, :, row, column]
                dots[b, row, column] = a @ vector
                cosines[b, row, column] = a @ vector / (a.norm() * vector.norm())
    assert torch.allclose(direction(LAYER, vector)(acts), dots.mean((1, 2)), atol=1e-5)
    expected = (dots * cosines.clamp(min=0.1) ** 2).mean((1, 2))
    assert torch.allclose(direction(LAYER, vector, cossim_pow=2)(acts), expected, atol=1e-5)
    at_point = direction_neuron(LAYER, vector, x=4, y=0, cossim_pow=1)(acts)
    assert torch.allclose(at_point, dots[:, 0, 4] * cosines[:, 0, 4].clamp(min=0.1), atol=1e-5)
    assert torch.allclose(direction_neuron(LAYER, vector.tolist())(acts), dots[:, 1, 2], atol=1e-5)


def test_class_logit_by_index_and_by_label():
    acts = random_acts()
    assert torch.equal(class_logit(3)(acts), acts["@output"][:, 3, 0, 0])
    goal = class_logit("tiger cat")
    assert goal.name == "class:tiger cat"
    with pytest.raises(FeatvizError, match="bind"):
        goal(acts)
    goal.bind(FakeModel(), shapes_of(acts))
    assert torch.equal(goal(acts), acts["@output"][:, 3, 0, 0])


# ---------------------------------------------------------------- bind errors


def test_bind_channel_out_of_range_names_valid_range():
    acts = {LAYER: torch.zeros(1, 80, 14, 14)}
    with pytest.raises(FeatvizError) as error:
        channel(LAYER, 500).bind(None, shapes_of(acts))
    assert str(error.value) == "channel 500 is out of range for layer 'blocks.4.0.conv_pwl' with 80 channels; valid: 0-79"
    channel(LAYER, 79).bind(None, shapes_of(acts))


def test_bind_neuron_position_and_direction_length():
    shapes = shapes_of(random_acts())
    with pytest.raises(FeatvizError, match=r"x=5 .* 3x5 map .*valid x: 0-4"):
        neuron(LAYER, 1, x=5, y=0).bind(None, shapes)
    with pytest.raises(FeatvizError, match=r"y=3 .*valid y: 0-2"):
        neuron(LAYER, 1, x=0, y=3).bind(None, shapes)
    neuron(LAYER, 1, x=4, y=2).bind(None, shapes)
    with pytest.raises(FeatvizError, match="has 7 entries but layer 'blocks.4.0.conv_pwl' has 8 channels"):
        direction(LAYER, torch.ones(7)).bind(None, shapes)
    with pytest.raises(FeatvizError, match="valid x: 0-4"):
        direction_neuron(LAYER, torch.ones(8), x=9).bind(None, shapes)


def test_bind_class_errors():
    shapes = shapes_of(random_acts())
    with pytest.raises(FeatvizError, match="unknown class label 'zebra'"):
        class_logit("zebra").bind(FakeModel(), shapes)
    with pytest.raises(FeatvizError, match="class 7 is out of range for '@output' with 5 classes; valid: 0-4"):
        class_logit(7).bind(FakeModel(), shapes)
    with pytest.raises(FeatvizError, match="label names"):
        class_logit("goldfish").bind(None, shapes)


def test_bind_unknown_layer_suggests_closest_and_composites_bind_children():
    shapes = shapes_of(random_acts())
    with pytest.raises(FeatvizError, match="closest: blocks.4.0.conv_pwl"):
        channel("blocks.4.0.conv_pwx", 1).bind(None, shapes)
    with pytest.raises(FeatvizError, match="channel 9 is out of range"):
        (channel(LAYER, 1) + 0.5 * channel(LAYER, 9)).bind(None, shapes)
    with pytest.raises(FeatvizError, match="channel 9 is out of range"):
        stack([channel(LAYER, 1), channel(LAYER, 9)]).bind(None, shapes)
    with pytest.raises(FeatvizError, match="channel 6 is out of range for layer 'blocks.2'"):
        channel_interpolate(LAYER, 1, "blocks.2", 6).bind(None, shapes)


def test_constructor_rejects_bad_arguments():
    with pytest.raises(FeatvizError, match="must be an int >= 0"):
        channel(LAYER, -1)
    with pytest.raises(FeatvizError, match="must be an int >= 0"):
        neuron(LAYER, 0, x=1.5)
    with pytest.raises(FeatvizError, match="1-D"):
        direction(LAYER, torch.ones(2, 4))


# ---------------------------------------------------------------- batch objectives


def gram_similarities(activation):
    grams = [a.flatten(1) @ a.flatten(1).t() for a in activation]
    count = len(grams)
    similarity = torch.zeros(count, count)
    for i in range(count):
        for j in range(count):
            similarity[i, j] = F.cosine_similarity(grams[i].flatten(), grams[j].flatten(), dim=0)
    return similarity


def test_diversity_is_negated_mean_similarity_to_others():
    acts = random_acts()
    similarity = gram_similarities(acts["blocks.2"])
    expected = torch.stack([-(similarity[i].sum() - similarity[i, i]) / 3 for i in range(4)])
    assert torch.allclose(diversity("blocks.2")(acts), expected, atol=1e-5)
    # two images, two views each: views of one image (b, b + 2) are not compared
    with_views = diversity("blocks.2", images=2)(acts)
    expected_views = torch.stack([-(similarity[i, (i + 1) % 4] + similarity[i, (i + 3) % 4]) / 2 for i in range(4)])
    assert torch.allclose(with_views, expected_views, atol=1e-5)
    identical = {"blocks.2": acts["blocks.2"][:1].repeat(3, 1, 1, 1)}
    assert torch.allclose(diversity("blocks.2")(identical), torch.full((3,), -1.0), atol=1e-5)


def test_diversity_gradient_ascent_makes_elements_less_similar():
    torch.manual_seed(0)
    activation = (torch.rand(3, 6, 4, 4) + 1.0).requires_grad_()
    goal = diversity("blocks.2")
    before = goal({"blocks.2": activation}).sum()
    before.backward()
    with torch.no_grad():
        stepped = activation + 0.05 * activation.grad / activation.grad.norm()
    after = goal({"blocks.2": stepped}).sum()
    assert after > before
    assert gram_similarities(stepped).sum() < gram_similarities(activation.detach()).sum()


def test_alignment_matches_hand_computation_and_pulls_neighbours_together():
    acts = random_acts()
    activation = acts["blocks.2"]
    expected = torch.zeros(4)
    for i in range(4):
        for j in range(4):
            if i != j:
                expected[i] -= 0.5 * 2.0 ** -abs(i - j) * (activation[i] - activation[j]).square().mean()
    assert torch.allclose(alignment("blocks.2")(acts), expected, atol=1e-5)
    assert torch.allclose(alignment("blocks.2")({"blocks.2": activation[:1].repeat(3, 1, 1, 1)}), torch.zeros(3), atol=1e-5)
    moving = activation.clone().requires_grad_()
    alignment("blocks.2")({"blocks.2": moving}).sum().backward()
    with torch.no_grad():
        stepped = moving + 0.1 * moving.grad
    assert (stepped[0] - stepped[1]).norm() < (activation[0] - activation[1]).norm()


def test_alignment_with_views_compares_same_view_only():
    activation = torch.randn(4, 2, 3, 3)  # 2 images x 2 views
    expected = torch.zeros(4)
    for i, j in ((0, 1), (2, 3)):
        penalty = 0.5 * 0.5 * (activation[i] - activation[j]).square().mean()
        expected[i] -= penalty
        expected[j] -= penalty
    assert torch.allclose(alignment("x", images=2)({"x": activation}), expected, atol=1e-5)
    with pytest.raises(FeatvizError, match="images"):
        alignment("x", images=3)({"x": activation})


def test_channel_interpolate_weights():
    acts = random_acts()
    first = acts[LAYER][:, 1].mean((1, 2))
    second = acts["blocks.2"][:, 5].mean((1, 2))
    fractions = torch.tensor([0, 1 / 3, 2 / 3, 1])
    expected = (1 - fractions) * first + fractions * second
    assert torch.allclose(channel_interpolate(LAYER, 1, "blocks.2", 5)(acts), expected, atol=1e-6)
    with_views = channel_interpolate(LAYER, 1, "blocks.2", 5, images=2)(acts)
    fractions = torch.tensor([0.0, 1.0, 0.0, 1.0])
    assert torch.allclose(with_views, (1 - fractions) * first + fractions * second, atol=1e-6)


# ---------------------------------------------------------------- penalties


def test_penalties_match_hand_computation_and_are_positive():
    image = torch.tensor([[[[0.0, 1.0, 0.0], [1.0, 1.0, 1.0]]]])  # (1, 1, 2, 3)
    acts = {"@image": image}
    vertical = (1 + 0 + 1) / 3
    horizontal = (1 + 1 + 0 + 0) / 4
    assert torch.allclose(total_variation()(acts), torch.tensor([vertical + horizontal]))
    assert torch.allclose(l1()(acts), torch.tensor([4 / 6]))
    assert torch.allclose(l1(constant=0.5)(acts), torch.tensor([0.5]))
    assert torch.allclose(l2(epsilon=0.0)(acts), torch.tensor([math.sqrt(4 / 6)]))
    assert torch.allclose(l2(constant=1.0, epsilon=0.0)(acts), torch.tensor([math.sqrt(2 / 6)]))
    flat = {"@image": torch.full((2, 3, 5, 5), 0.3)}
    for penalty in (total_variation(), blur()):
        assert torch.allclose(penalty(flat), torch.zeros(2), atol=1e-7)
    noisy = {"@image": torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(1))}
    for penalty in (total_variation(), l1(), l2(), blur()):
        assert (penalty(noisy) > 0).all()


def test_blur_gradient_points_away_from_detached_blur():
    image = torch.rand(1, 2, 5, 5, generator=torch.Generator().manual_seed(2)).requires_grad_()
    blur()({"@image": image}).sum().backward()
    blurred = F.avg_pool2d(image.detach(), 3, stride=1, padding=1, count_include_pad=False)
    assert torch.allclose(image.grad, (image.detach() - blurred) / image[0].numel(), atol=1e-7)


def test_subtracting_total_variation_smooths_the_image():
    image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(4)).requires_grad_()
    goal = -total_variation()
    before = goal({"@image": image})
    before.sum().backward()
    with torch.no_grad():
        stepped = image + 0.01 * image.grad.sign()
    assert goal({"@image": stepped}) > before


# ---------------------------------------------------------------- algebra


def test_algebra_values_and_names():
    acts = random_acts()
    a, b = channel(LAYER, 1), channel("blocks.2", 2)
    va, vb = a(acts), b(acts)
    cases = {
        "0.5*blocks.4.0.conv_pwl:1 + blocks.2:2": (0.5 * a + b, 0.5 * va + vb),
        "blocks.4.0.conv_pwl:1 - blocks.2:2": (a - b, va - vb),
        "2*blocks.4.0.conv_pwl:1": (2 * a, 2 * va),
        "0.5*blocks.4.0.conv_pwl:1": (a / 2, va / 2),
        "-blocks.4.0.conv_pwl:1 + 1": (1 - a, 1 - va),
        "-blocks.4.0.conv_pwl:1": (-a, -va),
        "blocks.4.0.conv_pwl:1 + 3": (a + 3, va + 3),
        "blocks.4.0.conv_pwl:1 * blocks.2:2": (a * b, va * vb),
        "blocks.4.0.conv_pwl:1 / blocks.2:2": (a / b, va / vb),
        "2 / blocks.2:2": (2 / b, 2 / vb),
        "3*blocks.4.0.conv_pwl:1 + 3*blocks.2:2": ((a + b) * 3, 3 * (va + vb)),
        "(blocks.4.0.conv_pwl:1 + blocks.2:2) * blocks.2:2": ((a + b) * b, (va + vb) * vb),
        "blocks.4.0.conv_pwl:1 - 0.01*total_variation(@image)": (
            a - 0.01 * total_variation(), va - 0.01 * total_variation()(acts)
        ),
    }
    for name, (combined, expected) in cases.items():
        assert isinstance(combined, Objective)
        assert combined.name == name
        assert torch.allclose(combined(acts), expected, atol=1e-6), name
    assert (a - 0.01 * total_variation()).layers == frozenset({LAYER, "@image"})
    assert (-(a + b) + a).name == "-blocks.4.0.conv_pwl:1 - blocks.2:2 + blocks.4.0.conv_pwl:1"


def test_sum_of_ten_thousand_objectives_is_flat():
    acts = {LAYER: torch.randn(2, 8, 3, 5, dtype=torch.float64).requires_grad_()}
    means = acts[LAYER].detach().mean((2, 3))
    goals = [channel(LAYER, i % 8) for i in range(10000)]
    total = sum(goals)
    assert len(total.terms) == 10000
    assert torch.allclose(total(acts), means.sum(1) * 1250)
    total.bind(None, shapes_of(acts))
    total(acts).sum().backward()
    assert torch.allclose(acts[LAYER].grad, torch.full_like(acts[LAYER], 1250 / 15))
    assert "(10000 terms)" in total.name
    # mixed terms take the generic path, subtraction flattens too
    mixed = functools.reduce(lambda left, right: left - right, [neuron(LAYER, i % 8, x=i % 5, y=i % 3) for i in range(10000)])
    expected = acts[LAYER].detach()[:, 0, 0, 0].clone()
    for i in range(1, 10000):
        expected -= acts[LAYER].detach()[:, i % 8, i % 3, i % 5]
    assert torch.allclose(mixed(acts), expected)
    assert mixed.name.endswith(" ... (10000 terms)")


def test_grouped_channel_sum_equals_separate_evaluation():
    acts = random_acts()
    weights = [0.5, -2.0, 3.0]
    grouped = sum(w * channel(LAYER, c) for w, c in zip(weights, [1, 6, 1])) + 0.25 * layer("blocks.2")
    separate = sum(w * acts[LAYER][:, c].mean((1, 2)) for w, c in zip(weights, [1, 6, 1]))
    assert torch.allclose(grouped(acts), separate + 0.25 * acts["blocks.2"].square().mean((1, 2, 3)), atol=1e-6)
    many = sum(channel(LAYER, c) for c in range(8))  # more than half the channels: the mean-then-pick path
    assert torch.allclose(many(acts), acts[LAYER].mean((2, 3)).sum(1), atol=1e-5)


# ---------------------------------------------------------------- stack


def test_stack_equals_per_element_evaluation_with_views():
    generator = torch.Generator().manual_seed(5)
    views, count = 3, 4
    acts = {LAYER: torch.randn(views * count, 8, 3, 5, generator=generator)}
    units = [channel(LAYER, c) for c in (0, 7, 3, 3)]
    values = stack(units)(acts)
    assert values.shape == (12,)
    for j in range(12):
        assert torch.allclose(values[j], units[j % count](acts)[j])
    generic = stack([1.0 * unit for unit in units])(acts)  # sums: the generic, sliced path
    assert torch.allclose(values, generic, atol=1e-6)


def test_stacked_neurons_gather_equals_generic_path():
    acts = random_acts(batch=8)
    neurons = [neuron(LAYER, 1, x=4, y=2), neuron(LAYER, 5), neuron(LAYER, 0, x=0), neuron(LAYER, 7, y=0)]
    gathered = stack(neurons)(acts)
    generic = stack([n + 0 for n in neurons])(acts)
    assert torch.allclose(gathered, generic)
    expected = torch.stack([neurons[j % 4](acts)[j] for j in range(8)])
    assert torch.equal(gathered, expected)


def test_stacked_class_labels_resolve_at_bind_and_gather():
    acts = random_acts(batch=8)
    classes = stack([class_logit("hen"), class_logit(1), class_logit("tench"), class_logit("tiger cat")])
    with pytest.raises(FeatvizError, match="bind"):
        classes(acts)
    classes.bind(FakeModel(), shapes_of(acts))
    expected = acts["@output"][torch.arange(8), torch.tensor([4, 1, 0, 3]).repeat(2), 0, 0]
    assert torch.equal(classes(acts), expected)
    summed = class_logit("hen") + class_logit("goldfish")
    summed.bind(FakeModel(), shapes_of(acts))
    assert torch.allclose(summed(acts), acts["@output"][:, 4, 0, 0] + acts["@output"][:, 1, 0, 0])


def test_stack_of_mixed_and_batch_objectives():
    acts = random_acts()
    goals = [class_logit(2), channel(LAYER, 1) - total_variation(), diversity("blocks.2"), layer("blocks.2")]
    values = stack(goals)(acts)
    expected = torch.stack([goals[j](acts)[j] for j in range(4)])
    assert torch.allclose(values, expected, atol=1e-6)
    assert stack(goals).layers == frozenset({"@output", LAYER, "@image", "blocks.2"})


def test_stack_gradients_reach_only_each_elements_unit():
    activation = torch.randn(4, 8, 3, 5, requires_grad=True)
    stack([channel(LAYER, 2), channel(LAYER, 6)])({LAYER: activation}).sum().backward()
    touched = activation.grad.abs().sum((2, 3)) > 0
    expected = torch.zeros(4, 8, dtype=torch.bool)
    expected[[0, 2], 2] = True
    expected[[1, 3], 6] = True
    assert torch.equal(touched, expected)


def test_stack_rejects_a_batch_that_is_not_a_multiple():
    with pytest.raises(FeatvizError, match="multiple of 3"):
        stack([channel(LAYER, 0), channel(LAYER, 1), channel(LAYER, 2)])(random_acts(batch=4))
    with pytest.raises(FeatvizError, match="at least one"):
        stack([])


# ---------------------------------------------------------------- shorthand


def test_parse_forms():
    acts = random_acts()
    (single,) = parse("blocks.4.0.conv_pwl:3")
    assert single.name == "blocks.4.0.conv_pwl:3"
    assert torch.equal(single(acts), channel(LAYER, 3)(acts))
    (point,) = parse("blocks.4.0.conv_pwl:3@4,2")
    assert torch.equal(point(acts), acts[LAYER][:, 3, 2, 4])
    assert [goal.name for goal in parse("blocks.4.0.conv_pwl:2-4")] == [f"{LAYER}:{c}" for c in (2, 3, 4)]
    assert [goal.name for goal in parse("blocks.4.0.conv_pwl:7,0,5")] == [f"{LAYER}:{c}" for c in (7, 0, 5)]
    (whole,) = parse("blocks.2")
    assert torch.allclose(whole(acts), layer("blocks.2")(acts))
    (by_index,) = parse("class:3")
    assert torch.equal(by_index(acts), acts["@output"][:, 3, 0, 0])
    (by_label,) = parse("class:great white shark")
    by_label.bind(FakeModel(), shapes_of(acts))
    assert torch.equal(by_label(acts), acts["@output"][:, 2, 0, 0])
    (negated,) = parse("-blocks.4.0.conv_pwl:3")
    assert torch.equal(negated(acts), -acts[LAYER][:, 3].mean((1, 2)))
    assert [goal.name for goal in parse("-blocks.2:0-1")] == ["-blocks.2:0", "-blocks.2:1"]
    assert parse("  features.10_a:1  ")[0].name == "features.10_a:1"
    assert parse("0.conv:2")[0].name == "0.conv:2"


@pytest.mark.parametrize(
    "text", ["", "-", "blocks.4:", "blocks.4:x", "blocks..4:1", "blocks.4:1@2", "blocks.4:1-", "class:", "a:b:c", "--blocks.4:1"]
)
def test_parse_rejects_malformed_text(text):
    with pytest.raises(FeatvizError) as error:
        parse(text)
    message = str(error.value)
    # every registered form is named (objective modules may register more), the built-in ones in this order
    assert message.startswith(f"malformed objective '{text}': expected LAYER:CHANNEL, LAYER:CHANNEL@X,Y, LAYER:A-B, LAYER")
    assert message.endswith(", class:LABEL, text:PROMPT or text@LAYER:PROMPT")
    assert all(syntax in message for syntax in registered_shorthand())


def test_parse_rejects_backwards_range_and_objective_helper():
    with pytest.raises(FeatvizError, match="runs backwards; write blocks.4:3-5"):
        parse("blocks.4:5-3")
    goal = channel(LAYER, 1)
    assert objective(goal) is goal
    assert objective("blocks.4.0.conv_pwl:1@0,0").name == "blocks.4.0.conv_pwl:1@0,0"
    with pytest.raises(FeatvizError, match="names 3 objectives"):
        objective("blocks.4:0-2")
    with pytest.raises(FeatvizError, match="must be a string"):
        objective(3)


@pytest.fixture
def fresh_shorthand(monkeypatch):
    """The shorthand registry as it is, restored after the test."""
    from featviz.objectives import shorthand

    monkeypatch.setattr(shorthand, "_PATTERNS", list(shorthand._PATTERNS))
    monkeypatch.setattr(shorthand, "_PREFIXES", dict(shorthand._PREFIXES))
    return shorthand


def test_a_registered_objective_is_parsed_by_the_shorthand(fresh_shorthand):
    # A new objective module registers its own forms; the grammar learns them with no other change.
    @fresh_shorthand.register_shorthand("LAYER:A^B", rf"(?P<layer>{fresh_shorthand.LAYER_PATTERN}):(?P<a>\d+)\^(?P<b>\d+)")
    def contrast(match):
        return channel(match["layer"], int(match["a"])) - channel(match["layer"], int(match["b"]))

    @fresh_shorthand.register_shorthand("top:LAYER", prefix="top:")
    def top(body):
        return [channel(body.strip(), 0), channel(body.strip(), 1)] if body.strip() else None

    acts = random_acts()
    (goal,) = parse("blocks.4.0.conv_pwl: 3 ^ 1")
    assert torch.allclose(goal(acts), acts[LAYER][:, 3].mean((1, 2)) - acts[LAYER][:, 1].mean((1, 2)))
    assert [g.name for g in parse("top: blocks.2")] == ["blocks.2:0", "blocks.2:1"]
    (negated,) = parse("-blocks.4.0.conv_pwl:3^1")
    assert torch.allclose(negated(acts), -goal(acts))
    with pytest.raises(FeatvizError, match=r"expected LAYER:CHANNEL, .*LAYER:A\^B, .*top:LAYER"):
        parse("top:")
    assert parse("blocks.4.0.conv_pwl:3")[0].name == "blocks.4.0.conv_pwl:3"  # the built-in forms still apply


def test_registering_a_taken_or_half_given_shorthand_is_refused(fresh_shorthand):
    with pytest.raises(FeatvizError, match="'class:' is already registered"):
        fresh_shorthand.register_shorthand("class:NAME", prefix="class:")
    with pytest.raises(FeatvizError, match="'LAYER' is already registered"):
        fresh_shorthand.register_shorthand("LAYER", r"x")
    with pytest.raises(FeatvizError, match="exactly one of pattern= or prefix="):
        fresh_shorthand.register_shorthand("odd", r"x", prefix="odd:")
