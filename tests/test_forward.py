"""The forward process: invariants, the Markov chain vs the closed form, the posterior."""

import math

import pytest
import torch

from playground.diffusion import BETA_SCHEDULES, NoiseSchedule, add_noise, noise_level, q_posterior, run_markov_chain
from playground.diffusion.forward import markov_step


@pytest.mark.parametrize("name", list(BETA_SCHEDULES))
@pytest.mark.parametrize("zero_snr", [False, True])
def test_alpha_bar_decreases_and_buffers_are_consistent(name, zero_snr):
    s = NoiseSchedule.from_name(name, 1000, zero_terminal_snr=zero_snr)
    assert torch.all(s.alphas_cumprod[1:] < s.alphas_cumprod[:-1])
    assert torch.all((s.betas > 0) & (s.betas <= 1))
    torch.testing.assert_close(s.alphas_cumprod, torch.cumprod(1 - s.betas, 0))
    # each derived buffer from the betas, recomputed here independently (a product of (1 - beta), then square roots)
    alpha_bar = torch.tensor([math.prod(1 - b for b in s.betas.tolist()[:t + 1]) for t in range(1000)],
                             dtype=torch.float64)
    torch.testing.assert_close(s.sqrt_alphas_cumprod, alpha_bar.sqrt(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(s.sqrt_one_minus_alphas_cumprod, (1 - alpha_bar).sqrt(), rtol=1e-10, atol=1e-14)
    assert torch.all(s.snr[1:] < s.snr[:-1])
    # posterior variance beta-tilde lies between 0 and beta (DDPM section 3.2)
    assert torch.all(s.posterior_variance <= s.betas + 1e-12) and s.posterior_variance[0] == 0


def test_t0_returns_x0_within_beta1_noise():
    s = NoiseSchedule.from_name("linear", 1000)
    x0 = torch.rand(1, 3, 64, 64) * 2 - 1
    noise = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    x = add_noise(s, x0, noise, 0)
    # x_0' - x0 = (sqrt(1-b1) - 1) x0 + sqrt(b1) eps: its std is about sqrt(beta_1) = 0.01
    difference = (x - x0).std().item()
    assert difference == pytest.approx(math.sqrt(s.betas[0].item()), rel=0.05)
    assert (x - x0).abs().max().item() < 6 * math.sqrt(s.betas[0].item())


@pytest.mark.parametrize("name,t", [("linear", 10), ("cosine", 300), ("sigmoid", 999)])
@pytest.mark.slow
def test_markov_chain_agrees_with_closed_form_in_mean_and_variance(name, t):
    """Running q(x_t|x_{t-1}) t+1 times gives the law of q(x_t|x_0): mean sqrt(abar) x0, variance 1 - abar."""
    s = NoiseSchedule.from_name(name, 1000)
    n = 20_000
    x0 = torch.tensor([-0.8, 0.0, 0.5, 1.0], dtype=torch.float64).repeat(n, 1)  # (n, 4) samples of 4 pixels
    chain = run_markov_chain(s, x0, t, generator=torch.Generator().manual_seed(0))
    closed = add_noise(s, x0, torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64), t)
    expected_mean = s.sqrt_alphas_cumprod[t] * x0[0]
    expected_var = (1 - s.alphas_cumprod[t]).expand(4)
    standard_error = math.sqrt(expected_var[0].item() / n)
    for sample in (chain, closed):
        assert torch.allclose(sample.mean(0), expected_mean, atol=5 * standard_error)
        assert torch.allclose(sample.var(0), expected_var, rtol=0.05)


def test_markov_step_at_t0_is_the_first_transition():
    s = NoiseSchedule.from_name("linear", 1000)
    x0, eps = torch.ones(2, 3), torch.zeros(2, 3)
    torch.testing.assert_close(markov_step(s, x0, eps, 0), add_noise(s, x0, eps, 0))


def test_posterior_is_bayes_rule_of_the_forward_process():
    """q(x_{t-1}|x_t,x_0) ∝ q(x_t|x_{t-1}) q(x_{t-1}|x_0): check mean and variance by completing the square."""
    s = NoiseSchedule.from_name("cosine", 1000)
    t = 400
    x0 = torch.tensor([[0.3, -0.7]], dtype=torch.float64)
    x_t = torch.tensor([[0.1, 0.9]], dtype=torch.float64)
    a_t, abar_prev = s.alphas[t], s.alphas_cumprod[t - 1]
    # Gaussian product: precision = a_t/b_t + 1/(1-abar_prev);
    # mean = var * (sqrt(a_t) x_t / b_t + sqrt(abar_prev) x0/(1-abar_prev))
    precision = a_t / s.betas[t] + 1 / (1 - abar_prev)
    mean = (a_t.sqrt() * x_t / s.betas[t] + abar_prev.sqrt() * x0 / (1 - abar_prev)) / precision
    posterior = q_posterior(s, x0, x_t, t)
    torch.testing.assert_close(posterior.mean, mean)
    torch.testing.assert_close(posterior.variance.squeeze(), 1 / precision)


def test_posterior_matches_diffusers_ddpm_variance():
    from diffusers import DDPMScheduler

    s = NoiseSchedule.from_name("linear", 1000)
    d = DDPMScheduler(num_train_timesteps=1000)
    d.alphas_cumprod = s.alphas_cumprod.clone()  # same buffers: compare the formula, not float32 rounding
    d.one = torch.tensor(1.0, dtype=torch.float64)
    for t in (1, 10, 500, 999):
        assert s.posterior_variance[t].item() == pytest.approx(d._get_variance(t).item(), rel=1e-12)


def test_noise_level_numbers():
    s = NoiseSchedule.from_name("linear", 1000)
    level = noise_level(s, 999)
    assert (level.t, level.num_timesteps) == (999, 1000)
    assert level.beta == pytest.approx(0.02) and level.alpha_bar == pytest.approx(4.04e-5, rel=1e-2)  # DDPM's linear
    assert level.sqrt_alpha_bar == pytest.approx(math.sqrt(float(s.alphas_cumprod[999])), rel=1e-12)
    assert level.sqrt_one_minus_alpha_bar == pytest.approx(math.sqrt(1 - float(s.alphas_cumprod[999])), rel=1e-12)
    assert level.snr_db == pytest.approx(10 * math.log10(level.alpha_bar / (1 - level.alpha_bar)))
    with pytest.raises(ValueError, match="between 0 and 999"):
        noise_level(s, 1000)
    zero = noise_level(NoiseSchedule.from_name("linear", 1000, zero_terminal_snr=True), 999)
    assert zero.snr == 0 and zero.snr_db == float("-inf")
