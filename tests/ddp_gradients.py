"""Run by tests/test_distributed.py, alone or under `torchrun --nproc_per_node 2`: the gradient of our loss on the
same eight images (fixed t and noise), each process taking its share through DistributedDataParallel.
Writes the averaged gradient (flattened) to the file given as the first argument (the main process)."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playground.diffusion import NoiseSchedule  # noqa: E402
from playground.diffusion.training import diffusion_loss  # noqa: E402
from playground.models import PRESETS, build_unet, model_fn  # noqa: E402
from playground.services import distributed  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    dist = distributed.setup("cpu")
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(8, 3, 8, 8, generator=generator) * 2 - 1
    t = torch.randint(0, 1000, (8,), generator=generator)
    noise = torch.randn(8, 3, 8, 8, generator=generator)
    mine = slice(dist.rank * 8 // dist.world_size, (dist.rank + 1) * 8 // dist.world_size)
    unet = build_unet(PRESETS["tiny"], seed=0)
    schedule = NoiseSchedule.from_name("cosine", 1000)
    wrapped = dist.wrap(unet)  # held until backward: the averaging hooks live on the wrapper
    loss = diffusion_loss(model_fn(wrapped), schedule, images[mine], prediction_type="v_prediction",
                          t=t[mine], noise=noise[mine])
    loss.backward()
    gradient = torch.cat([p.grad.flatten() for p in unet.parameters()])
    if dist.is_main:
        torch.save(gradient, sys.argv[1])
    distributed.teardown(dist)


if __name__ == "__main__":
    main()
