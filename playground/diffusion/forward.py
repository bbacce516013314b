"""The forward (noising) process of DDPM: closed form, step by step, and its posterior.

Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models", equations 2, 4, 6 and 7.
All timesteps are 0-based as in diffusers (see :mod:`playground.diffusion.schedules`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from playground.diffusion.schedules import NoiseSchedule

Timesteps = int | torch.Tensor  # one timestep for the batch, or one per sample: shape (B,)


def extract(coeffs: torch.Tensor, t: Timesteps, x: torch.Tensor) -> torch.Tensor:
    """coeffs[t] in x's dtype and device, shaped (B, 1, ..., 1) to broadcast against x of shape (B, ...)."""
    t = torch.as_tensor(t, device=coeffs.device, dtype=torch.long)
    values = coeffs[t].to(device=x.device, dtype=x.dtype)
    return values.reshape(values.shape + (1,) * (x.ndim - values.ndim))


def randn(shape: tuple[int, ...] | torch.Size, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise in ``like``'s dtype and device, drawn on the generator's own device.

    A CPU generator then gives the same numbers whether the model runs on the CPU or a GPU (diffusers'
    ``randn_tensor`` does the same).
    """
    where = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=where).to(like.device)


def add_noise(schedule: NoiseSchedule, x0: torch.Tensor, noise: torch.Tensor, t: Timesteps) -> torch.Tensor:
    """Sample q(x_t | x_0) in closed form (DDPM eq. 4): x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps.

    x0, noise: (B, C, H, W) or any shape with the batch first; t: int or (B,) long tensor.
    """
    return extract(schedule.sqrt_alphas_cumprod, t, x0) * x0 + extract(
        schedule.sqrt_one_minus_alphas_cumprod, t, x0
    ) * noise


def markov_step(schedule: NoiseSchedule, x_prev: torch.Tensor, noise: torch.Tensor, t: Timesteps) -> torch.Tensor:
    """One step of the chain q(x_t | x_{t-1}) (DDPM eq. 2): x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps.

    For t = 0, ``x_prev`` is x_0 itself.
    """
    return extract(schedule.alphas, t, x_prev).sqrt() * x_prev + extract(schedule.betas, t, x_prev).sqrt() * noise


def run_markov_chain(
    schedule: NoiseSchedule, x0: torch.Tensor, t: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Apply :func:`markov_step` for steps 0..t, with fresh noise each step; returns x_t.

    In distribution this equals :func:`add_noise` at t; tests check that it does.
    """
    x = x0
    for step in range(t + 1):
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = markov_step(schedule, x, noise, step)
    return x


@dataclass(frozen=True)
class Posterior:
    """q(x_{t-1} | x_t, x_0) = N(mean, variance I) (DDPM eq. 6-7)."""

    mean: torch.Tensor
    variance: torch.Tensor  # beta-tilde_t, broadcastable to mean
    log_variance_clipped: torch.Tensor


def q_posterior(schedule: NoiseSchedule, x0: torch.Tensor, x_t: torch.Tensor, t: Timesteps) -> Posterior:
    """The posterior of the forward process: what x_{t-1} was, given x_t and the clean x_0."""
    mean = extract(schedule.posterior_mean_coef1, t, x_t) * x0 + extract(schedule.posterior_mean_coef2, t, x_t) * x_t
    return Posterior(
        mean=mean,
        variance=extract(schedule.posterior_variance, t, x_t),
        log_variance_clipped=extract(schedule.posterior_log_variance_clipped, t, x_t),
    )


@dataclass(frozen=True)
class NoiseLevel:
    """The numbers behind x_t at one timestep, for display."""

    t: int
    num_timesteps: int
    beta: float
    alpha_bar: float
    sqrt_alpha_bar: float  # the weight on x_0
    sqrt_one_minus_alpha_bar: float  # the weight on eps
    snr: float
    snr_db: float  # 10 log10(SNR); -inf at zero terminal SNR


def noise_level(schedule: NoiseSchedule, t: int) -> NoiseLevel:
    """Read the schedule's numbers at timestep t (0-based)."""
    if not 0 <= t < schedule.num_timesteps:
        raise ValueError(f"t must be between 0 and {schedule.num_timesteps - 1}, not {t}.")
    snr = float(schedule.snr[t])
    return NoiseLevel(
        t=t,
        num_timesteps=schedule.num_timesteps,
        beta=float(schedule.betas[t]),
        alpha_bar=float(schedule.alphas_cumprod[t]),
        sqrt_alpha_bar=float(schedule.sqrt_alphas_cumprod[t]),
        sqrt_one_minus_alpha_bar=float(schedule.sqrt_one_minus_alphas_cumprod[t]),
        snr=snr,
        snr_db=float(10 * torch.log10(torch.tensor(snr, dtype=torch.float64))),
    )
