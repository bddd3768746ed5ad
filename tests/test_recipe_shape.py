"""One shape for every recipe, ``recipe(model, target, inputs, *, options)``, with the render options in one
`RenderSettings`; the old call forms still work for one release and warn."""
import inspect
import warnings

import numpy as np
import pytest
import torch

from featviz import RenderSettings, recipes
from featviz.cli.common import add_model_arguments, add_render_arguments, render_settings
from featviz.errors import FeatvizError
from featviz.recipes import (
    activation_atlas, attribution, caricature, explain, interpolate, layer_activations, layer_factors, neuron_groups,
    render_factors, render_groups, spatial_activation_grid, style_transfer,
)
from featviz.renderer.calls import names_a_model

from featviz_testing import tiny_model

# Every recipe: what its first three parameters are (model first; the rest keyword-only).
RECIPES = {
    "activation_atlas": ["model", "layer", "images"],
    "sample_activations": ["model", "layer", "images"],
    "layer_factors": ["model", "layer", "images"],
    "render_factors": ["model", "factors"],
    "explain": ["model", "layer", "image"],
    "layer_activations": ["model", "layer", "image"],
    "neuron_groups": ["model", "layer", "image"],
    "attribution": ["model", "layer", "image"],
    "spatial_activation_grid": ["model", "layer", "image"],
    "render_groups": ["model", "groups"],
    "caricature": ["model", "layer", "image"],
    "accentuate": ["model", "objective", "image"],
    "style_transfer": ["model", "style", "content"],
    "interaction_grid": ["model", "units"],
    "interpolate": ["model", "unit_a", "unit_b"],
    "dream": ["model", "prompt_or_objective"],
    "sparse_concept_directions": ["model", "layer", "concepts"],
    "render_concept_directions": ["model", "found"],
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_takes_the_model_first_and_its_options_by_keyword(name):
    parameters = inspect.signature(getattr(recipes, name)).parameters.values()
    positional = [p.name for p in parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert positional == RECIPES[name]
    assert all(p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD)
               for p in parameters if p.name not in positional)


def test_what_counts_as_a_model_for_the_old_forms(tmp_path):
    photo = tmp_path / "cat.jpg"
    photo.write_bytes(b"")
    assert names_a_model("efficientnet_lite0") and names_a_model("timm:resnet18") and names_a_model(tiny_model())
    assert names_a_model("efficientnet_lite") is True  # a misspelt model gets the model's error, not a photo's
    assert not names_a_model(str(photo)) and not names_a_model("photos/missing.png") and not names_a_model(photo)
    assert not names_a_model(torch.rand(3, 8, 8)) and not names_a_model(np.zeros((8, 8, 3)))


def test_old_call_forms_warn_and_give_what_the_new_ones_give():
    model = tiny_model(size=32)
    image = torch.rand(3, 32, 48, generator=torch.Generator().manual_seed(0))
    with pytest.warns(DeprecationWarning, match=r"layer_activations\(image, model, layer\) is deprecated"):
        old = layer_activations(image, model, "2", image_size=32)
    new = layer_activations(model, "2", image, image_size=32)
    assert torch.equal(old.activations, new.activations)

    with pytest.warns(DeprecationWarning, match=r"call neuron_groups\(model, layer, image, \*, options\)"):
        old_groups = neuron_groups(image, model, "4", 3, image_size=32)  # groups was the 4th positional
    groups = neuron_groups(model, "4", image, groups=3, image_size=32)
    assert torch.equal(old_groups.maps, groups.maps)
    with pytest.warns(DeprecationWarning):
        old_target = attribution(image, model, "4", 2, image_size=32)
    assert old_target.value == attribution(model, "4", image, target=2, image_size=32).value

    with pytest.warns(DeprecationWarning, match=r"render_groups\(groups, model\)"):
        old_renders = render_groups(groups, model, steps=2, size=16, progress=False)
    assert torch.equal(old_renders.images, render_groups(model, groups, steps=2, size=16, progress=False).images)

    with pytest.warns(DeprecationWarning, match=r"spatial_activation_grid\(image, model, layer\)"):
        old_grid = spatial_activation_grid(image, model, "4", pool=8, image_size=32, steps=1, size=16, progress=False)
    new_grid = spatial_activation_grid(model, "4", image, pool=8, image_size=32, steps=1, size=16, progress=False)
    assert torch.equal(old_grid.result.images, new_grid.result.images)

    with pytest.warns(DeprecationWarning, match=r"caricature\(image, model, layer\)"):
        old_caricature = caricature(image, model, "2", size=16, steps=2, progress=False)
    assert torch.equal(old_caricature.images, caricature(model, "2", image, size=16, steps=2, progress=False).images)

    # style_transfer's old form left the model out: it defaulted to efficientnet_lite0, and still does
    with pytest.warns(DeprecationWarning, match=r"style_transfer\(content, style, model\)"):
        painted = style_transfer(image, image.flip(-1), model, style_layers=["0"], content_layer="2", size=16,
                                 steps=2, progress=False)
    assert torch.equal(painted.images, style_transfer(model, image.flip(-1), image, style_layers=["0"],
                                                      content_layer="2", size=16, steps=2, progress=False).images)

    with pytest.warns(DeprecationWarning, match=r"interpolate\(model, unit_a, unit_b, frames\)"):
        frames = interpolate(model, "2:0", "2:1", 3, steps=2, size=16, progress=False)
    assert len(frames.images) == 3

    # the new forms do not warn; two values for one argument is Python's TypeError, as before
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer_activations(model, "2", image, image_size=32)
    with pytest.raises(TypeError, match="multiple values for argument 'model'"):
        layer_activations(image, model, "2", model=model)


def test_old_positional_options_of_atlas_and_factors_still_work(tmp_path):
    model = tiny_model(size=32)
    with pytest.warns(DeprecationWarning, match=r"activation_atlas\(model, layer, images, grid\)"):
        atlas = activation_atlas(model, "2", "shipped", 2, levels=1, samples=20, layout="tsne", render=False,
                                 image_size=32, progress=False)
    assert [level.grid for level in atlas.levels] == [2]
    with pytest.warns(DeprecationWarning, match=r"layer_factors\(model, layer, images, count\)"):
        found = layer_factors(model, "2", "shipped", 2, samples=40, image_size=32)
    assert len(found) == 2
    with pytest.warns(DeprecationWarning, match=r"render_factors\(model, factors, steps, size, seed\)"):
        old = render_factors(model, found, 2, 16, 3, progress=False)
    new = render_factors(model, found, settings=RenderSettings(steps=2, size=16, seed=3, progress=False))
    assert torch.equal(old.images, new.images) and old.seed == 3


def test_settings_and_keywords_are_one_thing_and_mistakes_are_named():
    model = tiny_model(size=32)
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    groups = neuron_groups(model, "4", image, groups=2, image_size=32)
    by_keywords = render_groups(model, groups, steps=3, size=16, seed=4, progress=False)
    settings = RenderSettings(steps=3, size=16, seed=4, progress=False)
    assert torch.equal(by_keywords.images, render_groups(model, groups, settings=settings).images)
    # keywords change the given settings; the recipe's own defaults apply when none are given
    assert render_groups(model, groups, settings=settings, steps=1).history.shape[0] == 1
    assert explain(model, "4", image, groups=2, image_size=32, steps=1, size=16, progress=False).renders.steps == 1
    with pytest.raises(FeatvizError, match="render_groups\\(\\) got an unexpected keyword 'step'; render settings are steps"):
        render_groups(model, groups, step=3)
    with pytest.raises(FeatvizError, match="steps must be an int >= 1"):
        RenderSettings(steps=0)
    with pytest.raises(FeatvizError, match="optimizer must be one of adam, clampsgd"):
        RenderSettings(optimizer="sgd")
    with pytest.raises(FeatvizError, match="precision must be one of fp32, bf16, fp16"):
        RenderSettings(precision="half")
    with pytest.raises(FeatvizError, match="unknown render setting 'colour'"):
        RenderSettings().replace(colour=1)
    assert RenderSettings(size=(32, 32)).size == 32 and RenderSettings(size=(24, 32)).size == (24, 32)
    assert RenderSettings(optimizer="clampsgd", lr=0.5).optimizer_factory().keywords["lr"] == 0.5


def test_the_cli_builds_its_settings_from_the_common_options():
    import argparse

    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    add_render_arguments(parser, out="x", steps=64, size=80)
    args = parser.parse_args(["tiny", "--steps", "7", "--seed", "3", "--no-progress"])
    assert render_settings(args) == RenderSettings(steps=7, size=80, seed=3, device="cpu", progress=False)
    assert render_settings(args, device="cuda").device == "cuda"


def test_build_gallery_takes_settings_and_warns_on_its_old_positional_form(tmp_path):
    from PIL import Image

    from featviz.gallery import build_gallery, unit_paths

    model = tiny_model(size=32)
    with pytest.warns(DeprecationWarning, match=r"build_gallery\(model, layers, units\) is deprecated"):
        old = build_gallery(model, "2", "0-1", out=tmp_path / "old", steps=2, size=16, progress=False)
    new = build_gallery(model, "2", units="0-1", out=tmp_path / "new",
                        settings=RenderSettings(steps=2, size=16, progress=False))
    assert old.rendered == new.rendered == 2
    for site in ("old", "new"):
        with Image.open(tmp_path / site / unit_paths("2", 1).positive) as image:
            assert image.size == (16, 16)
    with Image.open(tmp_path / "old" / unit_paths("2", 1).positive) as a, \
            Image.open(tmp_path / "new" / unit_paths("2", 1).positive) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(FeatvizError, match=r"build_gallery\(\) got an unexpected keyword 'step'"):
        build_gallery(model, "2", step=1, out=tmp_path / "none")
    assert not (tmp_path / "none").exists()
