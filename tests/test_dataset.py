"""The dataset pass: image folder reading, top-k examples, histograms, cache and crops."""
import os
import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch

from featviz.hooks import survey_model
from PIL import Image
from torch import nn

import featviz.dataset.folder as folder_module
from featviz.dataset import ImageFolder, UnreadableImageWarning, collect_activations, crop_around
from featviz.errors import FeatvizError
from featviz.models import Model

SIZE = 16
# Image i: uniform grey BACKGROUND[i] with one brighter pixel SPOT[i] at SPOT_AT[i] (all uint8, PNG: exact).
BACKGROUND = [40, 200, 90, 10, 150, 120, 60]
SPOT = [230, 250, 130, 70, 240, 180, 210]
SPOT_AT = [(1, 2), (14, 13), (5, 9), (0, 0), (8, 3), (11, 15), (6, 6)]


class Counter(nn.Module):
    """Passes its input through and counts calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x


class Tokens(nn.Module):
    """(B, C, H, W) -> ViT-like tokens (B, 1 + H*W, C) with a zero CLS token first."""

    def forward(self, x):
        tokens = x.flatten(2).transpose(1, 2)
        return torch.cat([torch.zeros_like(tokens[:, :1]), tokens], 1)


def brightness_model() -> Model:
    """conv unit 0 = pixel brightness, unit 1 = 1 - brightness; pool = 4x4 means; tail must never run."""
    conv = nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1 / 3] * 3, [-1 / 3] * 3]).view(2, 3, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, 1.0]))
    network = nn.Sequential(OrderedDict(
        head=Counter(), conv=conv, pool=nn.AvgPool2d(4), tokens=Tokens(), tail=Counter(),
    ))
    return Model(network, name="brightness", input_size=(SIZE, SIZE), channels=3, mean=[0.0] * 3, std=[1.0] * 3)


def save_png(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def spot_folder(tmp_path):
    """Seven 16x16 images in nested folders; sorted path order is image 0..6."""
    root = tmp_path / "images"
    for index, (grey, spot, (y, x)) in enumerate(zip(BACKGROUND, SPOT, SPOT_AT)):
        pixels = np.full((SIZE, SIZE, 3), grey, dtype=np.uint8)
        pixels[y, x] = spot
        folder = root / f"part{index % 2}" if index < 4 else root / "z" / "deep"
        save_png(folder / f"img{index}.png", pixels)
    return root


def image_index(path: str) -> int:
    return int(os.path.basename(path)[3:-4])


def brightness_means() -> np.ndarray:
    return np.array([((SIZE * SIZE - 1) * grey + spot) / (SIZE * SIZE) / 255 for grey, spot in zip(BACKGROUND, SPOT)])


def test_folder_finds_images_sorted_and_skips_corrupt_files_with_one_warning_each(tmp_path):
    root = tmp_path / "data"
    for name in ("b/2.png", "a/1.png", "a/nested/3.PNG", "0.png"):
        save_png(root / name, np.full((20, 24, 3), 100))
    (root / "a" / "bad.jpg").write_bytes(b"this is not a jpeg")
    good = (root / "0.png").read_bytes()
    (root / "b" / "truncated.png").write_bytes(good[:30])
    (root / ".hidden.png").write_bytes(b"hidden files are not images")
    (root / "notes.txt").write_text("not an image")
    folder = ImageFolder(root, size=12)
    assert [path.relative_to(root).as_posix() for path in folder.paths] == [
        "0.png", "a/1.png", "a/bad.jpg", "a/nested/3.PNG", "b/2.png", "b/truncated.png",
    ]
    with pytest.warns(UnreadableImageWarning) as caught:
        batches = list(folder.batches(2))
    messages = sorted(str(warning.message) for warning in caught if warning.category is UnreadableImageWarning)
    assert len(messages) == 2
    assert "bad.jpg" in messages[0] and "truncated.png" in messages[1]
    loaded = [path.name for paths, _ in batches for path in paths]
    assert loaded == ["0.png", "1.png", "3.PNG", "2.png"]
    for paths, images in batches:
        assert images.shape == (len(paths), 3, 12, 12) and images.dtype == torch.float32
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        assert sum(len(paths) for paths, _ in folder.batches(4)) == 4
    assert not [warning for warning in again if warning.category is UnreadableImageWarning]


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_are_bounded_and_load_lazily(tmp_path, monkeypatch, workers):
    for index in range(10):
        save_png(tmp_path / f"{index:02d}.png", np.full((8, 8, 3), index * 20))
    loads = []
    real_load = folder_module.load_image

    def counting_load(path, size, channels=3):
        loads.append(path)
        return real_load(path, size, channels)

    monkeypatch.setattr(folder_module, "load_image", counting_load)
    batches = ImageFolder(tmp_path, size=8).batches(3, workers=workers)
    paths, images = next(batches)
    assert len(paths) == 3 and images.shape == (3, 3, 8, 8)
    assert len(loads) <= (3 if workers == 0 else 6)  # this batch, plus the next one when prefetching
    assert torch.allclose(images[1], torch.full((3, 8, 8), 20 / 255))
    assert [len(paths) for paths, _ in batches] == [3, 3, 1]
    assert len(loads) == 10


def test_images_are_resized_on_the_shorter_side_and_centre_cropped(tmp_path):
    wide = np.zeros((20, 40, 3), dtype=np.uint8)
    wide[:, :10] = (255, 0, 0)
    wide[:, 10:30] = (0, 255, 0)
    wide[:, 30:] = (0, 0, 255)
    save_png(tmp_path / "wide.png", wide)
    exact = np.random.default_rng(0).integers(0, 256, (10, 10, 3))
    save_png(tmp_path / "x_exact.png", exact)
    (_, images), = ImageFolder(tmp_path, size=10).batches(8)
    assert images.shape == (2, 3, 10, 10)
    centre = images[0, :, :, 2:8]
    assert torch.all(centre[1] > 0.97) and torch.all(centre[0] < 0.03) and torch.all(centre[2] < 0.03)
    assert images[0, 0].mean() < 0.1 and images[0, 2].mean() < 0.1
    torch.testing.assert_close(images[1], torch.from_numpy(exact).permute(2, 0, 1).float() / 255)
    assert images.min() >= 0 and images.max() <= 1


@pytest.mark.parametrize("batch_size", [1, 2, 7])
def test_top_examples_and_histogram_match_the_known_activations(spot_folder, batch_size):
    model = brightness_model()
    survey_model(model)  # runs the whole network once per probe size; the pass itself must stop early
    model.network.tail.calls = 0
    folder = ImageFolder(spot_folder, SIZE)
    stats = collect_activations(model, folder, ["conv", "pool", "tokens"], batch_size=batch_size, k=3, workers=0)
    assert model.network.tail.calls == 0  # the forward pass stopped after the last requested layer

    conv = stats["conv"]
    assert conv.units == 2 and conv.map_size == (SIZE, SIZE) and conv.image_count == 7
    brightest = sorted(range(7), key=lambda index: -SPOT[index])[:3]
    top = conv.top_examples(0)
    assert [image_index(example.path) for example in top] == brightest
    assert [example.value for example in top] == pytest.approx([SPOT[index] / 255 for index in brightest], abs=1e-5)
    assert [example.position for example in top] == [SPOT_AT[index] for index in brightest]
    darkest = sorted(range(7), key=lambda index: BACKGROUND[index])[:3]
    top_dark = conv.top_examples(1)
    assert [image_index(example.path) for example in top_dark] == darkest
    expected = [1 - BACKGROUND[index] / 255 for index in darkest]
    assert [example.value for example in top_dark] == pytest.approx(expected, abs=1e-5)

    cell_means = [(15 * grey + spot) / 16 / 255 for grey, spot in zip(BACKGROUND, SPOT)]
    best_cells = sorted(range(7), key=lambda index: -cell_means[index])[:3]
    for layer in ("pool", "tokens"):  # a 4x4 map where the spot's cell wins; tokens lose their CLS token
        assert stats[layer].map_size == (4, 4)
        top_cells = stats[layer].top_examples(0)
        assert [image_index(example.path) for example in top_cells] == best_cells
        expected = [cell_means[index] for index in best_cells]
        assert [example.value for example in top_cells] == pytest.approx(expected, abs=1e-5)
        assert [example.position for example in top_cells] == [
            (SPOT_AT[index][0] // 4, SPOT_AT[index][1] // 4) for index in best_cells
        ]

    counts, edges = conv.histogram(0)
    means = brightness_means()
    assert sum(counts) == 7 and len(counts) == 32 and len(edges) == 33
    assert edges[0] <= means.min() and edges[-1] >= means.max()
    assert counts == np.histogram(means, bins=np.array(edges))[0].tolist()
    assert conv.histogram(1).counts == np.histogram(1 - means, bins=np.array(conv.histogram(1).edges))[0].tolist()


def test_fewer_images_than_k_keeps_them_all(spot_folder):
    stats = collect_activations(brightness_model(), ImageFolder(spot_folder, SIZE), ["conv"], k=20, workers=0)
    assert len(stats["conv"].top_examples(0)) == 7
    with pytest.raises(FeatvizError, match=r"valid: 0\.\.1"):
        stats["conv"].top_examples(2)


def test_cache_hit_skips_the_model_and_file_changes_invalidate_it(spot_folder, tmp_path):
    model = brightness_model()
    folder = ImageFolder(spot_folder, SIZE)
    cache = tmp_path / "cache"
    survey_model(model)
    model.network.head.calls = 0
    first = collect_activations(model, folder, ["conv", "pool"], batch_size=4, cache_dir=cache, workers=0)
    calls = model.network.head.calls
    assert calls == 2  # two batches of 4 images: the layers were bound from the survey, without a forward
    again = collect_activations(model, ImageFolder(spot_folder, SIZE), ["pool", "conv"], batch_size=4, cache_dir=cache)
    assert model.network.head.calls == calls
    for layer in ("conv", "pool"):
        assert again[layer].top_examples(0) == first[layer].top_examples(0)
        assert torch.equal(again[layer].top_values, first[layer].top_values)
        assert again[layer].histogram(1) == first[layer].histogram(1)

    collect_activations(model, ImageFolder(spot_folder, SIZE), ["conv"], cache_dir=cache, k=4, workers=0)
    assert model.network.head.calls == calls + 1  # another k: recomputed
    changed = next(spot_folder.rglob("img2.png"))
    stamp = changed.stat()
    os.utime(changed, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 5_000_000_000))
    collect_activations(model, ImageFolder(spot_folder, SIZE), ["conv", "pool"], batch_size=4, cache_dir=cache)
    assert model.network.head.calls == calls + 3  # a file changed: recomputed
    with torch.no_grad():
        model.network.conv.bias.add_(0.5)
    collect_activations(model, ImageFolder(spot_folder, SIZE), ["conv", "pool"], batch_size=4, cache_dir=cache)
    assert model.network.head.calls == calls + 5  # other weights: recomputed


def test_crop_around_maps_map_positions_to_the_original_image(tmp_path):
    height, width = 32, 64  # the model saw the centred 32x32 square, x in 16..48
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 4, y * 8, np.full_like(x, 7)], axis=2)
    path = save_png(tmp_path / "gradient.png", pixels)
    crop = np.asarray(crop_around(path, (0, 3), (4, 4), size=8, crop_fraction=0.25)).astype(int)
    # cell (0, 3) of a 4x4 map is centred at (4, 16 + 28) in the image: an 8x8 box from (0, 40)
    assert crop.shape == (8, 8, 3)
    assert (crop[0, 0, 0], crop[0, 0, 1]) == (40 * 4, 0)
    assert (crop[7, 7, 0], crop[7, 7, 1]) == (47 * 4, 7 * 8)
    corner = np.asarray(crop_around(path, (3, 0), (4, 4), size=16, crop_fraction=0.5)).astype(int)
    # centred at (28, 20) with side 16: shifted up to stay inside the image, box from (16, 12)
    assert (corner[0, 0, 0], corner[0, 0, 1]) == (12 * 4, 16 * 8)
    assert (corner[15, 15, 0], corner[15, 15, 1]) == (27 * 4, 31 * 8)
    with pytest.raises(FeatvizError, match="outside an activation map"):
        crop_around(path, (4, 0), (4, 4), size=8)
    with pytest.raises(FeatvizError, match="crop_fraction"):
        crop_around(path, (0, 0), (4, 4), size=8, crop_fraction=1.5)


def test_user_mistakes_raise_one_line_errors(spot_folder, tmp_path):
    model = brightness_model()
    folder = ImageFolder(spot_folder, SIZE)
    with pytest.raises(FeatvizError, match="closest: conv"):
        collect_activations(model, folder, ["conv2"])
    with pytest.raises(FeatvizError, match="channels=3"):
        collect_activations(model, ImageFolder(spot_folder, SIZE, channels=1), ["conv"])
    with pytest.raises(FeatvizError, match="even"):
        collect_activations(model, folder, ["conv"], bins=7)
    with pytest.raises(FeatvizError, match="no layers"):
        collect_activations(model, folder, [])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FeatvizError, match="no images"):
        ImageFolder(tmp_path / "empty", SIZE)
    with pytest.raises(FeatvizError, match="does not exist"):
        ImageFolder(tmp_path / "nowhere", SIZE)
    with pytest.raises(FeatvizError, match="batch_size"):
        next(folder.batches(0))
