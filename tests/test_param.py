"""Tests of featviz.param: image parameterizations, colour decorrelation, alpha compositing, create()."""
from __future__ import annotations

import importlib.util
import inspect
import math
import pkgutil
import sys
import textwrap

import pytest
import torch

import featviz.param
from featviz.errors import FeatvizError
from featviz.param import (
    CPPN,
    Fourier,
    Maco,
    Parameterization,
    Pixel,
    color_sqrt,
    color_sqrt_from_images,
    composite,
    create,
    decorrelate,
    maco_magnitude,
    register_parameterization,
    registered_kinds,
)
from featviz.param.color import IMAGENET_COLOR_SQRT

KINDS = registered_kinds()
from featviz.param.cppn import composite_atan

SIZE = (16, 20)


def logit(images: torch.Tensor) -> torch.Tensor:
    return torch.log(images) - torch.log1p(-images)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("channels", [1, 3, 4, 13])
@pytest.mark.parametrize("alpha", [False, True])
def test_shape_and_range(kind: str, channels: int, alpha: bool) -> None:
    images = create(kind, SIZE, batch=2, channels=channels, seed=0, alpha=alpha)()
    assert images.shape == (2, channels + alpha, *SIZE)
    assert images.dtype == torch.float32
    assert torch.isfinite(images).all()
    assert images.min() >= 0 and images.max() <= 1


@pytest.mark.parametrize("kind", ["fft", "pixel", "cppn"])
def test_images_start_grey(kind: str) -> None:
    images = create(kind, 32, batch=2, seed=3)()
    assert (images - 0.5).abs().max() < 0.15


def test_int_size_is_square_and_tuple_size_is_height_width() -> None:
    assert Fourier(12, seed=0)().shape == (1, 3, 12, 12)
    assert Fourier((9, 14), seed=0)().shape == (1, 3, 9, 14)


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_images_and_different_seed_different_images(kind: str) -> None:
    first = create(kind, SIZE, batch=2, seed=7)()
    again = create(kind, SIZE, batch=2, seed=7)()
    other = create(kind, SIZE, batch=2, seed=8)()
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    assert not torch.allclose(first[0], first[1])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("alpha", [False, True])
def test_batch_element_equals_single_image_with_seed_plus_index(kind: str, alpha: bool) -> None:
    batch = create(kind, SIZE, batch=3, seed=11, alpha=alpha)()
    for index in range(3):
        single = create(kind, SIZE, batch=1, seed=11 + index, alpha=alpha)()
        torch.testing.assert_close(batch[index], single[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_seed_sequence_gives_one_seed_per_element(kind: str) -> None:
    batch = create(kind, SIZE, batch=2, seed=[5, 2])()
    torch.testing.assert_close(batch[0], create(kind, SIZE, seed=5)()[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batch[1], create(kind, SIZE, seed=2)()[0], rtol=1e-5, atol=1e-6)


def test_no_seed_follows_torch_manual_seed() -> None:
    torch.manual_seed(123)
    first = Fourier(SIZE)()
    torch.manual_seed(123)
    assert torch.equal(first, Fourier(SIZE)())


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_every_parameter(kind: str) -> None:
    module = create(kind, SIZE, batch=2, seed=0, alpha=True)
    module()[:, 0].mean().backward()
    parameters = list(module.named_parameters())
    assert parameters
    for name, parameter in parameters:
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", KINDS)
def test_adam_at_default_lr_raises_an_objective(kind: str) -> None:
    module = create(kind, SIZE, batch=2, seed=0)
    optimizer = torch.optim.Adam(module.parameters(), lr=module.default_lr)

    def objective() -> torch.Tensor:
        images = module()
        return (images[:, 0, :8] - images[:, 0, 8:]).mean()

    start = objective().item()
    for _ in range(20):
        optimizer.zero_grad()
        (-objective()).backward()
        optimizer.step()
    assert objective().item() > start + 0.05


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_restores_the_images(kind: str) -> None:
    source = create(kind, SIZE, batch=2, seed=1)
    target = create(kind, SIZE, batch=2, seed=2)
    target.load_state_dict(source.state_dict())
    assert torch.equal(source(), target())


@pytest.mark.parametrize("kind", KINDS)
def test_parameters_and_buffers_use_the_requested_dtype(kind: str) -> None:
    module = create(kind, SIZE, seed=0, dtype=torch.float64, device="cpu")
    tensors = list(module.parameters()) + [buffer for buffer in module.buffers() if buffer is not None]
    assert all(tensor.dtype == torch.float64 and tensor.device.type == "cpu" for tensor in tensors)
    assert module().dtype == torch.float64
    torch.testing.assert_close(module().float(), create(kind, SIZE, seed=0)(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["fft", "pixel", "maco"])
def test_colors_do_not_depend_on_the_alpha_parameters(kind: str) -> None:
    module = create(kind, SIZE, batch=2, seed=0, alpha=True)
    (parameter,) = module.parameters()
    module()[:, :3].sum().backward()
    assert parameter.grad[:, :3].abs().sum() > 0
    assert torch.all(parameter.grad[:, 3] == 0)
    module.zero_grad()
    module()[:, 3].sum().backward()
    assert parameter.grad[:, 3].abs().sum() > 0
    assert torch.all(parameter.grad[:, :3] == 0)


def radial_power(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean power of ``images`` (B, C, N, N) in radial frequency bands; returns (band centres, power)."""
    size = images.shape[-1]
    power = torch.fft.rfft2(images - images.mean(dim=(-2, -1), keepdim=True)).abs().pow(2).mean(dim=(0, 1))
    radius = torch.sqrt(torch.fft.fftfreq(size)[:, None] ** 2 + torch.fft.rfftfreq(size)[None, :] ** 2)
    edges = torch.linspace(1.5 / size, 0.5, 9)
    centres, means = [], []
    for low, high in zip(edges[:-1], edges[1:]):
        band = (radius >= low) & (radius < high)
        centres.append((low + high) / 2)
        means.append(power[band].mean())
    return torch.stack(centres), torch.stack(means)


@pytest.mark.parametrize("decay", [1.0, 2.0, None])
def test_fourier_power_spectrum_falls_as_one_over_f(decay: float | None) -> None:
    options = {} if decay is None else {"decay": decay}
    module = Fourier(64, batch=8, seed=0, decorrelate=False, dtype=torch.float64, **options)
    decay = 1.3 if decay is None else decay  # the default: steeper than lucid's 1.0 (benchmarks/RESULTS.md)
    frequencies, power = radial_power(logit(module().detach()))
    assert torch.all(power[1:] < power[:-1])
    design = torch.stack([frequencies.log(), torch.ones_like(frequencies)], dim=1).to(power.dtype)
    fitted = torch.linalg.lstsq(design, power.log().unsqueeze(1)).solution[0, 0]
    assert fitted == pytest.approx(-2 * decay, abs=0.35)


def test_pixel_power_spectrum_is_flat() -> None:
    module = Pixel(64, batch=8, seed=0, decorrelate=False, dtype=torch.float64)
    _, power = radial_power(logit(module().detach()))
    assert power.max() / power.min() < 1.5


def test_color_sqrt_defaults() -> None:
    torch.testing.assert_close(color_sqrt(3), IMAGENET_COLOR_SQRT)
    brightness = IMAGENET_COLOR_SQRT.norm(dim=0).max()
    torch.testing.assert_close(color_sqrt(1), brightness.reshape(1, 1))
    torch.testing.assert_close(color_sqrt(13), brightness * torch.eye(13))
    assert color_sqrt(3, dtype=torch.float64).dtype == torch.float64


def test_decorrelate_mixes_components_with_the_normalized_matrix() -> None:
    components = torch.zeros(1, 3, 2, 2)
    components[:, 0] = 1.0
    mixed = decorrelate(components, IMAGENET_COLOR_SQRT)
    brightness = IMAGENET_COLOR_SQRT[:, 0] / IMAGENET_COLOR_SQRT.norm(dim=0).max()
    torch.testing.assert_close(mixed[0, :, 1, 1], brightness)
    noise = torch.randn(2, 3, 8, 8)
    largest = IMAGENET_COLOR_SQRT.norm(dim=0).max()
    expected = torch.einsum("ij,bjhw->bihw", IMAGENET_COLOR_SQRT / largest, noise)
    torch.testing.assert_close(decorrelate(noise, IMAGENET_COLOR_SQRT), expected)
    torch.testing.assert_close(decorrelate(noise, 5 * IMAGENET_COLOR_SQRT), expected)
    with pytest.raises(FeatvizError, match=r"\(4, 4\)"):
        decorrelate(torch.randn(1, 4, 8, 8), IMAGENET_COLOR_SQRT)
    with pytest.raises(FeatvizError, match="square"):
        decorrelate(noise, torch.ones(3, 2))


def channel_correlation(images: torch.Tensor) -> torch.Tensor:
    flat = logit(images.detach()).transpose(0, 1).reshape(images.shape[1], -1)
    return torch.corrcoef(flat)


def test_decorrelated_images_have_correlated_channels() -> None:
    correlated = channel_correlation(Fourier(32, batch=4, seed=0, dtype=torch.float64)())
    independent = channel_correlation(Fourier(32, batch=4, seed=0, decorrelate=False, dtype=torch.float64)())
    assert correlated[0, 1] > 0.5 and correlated[1, 2] > 0.5
    assert independent[0, 1].abs() < 0.3 and independent[1, 2].abs() < 0.3


def test_custom_color_sqrt_is_used() -> None:
    swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    plain = Pixel(SIZE, channels=2, seed=0, decorrelate=False)
    swapped = Pixel(SIZE, channels=2, seed=0, color_sqrt=swap)
    torch.testing.assert_close(swapped()[:, 0], plain()[:, 1])
    with pytest.raises(FeatvizError, match=r"\(2, 2\)"):
        Pixel(SIZE, channels=2, color_sqrt=torch.eye(3))


def test_color_sqrt_from_images_recovers_a_known_covariance() -> None:
    generator = torch.Generator().manual_seed(0)
    mixing = torch.randn(4, 4, generator=generator, dtype=torch.float64)
    covariance = mixing @ mixing.T
    components = torch.randn(4, 16 * 32 * 32, generator=generator, dtype=torch.float64)
    images = (mixing @ components + 3.0).reshape(4, 16, 32, 32).transpose(0, 1)
    sqrt = color_sqrt_from_images(images)
    assert sqrt.shape == (4, 4) and sqrt.dtype == torch.float64
    flat = images.transpose(0, 1).reshape(4, -1)
    torch.testing.assert_close(sqrt @ sqrt.T, torch.cov(flat))
    torch.testing.assert_close(sqrt @ sqrt.T, covariance, rtol=0.05, atol=0.05 * covariance.abs().max().item())
    norms = sqrt.norm(dim=0)
    assert torch.all(norms[:-1] >= norms[1:])
    module = Fourier(SIZE, channels=4, seed=0, color_sqrt=sqrt.float())
    assert module().shape == (1, 4, *SIZE)


def test_color_sqrt_from_images_rejects_constant_images() -> None:
    with pytest.raises(FeatvizError, match="constant"):
        color_sqrt_from_images(torch.ones(2, 3, 8, 8))
    with pytest.raises(FeatvizError, match=r"\(N, C, H, W\)"):
        color_sqrt_from_images(torch.ones(8, 8))


def test_maco_optimizes_phase_only_and_keeps_the_amplitude_spectrum() -> None:
    module = Maco(32, batch=2, seed=0, decorrelate=False, dtype=torch.float64)
    assert [name for name, _ in module.named_parameters()] == ["phase"]
    magnitude = module.magnitude.clone()
    before = logit(module().detach())
    optimizer = torch.optim.Adam(module.parameters(), lr=module.default_lr)
    (-module()[:, 0, 8:24, 8:24].mean()).backward()
    optimizer.step()
    after = logit(module().detach())
    assert (after - before).abs().max() > 1e-2
    assert torch.equal(module.magnitude, magnitude)
    # columns 0 and W/2 of a real FFT are Hermitian-projected by irfft2; all others keep their amplitude
    amplitude_before = torch.fft.rfft2(before).abs()[..., 1:-1]
    amplitude_after = torch.fft.rfft2(after).abs()[..., 1:-1]
    ratio = amplitude_after / amplitude_before
    torch.testing.assert_close(ratio, ratio.mean(dim=(-2, -1), keepdim=True).expand_as(ratio))
    assert ratio.mean().item() == pytest.approx(1.0, abs=0.05)
    shape = amplitude_after / magnitude[..., 1:-1]
    torch.testing.assert_close(shape, shape.mean(dim=(-2, -1), keepdim=True).expand_as(shape))


def test_maco_magnitude_measures_the_mean_amplitude_spectrum() -> None:
    generator = torch.Generator().manual_seed(0)
    magnitude = torch.rand(13, 24, 13, generator=generator, dtype=torch.float64)
    phase = torch.rand(5, 13, 24, 13, generator=generator, dtype=torch.float64) * 2 * math.pi
    images = torch.fft.irfft2(torch.polar(magnitude.expand_as(phase), phase), s=(24, 24), norm="ortho")
    measured = maco_magnitude(images, 24)
    assert measured.shape == (13, 24, 13)
    torch.testing.assert_close(measured[..., 1:-1], magnitude[..., 1:-1])
    assert maco_magnitude(torch.rand(2, 13, 50, 40), (16, 20)).shape == (13, 16, 11)
    module = Maco((16, 20), channels=13, seed=0, magnitude=maco_magnitude(torch.rand(2, 13, 50, 40), (16, 20)))
    assert module().shape == (1, 13, 16, 20)


def test_maco_rejects_a_magnitude_of_the_wrong_shape() -> None:
    with pytest.raises(FeatvizError, match=r"\(3, 16, 11\)"):
        Maco((16, 20), magnitude=torch.ones(3, 16, 20))
    with pytest.raises(FeatvizError, match=">= 0"):
        Maco((16, 20), magnitude=-torch.ones(3, 16, 11))


def test_composite_blends_colors_over_the_background() -> None:
    colors = torch.rand(2, 3, 4, 4)
    background = torch.rand(2, 3, 4, 4)
    opaque = composite(torch.cat([colors, torch.ones(2, 1, 4, 4)], dim=1), background)
    clear = composite(torch.cat([colors, torch.zeros(2, 1, 4, 4)], dim=1), background)
    torch.testing.assert_close(opaque, colors)
    torch.testing.assert_close(clear, background)
    alpha = torch.rand(2, 1, 4, 4)
    torch.testing.assert_close(
        composite(torch.cat([colors, alpha], dim=1), background), colors * alpha + background * (1 - alpha)
    )
    grey = torch.full((1, 3, 1, 1), 0.5)
    torch.testing.assert_close(
        composite(torch.cat([colors, alpha], dim=1), grey), colors * alpha + 0.5 * (1 - alpha)
    )


def test_composite_passes_gradients_and_checks_channels() -> None:
    module = Fourier(SIZE, seed=0, alpha=True)
    background = torch.rand(1, 3, *SIZE, requires_grad=True)
    composite(module(), background).sum().backward()
    assert module.spectrum.grad.abs().sum() > 0 and background.grad.abs().sum() > 0
    with pytest.raises(FeatvizError, match="background"):
        composite(module(), torch.rand(1, 4, *SIZE))


def test_cppn_batch_elements_are_independent() -> None:
    module = CPPN(SIZE, batch=3, seed=0)
    module()[0].sum().backward()
    for weight in module.weights:
        assert weight.grad[0].abs().sum() > 0
        assert torch.all(weight.grad[1:] == 0)


def test_cppn_computes_linear_layers_on_composite_atan() -> None:
    module = CPPN(SIZE, batch=2, seed=0, layers=3, width=5, dtype=torch.float64)
    hidden = module.weights[0] @ module.coordinates + module.biases[0]
    for weight, bias in zip(module.weights[1:], module.biases[1:]):
        hidden = weight @ composite_atan(hidden) + bias
    expected = torch.sigmoid(hidden).reshape(2, 3, *SIZE)
    torch.testing.assert_close(module(), expected)


def test_composite_atan_is_normalized_for_standard_normal_inputs() -> None:
    x = torch.randn(1, 1, 400_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    activation = composite_atan(x)
    assert activation.shape == (1, 2, 400_000)
    torch.testing.assert_close(activation.mean(dim=2), torch.zeros(1, 2, dtype=torch.float64), atol=0.01, rtol=0)
    torch.testing.assert_close(activation.std(dim=2), torch.ones(1, 2, dtype=torch.float64), atol=0.01, rtol=0)


def test_cppn_renders_the_same_network_at_any_resolution() -> None:
    small = CPPN(16, seed=0)
    large = CPPN(64, seed=0)
    assert torch.equal(small.weights[3], large.weights[3])
    downsampled = torch.nn.functional.avg_pool2d(large(), 4)
    assert (downsampled - small()).abs().mean() < 0.01


@pytest.mark.parametrize(
    "kind, cls",
    [("fft", Fourier), ("fourier", Fourier), ("pixel", Pixel), ("cppn", CPPN), ("maco", Maco), (" FFT ", Fourier)],
)
def test_create_builds_each_kind(kind: str, cls: type) -> None:
    assert type(create(kind, SIZE, seed=0)) is cls


def test_create_passes_class_options() -> None:
    module = create("fft", SIZE, seed=0, decay=1.5)
    assert isinstance(module, Fourier) and module.decay == 1.5
    assert create("cppn", SIZE, seed=0, layers=2, width=4).layers == 2


def test_create_rejects_unknown_kinds_and_options() -> None:
    with pytest.raises(FeatvizError, match="valid kinds: fft, pixel, cppn, maco.*closest: fft"):
        create("ftt", SIZE)
    with pytest.raises(FeatvizError, match="valid options: layers, width"):
        create("cppn", SIZE, decay=1.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": 0}, "size"),
        ({"size": (16, 0)}, "size"),
        ({"size": (16, 16, 3)}, "size"),
        ({"size": "big"}, "size"),
        ({"batch": 0}, "batch must be an int >= 1"),
        ({"channels": 0}, "channels must be an int >= 1"),
        ({"batch": 2, "seed": [1, 2, 3]}, "3 seeds for a batch of 2"),
        ({"seed": -1}, r"\[0, 2\*\*63\)"),
        ({"seed": 1.5}, "seed"),
        ({"dtype": torch.int64}, "floating-point"),
        ({"alpha": "yes"}, "alpha"),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
def test_invalid_arguments_raise_featviz_errors(kind: str, kwargs: dict, message: str) -> None:
    arguments = {"size": SIZE, **kwargs}
    size = arguments.pop("size")
    with pytest.raises(FeatvizError, match=message):
        create(kind, size, **arguments)


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (Fourier, {"decay": -1.0}, "decay"),
        (Fourier, {"init_scale": float("nan")}, "init_scale"),
        (Fourier, {"decorrelate": False, "color_sqrt": torch.eye(3)}, "decorrelate"),
        (CPPN, {"layers": 0}, "layers"),
        (CPPN, {"width": 0}, "width"),
        (Maco, {"magnitude": torch.ones(5)}, "magnitude"),
    ],
)
def test_invalid_class_options_raise_featviz_errors(cls: type, kwargs: dict, message: str) -> None:
    with pytest.raises(FeatvizError, match=message):
        cls(SIZE, **kwargs)


# ---------------------------------------------------------------- registry and package discovery

@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a test register parameterizations: the registry is restored when it ends."""
    monkeypatch.setattr(featviz.param.base, "_REGISTRY", dict(featviz.param.base._REGISTRY))


NEW_MODULE = """
    import torch
    from torch import nn

    from featviz.param import Parameterization, register_parameterization


    @register_parameterization("checker", aliases=("checkerboard",))
    class Checker(Parameterization):
        default_lr = 0.02

        def __init__(self, size, *, cell: int = 4, decorrelate: bool = True, color_sqrt=None, **shared):
            super().__init__(size, **shared)
            self.cell = cell
            self.contrast = nn.Parameter(self.draw(lambda generator: torch.randn(self.out_channels, 1, 1,
                                                                                 generator=generator)))
            self.decorrelate_colors(decorrelate, color_sqrt)

        def components(self):
            rows = torch.arange(self.size[0], device=self.contrast.device) // self.cell
            columns = torch.arange(self.size[1], device=self.contrast.device) // self.cell
            pattern = ((rows[:, None] + columns[None, :]) % 2 * 2 - 1).to(self.contrast.dtype)
            return self.contrast * pattern


    __all__ = ["Checker"]
"""


def test_a_parameterization_registered_in_a_new_module_is_reachable_by_create(registry, tmp_path) -> None:
    (tmp_path / "checker.py").write_text(textwrap.dedent(NEW_MODULE))
    spec = importlib.util.spec_from_file_location("checker_parameterization", tmp_path / "checker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    image = create("checker", SIZE, batch=2, channels=4, seed=0, alpha=True, cell=2, dtype=torch.float64)
    assert type(image) is module.Checker and image.cell == 2 and image.default_lr == 0.02
    images = image()
    assert images.shape == (2, 5, *SIZE) and images.dtype == torch.float64
    assert images.min() >= 0 and images.max() <= 1
    torch.testing.assert_close(create(" CheckerBoard ", SIZE, seed=3)(), module.Checker(SIZE, seed=3)())
    assert set(registered_kinds()) == {*KINDS, "checker"} and "checker" not in KINDS
    with pytest.raises(FeatvizError, match="valid kinds: fft, pixel, cppn, maco, checker.*closest: checker"):
        create("chekcer", SIZE)
    with pytest.raises(FeatvizError, match="valid options: cell, decorrelate, color_sqrt; closest: cell"):
        create("checker", SIZE, cells=2)


def test_subclass_signatures_show_the_shared_arguments() -> None:
    shared = ["size", "batch", "channels", "seed", "alpha", "device", "dtype"]
    assert list(inspect.signature(Fourier).parameters) == [*shared, "decay", "decorrelate", "color_sqrt", "init_scale", "init_image"]
    assert list(inspect.signature(Pixel).parameters) == [*shared, "decorrelate", "color_sqrt", "init_scale"]
    assert list(inspect.signature(Maco).parameters) == [*shared, "magnitude", "decay", "decorrelate", "color_sqrt"]
    assert list(inspect.signature(CPPN).parameters) == [*shared, "layers", "width"]
    assert inspect.signature(Fourier).parameters["decay"].default == 1.3


def test_only_decorrelating_parameterizations_mix_colors() -> None:
    assert CPPN(SIZE, seed=0).mixing is None
    assert Pixel(SIZE, seed=0, decorrelate=False).mixing is None
    for cls in (Fourier, Pixel, Maco):
        assert cls(SIZE, seed=0, alpha=True).mixing.shape == (4, 4)
    with pytest.raises(TypeError, match="decorrelate"):
        CPPN(SIZE, decorrelate=True)


def test_registration_rejects_taken_names_and_non_parameterizations(registry) -> None:
    with pytest.raises(FeatvizError, match="'FFT' is already registered"):
        register_parameterization("FFT")
    with pytest.raises(FeatvizError, match="'twice' is already registered"):
        register_parameterization("twice", aliases=("twice",))
    with pytest.raises(FeatvizError, match="non-empty string"):
        register_parameterization(" ")
    with pytest.raises(FeatvizError, match="sequence of names"):
        register_parameterization("single", aliases="alias")
    with pytest.raises(FeatvizError, match="Parameterization subclass"):
        register_parameterization("module")(torch.nn.Identity)
    assert registered_kinds() == KINDS


def test_every_module_of_the_package_is_imported_and_re_exported() -> None:
    modules = [sys.modules[f"featviz.param.{info.name}"] for info in pkgutil.iter_modules(featviz.param.__path__)]
    exports = {name: getattr(module, name) for module in modules for name in module.__all__}
    assert {Fourier, Pixel, CPPN, Maco, Parameterization, create, register_parameterization} <= set(exports.values())
    assert all(getattr(featviz.param, name) is value for name, value in exports.items())
    assert sorted(featviz.param.__all__) == sorted(exports)
    assert KINDS[:4] == ("fft", "pixel", "cppn", "maco")
