"""The 2-D toy lab's inference: sample a trained point-cloud denoiser, animate it, measure it, see its score.

The same core as the images: NoiseSchedule, add_noise and the samplers, plus the score view (diffusion.score:
annealed Langevin dynamics and predictor-corrector sampling); only the data (points (N, 2)) and the network
(ToyMLP) differ. Training lives in services.toy_training; this module never imports the training loop.
Shared by the toy lab tab and ``python -m playground toy``.

Quality is the squared MMD with a narrow Gaussian kernel (bandwidth 0.1 x the data's spread) to fresh true points,
as a share of a Gaussian fitted to the data's (0 is a perfect copy, 1 is no better than that Gaussian): unlike the
energy distance, it sees a band drawn too thin and a few points off the data. Stray points are counted apart.

The deterministic samplers take their steps evenly in log-SNR (``logsnr`` spacing), so their last step is at
t = 0: the t-spaced choices image models use end at t = 50 (DPM-Solver++ 20) where the model's x_0 is still its
average guess over a noisy neighbourhood, which draws the Swiss roll's band as a thin curve.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from playground.data.points import TOY_DATASETS, points_from_drawing, toy_points
from playground.diffusion import BETA_SCHEDULES, NoiseSchedule, add_noise, iter_sample, make_sampler
from playground.diffusion.schedules import get_schedule
from playground.diffusion.score import (
    gaussian_mixture_score,
    iter_annealed_langevin,
    iter_predictor_corrector,
    model_score,
)
from playground.models import model_fn

if TYPE_CHECKING:  # for the annotation only: importing the training module at run time would pull in the loop
    from playground.diffusion.training import TrainConfig

TOY_SAMPLERS = ("ddpm", "ddim", "dpmpp", "langevin", "pc")
DEFAULT_STEPS = {"ddpm": 1000, "ddim": 50, "dpmpp": 20, "langevin": 100, "pc": 50}
SPACINGS = ("logsnr", "linspace", "trailing")
PREDICTORS = ("ddim", "ddpm")
MAX_STEP_SIZE = 1.0  # Langevin's epsilon and the corrector's SNR: above 0 and at most this
MAX_CORRECTOR_STEPS = 50
NUM_POINTS, NUM_REFERENCE = 4000, 2000  # a cloud trains on NUM_POINTS; samples are measured against NUM_REFERENCE
DRAWING = "your drawing"


@dataclass(frozen=True)
class ToyDataKey:
    """What a toy model is trained for: the cloud (a drawing is a new upload each time) and the schedule."""

    dataset: str
    drawing: str
    schedule: str


@dataclass(frozen=True)
class ToyData:
    """A cloud to train on, and fresh true points of the same distribution to measure samples against."""

    key: ToyDataKey
    points: torch.Tensor  # (NUM_POINTS, 2)
    reference: torch.Tensor  # (NUM_REFERENCE, 2)


def toy_data(dataset: str, drawing: str | None, schedule_name: str) -> ToyData:
    """A built-in cloud (data.points.TOY_DATASETS) or points drawn from a black-on-white picture, checked: ValueError
    (ImageError for a picture that can't be read) with one sentence."""
    if schedule_name not in BETA_SCHEDULES:
        raise ValueError(f"Unknown schedule {schedule_name!r}; choose from {', '.join(BETA_SCHEDULES)}.")
    if dataset == DRAWING:
        if not drawing:
            raise ValueError("Upload a black-on-white drawing or silhouette first, or pick a built-in dataset.")
        points, reference = (points_from_drawing(drawing, n, seed=seed) for n, seed in
                             ((NUM_POINTS, 0), (NUM_REFERENCE, 1)))
    elif dataset in TOY_DATASETS:
        points, reference = toy_points(dataset, NUM_POINTS, seed=0), toy_points(dataset, NUM_REFERENCE, seed=1)
    else:
        raise ValueError(f"Unknown dataset {dataset!r}; choose one of {', '.join(TOY_DATASETS)} or {DRAWING!r}.")
    return ToyData(ToyDataKey(dataset, drawing if dataset == DRAWING else "", schedule_name), points, reference)


def check_toy_settings(sampler_name: str, steps, num_timesteps: int, spacing: str = "logsnr", step_size=None,
                       corrector_steps=None, predictor: str = "ddim", snr=None) -> tuple[int, SamplerSettings]:
    """A toy sampler's steps and settings (None: the sampler's default), or ValueError with one sentence: the one
    check for the tab, the API and ``python -m playground toy``."""
    if sampler_name not in TOY_SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler_name!r}; choose one of {', '.join(TOY_SAMPLERS)}.")
    defaults = default_settings(sampler_name)
    try:
        steps = DEFAULT_STEPS[sampler_name] if steps is None else int(steps)
        step_size = defaults.step_size if step_size is None else float(step_size)
        snr = defaults.snr if snr is None else float(snr)
        corrector_steps = defaults.corrector_steps if corrector_steps is None else int(corrector_steps)
    except (TypeError, ValueError):
        raise ValueError("Steps, corrector steps, the step size and the SNR must be numbers.") from None
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"Steps must be between 1 and {num_timesteps}; you asked for {steps}.")
    if spacing not in SPACINGS or predictor not in PREDICTORS:
        raise ValueError(f"The spacing is one of {', '.join(SPACINGS)}, the predictor one of {', '.join(PREDICTORS)}.")
    if not (0 < step_size <= MAX_STEP_SIZE and 0 < snr <= MAX_STEP_SIZE):
        raise ValueError(f"The step size and the SNR must be above 0 and at most {MAX_STEP_SIZE:g}.")
    least = 1 if sampler_name == "langevin" else 0
    if not least <= corrector_steps <= MAX_CORRECTOR_STEPS:
        raise ValueError(f"Langevin needs at least one step per noise level, and at most {MAX_CORRECTOR_STEPS}."
                         if sampler_name == "langevin" else
                         f"Corrector steps must be between 0 and {MAX_CORRECTOR_STEPS}.")
    return steps, SamplerSettings(spacing, step_size, corrector_steps, predictor, snr)


@dataclass(frozen=True)
class SamplerSettings:
    """How a toy sampler runs. ``spacing``: where the deterministic samplers put their steps ("logsnr", or an image
    model's t-spacing: "linspace", "trailing"). Langevin: ``step_size`` is epsilon (the step is epsilon x sigma_t^2)
    and ``corrector_steps`` the steps per noise level. Predictor-corrector: ``predictor`` ("ddim", the ODE, or
    "ddpm"), then ``corrector_steps`` Langevin steps at signal-to-noise ratio ``snr``."""

    spacing: str = "logsnr"
    step_size: float = 0.1
    corrector_steps: int = 5
    predictor: str = "ddim"
    snr: float = 0.16


LANGEVIN = SamplerSettings()
PREDICTOR_CORRECTOR = SamplerSettings(corrector_steps=1)


def default_settings(sampler_name: str) -> SamplerSettings:
    return PREDICTOR_CORRECTOR if sampler_name == "pc" else LANGEVIN


COMPARE: tuple[tuple[str, int, SamplerSettings], ...] = (
    ("ddpm", 1000, LANGEVIN),
    ("ddim", 50, LANGEVIN),
    ("dpmpp", 20, LANGEVIN),
    ("dpmpp", 20, SamplerSettings(spacing="linspace")),  # an image model's spacing: last step at t = 50
    ("langevin", 100, LANGEVIN),
    ("pc", 50, PREDICTOR_CORRECTOR),
)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread: a 128-wide MLP is too small to share between threads, and on a busy
    2-core machine a second thread's synchronisation costs more than it saves (bench/toy_quality.py times training)."""
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


def spread(points: torch.Tensor) -> float:
    """The data's spread: the root mean of its per-axis variances."""
    return float(points.double().var(0).mean().sqrt())


def kernel_bandwidth(reference: torch.Tensor) -> float:
    """The narrow kernel's bandwidth: 0.1 x the data's spread."""
    return 0.1 * spread(reference)


def narrow_mmd(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    """Squared maximum mean discrepancy (Gretton et al. 2012) with the Gaussian kernel exp(-|a-b|^2 / 2h^2),
    unbiased (the U-statistic: about 0 for two samples of one distribution, so it can dip just below 0)."""
    x, y = x.double(), y.double()

    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(-torch.cdist(a, b).pow(2) / (2 * bandwidth**2))

    n, m = len(x), len(y)
    kxx, kyy = kernel(x, x), kernel(y, y)
    within = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(within - 2 * kernel(x, y).mean())


def count_strays(points: torch.Tensor, reference: torch.Tensor, margin: float = 0.5) -> int:
    """Points farther than ``margin`` x the data's spread from every reference point: off the data entirely."""
    nearest = torch.cdist(points.double(), reference.double()).min(dim=1).values
    return int((nearest > margin * spread(reference)).sum())


@dataclass(frozen=True)
class Quality:
    """How faithful a sample is to fresh true points."""

    mmd: float  # narrow-kernel squared MMD
    gaussian_mmd: float  # the same for a Gaussian fitted to the data: the bar
    energy_distance: float
    strays: int
    bandwidth: float

    @property
    def mmd_ratio(self) -> float:
        """The MMD as a share of the fitted Gaussian's: 0 a perfect copy, 1 no better than the Gaussian."""
        return self.mmd / self.gaussian_mmd if self.gaussian_mmd > 0 else float("nan")


def gaussian_quality(reference: torch.Tensor, data: torch.Tensor, seed: int = 2) -> Quality:
    """The bar: a Gaussian fitted to ``data``, scored like a sampler (its MMD ratio is 1 by definition)."""
    return quality(gaussian_baseline(data, len(reference), seed=seed), reference, data, seed=seed)


def quality(points: torch.Tensor, reference: torch.Tensor, data: torch.Tensor, seed: int = 2) -> Quality:
    """``points`` against fresh true points ``reference``; ``data`` (the training cloud) fits the Gaussian bar."""
    bandwidth = kernel_bandwidth(reference)
    gaussian = gaussian_baseline(data, len(reference), seed=seed)
    return Quality(narrow_mmd(points, reference, bandwidth), narrow_mmd(gaussian, reference, bandwidth),
                   energy_distance(points, reference), count_strays(points, reference), bandwidth)


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
    model_calls: int  # network evaluations per point


@torch.inference_mode()
def sample_toy(
    model: torch.nn.Module, config: TrainConfig, sampler_name: str, steps: int, n: int = 2000, seed: int = 0,
    max_frames: int = 40, trajectories: int = 12, settings: SamplerSettings | None = None,
) -> ToySample:
    """Sample ``n`` points with a sampler from the shared core (or Langevin dynamics on the learned score),
    keeping frames for an animation.

    ``config``: how the model was trained (its schedule and prediction target). ``steps``: the sampler's steps,
    or Langevin's noise levels. The same seed gives the same starting noise whatever the sampler.
    """
    if sampler_name not in TOY_SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler_name!r}; choose one of {', '.join(TOY_SAMPLERS)}.")
    settings = settings or default_settings(sampler_name)
    schedule = get_schedule(config.schedule, config.num_timesteps)
    generator = torch.Generator().manual_seed(int(seed))
    x_T = torch.randn(n, 2, generator=generator)
    keep = set(torch.linspace(0, steps - 1, min(max_frames, steps)).round().long().tolist())
    frames = [(config.num_timesteps, x_T)]
    paths = [x_T[:trajectories]]
    network = model_fn(model.eval())
    started = time.perf_counter()
    result, calls = x_T, 0
    with one_thread():
        if sampler_name == "langevin":
            score = model_score(network, schedule, config.prediction_type)
            for step in iter_annealed_langevin(score, schedule, x_T, steps, settings.corrector_steps,
                                               settings.step_size, generator):
                result = step.x
                paths.append(result[:trajectories])
                if step.index in keep:
                    frames.append((step.t, result))
            calls = steps * settings.corrector_steps + 1
        else:
            predictor = settings.predictor if sampler_name == "pc" else sampler_name
            spacing = {} if predictor == "ddpm" else {"timestep_spacing": settings.spacing}
            sampler = make_sampler(predictor, schedule, steps, prediction_type=config.prediction_type, **spacing)
            stepper = (iter_predictor_corrector(network, sampler, x_T, settings.corrector_steps, settings.snr,
                                                generator)
                       if sampler_name == "pc" else iter_sample(network, sampler, x_T, generator))
            for step in stepper:
                result = step.prev_sample
                paths.append(result[:trajectories])
                if step.index in keep:
                    frames.append((sampler.prev_timestep(step.t) + 1, result))
            calls = steps * (1 + (settings.corrector_steps if sampler_name == "pc" else 0))
    return ToySample(result, frames, torch.stack(paths), time.perf_counter() - started, calls)


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
    settings: SamplerSettings
    quality: Quality
    seconds: float
    model_calls: int

    @property
    def energy_distance(self) -> float:
        return self.quality.energy_distance


def compare_toy_samplers(model: torch.nn.Module, config: TrainConfig, reference: torch.Tensor,
                         data: torch.Tensor, n: int = NUM_REFERENCE, seed: int = 0,
                         runs: tuple[tuple[str, int, SamplerSettings], ...] = COMPARE) -> list[SamplerScore]:
    """Quality (narrow-kernel MMD, energy distance, strays) and wall time of each (sampler, steps, settings), all
    from the same noise. Steps beyond the model's T are cut to T."""
    scores = []
    for name, steps, settings in runs:
        steps = min(steps, config.num_timesteps)
        result = sample_toy(model, config, name, steps, n=n, seed=seed, max_frames=1, trajectories=0,
                            settings=settings)
        scores.append(SamplerScore(name, steps, settings, quality(result.points, reference, data), result.seconds,
                                   result.model_calls))
    return scores


# --- the score-based view ---

@dataclass(frozen=True)
class ScoreField:
    """The score at t on a grid over the plane: learned, and (for the Gaussian mixture) the true one."""

    t: int
    grid: torch.Tensor  # (G*G, 2) points
    learned: torch.Tensor  # (G*G, 2) s_theta(x, t)
    true: torch.Tensor | None  # (G*G, 2) grad log p_t(x), when it has a closed form
    sigma: float  # sqrt(1 - alpha_bar_t): the noise's scale at t
    noised: torch.Tensor | None  # the given points noised to t (fixed noise), to draw under the arrows


@torch.inference_mode()
def score_field(model: torch.nn.Module, config: TrainConfig, t: int, extent: float = 3.0, size: int = 21,
                mixture: tuple[torch.Tensor, float] | None = None, points: torch.Tensor | None = None) -> ScoreField:
    """s_theta(x, t) = -eps_hat(x, t) / sqrt(1 - alpha_bar_t) on a ``size`` x ``size`` grid over [-extent, extent]^2,
    the mixture's exact score there when ``mixture`` (means, std) is given, and ``points`` noised to t."""
    schedule = get_schedule(config.schedule, config.num_timesteps)
    t = int(min(max(t, 0), config.num_timesteps - 1))
    axis = torch.linspace(-extent, extent, size)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    with one_thread():
        learned = model_score(model_fn(model.eval()), schedule, config.prediction_type)(grid, t)
    alpha_bar = float(schedule.alphas_cumprod[t])
    true = None
    if mixture is not None:
        true = gaussian_mixture_score(grid.double(), mixture[0], mixture[1], alpha_bar).float()
    noised = None
    if points is not None:
        eps = torch.randn(points.shape, generator=torch.Generator().manual_seed(9))
        noised = add_noise(schedule, points, eps, t)
    return ScoreField(t, grid, learned, true, (1 - alpha_bar) ** 0.5, noised)


@torch.inference_mode()
def score_error_by_t(model: torch.nn.Module, config: TrainConfig, data: torch.Tensor,
                     mixture: tuple[torch.Tensor, float], timesteps: list[int] | None = None,
                     seed: int = 0) -> list[tuple[int, float]]:
    """Per t, the learned score's relative error where the noised data lives: E||s_theta - s||^2 / E||s||^2
    over x_t = sqrt(alpha_bar_t) x_0 + sigma_t eps, x_0 from ``data``."""
    schedule = get_schedule(config.schedule, config.num_timesteps)
    timesteps = timesteps or torch.linspace(0, config.num_timesteps - 1, 25).round().long().tolist()
    generator = torch.Generator().manual_seed(seed)
    eps = torch.randn(data.shape, generator=generator)
    score = model_score(model_fn(model.eval()), schedule, config.prediction_type)
    errors = []
    with one_thread():
        for t in timesteps:
            x_t = add_noise(schedule, data, eps, int(t))
            true = gaussian_mixture_score(x_t.double(), mixture[0], mixture[1], float(schedule.alphas_cumprod[t]))
            learned = score(x_t, int(t)).double()
            errors.append((int(t), float((learned - true).pow(2).sum(1).mean() / true.pow(2).sum(1).mean())))
    return errors
