"""Sampling to files: what ``python -m playground sample`` writes (PNGs, a grid, the animation, the guidance sweep)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from playground import media
from playground.checkpoints import Checkpoint
from playground.diffusion.guidance import DEFAULT_GUIDANCE
from playground.models import pick_device
from playground.services.image_sampling import SampleRequest, guidance_sweep, iter_sampling


@dataclass(frozen=True)
class SampleResult:
    images: torch.Tensor  # (B, C, H, W) pictures in [-1, 1]
    frames: list[Image.Image]  # x_t grid | pred x_0 grid, thinned, captioned
    seconds: float


def write_pictures(images: torch.Tensor, out_dir: str | os.PathLike) -> None:
    """OUT/sample_000.png, ... one per picture, and OUT/grid.png of them all."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        media.tensor_to_pil(image).save(out_dir / f"sample_{i:03d}.png")
    media.image_grid(images).save(out_dir / "grid.png")


def sample_to_files(checkpoint: Checkpoint, sampler_name: str, steps: int, count: int, seed: int,
                    out_dir: str | os.PathLike, gif: str | os.PathLike | None = None, eta: float = 0.0,
                    mp4: str | os.PathLike | None = None, prompt: str = "",
                    guidance: float = DEFAULT_GUIDANCE) -> SampleResult:
    """Sample and write the pictures (:func:`write_pictures`) and, when asked, the animation as GIF and MP4."""
    if mp4 and not media.mp4_available():
        raise ValueError("MP4 needs PyAV: pip install av (it is in requirements.txt).")
    frames: list[Image.Image] = []
    for progress in iter_sampling(checkpoint, sampler_name, steps, count, seed, eta, show_every_s=math.inf,
                                  animate=bool(gif or mp4), device=pick_device(), prompt=prompt, guidance=guidance):
        frames += progress.new_frames
    write_pictures(progress.result, out_dir)
    media.save_animation(frames, gif, mp4)
    return SampleResult(progress.result, frames, progress.seconds)


def sweep_to_file(request: SampleRequest, path: str | os.PathLike) -> Path:
    """The guidance sweep as one picture: a row per scale, each captioned "s = ..."."""
    rows = [media.label(media.strip([media.zoom(media.tensor_to_pil(x), 64) for x in images], gap=2),
                        f"s = {scale:g}", size=14)
            for scale, images in guidance_sweep(request)]
    media.grid(rows, columns=1).save(path)
    return Path(path)
