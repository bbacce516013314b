"""Samplers against diffusers' DDPMScheduler, DDIMScheduler and DPMSolverMultistepScheduler, plus invariants."""

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel

from playground.diffusion import NoiseSchedule, add_noise
from playground.diffusion.samplers import (
    DDIMSampler,
    DDPMSampler,
    DPMSolverPPSampler,
    iter_sample,
    make_sampler,
    sample,
    spaced_timesteps,
    split_prediction,
)
from playground.diffusion.schedules import DIFFUSERS_NAMES


def config(name: str, prediction_type: str = "epsilon") -> dict:
    diffusers_name, beta_start, beta_end = DIFFUSERS_NAMES[name]
    return dict(num_train_timesteps=1000, beta_schedule=diffusers_name, beta_start=beta_start, beta_end=beta_end,
                prediction_type=prediction_type)


def diffusers_sampler(kind: str, name: str, prediction_type: str, clip: bool, **extra):
    if kind == "ddpm":
        return DDPMScheduler(**config(name, prediction_type), clip_sample=clip, timestep_spacing="trailing",
                             variance_type=extra.get("variance", "fixed_small"))
    if kind == "ddim":
        return DDIMScheduler(**config(name, prediction_type), clip_sample=clip, timestep_spacing="trailing",
                             set_alpha_to_one=True)
    return DPMSolverMultistepScheduler(**config(name, prediction_type), algorithm_type="dpmsolver++", solver_order=2,
                                       solver_type="midpoint", timestep_spacing="linspace", final_sigmas_type="zero",
                                       lower_order_final=True)


def ours(kind: str, name: str, prediction_type: str, clip: bool, steps: int, **extra):
    schedule = NoiseSchedule.from_name(name, 1000)
    kwargs = dict(prediction_type=prediction_type, clip_sample=1.0 if clip else None)
    if kind == "ddpm":
        kwargs["variance"] = extra.get("variance", "fixed_small")
    if kind == "ddim":
        kwargs["eta"] = extra.get("eta", 0.0)
    return make_sampler(kind, schedule, steps, **kwargs)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("steps", [1, 7, 20, 50, 1000])
def test_timestep_spacing_equals_diffusers(spacing, steps):
    theirs = DDIMScheduler(num_train_timesteps=1000, timestep_spacing=spacing)
    if spacing == "linspace":
        theirs = DPMSolverMultistepScheduler(num_train_timesteps=1000, timestep_spacing=spacing)
    theirs.set_timesteps(steps)
    assert spaced_timesteps(1000, steps, spacing) == theirs.timesteps.tolist()


CASES = [  # (sampler, schedule, prediction type, clip x0, extra)
    ("ddpm", "linear", "epsilon", True, {}),
    ("ddpm", "cosine", "v_prediction", False, {"variance": "fixed_large"}),
    ("ddpm", "sigmoid", "sample", True, {}),
    ("ddim", "linear", "epsilon", True, {"eta": 0.0}),
    ("ddim", "cosine", "v_prediction", False, {"eta": 1.0}),
    ("ddim", "scaled_linear", "epsilon", False, {"eta": 0.5}),
]


@pytest.mark.parametrize("kind,name,prediction_type,clip,extra", CASES)
def test_one_step_equals_diffusers(kind, name, prediction_type, clip, extra):
    steps = 50
    mine = ours(kind, name, prediction_type, clip, steps, **extra)
    theirs = diffusers_sampler(kind, name, prediction_type, clip, **extra)
    theirs.set_timesteps(steps)
    g = torch.Generator().manual_seed(0)
    for t in (mine.timesteps[0], mine.timesteps[10], mine.timesteps[-2], mine.timesteps[-1]):
        x = torch.randn(2, 3, 8, 8, generator=g)
        model_output = torch.randn(2, 3, 8, 8, generator=g)
        a = mine.step(model_output, t, x, generator=torch.Generator().manual_seed(t))
        step_kwargs = {"eta": extra.get("eta", 0.0), "use_clipped_model_output": clip} if kind == "ddim" else {}
        b = theirs.step(model_output, t, x, generator=torch.Generator().manual_seed(t), **step_kwargs)
        torch.testing.assert_close(a.pred_original_sample, b.pred_original_sample, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a.prev_sample, b.prev_sample, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name,prediction_type,steps", [("linear", "epsilon", 20), ("cosine", "v_prediction", 10),
                                                        ("scaled_linear", "sample", 5)])
def test_each_dpm_solver_step_equals_diffusers_given_the_same_inputs(name, prediction_type, steps):
    """DPM-Solver++(2M) step by step: the first (order 1), the middle (order 2, using the previous x0 prediction)
    and the last (to sigma = 0), each from the same sample and model output as diffusers' scheduler gets."""
    mine = ours("dpmpp", name, prediction_type, False, steps)
    theirs = diffusers_sampler("dpmpp", name, prediction_type, False)
    theirs.set_timesteps(steps)
    assert theirs.timesteps.tolist() == mine.timesteps
    g = torch.Generator().manual_seed(1)
    for t in mine.timesteps:
        x = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64).float()
        model_output = torch.randn(2, 3, 8, 8, generator=g)
        a = mine.step(model_output, t, x)
        b = theirs.step(model_output, t, x)
        torch.testing.assert_close(a.prev_sample, b.prev_sample, atol=1e-5, rtol=1e-5)


def tiny_unet() -> UNet2DModel:
    from playground.models import PRESETS, build_unet

    return build_unet(PRESETS["tiny"], seed=0).eval()


TRAJECTORIES = [
    pytest.param("ddpm", "linear", "epsilon", True, 1000, {}, marks=pytest.mark.slow),
    ("ddpm", "cosine", "epsilon", True, 25, {"variance": "fixed_large"}),
    ("ddim", "linear", "epsilon", True, 50, {"eta": 0.0}),
    ("ddim", "cosine", "v_prediction", False, 20, {"eta": 1.0}),
    ("dpmpp", "linear", "epsilon", False, 20, {}),
    ("dpmpp", "cosine", "v_prediction", False, 10, {}),
    ("dpmpp", "scaled_linear", "epsilon", False, 3, {}),
]


@pytest.mark.parametrize("kind,name,prediction_type,clip,steps,extra", TRAJECTORIES)
@pytest.mark.slow
def test_whole_trajectory_with_a_tiny_unet_equals_diffusers(kind, name, prediction_type, clip, steps, extra):
    unet = tiny_unet()
    model_fn = lambda x, t: unet(x, t).sample  # noqa: E731
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))

    mine = ours(kind, name, prediction_type, clip, steps, **extra)
    steps_seen = list(iter_sample(model_fn, mine, x_T, generator=torch.Generator().manual_seed(2)))
    result = steps_seen[-1].prev_sample

    theirs = diffusers_sampler(kind, name, prediction_type, clip, **extra)
    # Same float64 alpha-bar on both sides: a random UNet amplifies float32-vs-float64 rounding step after step
    # (1e-8 at the first step, 1e-2 after 50), which would hide what this test compares, the algorithm.
    theirs.alphas_cumprod = mine.schedule.alphas_cumprod.clone()
    theirs.set_timesteps(steps)
    generator = torch.Generator().manual_seed(2)
    x = x_T.clone()
    step_kwargs = {"eta": extra.get("eta", 0.0), "use_clipped_model_output": clip} if kind == "ddim" else {}
    with torch.inference_mode():
        for t in theirs.timesteps:
            x = theirs.step(model_fn(x, t), t, x, generator=generator, **step_kwargs).prev_sample
    assert [s.t for s in steps_seen] == theirs.timesteps.tolist()
    torch.testing.assert_close(result, x, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_ddim_at_eta_1_steps_as_ddpm_even_where_clipping_bites(prediction_type):
    """DDIM's eta = 1 is DDPM's posterior (Song et al. 2021, eq. 16), so from the same x_t, output and noise the two
    must land on the same x_{t-1}. Outputs four times too large (as strong guidance gives) push pred x_0 far past
    [-1, 1]: the step is only DDPM's if DDIM's eps is the one the clipped x_0 implies."""
    schedule = NoiseSchedule.from_name("linear", 1000)
    ddpm, ddim = (make_sampler(kind, schedule, 50, prediction_type=prediction_type, clip_sample=1.0,
                               **({"eta": 1.0} if kind == "ddim" else {})) for kind in ("ddpm", "ddim"))
    g = torch.Generator().manual_seed(8)
    for t in ddpm.timesteps[:-1]:
        x, output = torch.randn(2, 3, 8, 8, generator=g), 4 * torch.randn(2, 3, 8, 8, generator=g)
        a = ddpm.step(output, t, x, generator=torch.Generator().manual_seed(t))
        b = ddim.step(output, t, x, generator=torch.Generator().manual_seed(t))
        assert a.pred_original_sample.abs().max() == 1.0  # clipping bit
        torch.testing.assert_close(b.prev_sample, a.prev_sample, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["ddpm", "ddim", "dpmpp"])
def test_same_seed_same_samples(kind):
    unet = tiny_unet()
    model_fn = lambda x, t: unet(x, t).sample  # noqa: E731
    schedule = NoiseSchedule.from_name("cosine", 1000)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        x_T = torch.randn(2, 3, 8, 8, generator=g)
        return sample(model_fn, make_sampler(kind, schedule, 10, clip_sample=1.0), x_T, generator=g)

    assert torch.equal(run(3), run(3))
    assert not torch.allclose(run(3), run(4))


def oracle_eps_model(schedule: NoiseSchedule, x0: torch.Tensor):
    """The ideal denoiser when the data is the single point x0: eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar)."""
    def model_fn(x, t):
        a = schedule.sqrt_alphas_cumprod[t].float().view(-1, *[1] * (x.ndim - 1))
        s = schedule.sqrt_one_minus_alphas_cumprod[t].float().view(-1, *[1] * (x.ndim - 1))
        return (x - a * x0) / s
    return model_fn


@pytest.mark.parametrize("kind,steps", [("ddpm", 1000), ("ddpm", 50), ("ddim", 10), ("dpmpp", 5), ("dpmpp", 1)])
def test_a_perfect_model_of_one_point_recovers_it(kind, steps):
    """Invariant: if the data is one point and the model is exact, every sampler must land on that point.

    (Linear, not cosine: cosine's sqrt(alpha_bar) at T-1 is 5e-5, and dividing by it in one float32 step
    magnifies rounding past the tolerance.)"""
    schedule = NoiseSchedule.from_name("linear", 1000)
    x0 = torch.tensor([[0.7, -0.3]])
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    result = sample(oracle_eps_model(schedule, x0), make_sampler(kind, schedule, steps), x_T,
                    generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(result, x0.expand(64, 2), atol=1e-3, rtol=0)


def test_prediction_types_agree_on_the_same_truth():
    schedule = NoiseSchedule.from_name("linear", 1000)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 2, generator=g), torch.randn(4, 2, generator=g)
    t = 600
    x_t = add_noise(schedule, x0, eps, t)
    a = float(schedule.alphas_cumprod[t])
    v = a**0.5 * eps - (1 - a) ** 0.5 * x0
    for prediction_type, output in (("epsilon", eps), ("v_prediction", v), ("sample", x0)):
        pred_x0, pred_eps = split_prediction(output, x_t, a, prediction_type)
        torch.testing.assert_close(pred_x0, x0, atol=1e-5, rtol=0)
        torch.testing.assert_close(pred_eps, eps, atol=1e-5, rtol=0)


def test_iter_sample_streams_every_step_and_can_stop():
    schedule = NoiseSchedule.from_name("linear", 1000)
    sampler = DDIMSampler(schedule)
    sampler.set_timesteps(8)
    model_fn = oracle_eps_model(schedule, torch.zeros(1, 2))
    steps = []
    for step in iter_sample(model_fn, sampler, torch.randn(3, 2, generator=torch.Generator().manual_seed(0))):
        steps.append(step)
        if step.index == 4:
            break
    assert [s.index for s in steps] == [0, 1, 2, 3, 4] and steps[0].num_steps == 8
    assert all(torch.equal(a.prev_sample, b.x_t) for a, b in zip(steps, steps[1:], strict=False))


def test_bad_sampler_arguments_are_refused():
    schedule = NoiseSchedule.from_name("linear", 100)
    with pytest.raises(ValueError, match="between 1 and T=100"):
        make_sampler("ddim", schedule, 101)
    with pytest.raises(ValueError, match="Unknown sampler"):
        make_sampler("euler", schedule, 10)
    for cls in (DDPMSampler, DPMSolverPPSampler):
        with pytest.raises(ValueError, match="set_timesteps"):
            next(iter_sample(lambda x, t: x, cls(schedule), torch.zeros(1, 2)))
