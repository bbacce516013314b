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

    step: int  # which of the student's steps (1: from pure noise)
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
            seed: int = 0, count: int = 4, step: int | None = None) -> Halving:
    """The student's ``step``-th step on its own grid (1: from pure noise; default, the last: to the finished picture)
    beside the teacher's two on the grid twice as fine (the teacher with classifier-free guidance, two calls a step;
    the student one call). Both start from the same x_t: the teacher's own DDIM path from x_T down to that level, so
    the last step's teacher end is the teacher's whole DDIM run on the fine grid."""
    steps = int(distilled(student)["student_steps"])
    try:
        step = steps if step is None else int(step)
    except (TypeError, ValueError):
        raise ValueError(f"The step must be a whole number from 1 to {steps}.") from None
    if not 1 <= step <= steps:
        raise ValueError(f"This student takes {steps} step{'s' * (steps > 1)}; choose a step from 1 to {steps}.")
    fine = make_sampler("ddim", teacher.schedule, 2 * steps, prediction_type=teacher.prediction_type,
                        clip_sample=None if teacher.is_latent else 1.0)
    coarse = make_sampler("ddim", student.schedule, steps, prediction_type=student.prediction_type,
                          clip_sample=None if student.is_latent else 1.0)
    teacher_fn = guided_fn(teacher.unet, prompt, guidance, count)
    student_fn = guided_fn(student.unet, prompt, guidance, count)

    def teacher_step(x: torch.Tensor, t: int) -> torch.Tensor:
        return fine.step(teacher_fn(x, torch.full((count,), t)), t, x).prev_sample

    x_t, _ = initial_noise(teacher, count, seed)  # pure noise, as sampling starts
    for t in fine.timesteps[:2 * (step - 1)]:  # down the teacher's path to the student's step-th level
        x_t = teacher_step(x_t, t)
    t, t_mid = fine.timesteps[2 * (step - 1)], fine.timesteps[2 * step - 1]
    mid = teacher_step(x_t, t)
    teacher_next = teacher_step(mid, t_mid)
    student_next = coarse.step(student_fn(x_t, torch.full((count,), t)), t, x_t).prev_sample
    rms = lambda a, b: float((a - b).pow(2).mean().sqrt())  # noqa: E731
    pictures = [teacher.to_pictures(x) for x in (x_t, mid, teacher_next)] + [student.to_pictures(student_next)]
    return Halving(step, t, t_mid, coarse.prev_timestep(t), *pictures, rms(teacher_next, student_next),
                   rms(x_t, teacher_next))


def measured_fidelity(checkpoint: Checkpoint) -> dict[str, dict[str, float]] | None:
    """The step counts against prompt fidelity that bench/sampling.py --distilled measured for this student and its
    teacher (playground.json "measured": {"student": {"4": 0.7, ...}, "teacher": {"DDPM 200": 0.76, ...}})."""
    return checkpoint.info.get("measured")
