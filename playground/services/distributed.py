"""Training on several processes: what `torchrun` and `accelerate launch` set up, read from their environment.

Both launchers start one process per device and set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT;
nothing of ours launches anything. :func:`setup` joins the process group (NCCL on GPUs, gloo on CPUs) and picks
this process's device; alone (no WORLD_SIZE, or 1) it changes nothing.

    dist = setup()                      # Distributed(rank, world_size, device, ...)
    model = dist.wrap(unet)             # DistributedDataParallel: gradients averaged over processes
    shard = dist.shard(images)          # this process's share of the data: every world_size-th image
    flags = dist.agree(loss, stop, save)  # one all-reduce per step: mean loss, and the main process's decisions
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """The process that writes previews, logs and checkpoints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model for the forward pass: DistributedDataParallel across processes, else the model itself. The
        parameters stay the module's own, so EMA, clipping and saving use the unwrapped module."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def shard(self, images: torch.Tensor) -> torch.Tensor:
        """Every world_size-th image from this process's rank (a view: a memory-mapped cache stays on disk)."""
        return images[self.rank::self.world_size] if self.active else images

    def agree(self, loss: float, stop: bool, save: bool) -> tuple[float, bool, bool]:
        """The loss averaged over processes, and whether to stop and to save as the main process decided."""
        if not self.active:
            return loss, stop, save
        main = 1.0 if self.is_main else 0.0
        values = torch.tensor([loss, main * stop, main * save], dtype=torch.float64,
                              device=self.device if self.device.type == "cuda" else "cpu")
        torch.distributed.all_reduce(values)
        return float(values[0]) / self.world_size, bool(values[1] > 0), bool(values[2] > 0)

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every process's ``tensor`` (same shape and dtype on all), on the CPU, in rank order."""
        if not self.active:
            return [tensor.cpu()]
        on = tensor.to(self.device) if self.device.type == "cuda" else tensor
        parts = [torch.empty_like(on) for _ in range(self.world_size)]
        torch.distributed.all_gather(parts, on)
        return [p.cpu() for p in parts]

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()


def from_environment() -> tuple[int, int, int]:
    """(rank, world size, local rank) as the launcher set them; (0, 1, 0) when started alone."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", 0))))


def setup(prefer_device: str | None = None) -> Distributed:
    """Join the launcher's process group, if there is one, and choose this process's device: its own GPU
    (cuda:LOCAL_RANK) when there are GPUs, else the CPU."""
    rank, world_size, local_rank = from_environment()
    if prefer_device:
        device = torch.device(prefer_device)
    elif torch.cuda.is_available():
        device = torch.device("cuda", local_rank if world_size > 1 else 0)
    else:
        device = torch.device("cpu")
    if world_size > 1:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                                 timeout=datetime.timedelta(minutes=30))
    return Distributed(rank, world_size, local_rank, device)


def teardown(dist: Distributed) -> None:
    if dist.active and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
