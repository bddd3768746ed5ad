"""Dictionary features: planted recovery, refusal of a dictionary fitted elsewhere, resume after a kill, renders of
features that beat natural photos on Lite0, a tiny CLIP trained end to end on tokens, and the CLI."""
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy
import pytest
import torch
from PIL import Image

import featviz
from featviz import metrics, objectives
from featviz.cli import main
from featviz.concepts.dictionary import (
    collect_samples, dictionary_metrics, fit_dictionary, from_overcomplete, import_overcomplete, learn_dictionary,
    stability,
)
from featviz.errors import FeatvizError
from featviz.models import weights_fingerprint
from featviz.objectives import Dictionary, dictionary_feature, load_dictionary

try:
    import_overcomplete()
except FeatvizError:  # featviz[dictionary] is not installed
    pytest.skip("needs overcomplete (featviz[dictionary])", allow_module_level=True)

LAYER = "blocks.4.0.conv_pwl"


def planted(concepts=32, dim=24, count=8192, active=3, seed=0):
    """Vectors made of ``active`` of ``concepts`` random unit features, with magnitudes in [1, 2)."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.nn.functional.normalize(torch.randn(concepts, dim, generator=generator), dim=1)
    chosen = torch.rand(count, concepts, generator=generator).argsort(1)[:, :active]
    codes = torch.zeros(count, concepts).scatter(1, chosen, torch.rand(count, active, generator=generator) + 1)
    return codes @ features, features


def test_a_planted_sparse_dictionary_is_recovered():
    vectors, features = planted()
    # 32 features in 24 dimensions (overcomplete), 3 active per vector
    found = fit_dictionary(vectors, 32, "topk", top_k=3, steps=800, batch_size=256, learning_rate=3e-3)
    assert stability(found, features) >= 0.9
    measured = dictionary_metrics(found, vectors)
    assert measured["r2"] > 0.8 and measured["l0"] == 3.0
    # a dictionary of random rows explains far less, and matches the planted one far worse
    noise = Dictionary(torch.randn(32, 24), layer="samples", top_k=3)
    assert stability(noise, features) < 0.7
    assert dictionary_metrics(noise, vectors)["r2"] < measured["r2"]


def test_dictionary_round_trip_codes_and_shorthand(tmp_path):
    dictionary = Dictionary(torch.eye(4) * 2, layer="conv", mean=torch.ones(4), scale=2.0, top_k=2, model_name="toy")
    x = torch.tensor([[3.0, 1.0, 7.0, 5.0]])
    assert torch.equal(dictionary.codes(x), torch.tensor([[0.0, 0.0, 3.0, 2.0]]))  # ((x - 1) / 2), top 2
    path = dictionary.save(tmp_path / "toy.pt")
    loaded = load_dictionary(path)
    assert loaded.top_k == 2 and torch.equal(loaded.codes(x), dictionary.codes(x))
    goals = objectives.parse(f"{path}:1-2")
    assert [goal.name for goal in goals] == ["toy:1", "toy:2"]
    assert objectives.parse(f"-{path}:0@1,2")[0].name == "-toy:0@1,2"
    # a plain (concepts, dim) tensor loads with its layer
    torch.save(torch.randn(5, 4), tmp_path / "rows.pt")
    assert load_dictionary(tmp_path / "rows.pt", layer="conv").concepts == 5
    with pytest.raises(FeatvizError, match="say which layer"):
        load_dictionary(tmp_path / "rows.pt")
    with pytest.raises(FeatvizError, match="out of range"):
        dictionary_feature(loaded, 4)


def test_a_dictionary_fitted_elsewhere_is_refused(lite0, tmp_path):
    dictionary = Dictionary(torch.randn(8, 112), layer=LAYER, model_name=lite0.name,
                            fingerprint=weights_fingerprint(lite0))
    other = featviz.load_model("timm:test_efficientnet", weights="random")
    refused = r"was fitted on efficientnet_lite0 \(weights .*\), not on timm:test_efficientnet"
    with pytest.raises(FeatvizError, match=refused):
        featviz.render(other, dictionary_feature(dictionary, 0), steps=1, size=32, progress=False)
    path = dictionary.save(tmp_path / "lite0.pt")
    with pytest.raises(FeatvizError, match="fitted on layer 'blocks.4.0.conv_pwl', not on 'blocks.5.0'"):
        load_dictionary(path, lite0, layer="blocks.5.0")
    # on the command line: one line, exit 2
    out = tmp_path / "x.png"
    assert main(["render", "timm:test_efficientnet", "--weights", "random", f"{path}:0", "--steps", "1", "--size", "32",
                 "--out", str(out), "--no-progress"]) == 2
    assert not out.exists()
    # a layer of another width is refused too
    wrong = Dictionary(torch.randn(8, 80), layer=LAYER)
    with pytest.raises(FeatvizError, match="80-dim features but layer 'blocks.4.0.conv_pwl' has 112 channels"):
        featviz.render(lite0, dictionary_feature(wrong, 0), steps=1, size=32, progress=False)


RESUMABLE = textwrap.dedent("""
    import sys, torch
    import featviz.concepts.dictionary as module
    module.CHECKPOINT_SECONDS = 0.0  # a checkpoint after every step
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    vectors = torch.randn(4096, 12, generator=generator).relu()
    module.fit_dictionary(vectors, 24, "topk", top_k=4, steps=int(sys.argv[2]), batch_size=128, checkpoint=sys.argv[1])
""")


def test_training_killed_midway_resumes_from_its_checkpoint(tmp_path):
    checkpoint = tmp_path / "run.checkpoint"
    script = tmp_path / "train.py"
    script.write_text(RESUMABLE)
    steps = 400
    process = subprocess.Popen([sys.executable, str(script), str(checkpoint), str(steps)])
    try:
        deadline = time.monotonic() + 240
        reached = 0
        while time.monotonic() < deadline and process.poll() is None:
            if checkpoint.exists():
                try:
                    reached = torch.load(checkpoint, weights_only=True)["step"]
                except Exception:  # noqa: BLE001 - read while being renamed
                    reached = 0
                if reached >= 20:
                    break
            time.sleep(0.2)
        assert process.poll() is None, "training finished before it could be killed; raise the step count"
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    killed_at = torch.load(checkpoint, weights_only=True)["step"]
    assert 20 <= killed_at < steps
    torch.set_num_threads(1)
    try:
        generator = torch.Generator().manual_seed(0)
        vectors = torch.randn(4096, 12, generator=generator).relu()
        resumed = fit_dictionary(vectors, 24, "topk", top_k=4, steps=steps, batch_size=128, checkpoint=checkpoint)
        assert torch.load(checkpoint, weights_only=True)["step"] == steps
        whole = fit_dictionary(vectors, 24, "topk", top_k=4, steps=steps, batch_size=128)
    finally:
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    # the resumed run made the dictionary an uninterrupted run makes
    assert torch.allclose(resumed.decoder, whole.decoder, atol=1e-4)
    assert torch.allclose(resumed.encoder, whole.encoder, atol=1e-4)


WORKER = os.path.join(os.path.dirname(__file__), "dictionary_worker.py")  # collects a tiny net's layer "2"


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not installed")
def test_torchrun_shards_the_collection_and_every_process_gets_every_vector(tmp_path):
    images = tmp_path / "photos"
    images.mkdir()
    for index in range(5):
        pixels = torch.randint(0, 256, (40, 48, 3), generator=torch.Generator().manual_seed(index), dtype=torch.uint8)
        Image.fromarray(pixels.numpy()).save(images / f"photo{index}.png")
    alone, sharded = tmp_path / "alone.pt", tmp_path / "sharded.pt"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, WORKER, str(alone), str(images)], check=True, env=environment, timeout=300)
    subprocess.run(["torchrun", "--standalone", "--nproc-per-node", "2", WORKER, str(sharded), str(images)],
                   check=True, env=environment, timeout=300, capture_output=True)
    one, two = torch.load(alone, weights_only=True), torch.load(sharded, weights_only=True)
    assert (one["world"], two["world"]) == (1, 2) and one["layout"] == two["layout"]
    # every position of every image, whichever process read it: the same rows, in another order
    assert one["vectors"].shape == two["vectors"].shape and one["vectors"].shape[0] > 5
    assert torch.allclose(sorted_rows(one["vectors"]), sorted_rows(two["vectors"]), atol=1e-5)


def sorted_rows(vectors):
    return vectors[torch.from_numpy(numpy.lexsort(vectors.t().flip(0).numpy()))]


@pytest.fixture(scope="module")
def lite0_dictionary(lite0, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lite0-dictionary")
    return learn_dictionary(lite0, LAYER, "shipped", 32, "topk", top_k=4, size=128, steps=300, batch_size=256,
                            out=folder / "lite0.pt", cache_dir=folder / "cache", progress=False), folder


def test_lite0_dictionary_is_measured_and_saved(lite0, lite0_dictionary):
    dictionary, folder = lite0_dictionary
    assert dictionary.fingerprint == weights_fingerprint(lite0) and dictionary.layout == "nchw"
    assert set(dictionary.metrics) == {"r2", "l0", "dead", "stability"}
    assert 0 < dictionary.metrics["r2"] <= 1 and dictionary.metrics["l0"] == 4.0
    assert 0 <= dictionary.metrics["dead"] < 1 and 0 < dictionary.metrics["stability"] <= 1
    loaded = load_dictionary(folder / "lite0.pt", lite0, layer=LAYER)
    assert loaded.metrics == dictionary.metrics
    assert not list(folder.glob("*.checkpoint"))  # checkpoints are gone once the dictionary is saved
    # the pass over the images is cached: a second collection reads it
    vectors, layout = collect_samples(lite0, LAYER, "shipped", size=128, cache_dir=folder / "cache")
    assert vectors.shape == (15 * 8 * 8, 112) and layout == "nchw"
    assert dictionary_metrics(dictionary, vectors)["r2"] == pytest.approx(dictionary.metrics["r2"], abs=1e-5)
    # learned features explain the layer far better than as many random directions with the same scale
    torch.manual_seed(0)
    random_rows = Dictionary(torch.randn(32, 112), layer=LAYER, scale=dictionary.scale, top_k=4)
    assert dictionary_metrics(random_rows, vectors)["r2"] < dictionary.metrics["r2"] - 0.2


def test_a_rendered_feature_drives_it_above_the_best_natural_photo(lite0, lite0_dictionary):
    dictionary, _ = lite0_dictionary
    stats = featviz.dataset.collect_activations(lite0, featviz.dataset.ImageFolder(
        featviz.dataset.shipped_photo_paths(), 128), [dictionary])[dictionary]
    feature = int(stats.top_values[:, 0].argmax())  # a feature that fires on the photos
    goal = dictionary_feature(dictionary, feature)
    result = featviz.render(lite0, goal, steps=48, size=128, seed=0, progress=False)
    report = metrics.activation_reached(lite0, goal, result.images, samples=4)
    assert report.rendered[0] > report.natural_max[0]
    assert report.held_out_mean_vs_natural[0] > 1.0
    # feature renders batch and take diversity like channels
    batch = featviz.render(lite0, objectives.stack([dictionary_feature(dictionary, i) for i in range(2)])
                           + objectives.diversity(LAYER, images=2), steps=2, size=64, batch=2, progress=False)
    assert batch.images.shape == (2, 3, 64, 64)


def test_an_overcomplete_module_loads_with_its_encoder_folded(lite0):
    overcomplete = import_overcomplete()
    torch.manual_seed(0)
    sae = overcomplete.sae.TopKSAE(112, 64, top_k=4)
    sae.eval()
    x = torch.randn(10, 112)
    pre, codes = sae.encode(x)
    dictionary = from_overcomplete(sae, LAYER, lite0)
    assert torch.allclose(dictionary.pre_codes(x), pre, atol=1e-5)
    assert torch.allclose(dictionary.codes(x), codes, atol=1e-5)
    assert torch.allclose(dictionary.decoder, sae.get_dictionary(), atol=1e-6)
    dictionary.check_model(lite0, LAYER)


def test_a_tiny_clip_learns_renders_and_labels_features_of_its_tokens(tmp_path):
    model = featviz.load_model("open_clip:featviz-tiny-ViT", weights="random")
    layer = "transformer.resblocks.1"
    dictionary = learn_dictionary(model, layer, "shipped", 16, "batchtopk", top_k=2, steps=60, batch_size=128,
                                  out=tmp_path / "clip.pt", cache_dir=tmp_path / "cache", progress=False)
    assert dictionary.layout.startswith("nlc")
    vectors, _ = collect_samples(model, layer, "shipped", cache_dir=tmp_path / "cache")
    binding = featviz.hooks.bind_layers(model, [layer])
    tokens = binding.shapes[layer][2] * binding.shapes[layer][3]
    assert vectors.shape[0] == 15 * tokens  # every patch token of every photo, the CLS token dropped
    result = featviz.render(model, f"{tmp_path / 'clip.pt'}:3", steps=2, progress=False)
    assert result.images.shape[0] == 1
    labels = featviz.concepts.label_units(model, dictionary, "shipped", ["dog", "cat", "sky"], top_k=3)
    assert len(labels) == 16 and {label.concept for label in labels} <= {"dog", "cat", "sky"}


def test_cli_learns_renders_and_builds_a_gallery_of_features(tmp_path, capsys):
    out = tmp_path / "lite0.pt"
    code = main(["dictionary", "efficientnet_lite0", "--layer", LAYER, "--images", "shipped", "--concepts", "16",
                 "--size", "64", "--steps", "40", "--train-batch", "128", "--no-stability", "--out", str(out),
                 "--cache", str(tmp_path / "cache"), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "16 features of blocks.4.0.conv_pwl (topk): R^2 " in printed and str(out) in printed
    assert main(["render", "efficientnet_lite0", f"{out}:2", "--steps", "2", "--size", "64",
                 "--out", str(tmp_path / "feature.png"), "--no-progress"]) == 0
    assert (tmp_path / "feature.png").exists()
    site = tmp_path / "site"
    assert main(["gallery", "efficientnet_lite0", "--dictionary", str(out), "--units", "0-1", "--images", "shipped",
                 "--steps", "2", "--size", "64", "--out", str(site), "--no-progress"]) == 0
    dictionary = load_dictionary(out)
    pages = list((site / "units").glob("*/*.html"))
    assert len(pages) == 2 and dictionary.name.split("~")[0] in pages[0].parent.name
    # mistakes: one line, exit 2
    assert main(["dictionary", "efficientnet_lite0", "--layer", LAYER, "--images", "shipped", "--concepts", "0",
                 "--out", str(tmp_path / "bad.pt")]) == 2
    assert main(["dictionary", "efficientnet_lite0", "--layer", LAYER, "--images", "shipped", "--concepts", "8",
                 "--method", "nmf", "--steps", "5", "--size", "64", "--no-stability", "--out",
                 str(tmp_path / "nmf.pt"), "--no-progress", "--no-cache"]) == 2
    assert "non-negative" in capsys.readouterr().err
    assert not (tmp_path / "nmf.pt").exists()
