"""The command line: ``python -m playground {noise,schedule} ...``; the same code paths as the tabs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playground.diffusion import BETA_SCHEDULES
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
    noise.add_argument("--T", dest="num_timesteps", type=_timesteps, default=1000, help="number of steps (default 1000)")
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
    return parser


def run_noise(args: argparse.Namespace) -> int:
    from playground import media
    from playground.noising import forward_gif, forward_strip, get_schedule, load_x0, noise_photo

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
    from playground.noising import get_schedule
    from playground.plots import SUMMARY_HEADERS, schedule_summary

    names = args.names or list(BETA_SCHEDULES)
    unknown = [n for n in names if n not in BETA_SCHEDULES]
    if unknown:
        raise ValueError(f"Unknown schedule {unknown[0]!r}; choose from {', '.join(BETA_SCHEDULES)}.")
    schedules = [get_schedule(n, args.num_timesteps, args.zero_snr) for n in names]
    rows = [SUMMARY_HEADERS] + [[str(v) for v in row] for row in schedule_summary(schedules)]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(SUMMARY_HEADERS))]
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
    return 0


def main(argv: list[str] | None = None) -> int:
    from playground.data.images import ImageError

    args = build_parser().parse_args(argv)
    try:
        return {"noise": run_noise, "schedule": run_schedule}[args.command](args)
    except (ImageError, ValueError) as error:  # a sentence for the person, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
