"""`resolve_device`: the one parser of device arguments (``cpu``, ``cuda``, ``cuda:N``, ``mps``) in featviz.

Every public function and command that takes a ``device`` passes it through `resolve_device`, so a mistake
reads the same everywhere: one line naming what was wrong and what would work here.
"""
from __future__ import annotations

import os

import torch

from featviz.errors import FeatvizError

SUPPORTED_TYPES = ("cpu", "cuda", "mps")
LOCAL_RANK_VARIABLE = "LOCAL_RANK"
_USE_CPU = "use device='cpu' (--device cpu on the command line)"
_SYNTAX = "use cpu, cuda, cuda:N or mps"


def resolve_device(
    device: str | torch.device | None,
    *,
    default: str | torch.device | None = None,
    per_process: bool = False,
) -> torch.device:
    """Check ``device`` and return it as a ``torch.device`` that exists on this machine.

    ``device`` is ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` (any case, surrounding spaces ignored) or a
    ``torch.device``; None means ``default`` (None: the CPU), which is checked the same way. An unknown name,
    a device type other than cpu/cuda/mps, CUDA or MPS that this machine lacks, and a GPU index past the last
    GPU raise a one-line `FeatvizError`. With ``per_process=True`` (one process per GPU, as under ``torchrun``) a bare
    ``"cuda"`` means ``cuda:LOCAL_RANK`` (cuda:0 when ``LOCAL_RANK`` is unset) and the chosen GPU becomes the
    process's current CUDA device (``torch.cuda.set_device``); without it a bare ``"cuda"`` stays index-less.

    Example:
        >>> resolve_device("CPU")
        device(type='cpu')
        >>> resolve_device(None, default="cpu")
        device(type='cpu')

        On a machine with GPUs, under torchrun with ``LOCAL_RANK=1``:

        >>> resolve_device("cuda", per_process=True)  # doctest: +SKIP
        device(type='cuda', index=1)
    """
    if device is None:
        device = "cpu" if default is None else default
    resolved = _parse(device)
    if resolved.type == "cuda":
        resolved = _check_cuda(device, resolved, per_process)
    elif resolved.type == "mps":
        _check_mps(device, resolved)
    return resolved


def _parse(device: object) -> torch.device:
    if isinstance(device, torch.device):
        resolved = device
    elif isinstance(device, str):
        text = device.strip().lower()
        try:
            resolved = torch.device(text)
        except RuntimeError:
            raise FeatvizError(f"unknown device '{device}'; {_SYNTAX} (N: a GPU index from 0)") from None
    else:
        raise FeatvizError(
            f"a device must be a name such as 'cuda:0' or a torch.device, not {type(device).__name__}; {_SYNTAX}"
        )
    if resolved.type not in SUPPORTED_TYPES:
        raise FeatvizError(f"device type '{resolved.type}' (from '{device}') is not supported by featviz; {_SYNTAX}")
    return resolved


def _check_cuda(requested: object, resolved: torch.device, per_process: bool) -> torch.device:
    if not torch.cuda.is_available():
        raise FeatvizError(f"device '{requested}' is not available here (no CUDA GPU found); {_USE_CPU}")
    count = torch.cuda.device_count()
    valid = f"cuda:0..cuda:{count - 1}" if count > 1 else "cuda:0"
    if resolved.index is None and per_process:
        rank = _local_rank()
        if rank >= count:
            raise FeatvizError(
                f"device '{requested}' means cuda:{rank} in the process with {LOCAL_RANK_VARIABLE}={rank}, but this "
                f"machine has {count} CUDA GPU{'s' if count > 1 else ''} ({valid}); start at most {count} processes "
                "per machine"
            )
        resolved = torch.device("cuda", rank)
    if resolved.index is not None and resolved.index >= count:
        raise FeatvizError(f"device '{requested}' does not exist; valid here: {valid}, or {_USE_CPU}")
    if per_process:
        torch.cuda.set_device(resolved)
    return resolved


def _local_rank() -> int:
    text = os.environ.get(LOCAL_RANK_VARIABLE, "").strip()
    if not text:
        return 0
    try:
        rank = int(text)
    except ValueError:
        rank = -1
    if rank < 0:
        raise FeatvizError(
            f"environment variable {LOCAL_RANK_VARIABLE}={text!r} is not a GPU index (an int of 0 or more); "
            "torchrun sets it, or unset it"
        )
    return rank


def _check_mps(requested: object, resolved: torch.device) -> None:
    if not torch.backends.mps.is_available():
        raise FeatvizError(f"device '{requested}' is not available here (no Apple MPS GPU found); {_USE_CPU}")
    if resolved.index not in (None, 0):
        raise FeatvizError(f"device '{requested}' does not exist; there is one MPS device: use mps or mps:0")
