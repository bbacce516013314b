"""Noise a photo at a timestep: what the Forward tab and ``python -m playground noise`` both show.

Plain values in (a path, a schedule name, t, a seed), tensors and pictures out; no UI here.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from playground import media
from playground.data.images import load_image, prepare_image
from playground.diffusion import NoiseLevel, NoiseSchedule, add_noise, noise_level
from playground.services.checks import check_schedule, check_seed

RESOLUTIONS = (64, 128, 256)
FORWARD_GIF_STEPS = 60  # the forward GIF: x_0, then x_t at this many evenly spaced t


@functools.lru_cache(maxsize=16)
def _load_prepared(path: str, mtime_ns: int, resolution: int) -> torch.Tensor:
    image = load_image(path, max_side=resolution)
    return media.pil_to_tensor(prepare_image(image, resolution))


def load_x0(path: str | os.PathLike, resolution: int) -> torch.Tensor:
    """The photo at ``path`` as the model would see it: (1, 3, R, R) in [-1, 1], centre-cropped.

    Cached by path, modification time and resolution, so moving the t slider never decodes again.
    """
    if resolution not in RESOLUTIONS:
        raise ValueError(f"Resolution must be one of {', '.join(map(str, RESOLUTIONS))}, not {resolution}.")
    path = Path(path)
    mtime = path.stat().st_mtime_ns if path.is_file() else 0
    return _load_prepared(str(path), mtime, resolution)


def make_noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """eps ~ N(0, I) of ``shape`` from its own seeded generator: the same seed gives the same noise."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(shape, generator=generator)


@dataclass(frozen=True)
class NoisedPhoto:
    x0: torch.Tensor  # (1, 3, R, R) in [-1, 1]
    noise: torch.Tensor  # (1, 3, R, R), N(0, I)
    x_t: torch.Tensor  # (1, 3, R, R)
    level: NoiseLevel


def noise_photo(x0: torch.Tensor, schedule: NoiseSchedule, t: int, seed: int) -> NoisedPhoto:
    """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps with eps drawn from ``seed``.

    The same seed gives the same eps for every t, so sliding t shows one noise fading in.
    """
    level = noise_level(schedule, t)
    noise = make_noise(tuple(x0.shape), seed)
    return NoisedPhoto(x0=x0, noise=noise, x_t=add_noise(schedule, x0, noise, t), level=level)


def noise_request(path: str | os.PathLike, schedule_name: str, num_timesteps, t, seed, resolution,
                  zero_snr: bool = False) -> tuple[NoisedPhoto, NoiseSchedule]:
    """Every setting of the Forward tab checked, then the photo noised: the one call for the tab, the API and the
    CLI. ``t`` past the last step is clamped to it (a T change can race the slider); ValueError (ImageError for the
    photo) with one sentence for anything else."""
    schedule = check_schedule(schedule_name, num_timesteps, zero_snr)
    seed = check_seed(seed)
    try:
        resolution, t = int(resolution), int(t)
    except (TypeError, ValueError):
        raise ValueError("t and the resolution must be whole numbers.") from None
    x0 = load_x0(path, resolution)
    return noise_photo(x0, schedule, min(max(t, 0), schedule.num_timesteps - 1), seed), schedule


def evenly_spaced_timesteps(num_timesteps: int, count: int) -> list[int]:
    """``count`` timesteps from 0 to T-1 inclusive, rounded, without repeats."""
    steps = torch.linspace(0, num_timesteps - 1, count).round().long().tolist()
    return sorted(set(steps))


def forward_strip(x0: torch.Tensor, noise: torch.Tensor, schedule: NoiseSchedule, count: int = 8,
                  cell: int = 128) -> Image.Image:
    """x_t at ``count`` evenly spaced t, each labelled, side by side (one batched add_noise)."""
    steps = evenly_spaced_timesteps(schedule.num_timesteps, count)
    batch = len(steps)
    x_t = add_noise(schedule, x0.expand(batch, -1, -1, -1), noise.expand(batch, -1, -1, -1), torch.tensor(steps))
    frames = [media.label(_cell(media.tensor_to_pil(x), cell), f"t={t}") for t, x in zip(steps, x_t, strict=True)]
    return media.strip([media.label(_cell(media.tensor_to_pil(x0), cell), "x0")] + frames)


def _cell(image: Image.Image, cell: int) -> Image.Image:
    if image.width == cell:
        return image
    resample = Image.NEAREST if image.width < cell else Image.BOX
    return image.resize((cell, cell), resample)


def forward_gif(
    x0: torch.Tensor, noise: torch.Tensor, schedule: NoiseSchedule, path: str | os.PathLike,
    frames: int = FORWARD_GIF_STEPS,
) -> Path:
    """A GIF of the whole forward process: x_0, then x_t at ``frames`` evenly spaced t."""
    steps = evenly_spaced_timesteps(schedule.num_timesteps, frames)
    cell = max(128, x0.shape[-1])
    pictures = [media.label(_cell(media.tensor_to_pil(x0), cell), "x0")]
    for chunk in torch.split(torch.tensor(steps), 16):  # bound memory at 256 px
        batch = len(chunk)
        x_t = add_noise(schedule, x0.expand(batch, -1, -1, -1), noise.expand(batch, -1, -1, -1), chunk)
        pictures += [media.label(_cell(media.tensor_to_pil(x), cell), f"t={int(t)}")
                     for t, x in zip(chunk, x_t, strict=True)]
    return media.save_gif(pictures, path)


def level_numbers(schedule: NoiseSchedule, level: NoiseLevel) -> dict:
    """The numbers of a noise level as a JSON-able dict (JSON has no infinities: SNR = 0 at the last step of a
    zero-terminal-SNR schedule is "-inf" dB)."""
    values = dataclasses.asdict(level)
    return {"schedule": schedule.name,
            **{k: v if not isinstance(v, float) or math.isfinite(v) else str(v) for k, v in values.items()}}


def formula_markdown(level: NoiseLevel) -> str:
    """The closed form, then this t's numbers filled in, as Markdown with LaTeX (short lines: fits a phone)."""
    t = level.t
    snr_db = "-\\infty" if level.snr == 0 else f"{level.snr_db:+.2f}"
    return (
        f"$$x_{{{t}}} = \\sqrt{{\\bar\\alpha_{{{t}}}}}\\,x_0 + \\sqrt{{1-\\bar\\alpha_{{{t}}}}}\\,\\epsilon$$\n\n"
        f"$$x_{{{t}}} = {level.sqrt_alpha_bar:.4f}\\,x_0 + {level.sqrt_one_minus_alpha_bar:.4f}\\,\\epsilon$$\n\n"
        f"$\\beta_{{{t}}} = {level.beta:.5f}$, "
        f"$\\bar\\alpha_{{{t}}} = {level.alpha_bar:.5f}$, "
        f"$\\mathrm{{SNR}} = \\bar\\alpha/(1-\\bar\\alpha) = {level.snr:.4g}$ "
        f"($= {snr_db}$ dB)"
    )
