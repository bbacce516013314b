"""The commands that look and sample: noise, schedule, sample, toy (training commands: cli.training)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def run_noise(args: argparse.Namespace) -> int:
    from playground import media
    from playground.services.checks import check_schedule
    from playground.services.photo_noising import forward_gif, forward_strip, noise_request

    T = check_schedule(args.schedule, args.num_timesteps, args.zero_snr).num_timesteps
    if not 0 <= args.t < T:  # the tab clamps a t that a change of T left behind; a typed one is refused
        raise ValueError(f"--t must be between 0 and {T - 1} for T={T}.")
    noised, schedule = noise_request(args.image, args.schedule, args.num_timesteps, args.t, args.seed,
                                     args.resolution, args.zero_snr)
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
    from playground.diffusion import BETA_SCHEDULES
    from playground.plots import SUMMARY_HEADERS, schedule_summary
    from playground.services.checks import check_schedule

    schedules = [check_schedule(name, args.num_timesteps, args.zero_snr) for name in args.names or BETA_SCHEDULES]
    rows = [SUMMARY_HEADERS] + [[str(v) for v in row] for row in schedule_summary(schedules)]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(SUMMARY_HEADERS))]
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
    return 0


def _checkpoint_for_pictures(args: argparse.Namespace):
    """The --checkpoint of a command that writes pictures (and, with --mp4, a movie), loaded; ValueError with one
    sentence when it can't be, or when PyAV is missing for --mp4."""
    from playground import media
    from playground.checkpoints import CheckpointError
    from playground.services.model_catalog import get_checkpoint

    if args.mp4 and not media.mp4_available():
        raise ValueError("MP4 needs PyAV: pip install av (it is in requirements.txt).")
    try:
        return get_checkpoint(args.checkpoint)
    except CheckpointError as error:
        raise ValueError(str(error)) from None


def run_sample(args: argparse.Namespace) -> int:
    from playground.services.image_sampling import (
        SampleRequest,
        check_settings,
        default_sampling,
        default_steps,
    )
    from playground.services.prompting import check_prompt
    from playground.services.sample_export import sample_to_files, sweep_to_file

    checkpoint = _checkpoint_for_pictures(args)
    sampler = args.sampler or default_sampling(args.prompt, checkpoint)[0]
    steps = default_steps(sampler, args.prompt, checkpoint) if args.steps is None else args.steps
    steps, count, eta = check_settings(checkpoint, sampler, steps, args.n, args.eta)  # the tabs' checks and sentences
    prompt, guidance = check_prompt(checkpoint, args.prompt, args.guidance)
    if args.sweep and not prompt:
        raise ValueError("--sweep compares guidance scales for a prompt: give --prompt too.")
    result = sample_to_files(checkpoint, sampler, steps, count, args.seed, args.out, args.gif, eta, args.mp4,
                             prompt=prompt, guidance=guidance)
    followed = f" for {prompt!r} at guidance {guidance:g}" if prompt else ""
    print(f"{count} images{followed}, {sampler} {steps} steps in {result.seconds:.1f} s; "
          f"wrote {args.out}/sample_000.png .. sample_{count - 1:03d}.png and {args.out}/grid.png")
    if args.sweep:
        request = SampleRequest(str(checkpoint.path), sampler, steps, count, args.seed, eta, prompt, guidance)
        sweep_to_file(request, Path(args.out) / "sweep.png")
        print(f"wrote {args.out}/sweep.png: the same seed at guidance 0, 1, 2, 4 and 7")
    for path in (args.gif, args.mp4):
        if path:
            print(f"wrote {path} ({len(result.frames)} frames)")
    return 0


def run_edit(args: argparse.Namespace) -> int:
    """edit: SDEdit (no --mask) or RePaint (--mask), writing the edited pictures as ``sample`` writes its own."""
    from playground.services.editing import (
        REPAINT_DEFAULTS,
        SDEDIT_DEFAULTS,
        EditRequest,
        check_edit,
        edit_to_files,
        load_mask,
        load_picture,
    )
    from playground.services.prompting import check_prompt

    if args.mask and args.strength is not None:
        raise ValueError("--strength is SDEdit's and --mask RePaint's: give one of them.")
    if not args.mask and (args.jump_length is not None or args.resample is not None):
        raise ValueError("--jump-length and --resample shape RePaint: give a --mask too.")
    if not Path(args.image).is_file():
        raise ValueError(f"There is no file {args.image!r}.")
    checkpoint = _checkpoint_for_pictures(args)
    defaults = REPAINT_DEFAULTS if args.mask else SDEDIT_DEFAULTS
    steps, count, strength, jump, resample = check_edit(
        checkpoint, bool(args.mask), args.sampler, args.steps or defaults["steps"], args.n,
        args.strength if args.strength is not None else SDEDIT_DEFAULTS["strength"],
        args.jump_length or REPAINT_DEFAULTS["jump_length"], args.resample or REPAINT_DEFAULTS["resample"])
    prompt, guidance = check_prompt(checkpoint, args.prompt, args.guidance)
    load_picture(args.image, checkpoint)
    if args.mask:
        load_mask(args.mask, args.image, checkpoint.resolution)
    request = EditRequest(str(checkpoint.path), args.image, args.mask, args.sampler, steps, count, args.seed,
                          strength, jump, resample, args.eta, prompt, guidance)
    result = edit_to_files(request, args.out, args.gif, args.mp4)
    how = (f"RePaint, {args.sampler} {steps} steps, jumps of {jump}, {resample}x" if args.mask else
           f"SDEdit at strength {strength:g}, {args.sampler} {steps} steps")
    print(f"{count} edits ({how}; {result.model_calls} network calls) in {result.seconds:.1f} s; wrote "
          f"{args.out}/sample_000.png .. sample_{count - 1:03d}.png and {args.out}/grid.png")
    for path in (args.gif, args.mp4):
        if path:
            print(f"wrote {path} ({len(result.frames)} frames)")
    return 0


def run_toy(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from playground.data.points import toy_points
    from playground.services.checks import check_seed
    from playground.services.toy_lab import check_toy_settings, quality, sample_toy
    from playground.services.toy_training import toy_config, train_toy

    config = toy_config(args.train_steps, seed=check_seed(args.seed))
    steps, settings = check_toy_settings(args.sampler, args.steps, config.num_timesteps, args.spacing, args.step_size,
                                         args.corrector_steps, args.predictor, args.snr)
    if args.n < 2:
        raise ValueError("--n must be 2 or more points.")
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
