"""Sampling speed: our sampler loop against diffusers' DDIMPipeline, same UNet, batch and steps, one process.

    python bench/sampling.py [--checkpoint DIR] [--batch 16] [--steps 25] [--repeats 3]

Prints images/s for both, the ratio (ours / diffusers, >1: ours is faster), and the share of this CPU's
measured fp32 matmul GFLOP/s that the UNet reaches inside our loop. Then classifier-free guidance: the same UNet
as a prompt model (PromptedUNet, random word embeddings) following a prompt at s = 3, against the same model
unguided (the target: at most 2.1x the time): conditional and unconditional halves in one batch of 2B, and as the app
runs it (the same on a GPU; on a CPU the 2B rows go through in cache-sized pieces, models.CPU_CHUNK_PIXELS).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from diffusers import DDIMPipeline, DDIMScheduler  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from playground.data.prompts import Vocabulary  # noqa: E402
from playground.diffusion import NoiseSchedule, make_sampler, sample  # noqa: E402
from playground.diffusion.guidance import guided_model_fn  # noqa: E402
from playground.models import PRESETS, PromptedUNet, build_unet, count_parameters, cpu_rows, model_fn  # noqa: E402
from playground.services.image_sampling import guided_fn  # noqa: E402


def matmul_gflops(size: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def unet_flops(unet, batch: int, resolution: int) -> float:
    x, t = torch.randn(batch, 3, resolution, resolution), torch.full((batch,), 500)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        unet(x, t)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", help="a checkpoint folder (default: a fresh emoji32-sized UNet)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    if args.checkpoint:
        from playground.checkpoints import load_checkpoint

        checkpoint = load_checkpoint(args.checkpoint)
        unet, schedule, prediction = checkpoint.unet, checkpoint.schedule, checkpoint.prediction_type
    else:
        torch.manual_seed(0)
        unet = build_unet(PRESETS["emoji32"]).eval()
        schedule, prediction = NoiseSchedule.from_name("cosine", 1000), "v_prediction"
    unet = unet.to(memory_format=torch.channels_last).eval()
    resolution = unet.config.sample_size
    diffusers_scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                        prediction_type=prediction, timestep_spacing="trailing", clip_sample=True)
    diffusers_scheduler.alphas_cumprod = schedule.alphas_cumprod.float()
    pipeline = DDIMPipeline(unet=unet, scheduler=diffusers_scheduler)
    pipeline.set_progress_bar_config(disable=True)

    def ours() -> None:
        generator = torch.Generator().manual_seed(0)
        x_T = torch.randn(args.batch, 3, resolution, resolution, generator=generator)
        x_T = x_T.contiguous(memory_format=torch.channels_last)
        sampler = make_sampler("ddim", schedule, args.steps, prediction_type=prediction, clip_sample=1.0)
        sample(model_fn(unet), sampler, x_T, generator)

    def theirs() -> None:
        with torch.inference_mode():
            pipeline(batch_size=args.batch, num_inference_steps=args.steps, eta=0.0, use_clipped_model_output=True,
                     generator=torch.Generator().manual_seed(0), output_type="np")

    ours(), theirs()  # warm-up
    times = {"ours": [], "diffusers": []}
    for _ in range(args.repeats):  # interleaved, so drift on a shared machine hits both alike
        for name, fn in (("ours", ours), ("diffusers", theirs)):
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    ours_s, theirs_s = statistics.median(times["ours"]), statistics.median(times["diffusers"])
    peak = matmul_gflops()
    achieved = unet_flops(unet, args.batch, resolution) * args.steps / ours_s / 1e9
    print(f"UNet {count_parameters(unet) / 1e6:.2f} M parameters at {resolution}x{resolution}; batch {args.batch}, "
          f"DDIM {args.steps} steps, torch threads {torch.get_num_threads()}")
    print(f"  ours:      {args.batch / ours_s:6.2f} images/s ({ours_s:.2f} s per batch)")
    print(f"  diffusers: {args.batch / theirs_s:6.2f} images/s ({theirs_s:.2f} s per batch, DDIMPipeline)")
    print(f"  ratio ours/diffusers: {theirs_s / ours_s:.2f}x")
    print(f"  UNet reaches {achieved:.1f} GFLOP/s in our loop = {100 * achieved / peak:.0f}% of this CPU's "
          f"measured fp32 matmul {peak:.1f} GFLOP/s")

    vocabulary = Vocabulary(("heart", "red"))
    prompted = getattr(unet, "vocabulary", None) and unet
    if prompted is None:
        prompted = PromptedUNet.from_unconditional(unet, vocabulary).eval()
        torch.nn.init.normal_(prompted.encoder.embedding.weight)
    prompt = "heart"

    words = prompted.vocabulary.batch([prompt])

    def run(way: str) -> None:
        generator = torch.Generator().manual_seed(0)
        x_T = torch.randn(args.batch, 3, resolution, resolution, generator=generator)
        sampler = make_sampler("ddim", schedule, args.steps, prediction_type=prediction, clip_sample=1.0)
        fn = {"unguided": lambda: model_fn(prompted),
              "one batch": lambda: guided_model_fn(model_fn(prompted), words.expand(args.batch, -1),
                                                   torch.zeros_like(words), 3.0),
              "as the app": lambda: guided_fn(prompted, prompt, 3.0, args.batch)}[way]()
        sample(fn, sampler, x_T.contiguous(memory_format=torch.channels_last), generator)

    ways = ("unguided", "one batch", "as the app")
    for way in ways:
        run(way)
    guided = {way: [] for way in ways}
    for _ in range(args.repeats):
        for way in ways:
            started = time.perf_counter()
            run(way)
            guided[way].append(time.perf_counter() - started)
    plain_s, batch_s, app_s = (statistics.median(guided[way]) for way in ways)
    print(f"  prompt model unguided: {args.batch / plain_s:6.2f} images/s; guided s = 3, both halves in one batch "
          f"of {2 * args.batch}: {batch_s / plain_s:.2f}x the unguided time")
    on_cpu = unet.device.type == "cpu"
    pieces = f"in pieces of {cpu_rows(resolution)} images, this CPU's cache-sized forward" if on_cpu else "one batch"
    print(f"  guided as the app runs it ({pieces}): {args.batch / app_s:6.2f} images/s; guided/unguided time "
          f"{app_s / plain_s:.2f}x")

if __name__ == "__main__":
    main()
