"""Where a run executes: process group (torchrun), device, and numeric precision.

Launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the process group is initialised
with NCCL on GPUs and gloo on CPU; each rank uses ``cuda:LOCAL_RANK`` when CUDA is available.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..distributed import world


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int
    world_size: int
    autocast_dtype: torch.dtype | None  # None: full fp32

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)


def init_runtime(*, precision: str = "auto") -> Runtime:
    """Join the torchrun process group if there is one, and pick device and precision."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    rank, world_size = world()
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    return Runtime(device=device, rank=rank, world_size=world_size,
                   autocast_dtype=torch.bfloat16 if use_bf16 else None)


def shutdown_runtime() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
