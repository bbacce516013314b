"""The score-based view (Song et al. 2021, "Score-Based Generative Modeling through Stochastic Differential
Equations"): a denoiser is a score model, and Langevin dynamics samples with it.

The score of the noised data at step t is s(x, t) = grad_x log p_t(x). A network that predicts the noise gives it
as s(x, t) = -eps_hat(x, t) / sqrt(1 - alpha_bar_t) (Tweedie's formula; any target converts to eps first).

Langevin dynamics (Song & Ermon 2019, "Generative Modeling by Estimating Gradients of the Data Distribution"):
x <- x + (step / 2) s(x) + sqrt(step) z, with z ~ N(0, I), samples p as step -> 0 and the steps -> infinity.
Annealed over the noise levels from noisy to clean, it walks points onto the data; the predictor-corrector sampler
(Song et al. 2021, Algorithm 2-3) alternates a reverse-diffusion step (the predictor) with a few Langevin steps
at the new level (the corrector), its step size set from a signal-to-noise ratio r.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from playground.diffusion.forward import randn
from playground.diffusion.samplers import Sampler, Step, split_prediction
from playground.diffusion.schedules import NoiseSchedule

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ScoreFn = Callable[[torch.Tensor, int], torch.Tensor]


def score_from_model_output(model_output: torch.Tensor, x_t: torch.Tensor, alpha_bar: float,
                            prediction_type: str = "epsilon") -> torch.Tensor:
    """s(x_t, t) = -eps_hat / sqrt(1 - alpha_bar_t), whatever the network predicts (Song et al. 2021, eq. 41's VP
    case; Tweedie's formula)."""
    _, eps = split_prediction(model_output, x_t, alpha_bar, prediction_type)
    return -eps / math.sqrt(1.0 - alpha_bar)


def model_score(model_fn: ModelFn, schedule: NoiseSchedule, prediction_type: str = "epsilon") -> ScoreFn:
    """The learned score as a function of (x, t)."""

    def score(x: torch.Tensor, t: int) -> torch.Tensor:
        t_batch = torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device)
        alpha_bar = float(schedule.alphas_cumprod[int(t)])
        return score_from_model_output(model_fn(x, t_batch), x, alpha_bar, prediction_type)

    return score


def gaussian_mixture_log_density(x: torch.Tensor, means: torch.Tensor, std: float, alpha_bar: float = 1.0,
                                 weights: torch.Tensor | None = None) -> torch.Tensor:
    """log p_t(x) of an isotropic Gaussian mixture noised to level alpha_bar (exact): each component
    N(mu_k, std^2 I) becomes N(sqrt(alpha_bar) mu_k, (alpha_bar std^2 + 1 - alpha_bar) I). x: (N, D)."""
    variance = alpha_bar * std**2 + (1.0 - alpha_bar)
    k, d = means.shape
    weights = torch.full((k,), 1.0 / k, dtype=x.dtype) if weights is None else weights.to(x.dtype)
    centres = math.sqrt(alpha_bar) * means.to(x.dtype)
    squared = torch.cdist(x, centres).pow(2)  # (N, K)
    log_components = -0.5 * squared / variance - 0.5 * d * math.log(2 * math.pi * variance)
    return torch.logsumexp(log_components + weights.log(), dim=1)


def gaussian_mixture_score(x: torch.Tensor, means: torch.Tensor, std: float, alpha_bar: float = 1.0,
                           weights: torch.Tensor | None = None) -> torch.Tensor:
    """grad_x log p_t(x) of the noised mixture, in closed form: sum_k r_k(x) (sqrt(alpha_bar) mu_k - x) / var_t,
    r_k the components' posterior weights."""
    variance = alpha_bar * std**2 + (1.0 - alpha_bar)
    k, d = means.shape
    weights = torch.full((k,), 1.0 / k, dtype=x.dtype) if weights is None else weights.to(x.dtype)
    centres = math.sqrt(alpha_bar) * means.to(x.dtype)
    logits = -0.5 * torch.cdist(x, centres).pow(2) / variance + weights.log()
    responsibilities = torch.softmax(logits, dim=1)  # (N, K)
    return (responsibilities @ centres - x) / variance


def langevin_step(score: torch.Tensor, x: torch.Tensor, step_size: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """One step of (unadjusted) Langevin dynamics: x + (step / 2) s(x) + sqrt(step) z."""
    return x + 0.5 * step_size * score + math.sqrt(step_size) * randn(x.shape, generator, x)


@dataclass(frozen=True)
class LangevinStep:
    """One noise level of a Langevin-type sampler, as shown to a person."""

    index: int  # 0 .. num_levels - 1
    num_levels: int
    t: int  # the noise level the score was taken at
    x: torch.Tensor  # the samples after this level's steps
    step_size: float  # the last Langevin step size used at this level


def annealed_langevin_levels(schedule: NoiseSchedule, num_levels: int) -> list[int]:
    """``num_levels`` noise levels from T-1 to 0, evenly spaced in log sigma (NCSN's geometric sequence)."""
    sigmas = (1.0 - schedule.alphas_cumprod.double()).clamp_min(1e-12).sqrt()
    targets = torch.logspace(math.log10(float(sigmas[-1])), math.log10(float(sigmas[0])), num_levels,
                             dtype=torch.float64)
    levels: list[int] = []
    for i, target in enumerate(targets.tolist()):
        t = int((sigmas - target).abs().argmin())
        if levels:
            t = min(t, levels[-1] - 1)
        levels.append(max(t, num_levels - 1 - i))
    return levels


@torch.inference_mode()
def iter_annealed_langevin(score_fn: ScoreFn, schedule: NoiseSchedule, x_T: torch.Tensor, num_levels: int = 100,
                           steps_per_level: int = 5, epsilon: float = 0.1,
                           generator: torch.Generator | None = None) -> Iterator[LangevinStep]:
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) over the schedule's noise levels: at each level
    ``steps_per_level`` Langevin steps with step size epsilon * sigma_t^2 (sigma_t^2 = 1 - alpha_bar_t, relative to
    the data's unit scale, so every level moves its points by a similar share of its spread). After the last
    level (t = 0) one denoising step x + sigma_0^2 s(x, 0) removes the last noise (Tweedie), as NCSN++ does."""
    x = x_T
    levels = annealed_langevin_levels(schedule, num_levels)
    for index, t in enumerate(levels):
        variance = 1.0 - float(schedule.alphas_cumprod[t])
        step_size = epsilon * variance
        for _ in range(steps_per_level):
            x = langevin_step(score_fn(x, t), x, step_size, generator)
        if index == len(levels) - 1:
            x = x + variance * score_fn(x, t)
        yield LangevinStep(index, len(levels), t, x, step_size)


@torch.inference_mode()
def iter_predictor_corrector(model_fn: ModelFn, sampler: Sampler, x_T: torch.Tensor, corrector_steps: int = 1,
                             snr: float = 0.16, generator: torch.Generator | None = None) -> Iterator[Step]:
    """Predictor-corrector sampling (Song et al. 2021, Algorithms 2-3): each step of ``sampler`` (the predictor:
    DDPM's reverse diffusion, or DDIM's ODE step) is followed by ``corrector_steps`` Langevin steps at the level
    it reached, with the step size that gives the signal-to-noise ratio ``snr``:
    step = 2 alpha_t (snr ||z|| / ||s||)^2, the norms averaged over the batch as in the paper's code (per sample,
    a point where the score nearly vanishes would take a huge step). No correction after the last step."""
    if not sampler.timesteps:
        raise ValueError("Call sampler.set_timesteps(n) first.")
    schedule, prediction_type = sampler.schedule, sampler.prediction_type
    x = x_T
    batch = x_T.shape[0]
    for index, t in enumerate(sampler.timesteps):
        t_batch = torch.full((batch,), t, dtype=torch.long, device=x_T.device)
        out = sampler.step(model_fn(x, t_batch), t, x, generator=generator)
        x_next = out.prev_sample
        t_next = sampler.prev_timestep(t)
        if t_next >= 0:
            alpha_bar = float(schedule.alphas_cumprod[t_next])
            alpha = 1.0 - float(schedule.betas[t_next])
            t_next_batch = torch.full((batch,), t_next, dtype=torch.long, device=x_T.device)
            for _ in range(corrector_steps):
                score = score_from_model_output(model_fn(x_next, t_next_batch), x_next, alpha_bar, prediction_type)
                noise = randn(x_next.shape, generator, x_next)
                ratio = noise.flatten(1).norm(dim=1).mean() / score.flatten(1).norm(dim=1).mean().clamp_min(1e-12)
                size = float(2 * alpha * (snr * ratio) ** 2)
                x_next = x_next + size * score + math.sqrt(2 * size) * noise
        yield Step(index, len(sampler.timesteps), t, x, out.pred_original_sample, x_next)
        x = x_next
