"""Distillation: the two-step target, the guidance input learned, the student saved as a diffusers folder and
sampled in one call a step, and the command line's rounds."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import UNet2DModel

from playground.checkpoints import load_checkpoint
from playground.diffusion import NoiseSchedule, make_sampler
from playground.diffusion.distillation import student_grid, two_step_target
from playground.diffusion.guidance import classifier_free_guidance
from playground.models import PRESETS, build_unet, model_fn

from tiny_checkpoint import make_tiny_prompt_checkpoint


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("student_steps", [4, 2, 1])
def test_the_target_is_the_x0_whose_one_step_lands_where_two_teacher_steps_do(prediction_type, student_steps):
    torch.manual_seed(0)
    teacher = build_unet(PRESETS["tiny"], seed=0).eval()
    schedule = NoiseSchedule.from_name("cosine", 1000)
    grid, mids = student_grid(1000, student_steps)
    double = make_sampler("ddim", schedule, 2 * student_steps, prediction_type=prediction_type)
    assert double.timesteps[::2] == grid and double.timesteps[1::2] == mids  # the grids nest
    x_t = torch.randn(3, 3, 8, 8)
    network = model_fn(teacher)
    with torch.no_grad():
        for i, t in enumerate(grid):
            # the teacher's own sampler, two steps from x_t
            first = double.step(network(x_t, torch.full((3,), t)), t, x_t)
            second = double.step(network(first.prev_sample, torch.full((3,), mids[i])), mids[i], first.prev_sample)
            t_next = grid[i + 1] if i + 1 < len(grid) else -1
            target = two_step_target(schedule, network, x_t, torch.full((3,), t), torch.full((3,), mids[i]),
                                     torch.full((3,), t_next), prediction_type)
            # the student's one step (an x_0-predicting step on the student's grid) with the target as its output
            single = make_sampler("ddim", schedule, student_steps, prediction_type="sample")
            landed = single.step(target, t, x_t).prev_sample
            torch.testing.assert_close(landed, second.prev_sample, atol=2e-4, rtol=1e-4)


@pytest.mark.slow
def test_a_student_learns_the_guided_teachers_output_with_the_scale_as_input(tmp_path):
    """Trained on the guided teacher at scales 1 to 8 (one fixed x_t and t), the student's one call reproduces
    eps~ = eps(empty) + w (eps(c) - eps(empty)) for scales it was not shown."""
    teacher = load_checkpoint(make_tiny_prompt_checkpoint(tmp_path / "teacher")).unet
    student = teacher.with_guidance()
    words = teacher.vocabulary.batch(["red heart"] * 8)
    x_t, t = torch.randn(8, 3, 8, 8), torch.full((8,), 500)
    with torch.no_grad():
        cond, uncond = teacher(x_t, t, words), teacher(x_t, t)

    def guided(w: torch.Tensor) -> torch.Tensor:
        return classifier_free_guidance(uncond, cond, w.view(-1, 1, 1, 1))

    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(800):
        w = 1 + 7 * torch.rand(8, generator=generator)
        loss = (student(x_t, t, words, w) - guided(w)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for scale in (2.5, 6.0):
        w = torch.full((8,), scale)
        with torch.no_grad():
            error = (student(x_t, t, words, w) - guided(w)).pow(2).mean()
            before = (teacher(x_t, t, words) - guided(w)).pow(2).mean()  # the untrained student: the conditional model
        assert error < 0.03 * before, (scale, float(error), float(before))


@pytest.mark.slow
def test_distill_cli_runs_its_rounds_resumes_and_writes_a_diffusers_student(tmp_path, capsys):
    from playground.cli import main
    from playground.services.image_sampling import final_images

    teacher = make_tiny_prompt_checkpoint(tmp_path / "teacher")
    out = tmp_path / "run"
    args = ["distill", "--teacher", str(teacher), "--rounds", "2,1", "--steps-per-round", "3", "--batch-size", "4",
            "--preview-every", "3", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "a 2-step student from a 4-step teacher" in printed and "a 1-step student" in printed
    assert UNet2DModel.from_pretrained(out / "checkpoint", subfolder="unet").config.class_embed_type == "identity"
    student = load_checkpoint(out / "checkpoint")
    assert student.unet.guidance is not None
    info = json.loads((out / "checkpoint" / "playground.json").read_text())
    assert info["distilled"]["student_steps"] == 1 and info["distilled"]["rounds"] == [2, 1]
    calls = []
    network = student.unet.forward
    student.unet.forward = lambda *a, **k: calls.append(1) or network(*a, **k)
    pictures = final_images(student, "ddim", 1, 2, seed=0, prompt="cat", guidance=4.0)
    assert pictures.shape == (2, 3, 8, 8) and len(calls) == 1  # one call a step, the guidance inside it
    assert main(args) == 0  # finished rounds are skipped
    assert "round: a 1-step student" in capsys.readouterr().out
    for bad, sentence in ((["--rounds", "8,3"], "halves the steps"), (["--rounds", "x"], "whole numbers")):
        assert main(args[:3] + bad + args[5:]) == 2
        assert sentence in capsys.readouterr().err


def test_the_halving_view_starts_each_step_on_the_teachers_own_path(tmp_path):
    from playground.cli import main
    from playground.services.distillation_views import halving
    from playground.services.image_sampling import final_images

    teacher_folder = make_tiny_prompt_checkpoint(tmp_path / "teacher")
    assert main(["distill", "--teacher", str(teacher_folder), "--rounds", "2", "--steps-per-round", "2",
                 "--batch-size", "4", "--out", str(tmp_path / "run")]) == 0
    student, teacher = load_checkpoint(tmp_path / "run" / "checkpoint"), load_checkpoint(teacher_folder)
    grid, mids = student_grid(teacher.schedule.num_timesteps, 2)
    first, last = (halving(student, teacher, "cat", 4.0, seed=3, count=2, step=k) for k in (1, 2))
    assert (first.t, first.t_mid, first.t_next) == (grid[0], mids[0], grid[1])
    assert (last.t, last.t_mid, last.t_next) == (grid[1], mids[1], -1)
    # the last step's x_t is where the teacher's first two steps left it, so its two steps end the teacher's whole run
    whole_run = final_images(teacher, "ddim", 4, 2, 3, prompt="cat", guidance=4.0)
    torch.testing.assert_close(last.teacher_next.clamp(-1, 1), whole_run)
    torch.testing.assert_close(last.x_t, first.teacher_next)
    with pytest.raises(ValueError, match="choose a step from 1 to 2"):
        halving(student, teacher, "cat", 4.0, step=3)
