"""How well does a distilled student take its teacher's steps, on noised pictures and where its own sampling goes?

    python bench/distill_fit.py [--student checkpoints/emoji32-prompts-dmd] [--substeps 8] [--count 128]
    python bench/distill_fit.py --swap SSSS,TSSS,SSST [--samples 512]

For each of the student's steps (its trailing-spaced levels, noisiest first) and the empty prompt: the RMS error of
its x_0 guess against the teacher's ``substeps`` DDIM steps across that step, inverted to an x_0
(diffusion.distillation.multi_step_target), once from emoji noised to that level (where regression trains it) and
once from the state its own DDIM sampling reached from pure noise (diffusion.distillation.student_rollout, where it
is used), with the RMS size of both states. A gap between the two columns is exposure bias: what ``distill
--empty-on-policy`` trains on.

``--swap``: which of the student's steps costs the empty prompt its density and coverage. Each pattern names, step
by step, who takes it: S the student's one DDIM step, T the teacher's ``substeps`` DDIM steps across it; each is
sampled ``--samples`` times from the same noise and scored as bench/prompt_fidelity.py scores the empty prompt
(services.sample_quality against the emoji set), with the pictures' pixel spread and share of near-white pixels
(the student's faded backgrounds). TSSS against SSSS is what its first step alone costs: what ``distill
--empty-first`` trains.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from playground.checkpoints import load_checkpoint  # noqa: E402
from playground.data.dataset import dataset_from_uint8  # noqa: E402
from playground.data.emoji import emoji_subset  # noqa: E402
from playground.diffusion.distillation import (  # noqa: E402
    bind,
    ddim_jump,
    multi_step_target,
    predicted_x0,
    student_rollout,
    teacher_paths,
)
from playground.diffusion.forward import add_noise  # noqa: E402
from playground.diffusion.guidance import DEFAULT_GUIDANCE  # noqa: E402
from playground.services.distillation import guided_teacher, student_call  # noqa: E402
from playground.services.distillation_views import distilled, teacher_of  # noqa: E402
from playground.services.sample_quality import density_coverage, features  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--student", default=str(ROOT / "checkpoints" / "emoji32-prompts-dmd"))
    parser.add_argument("--substeps", type=int, default=8)
    parser.add_argument("--count", type=int, default=128)
    parser.add_argument("--swap", help="patterns of S (student) and T (teacher), one letter a step: SSSS,TSSS,...")
    parser.add_argument("--samples", type=int, default=512, help="--swap's pictures per pattern (default 512)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    student = load_checkpoint(args.student)
    teacher = teacher_of(student)
    if teacher is None:
        sys.exit(f"{args.student} is not a distilled student of one of the shared prompt models.")
    schedule, kind, clip = teacher.schedule, teacher.prediction_type, None if teacher.is_latent else 1.0
    steps = int(distilled(student)["student_steps"])
    generator = torch.Generator().manual_seed(0)
    emoji = dataset_from_uint8("emoji", emoji_subset(teacher.resolution).images).images
    pictures = emoji[torch.randperm(len(emoji), generator=generator)[:args.count]]
    words = student.unet.vocabulary.batch([""] * len(pictures))  # the empty prompt
    scale = torch.full((len(pictures),), DEFAULT_GUIDANCE)
    mine, theirs = bind(student_call(student.unet), words, scale), bind(guided_teacher(teacher.unet), words, scale)
    if args.swap:
        swap(args, student, teacher, emoji, steps)
        return
    x_T = torch.randn(pictures.shape, generator=generator)
    print(f"{args.student}: the empty prompt, {len(pictures)} examples, the teacher's {args.substeps} DDIM steps "
          f"across each of the student's {steps}")
    print(f"{'step':>4} {'t':>4}  {'error, noised':>13}  {'error, own':>10}  {'RMS x_t, noised':>15}  "
          f"{'RMS x_t, own':>12}")
    for stop, path in enumerate(teacher_paths(schedule.num_timesteps, steps, args.substeps)):
        levels = [torch.full((len(pictures),), level) for level in path]
        noised = add_noise(schedule, pictures, torch.randn(pictures.shape, generator=generator), levels[0])
        own = student_rollout(mine, schedule, x_T, steps, stop, kind, None, clip, "ddim")
        errors = []
        for x_t in (noised, own):
            target = multi_step_target(schedule, theirs, x_t, levels, kind, clip)
            guess = predicted_x0(schedule, mine(x_t, levels[0]), x_t, levels[0], kind, clip)
            errors.append(float((guess - target).pow(2).mean().sqrt()))
        print(f"{stop + 1:>4} {path[0]:>4}  {errors[0]:>13.4f}  {errors[1]:>10.4f}  "
              f"{float(noised.pow(2).mean().sqrt()):>15.3f}  {float(own.pow(2).mean().sqrt()):>12.3f}")


def swap(args, student, teacher, emoji: torch.Tensor, steps: int) -> None:
    """Print density and coverage of the empty prompt when the teacher takes some of the student's steps."""
    schedule, kind = teacher.schedule, teacher.prediction_type
    clip = None if teacher.is_latent else 1.0
    paths = teacher_paths(schedule.num_timesteps, steps, args.substeps)
    real = features(emoji)
    batch = 64
    words, scale = student.unet.vocabulary.batch([""] * batch), torch.full((batch,), DEFAULT_GUIDANCE)
    mine, theirs = bind(student_call(student.unet), words, scale), bind(guided_teacher(teacher.unet), words, scale)
    print(f"{args.student}: the empty prompt, {args.samples} samples a pattern; T: the teacher's {args.substeps} DDIM "
          f"steps across one of the student's {steps}")
    for pattern in args.swap.split(","):
        if len(pattern) != steps or set(pattern) - {"S", "T"}:
            sys.exit(f"--swap patterns are {steps} letters of S and T, such as {'T' + 'S' * (steps - 1)}.")
        pictures = []
        for seed in range(-(-args.samples // batch)):
            x = torch.randn(batch, *emoji.shape[1:], generator=torch.Generator().manual_seed(seed))
            for who, path in zip(pattern, paths, strict=True):
                levels = [torch.full((batch,), level) for level in path]
                hops = [(levels[0], levels[-1])] if who == "S" else list(zip(levels[:-1], levels[1:], strict=True))
                network = mine if who == "S" else theirs
                for t, s in hops:
                    x = ddim_jump(schedule, x, predicted_x0(schedule, network(x, t), x, t, kind, clip), t, s)
            pictures.append(x)
        x = student.to_pictures(torch.cat(pictures)[:args.samples]).clamp(-1, 1)
        density, coverage = density_coverage(real, features(x))
        spread, white = float(x.flatten(1).std(1).mean()), float((x.amin(dim=1) > 0.9).float().mean())
        print(f"{pattern}: density {density:.3f}, coverage {coverage:.3f}, pixel spread {spread:.3f}, "
              f"near-white pixels {white:.3f}")


if __name__ == "__main__":
    main()
