"""The 2-D toy lab's inference: sample a trained point-cloud denoiser, animate it, measure it.

The same core as the images: NoiseSchedule, add_noise and the samplers; only the data (points (N, 2)) and the
network (ToyMLP) differ. Training lives in services.toy_training; this module never imports the training loop.
Shared by the toy lab tab and ``python -m playground toy``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from playground.diffusion import NoiseSchedule, add_noise, iter_sample, make_sampler
from playground.diffusion.schedules import get_schedule
from playground.models import model_fn

if TYPE_CHECKING:  # for the annotation only: importing the training module at run time would pull in the loop
    from playground.diffusion.training import TrainConfig

COMPARE = (("ddpm", 1000), ("ddim", 50), ("dpmpp", 20))


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread: a 128-wide MLP is too small to share between threads, and on a busy
    2-core machine a second thread's synchronisation costs more than it saves (measured: 6.7 s vs 7.8 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Energy distance (Székely & Rizzo): 2 E|X-Y| - E|X-X'| - E|Y-Y'|, zero iff the laws are equal.

    The V-statistic (all pairs, the zero diagonal included) is never negative, which reads better than the
    unbiased U-statistic; its bias is about mean|X-X'| / n (~0.001 at n = 2,000 normalised points).
    """
    x, y = x.double(), y.double()
    return float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean())


def gaussian_baseline(data: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` points from the Gaussian with the data's mean and covariance: what any model must beat."""
    mean = data.double().mean(0)
    covariance = torch.cov(data.double().T)
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (mean + z @ torch.linalg.cholesky(covariance).T).float()


@dataclass(frozen=True)
class ToySample:
    points: torch.Tensor  # (n, 2) the result
    frames: list[tuple[int, torch.Tensor]]  # (t, x_t) before the first step and after each kept step
    trajectories: torch.Tensor  # (steps + 1, k, 2): the path of the first k points
    seconds: float


@torch.inference_mode()
def sample_toy(
    model: torch.nn.Module, config: TrainConfig, sampler_name: str, steps: int, n: int = 2000, seed: int = 0,
    max_frames: int = 40, trajectories: int = 12,
) -> ToySample:
    """Sample ``n`` points with a sampler from the shared core, keeping frames for an animation.

    ``config``: how the model was trained (its schedule and prediction target).
    """
    schedule = get_schedule(config.schedule, config.num_timesteps)
    sampler = make_sampler(sampler_name, schedule, steps, prediction_type=config.prediction_type)
    generator = torch.Generator().manual_seed(int(seed))
    x_T = torch.randn(n, 2, generator=generator)
    keep = set(torch.linspace(0, steps - 1, min(max_frames, steps)).round().long().tolist())
    frames = [(config.num_timesteps, x_T)]
    paths = [x_T[:trajectories]]
    model = model.eval()
    started = time.perf_counter()
    result = x_T
    with one_thread():
        for step in iter_sample(model_fn(model), sampler, x_T, generator):
            result = step.prev_sample
            paths.append(result[:trajectories])
            if step.index in keep:
                frames.append((sampler.prev_timestep(step.t) + 1, result))
    return ToySample(result, frames, torch.stack(paths), time.perf_counter() - started)


def forward_frames(data: torch.Tensor, schedule: NoiseSchedule, count: int = 25,
                   seed: int = 0) -> list[tuple[int, torch.Tensor]]:
    """x_t of the whole cloud at ``count`` evenly spaced t, one fixed eps per point (so points move smoothly)."""
    eps = torch.randn(data.shape, generator=torch.Generator().manual_seed(seed))
    steps = torch.linspace(0, schedule.num_timesteps - 1, count).round().long().tolist()
    return [(t, add_noise(schedule, data, eps, t)) for t in steps]


@dataclass(frozen=True)
class SamplerScore:
    sampler: str
    steps: int
    energy_distance: float
    seconds: float


def compare_samplers(model: torch.nn.Module, config: TrainConfig, reference: torch.Tensor, n: int = 2000,
                     seed: int = 0, runs: tuple[tuple[str, int], ...] = COMPARE) -> list[SamplerScore]:
    """Energy distance to fresh true points, and wall time, for each (sampler, steps), from the same noise.

    Steps beyond the model's T are cut to T."""
    scores = []
    for name, steps in runs:
        steps = min(steps, config.num_timesteps)
        result = sample_toy(model, config, name, steps, n=n, seed=seed, max_frames=1, trajectories=0)
        scores.append(SamplerScore(name, steps, energy_distance(result.points, reference), result.seconds))
    return scores
