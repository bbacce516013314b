"""Oracle tests: our schedules and add_noise equal diffusers' DDPMScheduler."""

import pytest
import torch
from diffusers import DDPMScheduler
from diffusers.schedulers.scheduling_ddpm import rescale_zero_terminal_snr as diffusers_rescale

from playground.diffusion import BETA_SCHEDULES, NoiseSchedule, add_noise, rescale_zero_terminal_snr
from playground.diffusion.schedules import DIFFUSERS_NAMES


def diffusers_scheduler(name: str, num_timesteps: int, zero_snr: bool = False) -> DDPMScheduler:
    diffusers_name, beta_start, beta_end = DIFFUSERS_NAMES[name]
    return DDPMScheduler(num_train_timesteps=num_timesteps, beta_schedule=diffusers_name,
                         beta_start=beta_start, beta_end=beta_end, rescale_betas_zero_snr=zero_snr)


@pytest.mark.parametrize("name", list(BETA_SCHEDULES))
@pytest.mark.parametrize("zero_snr", [False, True])
def test_schedule_equals_diffusers_at_1000(name, zero_snr):
    ours = NoiseSchedule.from_name(name, 1000, zero_terminal_snr=zero_snr)
    theirs = diffusers_scheduler(name, 1000, zero_snr)
    torch.testing.assert_close(ours.alphas_cumprod.float(), theirs.alphas_cumprod, atol=1e-6, rtol=0)
    # diffusers computes in float32; its rescale amplifies float32 rounding in the last betas, so the
    # rescaled betas are compared in float64 against diffusers' own function below.
    torch.testing.assert_close(ours.betas.float(), theirs.betas, atol=1e-6 if not zero_snr else 1e-5, rtol=0)


@pytest.mark.parametrize("name", list(BETA_SCHEDULES))
@pytest.mark.parametrize("num_timesteps", [10, 250, 4000])
def test_schedule_equals_diffusers_across_T(name, num_timesteps):
    ours = NoiseSchedule.from_name(name, num_timesteps)
    theirs = diffusers_scheduler(name, num_timesteps)
    torch.testing.assert_close(ours.betas.float(), theirs.betas, atol=1e-6, rtol=0)
    # float32 cumprod over 4000 factors drifts by ~1e-6 relative; ours is float64.
    torch.testing.assert_close(ours.alphas_cumprod.float(), theirs.alphas_cumprod, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("name", list(BETA_SCHEDULES))
def test_zero_snr_rescale_is_diffusers_algorithm_in_float64(name):
    betas = BETA_SCHEDULES[name](1000)
    torch.testing.assert_close(rescale_zero_terminal_snr(betas), diffusers_rescale(betas.clone()), atol=1e-12, rtol=0)
    rescaled = NoiseSchedule.from_name(name, 1000, zero_terminal_snr=True)
    assert rescaled.alphas_cumprod[-1] == 0 and rescaled.snr[-1] == 0
    torch.testing.assert_close(rescaled.alphas_cumprod[0], NoiseSchedule.from_name(name, 1000).alphas_cumprod[0])


@pytest.mark.parametrize("name", list(BETA_SCHEDULES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_add_noise_equals_diffusers_given_the_same_alphas_cumprod(name, dtype):
    """The formula: diffusers' add_noise, run in float64 on our alpha-bar, gives our x_t (in x's dtype)."""
    generator = torch.Generator().manual_seed(0)
    x0 = (torch.rand(6, 3, 16, 16, generator=generator) * 2 - 1).to(dtype)
    noise = torch.randn(6, 3, 16, 16, generator=generator).to(dtype)
    t = torch.tensor([0, 1, 17, 500, 998, 999])
    schedule = NoiseSchedule.from_name(name, 1000)
    theirs = diffusers_scheduler(name, 1000)
    theirs.alphas_cumprod = schedule.alphas_cumprod.clone()
    expected = theirs.add_noise(x0.double(), noise.double(), t).to(dtype)
    tolerance = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(add_noise(schedule, x0, noise, t), expected, atol=tolerance, rtol=0)


@pytest.mark.parametrize("name", list(BETA_SCHEDULES))
def test_add_noise_end_to_end_against_diffusers_float32(name):
    """Each side with its own schedule and arithmetic. diffusers forms 1 - alpha_bar in float32, which near
    t=0 (1 - alpha_bar ~ 1e-4) keeps only ~4 digits, so the two differ by a few 1e-6 there; ours is float64."""
    generator = torch.Generator().manual_seed(0)
    x0 = torch.rand(6, 3, 16, 16, generator=generator) * 2 - 1
    noise = torch.randn(6, 3, 16, 16, generator=generator)
    t = torch.tensor([0, 1, 17, 500, 998, 999])
    ours = add_noise(NoiseSchedule.from_name(name, 1000), x0, noise, t)
    theirs = diffusers_scheduler(name, 1000).add_noise(x0, noise, t)
    torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=0)


def test_add_noise_with_one_int_timestep_broadcasts_like_a_tensor_of_them():
    schedule = NoiseSchedule.from_name("cosine", 1000)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 3, 4, 4, generator=g), torch.randn(3, 3, 4, 4, generator=g)
    a, s = float(schedule.sqrt_alphas_cumprod[400]), float(schedule.sqrt_one_minus_alphas_cumprod[400])
    expected = a * x0 + s * noise  # both terms matter: neither the signal nor the noise is zero
    torch.testing.assert_close(add_noise(schedule, x0, noise, 400), expected)
    torch.testing.assert_close(add_noise(schedule, x0, noise, torch.full((3,), 400)), expected)
    mixed = add_noise(schedule, x0, noise, torch.tensor([0, 400, 999]))  # one t per image
    for i, t in enumerate([0, 400, 999]):
        a, s = float(schedule.sqrt_alphas_cumprod[t]), float(schedule.sqrt_one_minus_alphas_cumprod[t])
        torch.testing.assert_close(mixed[i], a * x0[i] + s * noise[i])


def test_cosine_matches_its_closed_form_alpha_bar():
    """Nichol & Dhariwal: alpha_bar(t) = f(t)/f(0), f(u) = cos((u+s)/(1+s) pi/2)^2, before the 0.999 clip bites."""
    import math

    T = 1000
    schedule = NoiseSchedule.from_name("cosine", T)
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 100, 500, 900):
        assert schedule.alphas_cumprod[t].item() == pytest.approx(f((t + 1) / T) / f(0), rel=1e-9)
    assert schedule.betas.max().item() == pytest.approx(0.999)


def test_unknown_schedule_and_bad_T_are_refused_with_a_sentence():
    with pytest.raises(ValueError, match="Unknown schedule 'cosin'"):
        NoiseSchedule.from_name("cosin")
    with pytest.raises(ValueError, match="between 10 and 4000"):
        NoiseSchedule.from_name("linear", 5)
