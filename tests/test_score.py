"""The score-based view (diffusion.score): the closed-form mixture score is the gradient of its log density,
the learned score is Tweedie's -eps/sigma for every target, and Langevin dynamics samples a known Gaussian."""

import math

import pytest
import torch

from playground.diffusion import make_sampler
from playground.diffusion.samplers import logsnr_timesteps, split_prediction
from playground.diffusion.schedules import get_schedule
from playground.diffusion.score import (
    annealed_langevin_levels,
    gaussian_mixture_log_density,
    gaussian_mixture_score,
    iter_annealed_langevin,
    iter_predictor_corrector,
    langevin_step,
    score_from_model_output,
)


@pytest.mark.parametrize("alpha_bar", [1.0, 0.9, 0.3, 0.01])
def test_mixture_score_is_the_gradient_of_its_log_density(alpha_bar):
    from playground.data.points import gmm_parameters

    means, std = gmm_parameters()
    x = (torch.randn(256, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1.5).requires_grad_()
    log_density = gaussian_mixture_log_density(x, means, std, alpha_bar)
    (autograd,) = torch.autograd.grad(log_density.sum(), x)
    torch.testing.assert_close(gaussian_mixture_score(x.detach(), means, std, alpha_bar), autograd, rtol=1e-9,
                               atol=1e-9)
    # and the density integrates to 1 over the plane (a grid sum), so it is the noised law, not just its shape
    axis = torch.linspace(-6, 6, 601, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    mass = gaussian_mixture_log_density(grid, means, std, alpha_bar).exp().sum() * (axis[1] - axis[0]) ** 2
    assert float(mass) == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_learned_score_is_minus_eps_over_sigma_for_every_target(prediction_type):
    # an exact model of a Gaussian N(0, s^2): its optimal outputs give exactly the Gaussian's noised score
    s2, alpha_bar = 0.25, 0.4
    x_t = torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    variance = alpha_bar * s2 + 1 - alpha_bar
    true_score = -x_t / variance
    eps = -math.sqrt(1 - alpha_bar) * true_score  # Tweedie: E[eps | x_t] = -sigma score
    x0 = (x_t - math.sqrt(1 - alpha_bar) * eps) / math.sqrt(alpha_bar)
    output = {"epsilon": eps, "sample": x0,
              "v_prediction": math.sqrt(alpha_bar) * eps - math.sqrt(1 - alpha_bar) * x0}[prediction_type]
    torch.testing.assert_close(score_from_model_output(output, x_t, alpha_bar, prediction_type), true_score)
    _, eps_back = split_prediction(output, x_t, alpha_bar, prediction_type)
    torch.testing.assert_close(eps_back, eps)


def test_langevin_reaches_a_known_gaussians_mean_and_variance():
    mean, variance, step = torch.tensor([1.5, -0.5]), 0.49, 0.01
    x = torch.randn(20000, 2, generator=torch.Generator().manual_seed(2)) * 3
    generator = torch.Generator().manual_seed(3)
    for _ in range(1500):
        x = langevin_step(-(x - mean) / variance, x, step, generator)
    # unadjusted Langevin's stationary variance is variance / (1 - step / (4 variance)): 0.4925 here
    expected = variance / (1 - step / (4 * variance))
    torch.testing.assert_close(x.mean(0), mean, atol=0.02, rtol=0)
    torch.testing.assert_close(x.var(0), torch.full((2,), expected), atol=0.015, rtol=0)


@pytest.mark.slow
def test_annealed_langevin_and_predictor_corrector_sample_a_mixture_with_its_exact_score():
    from playground.data.points import gmm_parameters, toy_points
    from playground.services.toy_lab import count_strays, narrow_mmd

    means, std = gmm_parameters()
    schedule = get_schedule("linear", 1000)

    def score(x, t):
        return gaussian_mixture_score(x.double(), means, std, float(schedule.alphas_cumprod[t])).float()

    def model(x, t_batch):  # an exact eps-model of the mixture
        t = int(t_batch[0])
        return -math.sqrt(1 - float(schedule.alphas_cumprod[t])) * score(x, t)

    reference = toy_points("gmm", 2000, seed=1)
    x_T = torch.randn(2000, 2, generator=torch.Generator().manual_seed(4))
    *_, last = iter_annealed_langevin(score, schedule, x_T, 60, 5, 0.1, torch.Generator().manual_seed(5))
    sampler = make_sampler("ddim", schedule, 30, timestep_spacing="logsnr")
    *_, pc = iter_predictor_corrector(model, sampler, x_T, 1, 0.16, torch.Generator().manual_seed(6))
    far = narrow_mmd(x_T, reference, 0.1)
    for points in (last.x, pc.prev_sample):
        assert narrow_mmd(points, reference, 0.1) < 0.05 * far
        assert count_strays(points, reference) == 0
    assert last.t == 0 and last.num_levels == 60


def test_logsnr_spacing_starts_in_pure_noise_ends_at_t0_and_never_repeats():
    for name, T in (("linear", 1000), ("cosine", 1000), ("linear", 100)):
        schedule = get_schedule(name, T)
        for n in (1, 2, 20, 50, T):
            steps = logsnr_timesteps(schedule, n)
            assert len(steps) == n and steps[0] == T - 1 and (n == 1 or steps[-1] == 0)
            assert all(a > b for a, b in zip(steps, steps[1:], strict=False))
    levels = annealed_langevin_levels(get_schedule("linear", 1000), 100)
    assert levels[0] == 999 and levels[-1] == 0 and len(set(levels)) == 100
