"""The processes of a sharded pass: each rank reads its share of a folder and they meet at barriers.

Run any pass over images under ``torchrun --nproc_per_node N`` and every process takes one Nth of the
images; ``Processes`` tells a pass its rank and joins the processes' group (gloo on CPU, nccl on CUDA).
"""
from __future__ import annotations

import datetime
import os
from typing import Sequence

import torch

from featviz.errors import FeatvizError

BARRIER_TIMEOUT = datetime.timedelta(hours=24)  # the barrier waits for the slowest rank's whole shard


class Processes:
    """This process's rank and the number of processes of a sharded pass over a folder of images (a gallery
    build, an activation atlas, concept labels): ``rank 0 of 1`` in a plain run; under ``torchrun`` it joins
    (or creates) the process group. ``barrier`` waits for every process, ``total`` sums integers over them.

    Example:
        >>> processes = Processes(torch.device("cpu"))        # outside torchrun: one process
        >>> processes.rank, processes.world, processes.total([3, 4])
        (0, 1, [3, 4])
        >>> processes.close()
    """

    def __init__(self, device: torch.device) -> None:
        import torch.distributed as distributed

        self.distributed = distributed
        self.created = False
        world = _environment_int("WORLD_SIZE", 1)
        if distributed.is_available() and distributed.is_initialized():
            self.rank, self.world = distributed.get_rank(), distributed.get_world_size()
        elif world > 1:
            if not distributed.is_available():
                raise FeatvizError("WORLD_SIZE > 1 but this PyTorch has no torch.distributed; run one process")
            backend = "nccl" if device.type == "cuda" else "gloo"
            distributed.init_process_group(backend, timeout=BARRIER_TIMEOUT)
            self.created = True
            self.rank, self.world = distributed.get_rank(), distributed.get_world_size()
        else:
            self.rank, self.world = 0, 1
        self.device = device

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.world > 1:
            if self.distributed.get_backend() == "nccl":
                self.distributed.barrier(device_ids=[self.device.index or 0])
            else:
                self.distributed.barrier()

    def total(self, values: Sequence[int]) -> list[int]:
        """``values`` summed over all processes."""
        if self.world == 1:
            return list(values)
        on = self.device if self.distributed.get_backend() == "nccl" else torch.device("cpu")
        tensor = torch.tensor(list(values), dtype=torch.int64, device=on)
        self.distributed.all_reduce(tensor)
        return tensor.tolist()

    def close(self) -> None:
        """Leave the process group if this object created it."""
        if self.created:
            self.distributed.destroy_process_group()

def _environment_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise FeatvizError(
            f"environment variable {name}={text!r} is not an integer; torchrun sets it, or unset it"
        ) from None


__all__ = ["Processes"]
