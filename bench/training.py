"""Training speed and memory: our training loop against a diffusers-style loop, same UNet, batch and optimizer.

    python bench/training.py [--batch 16] [--steps 30] [--rounds 3] [--device cpu|cuda]
    python bench/training.py --processes 1,2 [--batch 16] [--steps 40]     # the multi-process case

--processes: the real command, `torchrun --nproc_per_node N -m playground train --data DIR ...`, on a folder of
synthetic 32 px images with the emoji32 network, batch --batch per process; prints the global images/s (the
median of the logged rate over the second half of the steps) for each N, and the speed-up over one process. On a
CPU each process gets cores / N threads.

Both loops do the same work per step: a batch with random flips, noise at random t, the v-prediction target,
one forward and backward pass of the same UNet (emoji32, the Train tab's network), gradient clipping, an AdamW
step and an EMA update. Ours is playground.diffusion.training.train with the Quick preset's settings, its crop
and colour augmentation off (flips only, as the reference; Min-SNR weighting stays on); the reference is the loop
of diffusers' train_unconditional.py
example (DDPMScheduler.add_noise / get_velocity, F.mse_loss, diffusers' EMAModel). Each run is its own process,
so each peak memory (max RSS on the CPU, max allocated on CUDA) is its own; rounds alternate ours / diffusers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_one(which: str, batch: int, steps: int, device: str) -> dict:
    import resource

    import torch

    from playground.data.augment import augmenter
    from playground.diffusion import NoiseSchedule
    from playground.diffusion.training import TrainConfig, new_train_state, train
    from playground.models import PRESETS, build_unet, model_fn
    from playground.services.finetune_recipes import train_config

    device = torch.device(device)
    torch.manual_seed(0)
    unet = build_unet(PRESETS["emoji32"]).to(device, memory_format=torch.channels_last)
    data = torch.rand(64, 3, 32, 32) * 2 - 1
    warmup = 3
    if which == "ours":
        config = train_config("quick", None, steps=warmup, batch_size=batch, crop_scale=1.0, color_jitter=0.0)
        schedule = NoiseSchedule.from_name(config.schedule, config.num_timesteps)
        state = new_train_state(unet, config)
        train(state, data, schedule, config, augment=augmenter(config), model_fn=model_fn(unet))
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        longer = TrainConfig(**{**config.to_dict(), "steps": warmup + steps})
        train(state, data, schedule, longer, augment=augmenter(longer), model_fn=model_fn(unet))
    else:
        import torch.nn.functional as F
        from diffusers import DDPMScheduler
        from diffusers.training_utils import EMAModel

        scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                  prediction_type="v_prediction")
        optimizer = torch.optim.AdamW(unet.parameters(), lr=5e-4, weight_decay=0.01)
        ema = EMAModel(unet.parameters(), decay=0.995, use_ema_warmup=True, inv_gamma=1.0, power=3 / 4)
        ema.to(device)

        def step() -> None:
            x0 = data[torch.randint(0, len(data), (batch,))]
            flip = torch.rand(batch) < 0.5
            x0 = torch.where(flip.view(-1, 1, 1, 1), x0.flip(-1), x0).to(device).contiguous(
                memory_format=torch.channels_last)
            noise = torch.randn_like(x0)
            t = torch.randint(0, 1000, (batch,), device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                pred = unet(scheduler.add_noise(x0, noise, t), t).sample
            loss = F.mse_loss(pred.float(), scheduler.get_velocity(x0, noise, t).float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
            optimizer.step()
            ema.step(unet.parameters())
            loss.item()

        for _ in range(warmup):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(steps):
            step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = time.perf_counter() - started
    return {"images_per_s": batch * steps / seconds, "peak_mib": peak}


def multi_process(args: argparse.Namespace) -> None:
    import os
    import tempfile

    import numpy as np
    from PIL import Image

    folder = Path(tempfile.mkdtemp()) / "data"
    folder.mkdir()
    rng = np.random.RandomState(0)
    for i in range(256):
        Image.fromarray((rng.rand(32, 32, 3) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    cores = os.cpu_count() or 1
    torchrun = Path(sys.executable).with_name("torchrun")
    rates = {}
    for n in [int(v) for v in args.processes.split(",")]:
        out = folder.parent / f"run{n}"
        threads = max(1, cores // n)
        subprocess.run([str(torchrun), "--nproc_per_node", str(n), "--master_port", str(29600 + n), "-m",
                        "playground", "train", "--data", str(folder), "--resolution", "32", "--model", "emoji32",
                        "--steps", str(args.steps), "--batch-size", str(args.batch), "--preview-every", "100000",
                        "--checkpoint-every", "100000", "--out", str(out), "--threads", str(threads),
                        "--device", args.device],
                       cwd=ROOT, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": str(threads),
                                                                      "PLAYGROUND_DATA_CACHE": str(folder.parent)})
        logged = np.loadtxt(out / "log.csv", delimiter=",", skiprows=1)
        rates[n] = float(np.median(logged[len(logged) // 2:, 3]))
        print(f"{n} process{'es' * (n > 1)} x {threads} thread{'s' * (threads > 1)}: {rates[n]:6.1f} images/s "
              f"(global batch {args.batch * n})", flush=True)
    first = min(rates)
    for n, rate in rates.items():
        if n != first:
            print(f"speed-up of {n} over {first}: {rate / rates[first]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--processes", help="e.g. 1,2: time the train command under torchrun with these counts")
    args = parser.parse_args()
    if args.processes:
        multi_process(args)
        return
    if args.one:
        print(json.dumps(run_one(args.one, args.batch, args.steps, args.device)))
        return
    import torch

    results: dict[str, list[dict]] = {"ours": [], "diffusers": []}
    for _ in range(args.rounds):
        for which in results:
            out = subprocess.run([sys.executable, __file__, "--one", which, "--batch", str(args.batch), "--steps",
                                  str(args.steps), "--device", args.device], capture_output=True, text=True, check=True)
            results[which].append(json.loads(out.stdout.strip().splitlines()[-1]))
    ours = statistics.median(r["images_per_s"] for r in results["ours"])
    theirs = statistics.median(r["images_per_s"] for r in results["diffusers"])
    print(f"emoji32 UNet, batch {args.batch}, {args.steps} steps, {args.device}, {torch.get_num_threads()} threads, "
          f"median of {args.rounds} alternating runs")
    memory = "max RSS" if args.device == "cpu" else "max allocated"
    for name, value in (("ours", ours), ("diffusers-style loop", theirs)):
        key = "ours" if name == "ours" else "diffusers"
        peak = max(r["peak_mib"] for r in results[key])
        print(f"{name:>22}: {value:6.1f} images/s, peak memory {peak:.0f} MiB ({memory})")
    print(f"{'ratio ours / diffusers':>22}: {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()
