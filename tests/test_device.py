"""featviz.device.resolve_device: names, defaults, unavailable or missing GPUs, and one process per GPU."""
import pytest
import torch

from featviz.device import resolve_device
from featviz.errors import FeatvizError


@pytest.fixture
def two_gpus(monkeypatch):
    """Pretend CUDA has two GPUs; records every torch.cuda.set_device call."""
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: chosen.append(torch.device(device)))
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    return chosen


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("device", ["cpu", "CPU", " cpu ", torch.device("cpu"), None])
def test_cpu_in_any_spelling_and_none_means_the_default(device):
    assert resolve_device(device) == torch.device("cpu")


def test_none_takes_the_default_which_is_checked_too(no_gpu):
    assert resolve_device(None, default=torch.device("cpu")) == torch.device("cpu")
    assert resolve_device(None, default=None) == torch.device("cpu")
    with pytest.raises(FeatvizError, match="device 'cuda:0' is not available here"):
        resolve_device(None, default="cuda:0")


@pytest.mark.parametrize(
    "device, expected",
    [
        ("gpu0", "unknown device 'gpu0'; use cpu, cuda, cuda:N or mps (N: a GPU index from 0)"),
        ("cuda:-1", "unknown device 'cuda:-1'; use cpu, cuda, cuda:N or mps (N: a GPU index from 0)"),
        ("meta", "device type 'meta' (from 'meta') is not supported by featviz; use cpu, cuda, cuda:N or mps"),
        (0, "a device must be a name such as 'cuda:0' or a torch.device, not int"),
    ],
)
def test_malformed_and_unsupported_devices(device, expected):
    with pytest.raises(FeatvizError) as error:
        resolve_device(device)
    assert one_line(error).startswith(expected)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "mps"])
def test_unavailable_gpus_point_to_the_cpu(no_gpu, device):
    with pytest.raises(FeatvizError) as error:
        resolve_device(device)
    message = one_line(error)
    assert message.startswith(f"device '{device}' is not available here (no ")
    assert message.endswith("use device='cpu' (--device cpu on the command line)")


def test_cuda_index_is_checked_against_the_gpus_there_are(two_gpus):
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda")  # no index: torch's current device
    with pytest.raises(FeatvizError) as error:
        resolve_device("cuda:2")
    assert one_line(error).startswith("device 'cuda:2' does not exist; valid here: cuda:0..cuda:1, or use device='cpu'")
    assert two_gpus == [], "only per_process=True sets the current device"


def test_per_process_maps_bare_cuda_to_local_rank_and_sets_it(two_gpus, monkeypatch):
    assert resolve_device("cuda", per_process=True) == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("cuda", per_process=True) == torch.device("cuda", 1)
    assert resolve_device(None, default="cuda", per_process=True) == torch.device("cuda", 1)
    assert resolve_device("cuda:0", per_process=True) == torch.device("cuda", 0)  # an explicit index wins
    assert two_gpus == [torch.device("cuda", 0), torch.device("cuda", 1), torch.device("cuda", 1), torch.device("cuda", 0)]
    assert resolve_device("cpu", per_process=True) == torch.device("cpu")
    assert len(two_gpus) == 4


@pytest.mark.parametrize(
    "rank, expected",
    [
        ("2", "device 'cuda' means cuda:2 in the process with LOCAL_RANK=2, but this machine has 2 CUDA GPUs "
              "(cuda:0..cuda:1); start at most 2 processes per machine"),
        ("x", "environment variable LOCAL_RANK='x' is not a GPU index (an int of 0 or more); torchrun sets it"),
        ("-1", "environment variable LOCAL_RANK='-1' is not a GPU index"),
    ],
)
def test_per_process_rejects_a_local_rank_without_a_gpu(two_gpus, monkeypatch, rank, expected):
    monkeypatch.setenv("LOCAL_RANK", rank)
    with pytest.raises(FeatvizError) as error:
        resolve_device("cuda", per_process=True)
    assert one_line(error).startswith(expected)
    assert two_gpus == []


def test_mps_has_one_device(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("MPS") == torch.device("mps")
    with pytest.raises(FeatvizError, match="device 'mps:1' does not exist; there is one MPS device: use mps or mps:0"):
        resolve_device("mps:1")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_real_gpus():
    count = torch.cuda.device_count()
    assert resolve_device(f"cuda:{count - 1}") == torch.device("cuda", count - 1)
    with pytest.raises(FeatvizError, match=f"device 'cuda:{count}' does not exist"):
        resolve_device(f"cuda:{count}")
    previous = torch.cuda.current_device()
    try:
        assert resolve_device("cuda", per_process=True) == torch.device("cuda", 0)
        assert torch.cuda.current_device() == 0
    finally:
        torch.cuda.set_device(previous)
