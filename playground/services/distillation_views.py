"""What the Sample tab shows of a distilled student: one of its steps beside its teacher's two, and the measured step
counts against prompt fidelity. Inference only (distillation itself is services.distillation)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from playground.checkpoints import Checkpoint
from playground.diffusion import make_sampler
from playground.diffusion.guidance import DEFAULT_GUIDANCE
from playground.services.image_sampling import guided_fn, initial_noise
from playground.services.model_catalog import get_checkpoint, shared_models

STUDENT_STEPS = (1, 2, 4, 8)  # what the Sample tab offers a distilled model


def distilled(checkpoint: Checkpoint) -> dict | None:
    """A distilled student's record (playground.json "distilled": its steps, teacher, rounds), or None."""
    return checkpoint.info.get("distilled")


def teacher_of(checkpoint: Checkpoint) -> Checkpoint | None:
    """The prompt model a student was distilled from, when it is one of the shared models."""
    name = (distilled(checkpoint) or {}).get("teacher")
    folder = shared_models().get(name) if name else None
    return get_checkpoint(folder) if folder is not None else None


@dataclass(frozen=True)
class Halving:
    """One x_t, the teacher's two DDIM steps from it and the student's one step, to the same level."""

    t: int  # where both start
    t_mid: int  # the teacher's first step lands here
    t_next: int  # both end here (-1: the finished picture)
    x_t: torch.Tensor  # pictures (decoded, for a latent model)
    teacher_mid: torch.Tensor
    teacher_next: torch.Tensor
    student_next: torch.Tensor
    distance: float  # RMS between the two ends, in the network's own space
    start_distance: float  # ...and between x_t and the teacher's end: how far the two steps went


@torch.inference_mode()
def halving(student: Checkpoint, teacher: Checkpoint, prompt: str, guidance: float = DEFAULT_GUIDANCE,
            seed: int = 0, count: int = 4) -> Halving:
    """The student's first step on its own grid beside the teacher's two on the grid twice as fine (the teacher with
    classifier-free guidance, two calls a step; the student one call), from the same pure noise x_T."""
    steps = int(distilled(student)["student_steps"])
    fine = make_sampler("ddim", teacher.schedule, 2 * steps, prediction_type=teacher.prediction_type,
                        clip_sample=None if teacher.is_latent else 1.0)
    coarse = make_sampler("ddim", student.schedule, steps, prediction_type=student.prediction_type,
                          clip_sample=None if student.is_latent else 1.0)
    t, t_mid = fine.timesteps[0], fine.timesteps[1]  # the noisiest level (trailing spacing: T - 1) and the next
    x_t, _ = initial_noise(teacher, count, seed)  # pure noise, as sampling starts
    times = torch.full((count,), t)
    teacher_fn = guided_fn(teacher.unet, prompt, guidance, count)
    student_fn = guided_fn(student.unet, prompt, guidance, count)
    mid = fine.step(teacher_fn(x_t, times), t, x_t).prev_sample
    teacher_next = fine.step(teacher_fn(mid, torch.full((count,), t_mid)), t_mid, mid).prev_sample
    student_next = coarse.step(student_fn(x_t, times), t, x_t).prev_sample
    rms = lambda a, b: float((a - b).pow(2).mean().sqrt())  # noqa: E731
    pictures = [teacher.to_pictures(x) for x in (x_t, mid, teacher_next)] + [student.to_pictures(student_next)]
    return Halving(t, t_mid, coarse.prev_timestep(t), *pictures, rms(teacher_next, student_next),
                   rms(x_t, teacher_next))


def measured_fidelity(checkpoint: Checkpoint) -> dict[str, dict[str, float]] | None:
    """The step counts against prompt fidelity that bench/sampling.py --distilled measured for this student and its
    teacher (playground.json "measured": {"student": {"4": 0.7, ...}, "teacher": {"DDPM 200": 0.76, ...}})."""
    return checkpoint.info.get("measured")
