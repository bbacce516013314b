"""Adversarial refinement of a few-step student's unprompted pictures: the GAN term of DMD2 (Yin et al. 2024,
"Improved Distribution Matching Distillation for Fast Image Synthesis") and of adversarial diffusion distillation
(Sauer et al. 2023, "Adversarial Diffusion Distillation"), here on its own.

A student that learned its teacher's path by regression draws the average of what that path could lead to: its
pictures are a little blurred, and the random features of services.sample_quality put blurred pictures in the data's
crowded regions (bench/prompt_fidelity.py --sharpness: a blurred teacher's density is its student's). Regression
cannot undo that, whatever it weighs: the average is what it asks for. A discriminator can: it learns to tell the
data from the student's finished pictures, and the student, through its whole sampling chain (:func:`ddim_chain`,
the app's DDIM with gradients), learns to make pictures it cannot tell apart (the non-saturating loss, with R1 on
the data, Mescheder et al. 2018). Two anchors keep the rest of what the student knows: its pictures' layout
(8 x 8 block averages of what the frozen student drew from the same noise; the details are the GAN's to change) and
its prompted outputs (the frozen student's, on noised pictures at its own levels).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from playground.diffusion.distillation import StudentFn, ddim_jump, predicted_x0, student_rollout
from playground.diffusion.forward import add_noise, randn
from playground.diffusion.samplers import PredictionType, spaced_timesteps
from playground.diffusion.schedules import NoiseSchedule
from playground.diffusion.training import TrainState, optimizer_step, scheduled_lr


@dataclass(frozen=True)
class AdversarialConfig:
    """The refinement's recipe: the student against a discriminator, held by two anchors."""

    steps: int = 400  # the student's optimizer steps (after the discriminator's warm-up)
    batch_size: int = 8  # pictures from noise, real pictures, and prompted anchor examples, each
    lr: float = 1e-5  # the student's, constant
    disc_lr: float = 2e-4  # the discriminator's (Adam, betas 0 and 0.99)
    gan_weight: float = 0.05  # the student's non-saturating GAN loss
    layout_weight: float = 1.0  # its pictures' block averages against the frozen student's, from the same noise
    layout_pool: int = 4  # the blocks' side in pixels
    anchor_weight: float = 10.0  # its prompted outputs against the frozen student's
    anchor_on_policy: float = 0.0  # the share of those at the frozen student's own DDPM states for their prompts
    # (where the app's prompted sampling goes), not at noised pictures
    r1: float = 0.1  # the R1 penalty on the discriminator's gradient at real pictures (gamma)
    disc_warmup: int = 50  # steps the discriminator learns alone first
    guidance_min: float = 1.0  # the guidance scale input, drawn uniformly per example
    guidance_max: float = 10.0
    grad_clip: float = 1.0
    weight_decay: float = 0.0
    ema_max_decay: float = 0.995
    warmup_steps: int = 0  # the lr is constant (diffusion.training.lr_at reads these)
    lr_min_ratio: float = 1.0
    seed: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class Discriminator(torch.nn.Module):
    """A small convolutional critic of pictures (B, C, S, S) in [-1, 1] -> one logit each (B,): a 3 x 3
    convolution, then stride-2 4 x 4 ones while the map is 8 or more across and even (32 px: three, 64 -> 128 ->
    256 -> 256 channels, leaky ReLU), then a 4 x 4 one to a map of logits, averaged."""

    def __init__(self, channels: int = 3, size: int = 32, width: int = 64) -> None:
        super().__init__()
        if size < 4:
            raise ValueError(f"The discriminator needs pictures of 4 px or more, not {size}.")
        layers: list[torch.nn.Module] = [torch.nn.Conv2d(channels, width, 3, 1, 1), torch.nn.LeakyReLU(0.2)]
        depth = 0
        while size >= 8 and size % 2 == 0:
            depth, size = depth + 1, size // 2
            layers += [torch.nn.Conv2d(width * min(2 ** (depth - 1), 4), width * min(2 ** depth, 4), 4, 2, 1),
                       torch.nn.LeakyReLU(0.2)]
        self.net = torch.nn.Sequential(*layers, torch.nn.Conv2d(width * min(2 ** depth, 4), 1, 4, 1, 0))

    def forward(self, pictures: torch.Tensor) -> torch.Tensor:
        return self.net(pictures).flatten(1).mean(1)


def ddim_chain(student: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], schedule: NoiseSchedule,
               x_T: torch.Tensor, steps: int, prediction_type: PredictionType, clip: float | None = 1.0
               ) -> torch.Tensor:
    """The student's deterministic DDIM sampling (eta = 0) on its ``steps`` trailing-spaced levels from pure noise
    ``x_T``, gradients kept: the picture the app's DDIM draws (x_0 clamped to [-clip, clip] at each step, and the
    finished picture with it)."""
    levels = spaced_timesteps(schedule.num_timesteps, steps, "trailing") + [-1]
    x = x_T
    for level, following in zip(levels, levels[1:], strict=False):
        t, s = torch.full((len(x),), level, device=x.device), torch.full((len(x),), following, device=x.device)
        x0 = predicted_x0(schedule, student(x, t), x, t, prediction_type, clip)
        x = ddim_jump(schedule, x, x0, t, s)
    return x if clip is None else x.clamp(-clip, clip)


def discriminator_loss(discriminator: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor,
                       r1: float) -> torch.Tensor:
    """The non-saturating GAN loss of a discriminator on real and fake pictures (each (B, ...)), plus the R1
    penalty gamma / 2 * E||grad D(real)||^2 (Mescheder et al. 2018, eq. 9)."""
    real = real.detach().requires_grad_(True)
    real_logits = discriminator(real)
    loss = F.softplus(-real_logits).mean() + F.softplus(discriminator(fake.detach())).mean()
    if r1:
        grad, = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
        loss = loss + r1 / 2 * grad.pow(2).flatten(1).sum(1).mean()
    return loss


def generator_loss(discriminator: torch.nn.Module, fake: torch.Tensor) -> torch.Tensor:
    """The generator's non-saturating loss, softplus(-D(fake)) = -log sigmoid(D(fake)): small where the
    discriminator takes its pictures for real."""
    return F.softplus(-discriminator(fake)).mean()


def empty_prompt_pictures(network: StudentFn, schedule: NoiseSchedule, x_T: torch.Tensor, scale: torch.Tensor,
                          steps: int, prediction_type: PredictionType, clip: float | None = 1.0) -> torch.Tensor:
    """:func:`ddim_chain` of a student (x, t, word ids, guidance scales) on the empty prompt, each picture at its own
    guidance scale input ``scale`` (B,)."""
    empty = torch.zeros(len(x_T), 1, dtype=torch.long, device=x_T.device)
    return ddim_chain(lambda x, t: network(x, t, empty, scale), schedule, x_T, steps, prediction_type, clip)


def refine(state: TrainState, disc_state: TrainState, student: StudentFn, reference: StudentFn,
           schedule: NoiseSchedule, draw: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]],
           config: AdversarialConfig, student_steps: int, prediction_type: PredictionType, clip: float | None = 1.0,
           callback: Callable | None = None, should_stop: Callable[[], bool] = lambda: False) -> TrainState:
    """Train ``state.model`` (called through ``student``: x, t, word ids, guidance scales) until config.steps or
    ``should_stop()``. Each step draws a batch (``draw(generator)``: real pictures, drawn as the data is for the
    discriminator's sake, and their prompts' (B, L) word ids), pure noise and guidance scales. The discriminator
    (``disc_state.model``) learns the real pictures from the student's empty-prompt DDIM pictures
    (:func:`empty_prompt_pictures`); after its ``config.disc_warmup`` steps alone, the student learns against it,
    its pictures' block averages held to the frozen ``reference`` student's from the same noise, and its prompted
    outputs to the reference's on noised pictures at its own levels (a ``config.anchor_on_policy`` share of them
    where the reference's own DDPM sampling of their prompts went instead: :func:`_reference_states`). Resuming,
    EMA and the step count are diffusion.training's."""
    model, discriminator = state.model.train(), disc_state.model.train()
    device = next(model.parameters()).device
    levels = torch.tensor(spaced_timesteps(schedule.num_timesteps, student_steps, "trailing"), device=device)
    for group in disc_state.optimizer.param_groups:  # constant, whatever a resumed optimizer last had
        group["lr"], group["betas"] = config.disc_lr, (0.0, 0.99)
    while state.step < config.steps and not should_stop():
        started = time.perf_counter()
        lr = scheduled_lr(state, config)  # constant: the recipe has no warm-up and no decay
        generator = state.generator
        real, words = (tensor.to(device) for tensor in draw(generator))
        x_T = randn(real.shape, generator, real)
        scale = (config.guidance_min + (config.guidance_max - config.guidance_min)
                 * torch.rand(len(real), generator=generator)).to(device)
        pictures = lambda network: empty_prompt_pictures(network, schedule, x_T, scale,  # noqa: B023, E731
                                                         student_steps, prediction_type, clip)
        with torch.no_grad():
            fake = pictures(student)
        disc_loss = discriminator_loss(discriminator, real, fake, config.r1)
        disc_state.optimizer.zero_grad(set_to_none=True)
        disc_loss.backward()
        disc_state.optimizer.step()
        disc_state.step += 1
        if disc_state.step <= config.disc_warmup:  # the student waits for a critic worth following
            continue
        drawn = pictures(student)
        with torch.no_grad():
            held = pictures(reference)
        pool = config.layout_pool
        layout = (F.avg_pool2d(drawn, pool) - F.avg_pool2d(held, pool)).pow(2).mean()
        level = levels[torch.randint(0, len(levels), (len(real),), generator=generator).to(device)]
        x_t = add_noise(schedule, real, randn(real.shape, generator, real), level)
        if own := round(config.anchor_on_policy * len(real)):
            x_t, level = _reference_states(reference, schedule, x_t, level, words, scale, own, student_steps,
                                           prediction_type, generator, clip)
        prompted = words.ne(0).any(dim=1)  # the empty prompt is the GAN's to change
        with torch.no_grad():
            target = reference(x_t, level, words, scale)
        anchor = (student(x_t, level, words, scale) - target).pow(2).flatten(1).mean(1)
        anchor = (anchor * prompted).sum() / prompted.sum().clamp(min=1)
        loss = (config.gan_weight * generator_loss(discriminator, drawn) + config.layout_weight * layout
                + config.anchor_weight * anchor)
        optimizer_step(state, loss, config, lr, started, callback)
    model.eval()
    discriminator.eval()
    return state


def _reference_states(reference: StudentFn, schedule: NoiseSchedule, x_t: torch.Tensor, level: torch.Tensor,
                      words: torch.Tensor, scale: torch.Tensor, own: int, steps: int, prediction_type: PredictionType,
                      generator: torch.Generator, clip: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``x_t`` and ``level`` (each example's) with the first ``own`` examples moved to where the reference's
    ancestral DDPM sampling of their prompts, from fresh noise, stands before a random one of its ``steps``
    (diffusion.distillation.student_rollout): the states the app's prompted sampling visits."""
    stop = int(torch.randint(0, steps, (1,), generator=generator))
    noise = randn((own, *x_t.shape[1:]), generator, x_t)
    rolled = student_rollout(lambda x, t: reference(x, t, words[:own], scale[:own]), schedule, noise, steps, stop,
                             prediction_type, generator, clip)
    levels = spaced_timesteps(schedule.num_timesteps, steps, "trailing")
    level = level.clone()
    level[:own] = levels[stop]
    return torch.cat([rolled, x_t[own:]]), level
