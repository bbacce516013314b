"""The command line: ``python -m playground {noise,schedule,sample,train,toy} ...``; the same services as the tabs."""

from __future__ import annotations

import argparse
import contextlib
import sys

from playground.diffusion import BETA_SCHEDULES
from playground.diffusion.guidance import DEFAULT_GUIDANCE
from playground.diffusion.schedules import MAX_TIMESTEPS, MIN_TIMESTEPS


def _timesteps(text: str) -> int:
    value = int(text)
    if not MIN_TIMESTEPS <= value <= MAX_TIMESTEPS:
        raise argparse.ArgumentTypeError(f"T must be between {MIN_TIMESTEPS} and {MAX_TIMESTEPS}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m playground", description="Diffusion Playground from a terminal.")
    commands = parser.add_subparsers(dest="command", required=True)

    noise = commands.add_parser("noise", help="noise a photo at timestep t: x_t = sqrt(abar) x0 + sqrt(1-abar) eps")
    noise.add_argument("image", help="a JPEG, PNG, WebP, BMP, GIF or TIFF file")
    noise.add_argument("--schedule", choices=list(BETA_SCHEDULES), default="linear")
    noise.add_argument("--T", dest="num_timesteps", type=_timesteps, default=1000,
                       help="number of steps (default 1000)")
    noise.add_argument("--t", type=int, default=250, help="timestep, 0-based as in diffusers (default 250)")
    noise.add_argument("--seed", type=int, default=0, help="seed of the noise eps (default 0)")
    noise.add_argument("--resolution", type=int, choices=[64, 128, 256], default=128)
    noise.add_argument("--zero-snr", action="store_true", help="rescale the schedule to zero terminal SNR")
    noise.add_argument("--out", default="x_t.png", help="where to write x_t (default x_t.png)")
    noise.add_argument("--noise-out", help="also write the noise eps here")
    noise.add_argument("--strip", help="also write x_t at 8 evenly spaced t here")
    noise.add_argument("--gif", help="also write a GIF of the whole forward process here")

    schedule = commands.add_parser("schedule", help="print key numbers of noise schedules")
    schedule.add_argument("names", nargs="*", metavar="NAME",
                          help=f"schedules among {', '.join(BETA_SCHEDULES)} (default: all)")
    schedule.add_argument("--T", dest="num_timesteps", type=_timesteps, default=1000)
    schedule.add_argument("--zero-snr", action="store_true")
    train = commands.add_parser("train", help="train on the emoji set, or fine-tune on your own photos (--images); "
                                               "resumable")
    train.add_argument("--images", help="a folder of 1 to 100 photos: fine-tune --base on them (the Train tab)")
    train.add_argument("--base", help="with --images: the base checkpoint folder, or 'scratch' "
                                      "(default: checkpoints/emoji32)")
    train.add_argument("--preset", choices=["quick", "better", "gpu"], default="quick",
                       help="with --images: the recipe (steps, lr, batch, augmentation, prior preservation)")
    train.add_argument("--crop", choices=["center", "pad"], default="center",
                       help="with --images: centre-crop each photo to a square, or pad it with white")
    train.add_argument("--prior-fraction", type=float,
                       help="with --images: share of each batch from the base model's own samples (0: off)")
    train.add_argument("--subject", metavar="WORD",
                       help="with --images and a prompt base: DreamBooth, a new word for your subject (e.g. zork); "
                            "afterwards 'WORD CLASS' draws it and CLASS alone still draws the class")
    train.add_argument("--class-word", metavar="CLASS", help="with --subject: what the subject is, in words the base "
                                                             "knows (e.g. dog)")
    train.add_argument("--data", help="train from scratch (or --init-from) on every image under this folder: decoded "
                                      "once into a cache, greyscale folders give 1-channel models")
    train.add_argument("--resolution", type=int, choices=[32, 64, 128],
                       help="with --data: the training size (default 64)")
    train.add_argument("--quality-samples", type=int, default=64,
                       help="with --data: at every preview, draw this many samples and measure density, coverage "
                            "and near-copies against held-out images (RUN/quality.csv, RUN/progress.html; 0: off)")
    train.add_argument("--dataset", choices=["emoji"], default="emoji")
    train.add_argument("--subset", choices=["curated", "all"], default="curated",
                       help="curated: faces, people, animals, food, places, activities, objects without skin-tone "
                            "variants; all: every emoji (~3,600)")
    train.add_argument("--prompts", action="store_true",
                       help="--dataset emoji: learn prompts from the emoji's names (classifier-free guidance; with "
                            "--init-from an unconditional model, step 0 draws exactly what it drew)")
    train.add_argument("--prompt-dropout", type=float, default=0.15,
                       help="--prompts: share of examples trained with the empty prompt (default 0.15)")
    train.add_argument("--word-dropout", type=float, default=0.5,
                       help="--prompts: chance each word of a name is left out, one always kept (default 0.5)")
    train.add_argument("--word-focus", type=float, default=0.0,
                       help="--prompts: share of each batch drawn word first (a word two or more names share, then "
                            "one of its pictures, captioned by that word alone), so rare words are practised as "
                            "often as common ones (default 0)")
    train.add_argument("--word-focus-min-t", type=int, default=0,
                       help="--prompts --word-focus: draw the word-first examples' timesteps from [this, T) (at low "
                            "noise the picture already shows what it is, and the word adds little; default 0)")
    train.add_argument("--encoder-lr", type=float, default=1e-2,
                       help="--prompts: the word embeddings' peak learning rate (default 1e-2)")
    train.add_argument("--model", choices=["tiny", "emoji32", "emoji64", "unet64", "unet128"],
                       help="network size (default emoji32; with --data the resolution's: emoji32, unet64, unet128)")
    train.add_argument("--steps", type=int, help="optimizer steps in total (default 20000; with --images the preset's)")
    train.add_argument("--batch-size", type=int, help="default 64; with --images the preset's")
    train.add_argument("--lr", type=float, help="AdamW peak learning rate (default 5e-4; with --images the preset's)")
    train.add_argument("--warmup-steps", type=int, help="default 200; with --images the preset's")
    train.add_argument("--prediction-type", choices=["epsilon", "v_prediction", "sample"], default="v_prediction")
    train.add_argument("--min-snr-gamma", type=float, default=5.0, help="Min-SNR-gamma loss weight (0: off)")
    train.add_argument("--schedule", choices=list(BETA_SCHEDULES), default="cosine")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", required=True, help="the run folder (checkpoint/, samples/, log.csv)")
    train.add_argument("--no-resume", action="store_true", help="start over even if OUT has a checkpoint")
    train.add_argument("--init-from", help="warm-start from this checkpoint folder when OUT has none "
                                           "(its weights, step count and loss history; fresh optimizer)")
    train.add_argument("--preview-every", type=int,
                       help="steps between preview grids (default 500; with --images the preset's)")
    train.add_argument("--checkpoint-every", type=float,
                       help="at most this many seconds between checkpoints (default 600; with --images 120); the "
                            "first comes 15 s in and the gaps double up to it, so short runs are saved early too")
    train.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    train.add_argument("--device", help="cpu, cuda, ... (default: CUDA when present)")
    sample = commands.add_parser("sample", help="generate images from a checkpoint folder")
    sample.add_argument("--checkpoint", required=True, help="a checkpoint folder (diffusers DDPM layout)")
    sample.add_argument("--sampler", choices=["ddpm", "ddim", "dpmpp"],
                        help="default: dpmpp; with --prompt, ddpm (its fresh noise at every step lets guidance keep "
                             "steering, so more samples follow the prompt)")
    # a test holds these numbers to services.image_sampling's PROMPT_SAMPLING and PLAIN_SAMPLING (not imported
    # here: that module loads diffusers, and --help should stay quick)
    sample.add_argument("--steps", type=int, help="default: 200 for ddpm with --prompt, else 25")
    sample.add_argument("--n", type=int, default=16, help="how many images (1..64)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--eta", type=float, default=0.0, help="DDIM's eta (0: deterministic)")
    sample.add_argument("--prompt", default="", help="prompt models only: words from emoji names, e.g. 'red heart'")
    sample.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE,
                        help=f"classifier-free guidance scale s with --prompt: 0 ignores the prompt, 1 follows it "
                             f"plainly, more follows it closer and varies less (default {DEFAULT_GUIDANCE:g})")
    sample.add_argument("--sweep", action="store_true",
                        help="with --prompt: also write sweep.png, the same seed at s = 0, 1, 2, 4, 7 (one row each)")
    sample.add_argument("--out", required=True, help="folder for sample_000.png ... and grid.png")
    sample.add_argument("--gif", help="also write the animation (samples | predicted x0) here")
    sample.add_argument("--mp4", help="also write the animation as an H.264 MP4 here (needs PyAV)")

    toy = commands.add_parser("toy", help="train a 2-D toy model (seconds), sample it, write CSVs")
    toy.add_argument("--dataset", choices=["swiss_roll", "moons", "s_curve", "gmm"], default="swiss_roll")
    toy.add_argument("--out", required=True, help="CSV of the generated points (x,y per line)")
    toy.add_argument("--data-out", help="CSV of as many fresh true points")
    toy.add_argument("--sampler", choices=["ddpm", "ddim", "dpmpp", "langevin", "pc"], default="dpmpp",
                     help="dpmpp (default), ddim, ddpm; langevin: annealed Langevin dynamics on the learned score; "
                          "pc: predictor-corrector (a DDIM or DDPM step, then Langevin corrections)")
    toy.add_argument("--steps", type=int,
                     help="sampling steps, or Langevin's noise levels (default: ddpm 1000, ddim 50, dpmpp 20, "
                          "langevin 100, pc 50)")
    toy.add_argument("--spacing", choices=["logsnr", "linspace", "trailing"], default="logsnr",
                     help="where ddim, dpmpp and pc's predictor put their steps (default logsnr: evenly in log-SNR, "
                          "the last at t = 0; linspace/trailing: as image models do)")
    toy.add_argument("--step-size", type=float, default=0.1,
                     help="langevin: epsilon, each step is epsilon x sigma_t^2 (default 0.1)")
    toy.add_argument("--corrector-steps", type=int,
                     help="langevin: steps per noise level (default 5); pc: Langevin corrections per step (default 1)")
    toy.add_argument("--predictor", choices=["ddim", "ddpm"], default="ddim", help="pc: the predictor (default ddim)")
    toy.add_argument("--snr", type=float, default=0.16, help="pc: the corrector's signal-to-noise ratio (default 0.16)")
    toy.add_argument("--n", type=int, default=2000, help="points to generate (default 2000)")
    toy.add_argument("--train-steps", type=int, default=6000, help="training steps (default 6000)")
    toy.add_argument("--seed", type=int, default=0)
    return parser


def run_sample(args: argparse.Namespace) -> int:
    from pathlib import Path

    from playground import media
    from playground.checkpoints import CheckpointError
    from playground.services.image_sampling import (
        check_prompt,
        check_settings,
        default_sampling,
        default_steps,
        get_checkpoint,
        guidance_sweep,
        sample_to_files,
    )

    try:
        checkpoint = get_checkpoint(args.checkpoint)
    except CheckpointError as error:
        raise ValueError(str(error)) from None
    args.sampler = args.sampler or default_sampling(args.prompt)[0]
    args.steps = default_steps(args.sampler, args.prompt) if args.steps is None else args.steps
    check_settings(checkpoint, args.sampler, args.steps, args.n, args.eta)  # the tab's checks, the same sentences
    prompt, guidance = check_prompt(checkpoint, args.prompt, args.guidance)
    if args.sweep and not prompt:
        raise ValueError("--sweep compares guidance scales for a prompt: give --prompt too.")
    result = sample_to_files(checkpoint, args.sampler, args.steps, args.n, args.seed, args.out, args.gif, args.eta,
                             args.mp4, prompt=prompt, guidance=guidance)
    followed = f" for {prompt!r} at guidance {guidance:g}" if prompt else ""
    print(f"{args.n} images{followed}, {args.sampler} {args.steps} steps in {result.seconds:.1f} s; "
          f"wrote {args.out}/sample_000.png .. sample_{args.n - 1:03d}.png and {args.out}/grid.png")
    if args.sweep:
        rows = [media.label(media.strip([media.zoom(media.tensor_to_pil(x), 64) for x in images], gap=2),
                            f"s = {scale:g}", size=14)
                for scale, images in guidance_sweep(str(checkpoint.path), prompt, args.sampler, args.steps, args.n,
                                                    args.seed)]
        media.grid(rows, columns=1).save(Path(args.out) / "sweep.png")
        print(f"wrote {args.out}/sweep.png: the same seed at guidance 0, 1, 2, 4 and 7")
    for path in (args.gif, args.mp4):
        if path:
            print(f"wrote {path} ({len(result.frames)} frames)")
    return 0


def run_toy(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    import numpy as np
    from tqdm import tqdm

    from playground.data.points import toy_points
    from playground.services.toy_lab import DEFAULT_STEPS, default_settings, quality, sample_toy
    from playground.services.toy_training import toy_config, train_toy

    config = toy_config(args.train_steps, seed=args.seed)
    steps = DEFAULT_STEPS[args.sampler] if args.steps is None else args.steps
    if not 1 <= steps <= config.num_timesteps:
        raise ValueError(f"--steps must be between 1 and {config.num_timesteps}.")
    if not 0 < args.step_size <= 2 or not 0 < args.snr <= 2:
        raise ValueError("--step-size and --snr must be above 0 and at most 2.")
    defaults = default_settings(args.sampler)
    corrector_steps = defaults.corrector_steps if args.corrector_steps is None else args.corrector_steps
    if not 0 <= corrector_steps <= 100 or (args.sampler == "langevin" and corrector_steps < 1):
        raise ValueError("--corrector-steps must be between 1 (0 for pc) and 100.")
    settings = dataclasses.replace(defaults, spacing=args.spacing, step_size=args.step_size,
                                   corrector_steps=corrector_steps, predictor=args.predictor, snr=args.snr)
    data = toy_points(args.dataset, 4000, seed=args.seed)
    bar = tqdm(total=config.steps, unit="step", dynamic_ncols=True)
    started = time.perf_counter()

    def on_step(event, state) -> None:
        if event.step % 50 == 0 or event.step == event.total_steps:
            bar.n = event.step
            bar.set_postfix(loss=f"{event.loss:.3f}")
            bar.refresh()

    state = train_toy(data, config=config, callback=on_step)
    bar.close()
    trained_in = time.perf_counter() - started
    result = sample_toy(state.ema.model, config, args.sampler, steps, n=args.n, seed=args.seed + 1,
                        max_frames=1, trajectories=0, settings=settings)
    truth = toy_points(args.dataset, args.n, seed=args.seed + 2)
    score = quality(result.points, truth, data, seed=args.seed + 3)
    np.savetxt(args.out, result.points.numpy(), delimiter=",", fmt="%.6f")
    print(f"trained {config.steps} steps in {trained_in:.1f} s; sampled {args.n} points with {args.sampler} "
          f"{steps} steps in {result.seconds:.2f} s")
    print(f"narrow-kernel MMD to fresh true points: {score.mmd_ratio:.3f} of a Gaussian fitted to the data's "
          f"(MMD^2 {score.mmd:.5f} vs {score.gaussian_mmd:.5f}; Gaussian kernel, bandwidth {score.bandwidth:.3f} = "
          f"0.1 x the data's spread; 0 is a perfect copy)")
    print(f"energy distance: {score.energy_distance:.4f}; strays (farther than 0.5 x the spread from every true "
          f"point): {score.strays} of {args.n}")
    print(f"wrote {args.out}")
    if args.data_out:
        np.savetxt(args.data_out, truth.numpy(), delimiter=",", fmt="%.6f")
        print(f"wrote {args.data_out}")
    return 0


CURATED_GROUPS = ("Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places",
                  "Activities", "Objects")


def _train_progress(total: int):
    """A tqdm bar and the on_event callback that moves it (step, loss, lr, images/s)."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit="step", dynamic_ncols=True)

    def on_event(event) -> None:
        bar.n = event.step
        bar.set_postfix(loss=f"{event.loss:.4f}", lr=f"{event.lr:.2e}", img_s=f"{event.images_per_second:.0f}")
        bar.refresh()

    return bar, on_event


@contextlib.contextmanager
def stop_on_interrupt(say=print):
    """Ctrl-C (SIGINT) or SIGTERM asks the run to stop after this step and save; a second one quits at once.
    Yields the flag to pass as should_stop. Under torchrun every process gets the signal; the main one decides."""
    import signal
    import threading

    stop = threading.Event()

    def handler(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        say("\nstopping after this step and saving the checkpoint (again to quit at once)", file=sys.stderr)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop.is_set
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_train(args: argparse.Namespace) -> int:
    import dataclasses
    import platform
    import shlex
    from pathlib import Path

    import torch

    from playground.data.dataset import dataset_from_uint8
    from playground.data.emoji import load_emoji_set
    from playground.data.prompts import emoji_vocabulary
    from playground.diffusion.training import TrainConfig
    from playground.models import PRESETS
    from playground.services import distributed
    from playground.services.sample_quality import QualityProbe
    from playground.services.training_runs import RunSpec, resume_note, run_training

    if args.checkpoint_every is not None and args.checkpoint_every <= 0:
        raise ValueError("--checkpoint-every must be a number of seconds above 0.")
    if (args.subject or args.class_word) and not args.images:
        raise ValueError("--subject and --class-word teach a word for the photos given with --images.")
    if args.images and args.data:
        raise ValueError("Give --images (fine-tune on a few photos) or --data (train on a folder), not both.")
    if args.threads:
        torch.set_num_threads(args.threads)
    dist = distributed.setup(args.device)  # under torchrun / accelerate launch: join the group, take our device
    device = dist.device
    say = print if dist.is_main else (lambda *a, **k: None)
    if args.images:
        if dist.active:
            raise ValueError("Fine-tuning on a few photos (--images) runs on one process; use --data to train on "
                             "several.")
        return run_finetune(args, device)
    for turn in ("main", "others"):  # the main process decodes and caches the data first; the others then open it
        if (turn == "main") == dist.is_main:
            held_out = None
            if args.data:
                model_config, dataset, description, held_out = folder_dataset(args, say)
            else:
                model_config = PRESETS[args.model or "emoji32"]
                curated = args.subset == "curated"
                emoji = load_emoji_set(model_config.resolution, CURATED_GROUPS if curated else None,
                                       skin_tones=not curated)
                dataset = dataset_from_uint8(f"noto-emoji-{args.subset}", emoji.images)
                if args.prompts:
                    dataset = dataclasses.replace(dataset, captions=tuple(emoji.names))
                description = {"description": f"Noto Color Emoji ({args.subset}), rendered by playground.data.emoji",
                               "licence": "Noto Color Emoji, SIL Open Font License 1.1"}
        if turn == "main":
            dist.barrier()
    if args.prompts and args.data:
        raise ValueError("--prompts learns from the emoji's names; a folder of images has no captions.")
    for name in ("prompt_dropout", "word_dropout", "word_focus"):
        if not 0 <= getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} is a share from 0 up to (not including) 1.")
    if args.word_focus_min_t and not (args.prompts and args.word_focus):
        raise ValueError("--word-focus-min-t applies to word-first examples: give it with --prompts --word-focus.")
    config = TrainConfig(steps=args.steps or 20000, batch_size=args.batch_size or 64, lr=args.lr or 5e-4,
                         warmup_steps=args.warmup_steps if args.warmup_steps is not None else 200,
                         prediction_type=args.prediction_type, min_snr_gamma=args.min_snr_gamma or None,
                         schedule=args.schedule, seed=args.seed,
                         **({"prompt_dropout": args.prompt_dropout, "word_dropout": args.word_dropout,
                             "word_focus": args.word_focus, "word_focus_min_t": args.word_focus_min_t,
                             "encoder_lr": args.encoder_lr} if args.prompts else {}))
    if not 0 <= config.word_focus_min_t < config.num_timesteps:
        raise ValueError(f"--word-focus-min-t is a timestep from 0 to {config.num_timesteps - 1}.")
    prompts = emoji_vocabulary(dataset.captions) if args.prompts else None
    hardware = (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads"
                if device.type == "cpu" else torch.cuda.get_device_name(device)) + (
        f" x {dist.world_size} processes" if dist.active else "")
    command = sys.argv[1:] if sys.argv[0].endswith("__main__.py") else sys.argv
    if args.quality_samples < 0:
        raise ValueError("--quality-samples must be 0 (off) or more.")
    quality = QualityProbe(held_out, dataset.images) if held_out is not None and dist.is_main else None
    spec = RunSpec(config, model=model_config, init_from=args.init_from, resume=not args.no_resume, prompts=prompts,
                   quality=quality, quality_samples=args.quality_samples,
                   preview_every=args.preview_every or 500, checkpoint_every_s=args.checkpoint_every or 600,
                   info={"command": "python -m playground " + shlex.join(command), "hardware": hardware,
                         "data": description})
    kind = "greyscale" if model_config.image_channels == 1 else "colour"
    say(f"{dataset.count} {kind} images at {model_config.resolution} px; {config.steps} steps")
    say(f"training on {dist.world_size} process{'es' * dist.active} ({device.type}): batch {config.batch_size} "
        f"per process, global batch {config.batch_size * dist.world_size}")
    note = resume_note(args.out, args.init_from) if not args.no_resume else None
    if note:
        say(note)
    bar, on_event = _train_progress(config.steps) if dist.is_main else (None, None)
    try:
        with stop_on_interrupt(say) as should_stop:
            folder = run_training(args.out, dataset, spec, on_event=on_event, should_stop=should_stop, device=device,
                                  dist=dist)
    finally:
        if bar is not None:
            bar.close()
        distributed.teardown(dist)
    say(f"wrote {folder}")
    quality_log = Path(args.out) / "quality.csv"
    if dist.is_main and quality_log.is_file():
        last = quality_log.read_text().strip().splitlines()[-1].split(",")
        say(f"sample quality at step {last[0]}: density {float(last[1]):.2f} (about 1; above, samples bunch where "
            f"the data is densest), coverage {float(last[2]):.2f} (up to 1: how much of the data they reach), "
            f"near-copies {float(last[3]):.0%}; plotted with the loss in {Path(args.out) / 'progress.html'}")
    return 0


def folder_dataset(args: argparse.Namespace, say=print):
    """train --data DIR: the network for the resolution (and the folder's channels), the cached images, and what
    the model card says about them."""
    import dataclasses

    from tqdm import tqdm

    from playground.data.dataset import Dataset
    from playground.data.folder import image_folder
    from playground.models import FOLDER_PRESETS, PRESETS

    resolution = args.resolution or 64
    name = args.model or FOLDER_PRESETS[resolution]
    try:
        model_config = dataclasses.replace(PRESETS[name], resolution=resolution)
    except ValueError as error:
        raise ValueError(f"--model {name} can't work at {resolution} px: {error}") from None
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="image", desc="decoding once into the cache", dynamic_ncols=True)
        bar.n = done
        bar.refresh()

    data = image_folder(args.data, resolution, progress=progress)
    if bar is not None:
        bar.close()
    for path, why in data.skipped:
        say(f"skipped {path}: {why}", file=sys.stderr)
    say(f"{data.count} images from {args.data} ({len(data.skipped)} skipped), cached in {data.cache_dir}")
    model_config = dataclasses.replace(model_config, image_channels=data.channels)
    # The cache's order is shuffled, so its tail is a random held-out set: 5% (10 to 1,000) when there are 40 or more.
    held = min(1000, max(10, data.count // 20)) if data.count >= 40 and args.quality_samples > 0 else 0
    images, held_out = (data.images[:-held], data.images[-held:]) if held else (data.images, None)
    dataset = Dataset(f"folder:{data.name}", images, data.fingerprint, len(images))
    if held:
        say(f"holding out {held} images to measure sample quality against at every preview")
    return model_config, dataset, {"description": f"{data.count} images from the folder {data.name!r}"
                                                  f"{' (greyscale)' if data.channels == 1 else ''}"
                                                  f"{f', {held} held out' if held else ''}"}, held_out


def run_finetune(args: argparse.Namespace, device) -> int:
    """train --images DIR: the Train tab's recipe from the command line (resumes OUT when it has a run)."""
    import time
    from pathlib import Path

    from playground import media
    from playground.checkpoints import CheckpointError, load_checkpoint
    from playground.data.dataset import dataset_from_uint8, match_channels
    from playground.services import finetuning
    from playground.services.image_sampling import SHIPPED
    from playground.services.memorisation import memorisation_meter
    from playground.services.training_runs import RunFolder

    run = RunFolder(Path(args.out))
    folder = Path(args.images)
    resuming = run.settings_file.is_file() and run.can_resume() and not args.no_resume
    if resuming:
        print(f"continuing the run in {run.path} at step {run.checkpoint_step()} (its photos and settings; "
              "--no-resume starts over)")
    else:
        if not folder.is_dir():
            raise ValueError(f"--images must be a folder of photos; {str(folder)!r} is not one.")
        paths = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        if len(paths) > finetuning.MAX_PHOTOS:
            raise ValueError(f"{folder} holds {len(paths)} files; the limit is {finetuning.MAX_PHOTOS} photos.")
        photos, problems = finetuning.load_photos(paths)
        for problem in problems:
            print(f"skipped: {problem}", file=sys.stderr)
        if not photos:
            raise ValueError(f"None of the {len(paths)} files in {folder} is a photo we can read, so there is "
                             "nothing to train on.")
        base_path = args.base or SHIPPED / "emoji32"
        try:
            base = finetuning.load_base(base_path)
        except CheckpointError as error:
            raise ValueError(str(error)) from None
        config = finetuning.train_config(args.preset, base, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                         seed=args.seed, warmup_steps=args.warmup_steps,
                                         prior_fraction=args.prior_fraction)
        subject = finetuning.check_subject(base, args.subject, args.class_word)
        if args.no_resume:
            run.forget_training()
        preview_every = args.preview_every or finetuning.PRESETS[args.preset].preview_every
        finetuning.start_run(run.path, [image for _, image in photos], base.path if base is not None else None,
                             config, args.crop, preview_every, name=run.path.name, subject=subject)
        print(f"{len(photos)} photos at {finetuning.base_resolution(base)} px; "
              f"base {base.name if base else 'none (from scratch)'}; {config.steps} steps of {config.batch_size} "
              f"on {device}" + (f"; the photos are “{subject.prompt}”, and the base's own “{subject.class_word}” "
                                "samples keep that word's meaning" if subject else ""))
    total = args.steps if resuming and args.steps else finetuning.run_settings(run.path).config.steps
    bar, on_event = _train_progress(total)
    started = time.perf_counter()
    with stop_on_interrupt() as should_stop:
        checkpoint_dir = finetuning.train_run(run.path, on_event, should_stop, device=device,
                                              steps=args.steps if resuming else None,
                                              checkpoint_every_s=args.checkpoint_every or finetuning.CHECKPOINT_EVERY_S)
    bar.close()
    print(f"trained in {time.perf_counter() - started:.0f} s; wrote {checkpoint_dir}")
    subject = finetuning.run_settings(run.path).subject
    samples = finetuning.prior_images(load_checkpoint(checkpoint_dir), count=8, seed=1,
                                      prompt=subject.prompt if subject else "")
    photos = match_channels(dataset_from_uint8("", finetuning.run_photos(run.path)).images, samples.shape[1])
    print("memorisation meter: " + memorisation_meter(samples, photos).sentence())
    prompt = f" --prompt '{subject.prompt}'" if subject else ""
    print(f"sample it: python -m playground sample --checkpoint {checkpoint_dir}{prompt} "
          f"--out {run.path / 'generated'}")
    if subject:
        grid = media.grid([media.label(picture, caption, size=14)
                           for picture, caption in finetuning.subject_view(run.path, seed=1)], columns=3)
        grid.save(run.path / "subject.png")
        print(f"wrote {run.path / 'subject.png'}: “{subject.prompt}” and “{subject.class_word}” after training, and "
              f"“{subject.class_word}” from the base before it")
    return 0


def run_noise(args: argparse.Namespace) -> int:
    from playground import media
    from playground.diffusion.schedules import get_schedule
    from playground.services.photo_noising import forward_gif, forward_strip, load_x0, noise_photo

    schedule = get_schedule(args.schedule, args.num_timesteps, args.zero_snr)
    if not 0 <= args.t < schedule.num_timesteps:
        raise ValueError(f"--t must be between 0 and {schedule.num_timesteps - 1} for T={schedule.num_timesteps}.")
    x0 = load_x0(args.image, args.resolution)
    noised = noise_photo(x0, schedule, args.t, args.seed)
    media.tensor_to_pil(noised.x_t).save(args.out)
    level = noised.level
    print(f"{schedule.name}, T={level.num_timesteps}, t={level.t}: "
          f"x_t = {level.sqrt_alpha_bar:.4f} x0 + {level.sqrt_one_minus_alpha_bar:.4f} eps; "
          f"beta={level.beta:.5f} alpha_bar={level.alpha_bar:.5f} SNR={level.snr:.4g} ({level.snr_db:+.2f} dB)")
    print(f"wrote {args.out}")
    if args.noise_out:
        media.noise_to_pil(noised.noise).save(args.noise_out)
        print(f"wrote {args.noise_out}")
    if args.strip:
        forward_strip(noised.x0, noised.noise, schedule).save(args.strip)
        print(f"wrote {args.strip}")
    if args.gif:
        forward_gif(noised.x0, noised.noise, schedule, args.gif)
        print(f"wrote {args.gif}")
    return 0


def run_schedule(args: argparse.Namespace) -> int:
    from playground.diffusion.schedules import get_schedule
    from playground.plots import SUMMARY_HEADERS, schedule_summary

    names = args.names or list(BETA_SCHEDULES)
    unknown = [n for n in names if n not in BETA_SCHEDULES]
    if unknown:
        raise ValueError(f"Unknown schedule {unknown[0]!r}; choose from {', '.join(BETA_SCHEDULES)}.")
    schedules = [get_schedule(n, args.num_timesteps, args.zero_snr) for n in names]
    rows = [SUMMARY_HEADERS] + [[str(v) for v in row] for row in schedule_summary(schedules)]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(SUMMARY_HEADERS))]
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
    return 0


def main(argv: list[str] | None = None) -> int:
    from playground.data.images import ImageError

    args = build_parser().parse_args(argv)
    try:
        return {"noise": run_noise, "schedule": run_schedule, "train": run_train, "toy": run_toy,
                "sample": run_sample}[args.command](args)
    except (ImageError, ValueError, FileNotFoundError) as error:  # a sentence for the person, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
