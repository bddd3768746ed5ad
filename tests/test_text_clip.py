"""CLIP whole: loading every weight format that can be made offline, text objectives, exact text directions and
zero-shot neuron ranking, on tiny random-init CLIPs (open_clip's vocabulary, widths of 16-64)."""
import json
import warnings

import pytest
import safetensors.torch
import torch
from torch import nn

import featviz
from featviz import objectives
from featviz.cli import main
from featviz.errors import FeatvizError
from featviz.hooks import bind_layers
from featviz.models.sources.open_clip import _open_clip
from featviz.text.prompts import prompt_embeddings
from featviz.text import find_text_direction, rank_neurons
from featviz.text.directions import _linearized, reference_images

TINY = ("featviz-tiny-ViT", "featviz-tiny-RN")


@pytest.fixture(scope="module")
def tiny_clips():
    open_clip = _open_clip()
    torch.manual_seed(0)
    return {architecture: open_clip.create_model(architecture).eval() for architecture in TINY}


def same_model(model, clip, quick_gelu_reference=None, tolerance=1e-5):
    """The featviz model embeds images and text as ``clip`` does."""
    open_clip = _open_clip()
    reference = clip if quick_gelu_reference is None else quick_gelu_reference
    images = torch.rand(2, 3, 64, 64)
    tokens = open_clip.get_tokenizer("featviz-tiny-ViT")(["a dog", "a red car"])
    with torch.no_grad():
        normalized = (images - model.mean) / model.std  # the featviz model takes images in [0, 1]
        image_close = torch.allclose(model(images), reference.encode_image(normalized), atol=tolerance)
        text_close = torch.allclose(model.text.encode(["a dog", "a red car"]), reference.encode_text(tokens, normalize=True), atol=tolerance)
    return image_close and text_close


@pytest.mark.parametrize("architecture", TINY)
def test_random_clip_keeps_layer_names_and_carries_its_text_tower(architecture):
    model = featviz.load_model(f"open_clip:{architecture}", weights="random")
    assert model.input_size == (64, 64)
    assert torch.allclose(model.mean.flatten(), torch.tensor([0.48145466, 0.4578275, 0.40821073]))
    embeddings = model.text.encode(["a photo of a dog", "a photo of a cat"])
    assert embeddings.shape == (2, 32) and torch.allclose(embeddings.norm(dim=1), torch.ones(2))
    assert model.text.image_layer == "@output" and model.text.logit_scale == pytest.approx(1 / 0.07, rel=1e-4)
    assert "text" not in " ".join(model.layer_names()), "layer names are the image tower's"


def test_checkpoints_safetensors_image_tower_and_local_dir(tiny_clips, tmp_path):
    clip = tiny_clips["featviz-tiny-ViT"]
    torch.save(clip.state_dict(), tmp_path / "clip.pt")
    assert same_model(featviz.load_model("open_clip:featviz-tiny-ViT", weights=tmp_path / "clip.pt"), clip)
    safetensors.torch.save_file({key: value.contiguous() for key, value in clip.state_dict().items()},
                                str(tmp_path / "clip.safetensors"))
    assert same_model(featviz.load_model("open_clip:featviz-tiny-ViT", weights=tmp_path / "clip.safetensors"), clip)
    torch.save(clip.visual.state_dict(), tmp_path / "tower.pt")
    tower_only = featviz.load_model("open_clip:featviz-tiny-ViT", weights=tmp_path / "tower.pt")
    assert tower_only.text is None
    with pytest.raises(FeatvizError, match="has no text tower"):
        featviz.render(tower_only, "text:a dog", steps=1, progress=False)
    folder = tmp_path / "local"
    folder.mkdir()
    config = json.loads(open(_open_clip().factory._MODEL_CONFIG_PATHS[-1] / "featviz-tiny-ViT.json").read())
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": {}}))
    safetensors.torch.save_file({key: value.contiguous() for key, value in clip.state_dict().items()},
                                str(folder / "open_clip_model.safetensors"))
    assert same_model(featviz.load_model(f"open_clip:local-dir:{folder}"), clip)
    with pytest.raises(FeatvizError, match="is not a folder"):
        featviz.load_model(f"open_clip:local-dir:{tmp_path / 'missing'}")


def _openai_archive(state, path):
    """A TorchScript archive holding ``state`` under OpenAI's key names, as OpenAI's CLIP releases are."""
    root = nn.Module()
    for key, value in state.items():
        *parents, leaf = key.split(".")
        node = root
        for part in parents:
            if not hasattr(node, part):
                node.add_module(part, nn.Module())
            node = getattr(node, part)
        node.register_buffer(leaf, value.clone())
    torch.jit.save(torch.jit.script(root), str(path))


@pytest.mark.parametrize("architecture", TINY)
def test_openai_jit_archives(tiny_clips, tmp_path, architecture):
    clip = tiny_clips[architecture]
    _openai_archive(clip.state_dict(), tmp_path / "openai.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = featviz.load_model(f"open_clip:{architecture}", weights=tmp_path / "openai.pt")
    # OpenAI's models use QuickGELU, which open_clip builds from an archive, and it rounds the weights through
    # float16 as OpenAI stored them
    reference = _open_clip().create_model(architecture, force_quick_gelu=True).eval()
    reference.load_state_dict(clip.state_dict())
    assert same_model(model, clip, quick_gelu_reference=reference, tolerance=2e-3)


def test_full_rn50_config_renders_a_text_objective_at_random_init():
    model = featviz.load_model("open_clip:RN50", weights="random")
    result = featviz.render(model, "text:a photo of a dog", steps=2, size=(96, 128), seed=0, progress=False)
    assert result.images.shape == (1, 3, 96, 128) and torch.isfinite(result.history).all()


def test_text_objectives_rise_and_combine():
    model = featviz.load_model("open_clip:featviz-tiny-ViT", weights="random")
    goal = objectives.parse("text:a dog|a cat:-0.5")[0]
    assert goal.name == "text:a dog|a cat:-0.5" and goal.prompts == {"a dog": 1.0, "a cat": -0.5}
    combined = goal - 0.01 * objectives.total_variation() + 0.1 * objectives.diversity("transformer.resblocks.0")
    result = featviz.render(model, combined, steps=24, batch=2, seed=0, progress=False)
    assert (result.history[-1] > result.history[0]).all()
    ensemble = objectives.text(["dog"], templates=objectives.language.ENSEMBLE)
    single = featviz.render(model, ensemble, steps=2, seed=0, progress=False)
    assert single.objectives == ["text:dog"]
    with pytest.raises(FeatvizError, match="malformed text objective"):
        objectives.parse("text:|a cat:-0.5")
    with pytest.raises(FeatvizError, match="has no text tower"):
        featviz.render(nn.Sequential(nn.Conv2d(3, 4, 3)), "text:a dog", steps=1, progress=False)


def test_text_objective_is_the_mean_cosine_with_the_prompts():
    model = featviz.load_model("open_clip:featviz-tiny-RN", weights="random")
    goal = objectives.text({"a dog": 1.0, "a cat": -0.5})
    from featviz.objectives.binding import bind_objective

    bound = bind_objective(model, goal)
    images = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        embedding = torch.nn.functional.normalize(model(images), dim=1)
        prompts = prompt_embeddings(model, ["a dog", "a cat"])
        expected = embedding @ prompts[0] - 0.5 * embedding @ prompts[1]
        value = bound.target({"@output": model(images)[:, :, None, None]})
    assert torch.allclose(value, expected, atol=1e-5)


@pytest.mark.parametrize("architecture, layer", [("featviz-tiny-RN", "layer4"), ("featviz-tiny-ViT", "transformer.resblocks.1")])
def test_exact_directions_raise_the_similarity_at_the_predicted_rate(architecture, layer):
    model = featviz.load_model(f"open_clip:{architecture}", weights="random")
    prompt = prompt_embeddings(model, ["a photo of a dog"])[0]
    found = find_text_direction(model, layer, "a photo of a dog")
    assert found.method == "exact" and torch.allclose(found.vector.norm(), torch.tensor(1.0))
    references = reference_images(model, crops_per_photo=0)  # the linearization point text_direction uses
    layout = bind_layers(model, [layer], model.input_size).layouts[layer]
    predicted = float(_linearized(model, layer, layout, references, prompt) @ found.vector) / references.shape[0]
    shape = [1, -1, 1, 1] if layout.kind == "nchw" else [1, 1, -1]
    module = model.get_layer(layer)

    def similarity(step, images):
        handle = module.register_forward_hook(lambda m, i, output: output + step * found.vector.view(shape))
        with torch.no_grad():
            embedding = model(images)
        handle.remove()
        return embedding @ prompt

    measured = ((similarity(1e-2, references) - similarity(-1e-2, references)) / 2e-2).mean()
    assert predicted > 0 and float(measured) == pytest.approx(predicted, rel=0.05)
    assert (similarity(1.0, references) > similarity(0.0, references)).float().mean() > 0.9


def test_fitted_directions_report_their_fit_and_exact_is_refused_where_not_linear(tmp_path, monkeypatch):
    monkeypatch.setenv("FEATVIZ_CACHE", str(tmp_path))
    model = featviz.load_model("open_clip:featviz-tiny-RN", weights="random")
    found = find_text_direction(model, "layer3", "a photo of a dog")
    assert found.method == "fitted" and found.r2 is not None and found.vector.shape == (256,)
    assert list(tmp_path.rglob("*.pt")), "the fitted map is cached"
    with pytest.raises(FeatvizError, match="no exact text direction for layer 'layer3'"):
        find_text_direction(model, "layer3", "a dog", method="exact")
    goal = objectives.direction("layer3", found.vector, cossim_pow=1.0)
    assert featviz.render(model, goal, steps=2, progress=False).images.shape == (1, 3, 64, 64)


def test_neuron_ranking_follows_the_direction_and_the_cli_renders_the_top_units(capsys, tmp_path):
    model = featviz.load_model("open_clip:featviz-tiny-RN", weights="random")
    found = rank_neurons(model, "layer4", "a photo of a dog", top=5)
    direction = find_text_direction(model, "layer4", "a photo of a dog").vector
    assert [item.unit for item in found] == direction.topk(5).indices.tolist()
    assert [item.score for item in found] == sorted((item.score for item in found), reverse=True)
    out = tmp_path / "top.png"
    code = main(["neurons", "open_clip:featviz-tiny-RN", "--weights", "random", "--layer", "layer4", "a dog|a cat:-0.5",
                 "--top", "3", "--render", str(out), "--steps", "2", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.splitlines()[0].split() == ["rank", "unit", "score"] and out.exists()
    code = main(["neurons", "open_clip:featviz-tiny-RN", "--weights", "random", "--layer", "layer4", "a dog", "--top", "0"])
    assert code == 2 and "--top must be at least 1" in capsys.readouterr().err


def test_the_old_name_of_find_text_direction_warns_and_gives_the_same_direction():
    # featviz.text.text_direction was renamed: objectives.text_direction is the objective, this finds a vector.
    from featviz.text import text_direction

    model = featviz.load_model("open_clip:featviz-tiny-RN", weights="random")
    with pytest.warns(DeprecationWarning, match="find_text_direction"):
        old = text_direction(model, "layer4", "a photo of a dog")
    assert torch.equal(old.vector, find_text_direction(model, "layer4", "a photo of a dog").vector)
    assert isinstance(objectives.text_direction("layer4", "a dog"), objectives.Objective)


def test_cli_render_with_text_on_a_tiny_clip(capsys, tmp_path):
    out = tmp_path / "dog.png"
    code = main(["render", "open_clip:featviz-tiny-ViT", "--weights", "random", "text:a dog|a cat:-0.5", "--steps", "2",
                 "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert out.exists()


def test_text_direction_objective_from_the_shorthand_binds_and_rises(capsys, tmp_path):
    model = featviz.load_model("open_clip:featviz-tiny-RN", weights="random")
    goal = objectives.parse("text@layer4:a spider|a dog:-0.5")[0]
    assert goal.name == "text@layer4:a spider|a dog:-0.5"
    result = featviz.render(model, goal, steps=12, seed=0, progress=False)
    assert goal.found.method == "exact" and result.history[-1, 0] > result.history[0, 0]
    expected = find_text_direction(model, "layer4", {"a spider": 1.0, "a dog": -0.5}).vector
    assert torch.allclose(goal.found.vector, expected)
    with pytest.raises(FeatvizError, match="expected text@LAYER:PROMPT"):
        objectives.parse("text@layer4")
    out = tmp_path / "spider.png"
    code = main(["render", "open_clip:featviz-tiny-RN", "--weights", "random", "text@layer4:a spider", "--steps", "2",
                 "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
