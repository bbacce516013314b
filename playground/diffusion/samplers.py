"""Reverse-process samplers: DDPM ancestral, DDIM(eta) and DPM-Solver++(2M), and the loop that runs them.

Each sampler follows diffusers' scheduler verbs: ``set_timesteps(n)`` chooses the timesteps, and
``step(model_output, t, sample)`` returns ``prev_sample`` and ``pred_original_sample``. :func:`iter_sample`
drives any of them and yields a :class:`Step` per timestep, so a UI can animate and a CLI can write a GIF
from the same loop. Works for images (B, C, H, W) and points (B, 2) alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch

from playground.diffusion.forward import randn
from playground.diffusion.schedules import NoiseSchedule

PredictionType = Literal["epsilon", "v_prediction", "sample"]
Spacing = Literal["leading", "trailing", "linspace", "logsnr"]
ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t (B, ...), t (B,)) -> model output (B, ...)


def spaced_timesteps(num_train_timesteps: int, num_steps: int, spacing: Spacing) -> list[int]:
    """``num_steps`` timesteps from noisy to clean, spaced as in Lin et al. 2024, Table 2 (and diffusers)."""
    if not 1 <= num_steps <= num_train_timesteps:
        raise ValueError(f"Steps must be between 1 and T={num_train_timesteps}, not {num_steps}.")
    T, n = num_train_timesteps, num_steps
    if spacing == "leading":  # DDIM paper: 0, T/n, 2T/n, ... never reaches T-1
        steps = [round(i * (T // n)) for i in range(n)][::-1]
    elif spacing == "trailing":  # starts at T-1, the noisiest step
        ratio = T / n
        steps = [round(T - i * ratio) - 1 for i in range(n)]
    elif spacing == "linspace":
        steps = [round(v) for v in torch.linspace(0, T - 1, n + 1, dtype=torch.float64).tolist()][::-1][:-1]
    else:
        raise ValueError(f"Unknown timestep spacing {spacing!r}.")
    return steps


def logsnr_timesteps(schedule: NoiseSchedule, num_steps: int) -> list[int]:
    """``num_steps`` timesteps from T-1 down to 0, evenly spaced in log-SNR (lambda = log(alpha / sigma)) rather
    than in t: the spacing DPM-Solver (Lu et al. 2022, section 3.3) recommends for few steps on low-resolution
    data. Unlike the t-spaced choices, the last step is t = 0, so the result is the model's x_0 from nearly clean
    input rather than its average guess from a noisy one (which draws a thin band as a thinner curve)."""
    T, n = schedule.num_timesteps, num_steps
    if not 1 <= n <= T:
        raise ValueError(f"Steps must be between 1 and T={T}, not {n}.")
    alpha_bar = schedule.alphas_cumprod.double().clamp(1e-12, 1 - 1e-12)
    lam = 0.5 * (alpha_bar.log() - (1 - alpha_bar).log())  # decreasing in t
    noisiest = max(float(lam[-1]), -6.0)  # a schedule that ends at (nearly) zero SNR would waste steps up there
    targets = torch.linspace(noisiest, float(lam[0]), n, dtype=torch.float64) if n > 1 else lam[-1:]
    steps: list[int] = []
    for i, target in enumerate(targets.tolist()):
        t = T - 1 if i == 0 else int((lam - target).abs().argmin())  # always start from pure noise
        if steps:
            t = min(t, steps[-1] - 1)  # strictly decreasing...
        steps.append(max(t, n - 1 - i))  # ...leaving room for the steps still to come
    return steps


def split_prediction(
    model_output: torch.Tensor, sample: torch.Tensor, alpha_bar: float, prediction_type: PredictionType
) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's guess of (x_0, eps) at a level alpha_bar, whatever it was trained to predict.

    epsilon (Ho et al. 2020), v = sqrt(abar) eps - sqrt(1-abar) x_0 (Salimans & Ho 2022), or x_0 itself.
    """
    a, s = math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar)
    if prediction_type == "epsilon":
        return (sample - s * model_output) / a, model_output
    if prediction_type == "v_prediction":
        return a * sample - s * model_output, a * model_output + s * sample
    if prediction_type == "sample":
        return model_output, (sample - a * model_output) / s
    raise ValueError(f"Unknown prediction type {prediction_type!r}.")


@dataclass(frozen=True)
class SamplerOutput:
    prev_sample: torch.Tensor  # x at the next (less noisy) timestep
    pred_original_sample: torch.Tensor  # the model's x_0 at this step


class Sampler:
    """Shared state: the schedule, the chosen timesteps, and what the model predicts."""

    name = "sampler"
    default_spacing: Spacing = "trailing"

    def __init__(
        self,
        schedule: NoiseSchedule,
        prediction_type: PredictionType = "epsilon",
        clip_sample: float | None = None,
        timestep_spacing: Spacing | None = None,
    ) -> None:
        self.schedule = schedule
        self.prediction_type = prediction_type
        self.clip_sample = clip_sample  # clamp pred x_0 to [-c, c] (images live in [-1, 1]); None: no clamp
        self.timestep_spacing = timestep_spacing or self.default_spacing
        self.timesteps: list[int] = []
        self._next: dict[int, int] = {}

    def set_timesteps(self, num_steps: int) -> None:
        """Choose ``num_steps`` timesteps (1..T) and reset any multistep state."""
        self.timesteps = (logsnr_timesteps(self.schedule, num_steps) if self.timestep_spacing == "logsnr" else
                          spaced_timesteps(self.schedule.num_timesteps, num_steps, self.timestep_spacing))
        self._next = {t: s for t, s in zip(self.timesteps, self.timesteps[1:] + [-1], strict=True)}

    def prev_timestep(self, t: int) -> int:
        """The timestep after t in this run; -1 after the last (x_0 itself, alpha_bar = 1)."""
        return self._next[t]

    def alpha_bar(self, t: int) -> float:
        return 1.0 if t < 0 else float(self.schedule.alphas_cumprod[t])

    def predict(self, model_output: torch.Tensor, t: int, sample: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pred_x0, pred_eps = split_prediction(model_output, sample, self.alpha_bar(t), self.prediction_type)
        if self.clip_sample is not None:
            pred_x0 = pred_x0.clamp(-self.clip_sample, self.clip_sample)
        return pred_x0, pred_eps

    def step(self, model_output, t, sample, generator=None) -> SamplerOutput:  # pragma: no cover - abstract
        raise NotImplementedError


class DDPMSampler(Sampler):
    """Ancestral sampling from p(x_{t-1}|x_t) = q(x_{t-1}|x_t, pred x_0) (Ho et al. 2020, Algorithm 2).

    variance: "fixed_small" is the posterior's beta-tilde_t, "fixed_large" is beta_t (DDPM section 3.2).
    With fewer steps than T, beta_t is the jump's: 1 - alpha_bar_t / alpha_bar_prev.
    """

    name = "ddpm"

    def __init__(self, schedule, variance: Literal["fixed_small", "fixed_large"] = "fixed_small", **kwargs) -> None:
        super().__init__(schedule, **kwargs)
        self.variance = variance

    def step(self, model_output, t, sample, generator=None) -> SamplerOutput:
        prev_t = self.prev_timestep(t)
        alpha_bar_t, alpha_bar_prev = self.alpha_bar(t), self.alpha_bar(prev_t)
        alpha_t = alpha_bar_t / alpha_bar_prev
        beta_t = 1.0 - alpha_t
        pred_x0, _ = self.predict(model_output, t, sample)
        # posterior mean, DDPM eq. 7
        coef_x0 = math.sqrt(alpha_bar_prev) * beta_t / (1.0 - alpha_bar_t)
        coef_xt = math.sqrt(alpha_t) * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t)
        prev_sample = coef_x0 * pred_x0 + coef_xt * sample
        if t > 0:  # no noise into x_0 (and none drawn, as diffusers does, so generators stay in step)
            if self.variance == "fixed_small":
                variance = max((1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t) * beta_t, 1e-20)
            else:
                variance = beta_t
            noise = randn(sample.shape, generator, sample)
            prev_sample = prev_sample + math.sqrt(variance) * noise
        return SamplerOutput(prev_sample, pred_x0)


class DDIMSampler(Sampler):
    """Denoising Diffusion Implicit Models (Song, Meng & Ermon 2021), equation 12.

    eta = 0 is deterministic; eta = 1 has DDPM's posterior variance (and then steps exactly as DDPM does).
    With ``clip_sample``, eps is re-derived from the clipped x_0 (as GLIDE does; diffusers'
    ``use_clipped_model_output=True``): left unclipped, the two disagree wherever clipping bites, as it does under
    strong classifier-free guidance, and the steps wander off the data (a guided "cat" came out as noise-textured
    scenes).
    """

    name = "ddim"

    def __init__(self, schedule, eta: float = 0.0, **kwargs) -> None:
        super().__init__(schedule, **kwargs)
        self.eta = float(eta)

    def step(self, model_output, t, sample, generator=None) -> SamplerOutput:
        prev_t = self.prev_timestep(t)
        alpha_bar_t, alpha_bar_prev = self.alpha_bar(t), self.alpha_bar(prev_t)
        # 1. predicted x_0 and eps ("predicted x_0" of eq. 12)
        pred_x0, pred_eps = self.predict(model_output, t, sample)
        if self.clip_sample is not None:  # the eps that the clipped x_0 implies
            pred_eps = (sample - math.sqrt(alpha_bar_t) * pred_x0) / math.sqrt(1.0 - alpha_bar_t)
        # 2. sigma_t(eta), eq. 16
        variance = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t) * (1.0 - alpha_bar_t / alpha_bar_prev)
        std = self.eta * math.sqrt(max(variance, 0.0))
        # 3. "direction pointing to x_t" of eq. 12
        direction = math.sqrt(max(1.0 - alpha_bar_prev - std**2, 0.0)) * pred_eps
        # 4. x_{t-1} without the random noise, eq. 12
        prev_sample = math.sqrt(alpha_bar_prev) * pred_x0 + direction
        if self.eta > 0:
            noise = randn(sample.shape, generator, sample)
            prev_sample = prev_sample + std * noise
        return SamplerOutput(prev_sample, pred_x0)


class DPMSolverPPSampler(Sampler):
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2), multistep, data prediction.

    Works in lambda = log(alpha / sigma) with alpha = sqrt(abar), sigma = sqrt(1 - abar). The first and the
    last step are first order (the last lands on sigma = 0, i.e. returns pred x_0), as in diffusers.
    """

    name = "dpmpp"
    default_spacing: Spacing = "linspace"

    def set_timesteps(self, num_steps: int) -> None:
        super().set_timesteps(num_steps)
        self._previous: list[tuple[int, torch.Tensor]] = []  # (t, pred x_0) of the last step

    def _alpha_sigma_lambda(self, t: int) -> tuple[float, float, float]:
        alpha_bar = self.alpha_bar(t)
        alpha, sigma = math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar)
        return alpha, sigma, (math.log(alpha) - math.log(sigma)) if sigma > 0 else math.inf

    def step(self, model_output, t, sample, generator=None) -> SamplerOutput:
        prev_t = self.prev_timestep(t)
        pred_x0, _ = self.predict(model_output, t, sample)
        _, sigma_s, lambda_s = self._alpha_sigma_lambda(t)
        alpha_t, sigma_t, lambda_t = self._alpha_sigma_lambda(prev_t)
        if sigma_t == 0:  # the final step to sigma = 0 lands on the data prediction
            prev_sample = pred_x0
        else:
            h = lambda_t - lambda_s
            phi = math.expm1(-h)  # exp(-h) - 1
            if not self._previous:  # first order: DPM-Solver++(1) = DDIM
                d = pred_x0
            else:  # second order, midpoint form: D = m0 + (m0 - m1) / (2 r0)
                t_last, x0_last = self._previous[-1]
                _, _, lambda_last = self._alpha_sigma_lambda(t_last)
                r0 = (lambda_s - lambda_last) / h
                d = pred_x0 + 0.5 * (pred_x0 - x0_last) / r0
            prev_sample = (sigma_t / sigma_s) * sample - (alpha_t * phi) * d
        self._previous = [(t, pred_x0)]
        return SamplerOutput(prev_sample, pred_x0)


SAMPLERS: dict[str, type[Sampler]] = {"ddpm": DDPMSampler, "ddim": DDIMSampler, "dpmpp": DPMSolverPPSampler}


def make_sampler(name: str, schedule: NoiseSchedule, num_steps: int, **kwargs) -> Sampler:
    """A sampler by name (``ddpm``, ``ddim``, ``dpmpp``) with its timesteps set."""
    if name not in SAMPLERS:
        raise ValueError(f"Unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}.")
    sampler = SAMPLERS[name](schedule, **kwargs)
    sampler.set_timesteps(num_steps)
    return sampler


@dataclass(frozen=True)
class Step:
    """One step of the reverse process, as shown to a person."""

    index: int  # 0 .. num_steps - 1
    num_steps: int
    t: int  # the timestep the model saw
    x_t: torch.Tensor  # the sample the model saw
    pred_x0: torch.Tensor  # the model's guess of the clean sample at this step
    prev_sample: torch.Tensor  # the sample after this step (the next x_t; the result after the last)


@torch.inference_mode()
def iter_sample(
    model_fn: ModelFn, sampler: Sampler, x_T: torch.Tensor, generator: torch.Generator | None = None,
    start: int = 0,
) -> Iterator[Step]:
    """Run ``sampler`` from ``x_T``; yield a :class:`Step` after every model call.

    ``start``: begin at that index of the sampler's timesteps, ``x_T`` being the sample at that level (SDEdit starts
    part-way: diffusion.editing). Stop early by breaking out of the loop; the last ``Step.prev_sample`` is the result.
    """
    if not sampler.timesteps:
        raise ValueError("Call sampler.set_timesteps(n) first.")
    sample = x_T
    batch = x_T.shape[0]
    for index, t in enumerate(sampler.timesteps[start:], start=start):
        t_batch = torch.full((batch,), t, dtype=torch.long, device=x_T.device)
        model_output = model_fn(sample, t_batch)
        out = sampler.step(model_output, t, sample, generator=generator)
        yield Step(index, len(sampler.timesteps), t, sample, out.pred_original_sample, out.prev_sample)
        sample = out.prev_sample


def sample(
    model_fn: ModelFn, sampler: Sampler, x_T: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The final sample of :func:`iter_sample`."""
    result = x_T
    for step in iter_sample(model_fn, sampler, x_T, generator):
        result = step.prev_sample
    return result
