"""Editing a picture with a trained model and no training: the reverse process started from it (SDEdit) or told
which part to keep (RePaint).

SDEdit (Meng et al. 2022, "SDEdit: Guided Image Synthesis and Editing with Stochastic Differential Equations"): noise
the picture to a level t_0 with the forward process in closed form, then run the reverse process from there. The
strength s in (0, 1] picks t_0 as diffusers' img2img pipelines do: of a sampler's n timesteps, the last int(s * n)
are run. Low s keeps the picture and changes little; s = 1 starts from (nearly) pure noise and keeps nothing.

RePaint (Lugmayr et al. 2022, "RePaint: Inpainting using Denoising Diffusion Probabilistic Models"): at every reverse
step the known region comes from the picture noised to that step (q(x_{t-1} | x_0), eq. 8a) and the masked region from
the model's step (eq. 8b), joined by the mask (eq. 8c). The two halves disagree at first, so RePaint resamples: after
every ``jump_length`` steps down it jumps back up ``jump_length`` steps with fresh forward noise and comes down again,
``resample`` times in all (sec. 4.2), letting the model harmonise the masked part with the known one.

Masks here are 1 where the picture is to be repainted (Stable Diffusion's convention); diffusers' RePaint takes the
opposite (1 where it is kept). Any image or latent shape (B, C, H, W); the mask (B or 1, 1, H, W) broadcasts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from playground.diffusion.forward import add_noise, randn
from playground.diffusion.samplers import ModelFn, Sampler, SamplerOutput, Step, iter_sample
from playground.diffusion.schedules import NoiseSchedule


def sdedit_start_index(num_steps: int, strength: float) -> int:
    """The index of the first of a sampler's ``num_steps`` timesteps that SDEdit runs at ``strength``: diffusers'
    img2img rule (``get_timesteps``), the last int(strength * num_steps) of them, and at least the last one."""
    if not 0 < strength <= 1:
        raise ValueError(f"The strength must be above 0 and at most 1, not {strength}.")
    init_timestep = min(int(num_steps * strength), num_steps)
    return min(max(num_steps - init_timestep, 0), num_steps - 1)


def iter_sdedit(model_fn: ModelFn, sampler: Sampler, x0: torch.Tensor, strength: float,
                generator: torch.Generator | None = None) -> Iterator[Step]:
    """SDEdit: ``x0`` (B, ...) noised to the sampler's timestep at ``strength`` (one draw of eps from ``generator``),
    then every remaining step of ``sampler``, each yielded as a :class:`Step` (its ``index`` counts from the start
    index, so the first yielded Step is where the edit starts)."""
    start = sdedit_start_index(len(sampler.timesteps), strength)
    t_start = sampler.timesteps[start]
    noise = randn(x0.shape, generator, x0)
    x_t = add_noise(sampler.schedule, x0, noise, t_start)
    return iter_sample(model_fn, sampler, x_t, generator, start=start)


def repaint_timesteps(num_train_timesteps: int, num_steps: int, jump_length: int = 10,
                      resample: int = 10) -> list[int]:
    """RePaint's walk through the timesteps (the paper's Fig. 9; diffusers' ``RePaintScheduler.set_timesteps``):
    ``num_steps`` evenly spaced levels, T/n apart, walked down from the noisiest; after each ``jump_length`` of them
    (but the last stretch) it climbs back up ``jump_length`` levels, ``resample - 1`` times, before going on down.
    An entry below the one before is a model step from that level; an entry above it is a climb of one stride."""
    if not 1 <= num_steps <= num_train_timesteps:
        raise ValueError(f"Steps must be between 1 and T = {num_train_timesteps}, not {num_steps}.")
    if jump_length < 1 or resample < 1:
        raise ValueError("The jump length and the number of resamplings must each be 1 or more.")
    jumps = {j: resample - 1 for j in range(0, num_steps - jump_length, jump_length)}
    walk, t = [], num_steps
    while t >= 1:
        t -= 1
        walk.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] -= 1
            for _ in range(jump_length):
                t += 1
                walk.append(t)
    stride = num_train_timesteps // num_steps
    return [t * stride for t in walk]


def steps_down(walk: list[int]) -> list[int]:
    """The entries of a RePaint walk that are model steps (each below the entry before it): one network call each."""
    return [t for before, t in zip([walk[0] + 1, *walk[:-1]], walk, strict=True) if t < before]


def renoise(schedule: NoiseSchedule, sample: torch.Tensor, from_t: int, to_t: int,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Climb from level ``from_t`` to ``to_t`` (> from_t; -1 is the clean picture) with the forward process in one
    draw: q(x_to | x_from) = N(sqrt(abar_to / abar_from) x_from, (1 - abar_to / abar_from) I), which the Markov
    chain's one-step climbs (RePaint Algorithm 1, line 10; diffusers' ``undo_step``) add up to in distribution."""
    abar_from = 1.0 if from_t < 0 else float(schedule.alphas_cumprod[from_t])
    ratio = float(schedule.alphas_cumprod[to_t]) / abar_from
    return math.sqrt(ratio) * sample + math.sqrt(max(1.0 - ratio, 0.0)) * randn(sample.shape, generator, sample)


def repaint_step(sampler: Sampler, model_output: torch.Tensor, t: int, sample: torch.Tensor, known: torch.Tensor,
                 repaint_mask: torch.Tensor, generator: torch.Generator | None = None) -> SamplerOutput:
    """One RePaint step from level t: the masked region from ``sampler``'s own step (eq. 8b), the known region from
    ``known`` (the clean picture) noised to the sampler's next level (eq. 8a, fresh noise), joined by the mask (eq.
    8c; 1 = repaint). Its ``pred_original_sample`` is the model's x_0 with the known part pasted in."""
    step = sampler.step(model_output, t, sample, generator=generator)
    prev_t = sampler.prev_timestep(t)
    abar_prev = 1.0 if prev_t < 0 else float(sampler.schedule.alphas_cumprod[prev_t])
    noise = randn(sample.shape, generator, sample)
    known_prev = math.sqrt(abar_prev) * known + math.sqrt(1.0 - abar_prev) * noise
    prev = repaint_mask * step.prev_sample + (1.0 - repaint_mask) * known_prev
    pred_x0 = repaint_mask * step.pred_original_sample + (1.0 - repaint_mask) * known
    return SamplerOutput(prev, pred_x0)


@dataclass(frozen=True)
class RePaintMove:
    """One entry of RePaint's walk, as shown to a person: a model step down, or a climb back up."""

    index: int  # 0 .. len(walk) - 1
    walk_length: int
    t: int  # the level the sample is at after the move (-1: the finished picture)
    model_calls: int  # network evaluations so far
    step: Step | None  # a step down: what the model saw and did; None for a climb
    sample: torch.Tensor  # the sample after the move


@torch.inference_mode()
def iter_repaint(model_fn: ModelFn, sampler: Sampler, known: torch.Tensor, repaint_mask: torch.Tensor,
                 x_T: torch.Tensor, walk: list[int], generator: torch.Generator | None = None,
                 on_call: Callable[[], None] | None = None) -> Iterator[RePaintMove]:
    """RePaint along ``walk`` (:func:`repaint_timesteps`; the sampler's timesteps must be its descending entries,
    leading-spaced), from the noise ``x_T``: yields a :class:`RePaintMove` after every entry. The result is the last
    move's ``sample`` (with the known region the picture itself)."""
    sample, last, calls = x_T, walk[0] + 1, 0
    stride = sampler.schedule.num_timesteps // len(sampler.timesteps)
    batch = x_T.shape[0]
    for index, t in enumerate(walk):
        if t < last:  # a step down from level t
            t_batch = torch.full((batch,), t, dtype=torch.long, device=x_T.device)
            output = model_fn(sample, t_batch)
            calls += 1
            out = repaint_step(sampler, output, t, sample, known, repaint_mask, generator)
            step = Step(index, len(walk), t, sample, out.pred_original_sample, out.prev_sample)
            sample, level = out.prev_sample, sampler.prev_timestep(t)
        else:  # a climb of one stride, from where the last step left it back to that step's level
            sample = renoise(sampler.schedule, sample, last - stride, last, generator)
            step, level = None, last
        last = t
        yield RePaintMove(index, len(walk), level, calls, step, sample)
