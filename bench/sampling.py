"""Sampling speed: our sampler loop against diffusers' DDIMPipeline, same UNet, batch and steps, one process.

    python bench/sampling.py [--checkpoint DIR] [--batch 16] [--steps 25] [--repeats 3]
    python bench/sampling.py --latent checkpoints/emoji64-latent --pixel checkpoints/emoji32 [--sampler S --steps N]
    python bench/sampling.py --distilled checkpoints/emoji32-prompts-distilled --teacher checkpoints/emoji32-prompts

--latent: 16 pictures at 64 px from a latent model, the decoder included, against 16 at 32 px from a pixel model,
with the same sampler and steps, interleaved; prints both times and their ratio (latent / pixel; at most 1 is the
goal). --distilled: the student at 1, 2, 4 and 8 steps (on the sampler the app gives it for a prompt) against its
teacher at DDPM 200, DDPM 50 and DPM-Solver++ 25 (guided), each: the time for 16 pictures of a prompt and how
often samples follow the word (services.sample_quality: the nearest training emoji has the word in its name; --count
samples for each of 25 words); --record writes the fidelities into the student's playground.json, where the Sample
tab plots them. --student-only: only the student's rows (the teacher's fidelities take half an hour; --record then
keeps the teacher's already recorded), and the teacher's DDPM 200 timed once for the speed-up.

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


def timed(fn, repeats: int) -> float:
    """The median seconds of ``fn()`` over ``repeats`` runs, after one to warm up."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def latent_against_pixel(latent_folder: str, pixel_folder: str, sampler: str, steps: int, repeats: int) -> None:
    from playground.services.image_sampling import final_images
    from playground.services.model_catalog import get_checkpoint

    latent, pixel = get_checkpoint(latent_folder), get_checkpoint(pixel_folder)
    runs = {name: (lambda c=checkpoint: final_images(c, sampler, steps, 16, 0)) for name, checkpoint in
            (("latent", latent), ("pixel", pixel))}
    times = {name: [] for name in runs}
    for fn in runs.values():
        fn()
    for _ in range(repeats):  # interleaved, so drift on a shared machine hits both alike
        for name, fn in runs.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    latent_s, pixel_s = statistics.median(times["latent"]), statistics.median(times["pixel"])
    decode_s = timed(lambda: latent.to_pictures(torch.randn(16, *latent.sample_shape)), repeats)
    print(f"16 pictures, {sampler} {steps} steps, torch threads {torch.get_num_threads()}:")
    print(f"  {latent.name} at {latent.resolution} px (latents {latent.sample_shape}, decoder included): "
          f"{latent_s:.2f} s, of which the decoder {decode_s:.2f} s")
    print(f"  {pixel.name} at {pixel.resolution} px: {pixel_s:.2f} s")
    print(f"  ratio latent / pixel: {latent_s / pixel_s:.2f}x")


def distilled_against_teacher(student_folder: str, teacher_folder: str, count: int, repeats: int,
                              record: bool, student_only: bool = False) -> None:
    import json

    from playground.data.dataset import dataset_from_uint8
    from playground.data.emoji import emoji_subset
    from playground.services.image_sampling import default_sampling, final_images
    from playground.services.model_catalog import get_checkpoint
    from playground.services.sample_quality import BENCH_WORDS, prompt_fidelity

    student, teacher = get_checkpoint(student_folder), get_checkpoint(teacher_folder)
    emoji = emoji_subset(teacher.resolution)
    images = dataset_from_uint8("emoji", emoji.images).images
    guidance = 5.0
    student_sampler = default_sampling("cat", student)[0]  # as the app samples a prompt with it
    runs = [("student", student, student_sampler, n) for n in (1, 2, 4, 8)] + [
        ("teacher", teacher, sampler, n) for sampler, n in (("ddpm", 200), ("ddpm", 50), ("dpmpp", 25))
        if not student_only]
    recorded = student.info.get("measured", {}).get("teacher", {}) if student_only else {}
    measured: dict[str, dict[str, float]] = {"student": {}, "teacher": dict(recorded)}
    print(f"16 pictures of 'cat' at guidance {guidance:g}, and prompt fidelity over {len(BENCH_WORDS)} words x "
          f"{count} samples; torch threads {torch.get_num_threads()}")
    for who, checkpoint, sampler, steps in runs:
        seconds = timed(lambda c=checkpoint, s=sampler, n=steps: final_images(c, s, n, 16, 0, prompt="cat",
                                                                              guidance=guidance), repeats)
        shares = prompt_fidelity(lambda word, c=checkpoint, s=sampler, n=steps: final_images(
            c, s, n, count, 0, prompt=word, guidance=guidance), BENCH_WORDS, images, emoji.names)
        mean = sum(shares.values()) / len(shares)
        label = str(steps) if who == "student" else f"{'DDPM' if sampler == 'ddpm' else 'DPM-Solver++'} {steps}"
        measured[who][label] = round(mean, 4)
        followed = sum(share > 0.5 for share in shares.values())
        print(f"  {who:>7} {label:>17}: {seconds:6.2f} s for 16, follows the word {mean:4.0%} ({followed} of "
              f"{len(shares)} words)")
    teacher_s = timed(lambda: final_images(teacher, "ddpm", 200, 16, 0, prompt="cat", guidance=guidance), 1)
    student_s = timed(lambda: final_images(student, student_sampler, 4, 16, 0, prompt="cat", guidance=guidance),
                      repeats)
    print(f"  the teacher's default (DDPM 200) against the student's 4 steps: {teacher_s / student_s:.0f}x faster")
    if record:
        info_path = student.path / "playground.json"
        info = json.loads(info_path.read_text())
        info["measured"] = measured
        info_path.write_text(json.dumps(info, indent=2))
        print(f"  recorded in {info_path}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", help="a checkpoint folder (default: a fresh emoji32-sized UNet)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latent", help="a latent model: time it against --pixel instead")
    parser.add_argument("--pixel", default=str(ROOT / "checkpoints" / "emoji32"))
    parser.add_argument("--sampler", default="dpmpp", help="with --latent: the sampler both use")
    parser.add_argument("--distilled", help="a distilled student: time and fidelity against --teacher instead")
    parser.add_argument("--teacher", default=str(ROOT / "checkpoints" / "emoji32-prompts"))
    parser.add_argument("--count", type=int, default=16, help="with --distilled: samples per word")
    parser.add_argument("--record", action="store_true", help="with --distilled: write the fidelities into its card")
    parser.add_argument("--student-only", action="store_true",
                        help="with --distilled: measure only the student (--record keeps the teacher's recorded rows)")
    args = parser.parse_args()
    if args.latent:
        return latent_against_pixel(args.latent, args.pixel, args.sampler, args.steps, args.repeats)
    if args.distilled:
        return distilled_against_teacher(args.distilled, args.teacher, args.count, args.repeats, args.record,
                                         args.student_only)

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
