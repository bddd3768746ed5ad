"""Tests for featviz.transforms: geometry, fusion into one grid_sample, seeding, views, presets, errors."""
from __future__ import annotations

import math
import pkgutil
import sys

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

import featviz.transforms
from featviz.errors import FeatvizError
from featviz.transforms import (PRESETS, Compose, RandomSource, create, jitter, noise, pad, random_crops, random_rotate,
                                random_scale, resize, resolve, takes_source)
from featviz.transforms.compose import maco, none, robust, standard


def smooth_image(batch: int = 2, channels: int = 3, size: int = 48) -> torch.Tensor:
    """Slowly varying images (one wave period across) that fade to 0.5, the pad fill, at their borders, so that
    resampling twice differs little from resampling once."""
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    bump = torch.sin(math.pi * coords)[:, None] * torch.sin(math.pi * coords)[None, :]
    images = []
    for index in range(batch * channels):
        wave = torch.cos(2 * math.pi * coords + index)[:, None] * torch.sin(2 * math.pi * coords - index)[None, :]
        images.append(0.5 + 0.4 * bump * wave)
    return torch.stack(images).view(batch, channels, size, size)


def count_grid_samples(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    original = F.grid_sample

    def counting(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(F, "grid_sample", counting)
    return calls


# ---------------------------------------------------------------- RandomSource

def test_random_source_rows_match_single_sources():
    batched = RandomSource([10, 11, 12])
    singles = [RandomSource([seed]) for seed in (10, 11, 12)]
    draws = [batched.uniform(5, -2.0, 3.0), batched.integers(4, 0, 9), batched.normal((2, 3))]
    for index, single in enumerate(singles):
        assert torch.equal(draws[0][index], single.uniform(5, -2.0, 3.0)[0])
        assert torch.equal(draws[1][index], single.integers(4, 0, 9)[0])
        assert torch.equal(draws[2][index], single.normal((2, 3))[0])
    assert draws[0].shape == (3, 5) and draws[1].shape == (3, 4) and draws[2].shape == (3, 2, 3)
    assert batched.batch == 3 and RandomSource.from_seed(10, batch=3).seeds == (10, 11, 12)


def test_random_source_ranges():
    source = RandomSource([0, 1])
    values = source.integers(2000, 3, 7)
    assert values.dtype == torch.int64 and values.min() == 3 and values.max() == 6   # high is excluded
    uniform = source.uniform(2000, -1.0, 2.0)
    assert uniform.min() >= -1.0 and uniform.max() < 2.0 and uniform.max() > 1.9
    assert not torch.equal(uniform[0], uniform[1])


def test_random_source_view_major_rows():
    source, single = RandomSource([3, 4]), RandomSource([4])
    rows = source.image_uniform(6, 2)              # 3 views x 2 elements
    single_rows = single.image_uniform(3, 2)       # 3 views x 1 element
    for view in range(3):
        assert torch.equal(rows[view * 2 + 1], single_rows[view])
    with pytest.raises(FeatvizError, match="multiple of 2"):
        source.image_uniform(5, 1)


# ---------------------------------------------------------------- single transforms

def test_identity_when_nothing_is_random():
    images = torch.rand(2, 3, 17, 23)
    source = RandomSource([0, 1])
    for transform in (random_rotate(0.0), random_scale(1.0, 1.0), Compose([random_rotate(0.0), random_scale(1.0, 1.0)]),
                      random_crops(count=1, area=(1.0, 1.0), aspect=(1.0, 1.0)), jitter(0), pad(0), none(), noise(0.0)):
        torch.testing.assert_close(transform(images, source), images, atol=2e-5, rtol=0)


def test_pad_fill_at_borders():
    images = torch.rand(2, 3, 10, 12)
    padded = pad(3, fill=0.25)(images, RandomSource([0, 1]))
    assert padded.shape == (2, 3, 16, 18)
    assert torch.equal(padded[:, :, 3:13, 3:15], images)
    border = torch.ones(16, 18, dtype=torch.bool)
    border[3:13, 3:15] = False
    assert torch.all(padded[:, :, border] == 0.25)


def test_fused_outside_samples_get_fill():
    images = torch.zeros(1, 1, 16, 16)
    out = Compose([pad(8, fill=0.75), random_scale(0.5, 0.5)], output_size=(32, 32))(images, RandomSource([0]))
    assert out[0, 0, 0, 0] == pytest.approx(0.75, abs=1e-6)           # the pad zone and beyond read the fill
    assert out[0, 0, 16, 16] == pytest.approx(0.0, abs=1e-6)           # the image stays in the middle


def test_jitter_shifts_pixels_exactly():
    images = torch.rand(3, 2, 20, 20)
    transform = jitter(5)
    out = transform(images, RandomSource([7, 8, 9]))
    offsets = transform.offsets(3, RandomSource([7, 8, 9]))
    assert out.shape == (3, 2, 15, 15)
    assert offsets.min() >= 0 and offsets.max() <= 5 and len({tuple(row) for row in offsets.tolist()}) > 1
    for index, (x, y) in enumerate(offsets.tolist()):
        assert torch.equal(out[index], images[index, :, y:y + 15, x:x + 15])


def test_fused_integer_shifts_match_exact_crops():
    images = torch.rand(2, 3, 20, 20)
    fused = Compose([pad(2, fill=0.0), jitter(4)])(images, RandomSource([1, 2]))       # 24 -> 20: no resize
    source = RandomSource([1, 2])
    exact = jitter(4)(pad(2, fill=0.0)(images, source), source)
    torch.testing.assert_close(fused, exact, atol=1e-5, rtol=0)


def test_scale_zooms_about_the_centre():
    images = torch.rand(1, 3, 32, 32)
    zoomed = random_scale(2.0, 2.0)(images, RandomSource([0]))
    expected = F.interpolate(images, size=(64, 64), mode="bilinear", align_corners=False)[:, :, 16:48, 16:48]
    torch.testing.assert_close(zoomed, expected, atol=1e-5, rtol=0)


def test_rotation_angles_are_uniform_within_degrees():
    source = RandomSource.from_seed(0, batch=64)
    matrices, size = random_rotate(10.0).geometry(20, 30, 64, source)
    assert size == (20, 30)
    linear = matrices[:, :2, :2]
    torch.testing.assert_close(linear @ linear.transpose(1, 2), torch.eye(2, dtype=torch.float64).expand(64, 2, 2))
    angles = torch.rad2deg(torch.atan2(matrices[:, 1, 0], matrices[:, 0, 0]))
    assert angles.abs().max() <= 10.0 and angles.max() > 7.0 and angles.min() < -7.0
    centre = torch.tensor([15.0, 10.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(matrices @ centre, centre.expand(64, 3))            # rotates about the centre


def test_resize_matches_interpolate():
    images = torch.rand(2, 3, 24, 30)
    for size in ((12, 17), (50, 41)):
        expected = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        torch.testing.assert_close(resize(size)(images, RandomSource([0, 1])), expected, atol=1e-5, rtol=0)


def test_noise_statistics():
    images = torch.full((2, 3, 64, 64), 0.5)
    out = noise(0.1)(images, RandomSource([0, 1]))
    difference = out - images
    assert abs(difference.mean().item()) < 0.005
    assert difference.std().item() == pytest.approx(0.1, rel=0.03)
    assert not torch.allclose(difference[0], difference[1])


# ---------------------------------------------------------------- Compose

def test_fused_compose_matches_sequential_and_samples_once(monkeypatch):
    images = smooth_image()
    chain = [pad(8, fill=0.5), jitter(8), random_scale(0.9, 1.1), random_rotate(10.0), jitter(4)]
    source = RandomSource([1, 2])
    sequential = images
    for transform in chain:
        sequential = transform(sequential, source)
    sequential = resize((40, 40))(sequential, source)

    calls = count_grid_samples(monkeypatch)
    fused = Compose(chain, output_size=(40, 40))(images, RandomSource([1, 2]))
    assert calls[0] == 1
    assert fused.shape == sequential.shape == (2, 3, 40, 40)
    assert (fused - sequential).abs().max() < 0.015          # composing in the wrong order gives about 0.05
    assert (fused - F.interpolate(images, size=(40, 40), mode="bilinear")).abs().max() > 0.02   # it did transform


def test_same_seeds_same_output_and_different_seeds_differ():
    images = torch.rand(2, 3, 32, 32)
    first = standard((28, 28))(images, RandomSource([5, 6]))
    again = standard((28, 28))(images, RandomSource([5, 6]))
    other = standard((28, 28))(images, RandomSource([7, 8]))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


@pytest.mark.parametrize("preset", [standard, maco, robust])
def test_batch_element_equals_single_render(preset):
    images = torch.rand(3, 3, 36, 36)
    transform = preset((32, 32))
    batched = transform(images, RandomSource.from_seed(20, batch=3))
    views = transform.views
    assert batched.shape == (views * 3, 3, 32, 32)
    for index in range(3):
        single = transform(images[index:index + 1], RandomSource([20 + index]))
        torch.testing.assert_close(batched[index::3], single, atol=1e-6, rtol=0)


def test_random_crops_are_view_major():
    levels = torch.tensor([0.1, 0.4, 0.7]).view(3, 1, 1, 1)
    images = levels.expand(3, 2, 24, 24).clone()
    transform = random_crops(count=4)
    out = transform(images, RandomSource([0, 1, 2]))
    assert transform.views == 4 and out.shape == (12, 2, 24, 24)
    for view in range(4):
        for image in range(3):
            torch.testing.assert_close(out[view * 3 + image], images[image], atol=1e-6, rtol=0)

    textured = torch.rand(3, 2, 24, 24)
    crops = transform(textured, RandomSource([0, 1, 2]))
    assert not torch.allclose(crops[0], crops[3])                  # views of one image differ
    nested = Compose([random_crops(count=2), random_crops(count=3)], output_size=(16, 16))
    assert nested.views == 6
    out = nested(images, RandomSource([0, 1, 2]))
    assert out.shape == (18, 2, 16, 16)
    torch.testing.assert_close(out[2::3], images[2, :, :16, :16].expand(6, 2, 16, 16), atol=1e-6, rtol=0)


def test_gradient_flows_to_images():
    for transform in (standard((24, 24)), maco((24, 24)), robust()):
        images = torch.rand(2, 3, 32, 32, requires_grad=True)
        transform(images, RandomSource([0, 1])).square().sum().backward()
        assert images.grad is not None and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0


def test_output_size_respected():
    images = torch.rand(2, 3, 32, 32)
    source = RandomSource([0, 1])
    assert standard((24, 40))(images, source).shape == (2, 3, 24, 40)
    assert standard()(images, source).shape == (2, 3, 32, 32)
    assert none(20)(images, source).shape == (2, 3, 20, 20)
    assert maco((40, 24))(images, source).shape == (12, 3, 40, 24)
    assert Compose([jitter(4), noise(0.01)], output_size=(48, 48))(images, source).shape == (2, 3, 48, 48)


@pytest.mark.parametrize("channels", [1, 4])
def test_channel_counts(channels):
    images = torch.rand(2, channels, 32, 32)
    for transform in (standard((28, 28)), maco((28, 28))):
        out = transform(images, RandomSource([0, 1]))
        assert out.shape == (2 * transform.views, channels, 28, 28)


def test_dtypes_are_kept():
    images = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    assert standard((24, 24))(images, RandomSource([0])).dtype == torch.float64
    half = standard((24, 24))(images.to(torch.bfloat16), RandomSource([0]))
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.double(), standard((24, 24))(images, RandomSource([0])), atol=0.02, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    images = torch.rand(2, 3, 32, 32)
    for transform in (standard((28, 28)), Compose([random_crops(count=3)], output_size=(28, 28))):
        on_cpu = transform(images, RandomSource([0, 1]))
        on_gpu = transform(images.cuda(), RandomSource([0, 1], device="cuda"))
        assert on_gpu.device.type == "cuda"
        torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-4, rtol=0)


def test_custom_callables_run_in_the_chain():
    chain = Compose([pad(2), lambda images, source: images * 0.0, jitter(4)])
    out = chain(torch.rand(1, 3, 16, 16), RandomSource([0]))
    assert out.shape == (1, 3, 16, 16) and torch.all(out == 0)


# ---------------------------------------------------------------- presets and errors

def test_presets_and_create():
    assert set(PRESETS) == {"none", "standard", "maco", "robust", "facet", "dream"}   # dream registers in views.py
    for name in PRESETS:
        assert isinstance(create(name, (32, 32)), Compose) and isinstance(resolve(name, (32, 32)), Compose)
    assert create("maco").views == 6 and create("standard").views == 1
    assert resolve("dream").views == 16 and create("dream", views=3).views == 3
    # presets are reached by name only: no package-level function shadows objectives.facet or param.Maco
    assert not {"facet", "maco", "dream", "standard", "robust", "none"} & set(featviz.transforms.__all__)
    with pytest.raises(FeatvizError, match="dream, facet, maco, none, robust, standard.*closest: standard"):
        create("standrd")


@pytest.mark.parametrize("make", [
    lambda: pad(-1), lambda: jitter(-2), lambda: jitter(1.5), lambda: random_rotate(-1.0),
    lambda: random_scale(1.2, 1.0), lambda: random_scale(0.0, 1.0), lambda: random_crops(count=0),
    lambda: random_crops(area=(0.0, 0.5)), lambda: random_crops(area=(0.5, 1.5)), lambda: random_crops(area=(0.8, 0.5)),
    lambda: random_crops(aspect=(2.0, 1.0)), lambda: noise(-0.1), lambda: resize(0), lambda: Compose([], (0, 4)),
    lambda: Compose([42]), lambda: RandomSource([]), lambda: RandomSource(["a"]),
    lambda: jitter(8)(torch.rand(1, 3, 8, 8), RandomSource([0])),
    lambda: standard()(torch.rand(3, 32, 32), RandomSource([0])),
])
def test_invalid_arguments_raise_featviz_error(make):
    with pytest.raises(FeatvizError):
        make()


# ---------------------------------------------------------------- one-argument callables

@pytest.mark.parametrize("transforms, output_size, flipped", [
    ([pad(4), lambda images: images.flip(-1), jitter(8)], (24, 20), False),
    (lambda images: images.flip(-1), (32, 32), True),
    (v2.RandomHorizontalFlip(p=1.0), (32, 32), True),
    ([v2.RandomHorizontalFlip(p=1.0), standard()], (28, 28), False),
], ids=["lambda-in-list", "lone-lambda", "torchvision-v2", "torchvision-v2-before-a-preset"])
def test_one_argument_callables_pass_through_resolve(transforms, output_size, flipped):
    augment = resolve(transforms, output_size=output_size)
    images = torch.rand(2, 3, 32, 32, requires_grad=True)
    out = augment(images, RandomSource([0, 1]))
    assert out.shape == (2, 3, *output_size)
    if flipped:
        assert torch.equal(out, images.flip(-1))
    (out * torch.rand_like(out)).sum().backward()
    assert images.grad is not None and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0


def test_a_one_argument_callable_sees_the_images_where_it_stands_in_the_chain():
    images = torch.rand(2, 3, 20, 20)
    chain = Compose([pad(2, fill=0.0), lambda images: images.flip(-1), jitter(4)])
    source = RandomSource([1, 2])
    expected = jitter(4)(pad(2, fill=0.0)(images, source).flip(-1), source)
    torch.testing.assert_close(chain(images, RandomSource([1, 2])), expected, atol=1e-5, rtol=0)


def test_a_trailing_callable_that_changes_the_size_still_ends_at_the_output_size(monkeypatch):
    def crop(images):
        return images[..., 2:-2, 3:-3]

    images = torch.rand(2, 3, 32, 32, requires_grad=True)
    calls = count_grid_samples(monkeypatch)
    out = Compose([jitter(4), crop], output_size=(24, 24))(images, RandomSource([0, 1]))
    assert out.shape == (2, 3, 24, 24) and calls[0] == 2
    assert resolve(crop, output_size=(30, 30))(images, RandomSource([0, 1])).shape == (2, 3, 30, 30)
    assert Compose([random_crops(count=3), crop], (24, 24))(images, RandomSource([0, 1])).shape == (6, 3, 24, 24)
    out.sum().backward()
    assert images.grad.abs().sum() > 0


class SourcedModule(torch.nn.Module):
    def forward(self, images, source):
        return images + source.normal(images.shape[1:], device=images.device)


def test_takes_source_reads_the_signature():
    assert takes_source(lambda images, source: images) and takes_source(jitter(4)) and takes_source(noise(0.1))
    assert takes_source(standard()) and takes_source(SourcedModule())
    assert not takes_source(lambda images: images)
    assert not takes_source(lambda images, source=None: images)           # one required argument: images only
    assert not takes_source(lambda *inputs: inputs[0])
    assert not takes_source(torch.sigmoid)                                 # no readable signature: images only
    assert not takes_source(torch.nn.Sequential(torch.nn.Identity()))
    for wrong in (lambda: None, lambda images, source, extra: images, lambda images, *, strength: images):
        with pytest.raises(FeatvizError, match=r"takes \(images\) or \(images, source\)"):
            Compose([wrong])


def test_resolve_rejects_what_is_not_a_transform():
    with pytest.raises(FeatvizError, match="preset name.*a Compose, a transform or a list of transforms"):
        resolve(42)
    with pytest.raises(FeatvizError, match="callables"):
        resolve([pad(2), "jitter"])


def test_every_module_of_the_package_is_imported_and_re_exported():
    package = featviz.transforms
    exports = {name: getattr(sys.modules[f"{package.__name__}.{info.name}"], name)
               for info in pkgutil.iter_modules(package.__path__)
               for name in sys.modules[f"{package.__name__}.{info.name}"].__all__}
    assert {"Compose", "resolve", "takes_source", "RandomSource", "jitter", "noise", "PRESETS"} <= set(exports)
    assert all(getattr(package, name) is value for name, value in exports.items()) and package.noise is noise
    assert sorted(package.__all__) == sorted(exports)
