"""Noise schedules: beta_t by name, and every quantity derived from it, computed once in float64.

Timesteps are 0-based as in diffusers: index t in 0..T-1 holds beta_{t+1} of the papers, so
``alphas_cumprod[0] = 1 - beta_1`` and ``alphas_cumprod[T - 1]`` is the last, noisiest level.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

MIN_TIMESTEPS = 10
MAX_TIMESTEPS = 4000


def linear_beta_schedule(num_timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Linear betas from Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models" (DDPM)."""
    return torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)


def scaled_linear_beta_schedule(
    num_timesteps: int, beta_start: float = 0.00085, beta_end: float = 0.012
) -> torch.Tensor:
    """Linear in sqrt(beta), Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion Models"."""
    return torch.linspace(beta_start**0.5, beta_end**0.5, num_timesteps, dtype=torch.float64) ** 2


def cosine_beta_schedule(num_timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Cosine alpha-bar, Nichol & Dhariwal 2021, "Improved Denoising Diffusion Probabilistic Models".

    alpha_bar(u) = cos((u + s) / (1 + s) * pi / 2)^2 for u in [0, 1]; beta_t = 1 - alpha_bar(t/T) / alpha_bar((t-1)/T),
    clipped at ``max_beta`` so the last steps stay invertible (diffusers' ``squaredcos_cap_v2``).
    """

    def alpha_bar(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    betas = [
        min(1 - alpha_bar((i + 1) / num_timesteps) / alpha_bar(i / num_timesteps), max_beta)
        for i in range(num_timesteps)
    ]
    return torch.tensor(betas, dtype=torch.float64)


def sigmoid_beta_schedule(num_timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Sigmoid-shaped *betas*, Xu et al. 2022, "GeoDiff" (diffusers' ``sigmoid``).

    Note: lucidrains' ``sigmoid_beta_schedule`` (Jabri et al. 2022) puts the sigmoid on alpha-bar instead;
    that is a different schedule.
    """
    x = torch.linspace(-6, 6, num_timesteps, dtype=torch.float64)
    return torch.sigmoid(x) * (beta_end - beta_start) + beta_start


BETA_SCHEDULES: dict[str, Callable[[int], torch.Tensor]] = {
    "linear": linear_beta_schedule,
    "scaled_linear": scaled_linear_beta_schedule,
    "cosine": cosine_beta_schedule,
    "sigmoid": sigmoid_beta_schedule,
}

# The name diffusers' DDPMScheduler uses for each of ours, and the (beta_start, beta_end) it needs.
DIFFUSERS_NAMES: dict[str, tuple[str, float, float]] = {
    "linear": ("linear", 1e-4, 0.02),
    "scaled_linear": ("scaled_linear", 0.00085, 0.012),
    "cosine": ("squaredcos_cap_v2", 1e-4, 0.02),
    "sigmoid": ("sigmoid", 1e-4, 0.02),
}


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Shift and scale sqrt(alpha_bar) so the last step is pure noise (SNR = 0).

    Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed", Algorithm 1.
    sqrt(alpha_bar_1) is kept, sqrt(alpha_bar_T) becomes exactly 0, so beta_T becomes 1.
    """
    alphas_bar_sqrt = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = alphas_bar_sqrt[0].clone(), alphas_bar_sqrt[-1].clone()
    alphas_bar_sqrt = (alphas_bar_sqrt - last) * first / (first - last)
    alphas_bar = alphas_bar_sqrt**2
    alphas = torch.cat([alphas_bar[:1], alphas_bar[1:] / alphas_bar[:-1]])
    return 1.0 - alphas


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """A beta schedule and its derived buffers, all float64 tensors of shape (T,).

    Build one with :meth:`from_name` or :meth:`from_betas`; the plots, the forward process and the samplers
    all read these same buffers, so they can never disagree.
    """

    name: str
    betas: torch.Tensor  # beta_t: variance of the noise added at step t
    alphas: torch.Tensor  # alpha_t = 1 - beta_t
    alphas_cumprod: torch.Tensor  # alpha_bar_t = prod_{s<=t} alpha_s: signal power left at t
    alphas_cumprod_prev: torch.Tensor  # alpha_bar_{t-1}, with alpha_bar_{-1} = 1
    sqrt_alphas_cumprod: torch.Tensor  # scales x_0 in q(x_t | x_0)
    sqrt_one_minus_alphas_cumprod: torch.Tensor  # scales eps in q(x_t | x_0)
    snr: torch.Tensor  # alpha_bar_t / (1 - alpha_bar_t), Kingma et al. 2021
    posterior_variance: torch.Tensor  # beta-tilde_t of q(x_{t-1} | x_t, x_0), DDPM eq. 7
    posterior_log_variance_clipped: torch.Tensor  # log beta-tilde_t, with t=0 clipped to t=1's value
    posterior_mean_coef1: torch.Tensor  # multiplies x_0 in the posterior mean, DDPM eq. 7
    posterior_mean_coef2: torch.Tensor  # multiplies x_t in the posterior mean, DDPM eq. 7

    @property
    def num_timesteps(self) -> int:
        return int(self.betas.shape[0])

    @classmethod
    def from_name(cls, name: str, num_timesteps: int = 1000, zero_terminal_snr: bool = False) -> NoiseSchedule:
        """The schedule ``name`` (one of :data:`BETA_SCHEDULES`) over ``num_timesteps`` steps."""
        if name not in BETA_SCHEDULES:
            raise ValueError(f"Unknown schedule {name!r}; choose one of {', '.join(BETA_SCHEDULES)}.")
        if not MIN_TIMESTEPS <= int(num_timesteps) <= MAX_TIMESTEPS:
            raise ValueError(f"T must be between {MIN_TIMESTEPS} and {MAX_TIMESTEPS}, not {num_timesteps}.")
        betas = BETA_SCHEDULES[name](int(num_timesteps))
        if zero_terminal_snr:
            betas = rescale_zero_terminal_snr(betas)
            name = f"{name}+zero_snr"
        return cls.from_betas(betas, name)

    @classmethod
    def from_betas(cls, betas: torch.Tensor, name: str = "custom") -> NoiseSchedule:
        """Derive every buffer from ``betas`` (shape (T,), values in (0, 1])."""
        betas = betas.to(torch.float64)
        alphas = 1.0 - betas
        alphas_cumprod = torch.cumprod(alphas, dim=0)
        alphas_cumprod_prev = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
        posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        # beta-tilde_0 is 0 (x_0 is known exactly); clip the log so it stays finite, as DDPM's code does.
        posterior_log_variance_clipped = torch.log(torch.cat([posterior_variance[1:2], posterior_variance[1:]]))
        return cls(
            name=name,
            betas=betas,
            alphas=alphas,
            alphas_cumprod=alphas_cumprod,
            alphas_cumprod_prev=alphas_cumprod_prev,
            sqrt_alphas_cumprod=alphas_cumprod.sqrt(),
            sqrt_one_minus_alphas_cumprod=(1.0 - alphas_cumprod).sqrt(),
            snr=alphas_cumprod / (1.0 - alphas_cumprod),
            posterior_variance=posterior_variance,
            posterior_log_variance_clipped=posterior_log_variance_clipped,
            posterior_mean_coef1=betas * alphas_cumprod_prev.sqrt() / (1.0 - alphas_cumprod),
            posterior_mean_coef2=(1.0 - alphas_cumprod_prev) * alphas.sqrt() / (1.0 - alphas_cumprod),
        )

    def log_snr(self) -> torch.Tensor:
        """lambda_t = log(alpha_bar_t / (1 - alpha_bar_t)); -inf where the SNR is exactly 0."""
        return torch.log(self.snr)


@functools.lru_cache(maxsize=32)
def get_schedule(name: str, num_timesteps: int = 1000, zero_terminal_snr: bool = False) -> NoiseSchedule:
    """:meth:`NoiseSchedule.from_name`, built once per (name, T, rescale): schedules are small, pure and shared."""
    return NoiseSchedule.from_name(name, num_timesteps, zero_terminal_snr)
