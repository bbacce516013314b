"""Generate images from a checkpoint, step by step: what the Sample tab streams and ``python -m playground sample`` writes.

Plain values in (a checkpoint, a sampler name, steps, how many, a seed); Steps and pictures out.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from PIL import Image

from playground import media
from playground.checkpoints import Checkpoint, list_checkpoints, load_checkpoint
from playground.diffusion import Step, iter_sample, make_sampler
from playground.diffusion.training import call_model
from playground.runs import image_grid

SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints"
MAX_IMAGES = 64


def checkpoint_roots() -> list[Path]:
    """Where checkpoints are listed from: the shipped ones, then any in $PLAYGROUND_CHECKPOINTS (os.pathsep-separated)."""
    extra = [Path(p) for p in os.environ.get("PLAYGROUND_CHECKPOINTS", "").split(os.pathsep) if p]
    return [SHIPPED, *extra]


def available_checkpoints(*more_roots: Path) -> list[Path]:
    return list_checkpoints(*checkpoint_roots(), *more_roots)


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> Checkpoint:
    checkpoint = load_checkpoint(path)
    checkpoint.unet.to(memory_format=torch.channels_last)
    return checkpoint


def get_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load (cached by folder and modification time) a checkpoint, in eval mode, channels-last."""
    path = Path(path)
    weights = path / "unet" / "diffusion_pytorch_model.safetensors"
    return _load(str(path), weights.stat().st_mtime_ns if weights.is_file() else 0)


def initial_noise(checkpoint: Checkpoint, count: int, seed: int) -> tuple[torch.Tensor, torch.Generator]:
    """x_T for ``count`` images from ``seed``, and the generator that then drives any sampler noise."""
    generator = torch.Generator().manual_seed(int(seed))
    resolution = checkpoint.resolution
    x_T = torch.randn(count, 3, resolution, resolution, generator=generator)
    return x_T.contiguous(memory_format=torch.channels_last), generator


def generate(checkpoint: Checkpoint, sampler_name: str, steps: int, count: int, seed: int,
             eta: float = 0.0) -> Iterator[Step]:
    """Every step of sampling ``count`` images; the last Step's prev_sample is the result.

    The same seed gives the same images (and the same starting noise for every sampler).
    """
    if not 1 <= count <= MAX_IMAGES:
        raise ValueError(f"The number of images must be between 1 and {MAX_IMAGES}.")
    kwargs = {"prediction_type": checkpoint.prediction_type, "clip_sample": 1.0}
    if sampler_name == "ddim":
        kwargs["eta"] = eta
    sampler = make_sampler(sampler_name, checkpoint.schedule, int(steps), **kwargs)
    x_T, generator = initial_noise(checkpoint, count, seed)
    unet = checkpoint.unet
    return iter_sample(lambda x, t: call_model(unet, x, t), sampler, x_T, generator)


def grid_picture(images: torch.Tensor, display: int = 512) -> Image.Image:
    """A square-ish grid of (B, 3, H, W) images in [-1, 1], enlarged crisply to about ``display`` px."""
    grid = image_grid(images.clamp(-1, 1))
    return media.zoom(grid, min_side=min(display, 8 * grid.width))


def keep_every(steps: int, max_frames: int = 60) -> int:
    """Stream or store one frame in this many, so long runs stay light (DDPM 1000: every 17th)."""
    return max(1, -(-steps // max_frames))


@dataclass(frozen=True)
class SampleResult:
    images: torch.Tensor  # (B, 3, H, W) in [-1, 1]
    frames: list[Image.Image]  # x_t grid | pred x_0 grid, thinned
    seconds: float


def sample_to_files(checkpoint: Checkpoint, sampler_name: str, steps: int, count: int, seed: int,
                    out_dir: str | os.PathLike, gif: str | os.PathLike | None = None, eta: float = 0.0,
                    mp4: str | os.PathLike | None = None) -> SampleResult:
    """Sample and write OUT/sample_000.png..., OUT/grid.png, and optionally the animation as GIF and MP4."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    every = keep_every(int(steps))
    frames: list[Image.Image] = []
    started = time.perf_counter()
    result = None
    for step in generate(checkpoint, sampler_name, steps, count, seed, eta):
        result = step.prev_sample
        if (gif or mp4) and (step.index % every == 0 or step.index == step.num_steps - 1):
            frames.append(side_by_side(step.prev_sample, step.pred_x0))
    seconds = time.perf_counter() - started
    images = result.clamp(-1, 1)
    for i, image in enumerate(images):
        media.tensor_to_pil(image).save(out_dir / f"sample_{i:03d}.png")
    image_grid(images).save(out_dir / "grid.png")
    if gif:
        media.save_gif(frames, gif, duration_ms=70)
    if mp4 and media.save_mp4(frames, mp4) is None:
        raise ValueError("MP4 needs PyAV: pip install av (it is in requirements.txt).")
    return SampleResult(images, frames, seconds)


def side_by_side(x_t: torch.Tensor, pred_x0: torch.Tensor, display: int = 384) -> Image.Image:
    """One animation frame: the samples so far beside the model's current guess of x_0."""
    return media.strip([grid_picture(x_t, display), grid_picture(pred_x0, display)], gap=12)
