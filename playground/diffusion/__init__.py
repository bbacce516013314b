"""The shared diffusion core: pure torch, no UI. Schedules, the forward process, samplers and training."""

from playground.diffusion.forward import (
    NoiseLevel,
    Posterior,
    add_noise,
    markov_step,
    noise_level,
    q_posterior,
    run_markov_chain,
)
from playground.diffusion.samplers import SAMPLERS, Step, iter_sample, make_sampler, sample
from playground.diffusion.schedules import BETA_SCHEDULES, NoiseSchedule, rescale_zero_terminal_snr

__all__ = [
    "BETA_SCHEDULES",
    "SAMPLERS",
    "Step",
    "NoiseLevel",
    "NoiseSchedule",
    "Posterior",
    "add_noise",
    "iter_sample",
    "make_sampler",
    "markov_step",
    "noise_level",
    "q_posterior",
    "rescale_zero_terminal_snr",
    "run_markov_chain",
    "sample",
]
