"""The commands that train: train (from scratch, on a folder, on the emoji set, fine-tuning on photos, latent
models) and autoencoder. Every argument is checked before any work starts."""

from __future__ import annotations

import argparse
import contextlib
import sys


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


def _hardware(device, world_size: int = 1) -> str:
    import platform

    import torch

    where = (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads"
             if device.type == "cpu" else torch.cuda.get_device_name(device))
    return where + (f" x {world_size} processes" if world_size > 1 else "")


def _command() -> str:
    import shlex

    command = sys.argv[1:] if sys.argv[0].endswith("__main__.py") else sys.argv
    return "python -m playground " + shlex.join(command)


def _check_run_arguments(args: argparse.Namespace) -> None:
    if args.checkpoint_every is not None and args.checkpoint_every <= 0:
        raise ValueError("--checkpoint-every must be a number of seconds above 0.")
    if args.threads is not None and args.threads < 1:
        raise ValueError("--threads must be 1 or more.")


def run_autoencoder(args: argparse.Namespace) -> int:
    """autoencoder: train (or continue) the autoencoder of a latent model, printing its held-out PSNR as it goes."""
    import dataclasses

    import torch

    from playground.diffusion.autoencoder_training import AutoencoderTrainConfig
    from playground.models import AutoencoderConfig, pick_device
    from playground.services.autoencoder_training import autoencoder_data, train_autoencoder_run
    from playground.services.run_folder import RunFolder

    _check_run_arguments(args)
    network = dataclasses.replace(AutoencoderConfig(), channels=args.channels)
    config = AutoencoderTrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, crop=args.crop,
                                    photo_share=args.photo_share if args.photos else 0.0,
                                    edge_weight=args.edge_weight, seed=args.seed)
    if config.crop % network.factor or not network.factor <= config.crop <= network.resolution:
        raise ValueError(f"--crop must be a multiple of {network.factor} from {network.factor} to "
                         f"{network.resolution}.")
    if not 0 <= config.photo_share <= 1 or args.steps < 1 or args.batch_size < 1 or args.measure_every < 1:
        raise ValueError("--photo-share is a share from 0 to 1; --steps, --batch-size and --measure-every are 1 or "
                         "more.")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if args.no_resume:
        RunFolder(args.out).forget_training()
    data = autoencoder_data(args.photos, network.resolution)
    bar, on_event = _train_progress(config.steps)
    with stop_on_interrupt() as should_stop:
        folder = train_autoencoder_run(
            args.out, data, config, network, on_event, lambda reading: bar.write(reading.line()), should_stop,
            device, args.measure_every, args.checkpoint_every or 600.0,
            info={"command": _command(), "hardware": _hardware(device)})
    bar.close()
    print(f"wrote {folder}")
    return 0


def _check_train_arguments(args: argparse.Namespace) -> None:
    """Every argument of ``train`` that can be checked without loading anything, so a mistake costs no work."""
    _check_run_arguments(args)
    if (args.subject or args.class_word) and not args.images:
        raise ValueError("--subject and --class-word teach a word for the photos given with --images.")
    if args.images and args.data:
        raise ValueError("Give --images (fine-tune on a few photos) or --data (train on a folder), not both.")
    if args.images and args.autoencoder:
        raise ValueError("--images fine-tunes --base, and a latent base brings its own autoencoder: leave out "
                         "--autoencoder.")
    if args.prompts and (args.data or args.images):
        raise ValueError("--prompts learns from the emoji's names; a folder of images has no captions.")
    for name in ("prompt_dropout", "word_dropout", "word_focus"):
        if not 0 <= getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} is a share from 0 up to (not including) 1.")
    if args.word_focus_min_t and not (args.prompts and args.word_focus):
        raise ValueError("--word-focus-min-t applies to word-first examples: give it with --prompts --word-focus.")
    if args.quality_samples < 0:
        raise ValueError("--quality-samples must be 0 (off) or more.")
    for name in ("steps", "batch_size", "preview_every", "warmup_steps"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "warmup_steps" else 1):
            raise ValueError(f"--{name.replace('_', '-')} must be {'0' if name == 'warmup_steps' else '1'} or more.")
    if args.lr is not None and not args.lr > 0:
        raise ValueError("--lr must be above 0.")
    if args.prior_fraction is not None and not 0 <= args.prior_fraction < 1:
        raise ValueError("--prior-fraction is a share from 0 up to (not including) 1.")


def _train_config(args: argparse.Namespace, latent: bool):
    from playground.diffusion.training import TrainConfig

    config = TrainConfig(steps=args.steps or 20000, batch_size=args.batch_size or 64, lr=args.lr or 5e-4,
                         warmup_steps=args.warmup_steps if args.warmup_steps is not None else 200,
                         prediction_type=args.prediction_type, min_snr_gamma=args.min_snr_gamma or None,
                         schedule=args.schedule, seed=args.seed, hflip=not latent,  # latents: mirrored when encoded
                         **({"prompt_dropout": args.prompt_dropout, "word_dropout": args.word_dropout,
                             "word_focus": args.word_focus, "word_focus_min_t": args.word_focus_min_t,
                             "encoder_lr": args.encoder_lr} if args.prompts else {}))
    if not 0 <= config.word_focus_min_t < config.num_timesteps:
        raise ValueError(f"--word-focus-min-t is a timestep from 0 to {config.num_timesteps - 1}.")
    return config


def _autoencoder(args: argparse.Namespace):
    """The autoencoder of a latent run: --autoencoder's, or that of the latent model --init-from names; None."""
    from pathlib import Path

    from playground.checkpoints import VAE, CheckpointError, load_autoencoder

    folder = args.autoencoder or (args.init_from if args.init_from and (Path(args.init_from) / VAE).is_dir()
                                  else None)
    if folder is None:
        return None
    try:
        return load_autoencoder(folder)
    except CheckpointError as error:
        raise ValueError(str(error)) from None


def _autoencoder_record(args: argparse.Namespace) -> dict:
    """What a latent model's card says of its autoencoder: the run that trained it (its command, steps, held-out
    PSNR), read from --autoencoder's playground.json, or carried by the latent model --init-from names."""
    from playground.checkpoints import read_info

    folder = args.autoencoder or args.init_from
    info = read_info(folder) if folder else {}
    if "autoencoder_run" in info:
        return info["autoencoder_run"]
    keep = ("command", "commands", "steps", "quality", "data", "parameters", "autoencoder", "wall_time_s", "hardware")
    return {key: info[key] for key in keep if key in info} if info.get("kind") == "autoencoder" else {}


def _network(args: argparse.Namespace, default: str, resolution: int, channels: int, autoencoder):
    """The network's config: --model's (or ``default``) at this resolution and these channels, or for a latent run
    the latents' own size and channels."""
    import dataclasses

    from playground.models import PRESETS

    name = args.model or ("latent16" if autoencoder is not None else default)
    if autoencoder is not None:
        resolution, channels = resolution // autoencoder.factor, autoencoder.latent_channels
    try:
        return dataclasses.replace(PRESETS[name], resolution=resolution, image_channels=channels)
    except ValueError as error:
        raise ValueError(f"--model {name} can't work on {resolution} px: {error}") from None


def _emoji_data(args: argparse.Namespace, autoencoder):
    """train --dataset emoji: the network, the pictures (with the emoji's names as captions for --prompts), and
    what the model card says about them. A pixel network draws at its preset's resolution; a latent one's pictures
    are --resolution (default 64) px."""
    import dataclasses

    from playground.data.dataset import dataset_from_uint8
    from playground.data.emoji import emoji_subset
    from playground.models import PRESETS

    default = "latent16" if autoencoder is not None else "emoji32"
    resolution = (args.resolution or 64) if autoencoder is not None else PRESETS[args.model or default].resolution
    model_config = _network(args, default, resolution, 3, autoencoder)
    emoji = emoji_subset(resolution, args.subset)
    dataset = dataset_from_uint8(f"noto-emoji-{args.subset}", emoji.images)
    if args.prompts:
        dataset = dataclasses.replace(dataset, captions=tuple(emoji.names))
    description = {"description": f"Noto Color Emoji ({args.subset}) at {resolution} px, rendered by "
                                  "playground.data.emoji", "licence": "Noto Color Emoji, SIL Open Font License 1.1"}
    return model_config, dataset, description, None


def _folder_data(args: argparse.Namespace, autoencoder, say=print):
    """train --data DIR: the network for the resolution (and the folder's channels), the cached images, a held-out
    share to measure against, and what the model card says about them."""
    from tqdm import tqdm

    from playground.data.dataset import Dataset
    from playground.data.folder import image_folder
    from playground.models import FOLDER_PRESETS
    from playground.services.latent_data import check_fits

    resolution = args.resolution or 64
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
    if autoencoder is not None:
        check_fits(autoencoder, data.channels, resolution)
    model_config = _network(args, FOLDER_PRESETS[resolution], resolution, data.channels, autoencoder)
    for path, why in data.skipped:
        say(f"skipped {path}: {why}", file=sys.stderr)
    say(f"{data.count} images from {args.data} ({len(data.skipped)} skipped), cached in {data.cache_dir}")
    # The cache's order is shuffled, so its tail is a random held-out set: 5% (10 to 1,000) when there are 40 or more.
    held = min(1000, max(10, data.count // 20)) if data.count >= 40 and args.quality_samples > 0 else 0
    images, held_out = (data.images[:-held], data.images[-held:]) if held else (data.images, None)
    dataset = Dataset(f"folder:{data.name}", images, data.fingerprint, len(images))
    if held:
        say(f"holding out {held} images to measure sample quality against at every preview")
    return model_config, dataset, {"description": f"{data.count} images from the folder {data.name!r}"
                                                  f"{' (greyscale)' if data.channels == 1 else ''}"
                                                  f"{f', {held} held out' if held else ''}"}, held_out


def _training_data(args: argparse.Namespace, dist, autoencoder, say):
    """The network, the data, its description and any held-out pictures; the main process decodes and caches a
    folder first, and the others then open its cache."""
    for turn in ("main", "others"):
        if (turn == "main") == dist.is_main:
            found = _folder_data(args, autoencoder, say) if args.data else _emoji_data(args, autoencoder)
        if turn == "main":
            dist.barrier()
    return found


def run_train(args: argparse.Namespace) -> int:
    """train: from scratch or --init-from, on the emoji set (--prompts: with their names) or a folder (--data), in
    pixels or an autoencoder's latents (--autoencoder); or fine-tuning on a few photos (--images)."""
    import torch

    from playground.data.prompts import emoji_vocabulary
    from playground.services import distributed
    from playground.services.latent_data import encode_dataset
    from playground.services.sample_quality import QualityProbe
    from playground.services.training_runs import RunSpec

    _check_train_arguments(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    dist = distributed.setup(args.device)  # under torchrun / accelerate launch: join the group, take our device
    say = print if dist.is_main else (lambda *a, **k: None)
    if args.images:
        if dist.active:
            raise ValueError("Fine-tuning on a few photos (--images) runs on one process; use --data to train on "
                             "several.")
        return run_finetune(args, dist.device)
    autoencoder = _autoencoder(args)
    model_config, dataset, description, held_out = _training_data(args, dist, autoencoder, say)
    config = _train_config(args, latent=autoencoder is not None)
    quality = QualityProbe(held_out, dataset.images) if held_out is not None and dist.is_main else None
    pictures = dataset
    if autoencoder is not None:
        say(f"encoding {dataset.count} pictures and their mirror images into {autoencoder.latent_channels}-channel "
            "latents (once)")
        dataset = encode_dataset(autoencoder, dataset)
    spec = RunSpec(config, model=model_config, init_from=args.init_from, resume=not args.no_resume,
                   prompts=emoji_vocabulary(dataset.captions) if args.prompts else None, quality=quality,
                   quality_samples=args.quality_samples, preview_every=args.preview_every or 500,
                   checkpoint_every_s=args.checkpoint_every or 600, autoencoder=autoencoder,
                   info={"command": _command(), "hardware": _hardware(dist.device, dist.world_size),
                         "data": description,
                         **({"autoencoder_run": _autoencoder_record(args)} if autoencoder is not None else {})})
    kind = "greyscale" if pictures.images.shape[1] == 1 else "colour"
    say(f"{pictures.count} {kind} images at {pictures.images.shape[-1]} px; {config.steps} steps"
        + (f" on {model_config.image_channels}x{model_config.resolution}x{model_config.resolution} latents"
           if autoencoder is not None else ""))
    return _train(args, dataset, spec, dist, say)


def _train(args: argparse.Namespace, dataset, spec, dist, say) -> int:
    """Run the training, its progress bar and Ctrl-C; then say where it went and how good it is."""
    from pathlib import Path

    from playground.services import distributed
    from playground.services.run_folder import RunFolder
    from playground.services.training_runs import resume_note, run_training

    config = spec.config
    say(f"training on {dist.world_size} process{'es' * dist.active} ({dist.device.type}): batch "
        f"{config.batch_size} per process, global batch {config.batch_size * dist.world_size}")
    note = resume_note(args.out, args.init_from) if not args.no_resume else None
    if note:
        say(note)
    bar, on_event = _train_progress(config.steps) if dist.is_main else (None, None)
    try:
        with stop_on_interrupt(say) as should_stop:
            folder = run_training(args.out, dataset, spec, on_event=on_event, should_stop=should_stop,
                                  device=dist.device, dist=dist)
    finally:
        if bar is not None:
            bar.close()
        distributed.teardown(dist)
    say(f"wrote {folder}")
    rows = RunFolder(Path(args.out)).quality_rows() if dist.is_main else []
    if rows:
        last = rows[-1]
        say(f"sample quality at step {last['step']}: density {float(last['density']):.2f} (about 1; above, samples "
            f"bunch where the data is densest), coverage {float(last['coverage']):.2f} (up to 1: how much of the "
            f"data they reach), near-copies {float(last['near_copies']):.0%}; plotted with the loss in "
            f"{RunFolder(Path(args.out)).progress_page}")
    return 0


def _start_finetune(args: argparse.Namespace, run, device) -> None:
    """train --images on a fresh run: read the photos (one sentence per file that can't be), check the base and the
    settings as the Train tab does, then set the run up."""
    from pathlib import Path

    from playground.checkpoints import CheckpointError
    from playground.data.photos import MAX_PHOTOS, load_photos
    from playground.services import finetune_recipes as recipes
    from playground.services import finetuning
    from playground.services.model_catalog import SHIPPED

    folder = Path(args.images)
    if not folder.is_dir():
        raise ValueError(f"--images must be a folder of photos; {str(folder)!r} is not one.")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if len(paths) > MAX_PHOTOS:
        raise ValueError(f"{folder} holds {len(paths)} files; the limit is {MAX_PHOTOS} photos.")
    try:
        base = finetuning.load_base(args.base or SHIPPED / "emoji32")
    except CheckpointError as error:
        raise ValueError(str(error)) from None
    config = recipes.train_config(args.preset, base, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                  seed=args.seed, warmup_steps=args.warmup_steps, prior_fraction=args.prior_fraction)
    subject = recipes.check_subject(base, args.subject, args.class_word)
    photos, problems = load_photos(paths)
    for problem in problems:
        print(f"skipped: {problem}", file=sys.stderr)
    if not photos:
        raise ValueError(f"None of the {len(paths)} files in {folder} is a photo we can read, so there is "
                         "nothing to train on.")
    if args.no_resume:
        run.forget_training()
    preview_every = args.preview_every or recipes.PRESETS[args.preset].preview_every
    finetuning.start_run(run.path, [image for _, image in photos], base.path if base is not None else None,
                         config, args.crop, preview_every, name=run.path.name, subject=subject)
    side = finetuning.base_shape(base)[0]
    print(f"{len(photos)} photos at {side} px; base {base.name if base else 'none (from scratch)'}; "
          f"{config.steps} steps of {config.batch_size} on {device}"
          + (f"; the photos are “{subject.prompt}”, and the base's own “{subject.class_word}” samples keep that "
             "word's meaning" if subject else ""))


def run_finetune(args: argparse.Namespace, device) -> int:
    """train --images DIR: the Train tab's recipe from the command line (resumes OUT when it has a run)."""
    import time
    from pathlib import Path

    from playground.services import finetuning
    from playground.services.run_folder import RunFolder

    run = RunFolder(Path(args.out))
    resuming = run.settings_file.is_file() and run.can_resume() and not args.no_resume
    if resuming:
        print(f"continuing the run in {run.path} at step {run.checkpoint_step()} (its photos and settings; "
              "--no-resume starts over)")
    else:
        _start_finetune(args, run, device)
    total = args.steps if resuming and args.steps else finetuning.run_settings(run.path).config.steps
    bar, on_event = _train_progress(total)
    started = time.perf_counter()
    with stop_on_interrupt() as should_stop:
        checkpoint_dir = finetuning.finetune(run.path, on_event, should_stop, device=device,
                                             steps=args.steps if resuming else None,
                                             checkpoint_every_s=args.checkpoint_every or finetuning.CHECKPOINT_EVERY_S)
    bar.close()
    print(f"trained in {time.perf_counter() - started:.0f} s; wrote {checkpoint_dir}")
    _report_finetune(run)
    return 0


def _report_finetune(run) -> None:
    """After fine-tuning: the memorisation meter, how to sample the model, and for a subject its before-and-after."""
    from playground import media
    from playground.checkpoints import load_checkpoint
    from playground.data.dataset import dataset_from_uint8, match_channels
    from playground.services import finetune_views, finetuning
    from playground.services.memorisation import memorisation_meter

    subject = finetuning.run_settings(run.path).subject
    samples = finetuning.prior_images(load_checkpoint(run.checkpoint), count=8, seed=1,
                                      prompt=subject.prompt if subject else "")
    photos = match_channels(dataset_from_uint8("", finetuning.run_photos(run.path)).images, samples.shape[1])
    print("memorisation meter: " + memorisation_meter(samples, photos).sentence())
    prompt = f" --prompt '{subject.prompt}'" if subject else ""
    print(f"sample it: python -m playground sample --checkpoint {run.checkpoint}{prompt} "
          f"--out {run.path / 'generated'}")
    if subject:
        grid = media.grid([media.label(picture, caption, size=14)
                           for picture, caption in finetune_views.subject_view(run.path, seed=1)], columns=3)
        grid.save(run.path / "subject.png")
        print(f"wrote {run.path / 'subject.png'}: “{subject.prompt}” and “{subject.class_word}” after training, and "
              f"“{subject.class_word}” from the base before it")


def _student_to_match(args: argparse.Namespace):
    """distill --from-student: the finished student's folder (a Path), checked; None without it."""
    from pathlib import Path

    from playground.checkpoints import CheckpointError, load_checkpoint

    if not args.from_student:
        return None
    if not (args.match_steps or args.gan_steps):
        raise ValueError("--from-student only skips the rounds before distribution matching or the adversarial "
                         "stage: give --match-steps or --gan-steps too.")
    try:
        student = load_checkpoint(args.from_student)
    except CheckpointError as error:
        raise ValueError(str(error)) from None
    if student.unet.guidance is None or student.vocabulary is None:
        raise ValueError(f"{student.name!r} is not a distilled student (it takes no guidance scale): give the folder "
                         "`distill` wrote.")
    return Path(args.from_student)


def _check_distill_settings(args: argparse.Namespace, config) -> None:
    """distill's numbers in range, each refusal one sentence (ValueError)."""
    if (args.match_steps < 0 or args.match_lr <= 0 or args.fake_lr <= 0 or args.fake_warmup < 0
            or args.empty_weight < 0 or args.fake_updates < 1 or not 0 <= args.empty_on_policy <= 1
            or args.empty_first < 0 or args.empty_match < 0):
        raise ValueError("--match-steps, --fake-warmup, --empty-weight, --empty-first and --empty-match must be 0 or "
                         "more, --match-lr and --fake-lr above 0, --fake-updates 1 or more, --empty-on-policy a share "
                         "from 0 to 1.")
    if (args.gan_steps < 0 or args.gan_weight < 0 or args.gan_lr <= 0 or args.disc_lr <= 0 or args.gan_batch_size < 1
            or args.layout_weight < 0 or args.anchor_weight < 0 or not 0 <= args.anchor_on_policy <= 1):
        raise ValueError("--gan-steps, --gan-weight, --layout-weight and --anchor-weight must be 0 or more, --gan-lr "
                         "and --disc-lr above 0, --gan-batch-size 1 or more, --anchor-on-policy a share from 0 to 1.")
    if not 1 <= args.empty_substeps <= 16:
        raise ValueError("--empty-substeps must be from 1 to 16 (the teacher's steps across one of the student's).")
    if not (0 <= config.guidance_min <= config.guidance_max and config.steps >= 1 and config.batch_size >= 1
            and config.lr > 0 and 0 <= config.prompt_dropout < 1 and 0 <= config.word_dropout < 1
            and 0 <= config.word_focus < 1):
        raise ValueError("--guidance-min must be 0 or more and at most --guidance-max; --steps-per-round and "
                         "--batch-size 1 or more; --lr above 0; the dropouts shares below 1.")


def _adversarial_config(args: argparse.Namespace):
    """distill's adversarial-stage recipe from its flags."""
    from playground.diffusion.adversarial import AdversarialConfig

    return AdversarialConfig(batch_size=args.gan_batch_size, lr=args.gan_lr, disc_lr=args.disc_lr,
                             gan_weight=args.gan_weight, layout_weight=args.layout_weight,
                             anchor_weight=args.anchor_weight, anchor_on_policy=args.anchor_on_policy, seed=args.seed)


def run_distill(args: argparse.Namespace) -> int:
    """distill: every round of progressive distillation in turn, each resumable, then the last student's folder."""
    import dataclasses
    import shutil
    from pathlib import Path

    import torch

    from playground.checkpoints import CheckpointError, load_checkpoint
    from playground.data.dataset import dataset_from_uint8
    from playground.data.emoji import emoji_subset
    from playground.diffusion.distillation import DistillConfig
    from playground.models import pick_device
    from playground.services.distillation import DistillSpec, check_rounds, distill_run
    from playground.services.latent_data import encode_dataset

    _check_run_arguments(args)
    try:
        rounds = [int(n) for n in args.rounds.split(",")]
    except ValueError:
        raise ValueError("--rounds is a list of whole numbers, such as 16,8,4.") from None
    config = DistillConfig(steps=args.steps_per_round, batch_size=args.batch_size, lr=args.lr,
                           guidance_min=args.guidance_min, guidance_max=args.guidance_max,
                           prompt_dropout=args.prompt_dropout, word_dropout=args.word_dropout,
                           word_focus=args.word_focus, seed=args.seed, fake_lr=args.fake_lr,
                           fake_warmup=args.fake_warmup, empty_substeps=args.empty_substeps,
                           empty_weight=args.empty_weight, fake_updates=args.fake_updates,
                           empty_on_policy=args.empty_on_policy, empty_first=args.empty_first,
                           empty_match=args.empty_match)
    _check_distill_settings(args, config)
    try:
        teacher = load_checkpoint(args.teacher)
    except CheckpointError as error:
        raise ValueError(str(error)) from None
    if teacher.vocabulary is None:
        raise ValueError(f"{teacher.name!r} takes no prompts: distil a prompt model, such as emoji32-prompts.")
    if args.gan_steps and teacher.is_latent:
        raise ValueError(f"--gan-steps sharpens a pixel model's pictures; {teacher.name!r} draws latents, where the "
                         "adversarial stage has not been tried.")
    check_rounds(rounds, teacher.schedule.num_timesteps)
    from_student = _student_to_match(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if args.no_resume and Path(args.out).exists():
        shutil.rmtree(Path(args.out) / "rounds", ignore_errors=True)
    emoji = emoji_subset(teacher.resolution)
    dataset = dataclasses.replace(dataset_from_uint8("noto-emoji-curated", emoji.images), captions=tuple(emoji.names))
    if teacher.is_latent:
        dataset = encode_dataset(teacher.autoencoder, dataset)
    spec = DistillSpec(Path(args.teacher), rounds, config, args.preview_every, args.checkpoint_every or 600.0,
                       info={"command": _command(), "hardware": _hardware(device)}, match_steps=args.match_steps,
                       match_lr=args.match_lr, from_student=from_student, gan_steps=args.gan_steps,
                       adversarial=_adversarial_config(args))
    bars = []

    def on_round(steps: int, run, stage: str) -> None:
        if bars:
            bars.pop()[0].close()
        print({"matching": f"distribution matching: the {steps}-step student against the guided teacher",
               "adversarial": f"adversarial stage: the {steps}-step student's empty-prompt pictures against a "
                              "discriminator of the data",
               "round": f"round: a {steps}-step student from a {2 * steps}-step teacher"}[stage] + f", in {run.path}")
        bar, on_event = _train_progress({"matching": args.match_steps, "adversarial": args.gan_steps}.get(
            stage, config.steps))
        bars.append((bar, on_event))

    with stop_on_interrupt() as should_stop:
        folder = distill_run(args.out, spec, dataset, on_round, lambda event: bars[-1][1](event), should_stop, device)
    for bar, _ in bars:
        bar.close()
    print(f"wrote {folder}")
    return 0
