"""Process-group setup so that one command runs on 1 or N devices.

`torchrun --nproc_per_node N -m samba pretrain ...` sets RANK / WORLD_SIZE / LOCAL_RANK; a plain
`samba pretrain ...` has none and runs as a world of one. NCCL on CUDA, gloo on CPU (the tests).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str | None = None) -> DistInfo:
    """Initialise the process group when launched by torchrun (or already initialised by a test)."""
    # NVLink multicast can take shared multi-GPU hosts out of service: keep it off everywhere.
    for var, val in (("NCCL_NVLS_ENABLE", "0"), ("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"), ("NVSHMEM_DISABLE_NVLS", "1")):
        os.environ.setdefault(var, val)
    from samba.devices import resolve_device

    want_cuda = resolve_device(device).type == "cuda"  # "gpu" or CUDA on a CPU build: a clear error
    world = int(os.environ.get("WORLD_SIZE", "1"))
    initialized_here = False
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
    elif world > 1:
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        backend = "nccl" if want_cuda else "gloo"
        if want_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
        initialized_here = True
    else:
        rank, local_rank = 0, 0
    if want_cuda:
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    return DistInfo(rank, world, local_rank, dev, initialized_here)


def teardown(info: DistInfo) -> None:
    if info.initialized_here and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_mean(value: float, info: DistInfo) -> float:
    if not info.enabled:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64,
                     device=info.device if info.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return float(t.item() / info.world_size)


def gather_objects(obj, info: DistInfo) -> list:
    """Every rank's object, on every rank (used to save each rank's RNG state in one checkpoint)."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
