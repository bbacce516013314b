"""Distillation: the two-step target, the guidance input learned, the student saved as a diffusers folder and
sampled in one call a step, and the command line's rounds; distribution matching's gradient, that it moves a
generator onto the real distribution, and its backward simulation."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import UNet2DModel

from playground.checkpoints import load_checkpoint
from playground.diffusion import NoiseSchedule, make_sampler
from playground.diffusion.distillation import (
    DistillConfig,
    distribution_matching_loss,
    multi_step_target,
    on_policy_loss,
    predicted_x0,
    student_grid,
    student_rollout,
    teacher_paths,
    two_step_target,
)
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


@pytest.mark.parametrize("substeps", [3, 4])
def test_the_target_of_k_teacher_steps_is_the_x0_whose_one_step_lands_where_they_do(substeps):
    torch.manual_seed(0)
    teacher = build_unet(PRESETS["tiny"], seed=0).eval()
    schedule = NoiseSchedule.from_name("cosine", 1000)
    paths = teacher_paths(1000, 2, substeps)
    fine = make_sampler("ddim", schedule, 2 * substeps, prediction_type="v_prediction")
    assert [path[:-1] for path in paths] == [fine.timesteps[:substeps], fine.timesteps[substeps:]]
    assert paths[0][-1] == paths[1][0] and paths[1][-1] == -1  # each student step ends where the next begins
    grid, mids = student_grid(1000, 2)
    assert teacher_paths(1000, 2) == [[grid[0], mids[0], grid[1]], [grid[1], mids[1], -1]]  # k = 2: progressive
    network = model_fn(teacher)
    single = make_sampler("ddim", schedule, 2, prediction_type="sample")
    with torch.no_grad():
        for path in paths:
            x_t = torch.randn(3, 3, 8, 8)
            x = x_t
            for t in path[:-1]:  # the teacher's own sampler, k steps
                x = fine.step(network(x, torch.full((3,), t)), t, x).prev_sample
            target = multi_step_target(schedule, network, x_t, [torch.full((3,), t) for t in path], "v_prediction")
            landed = single.step(target, path[0], x_t).prev_sample
            torch.testing.assert_close(landed, x, atol=2e-4, rtol=1e-4)


def gaussian_denoiser(schedule: NoiseSchedule, mean: torch.Tensor, std: torch.Tensor):
    """The exact x_0 guess E[x_0 | x_t] for data x_0 ~ N(mean, std^2 I)."""
    def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        abar = schedule.alphas_cumprod[t].view(-1, 1)
        alpha, var = abar.sqrt(), 1 - abar
        return mean + alpha * std ** 2 / (abar * std ** 2 + var) * (x_t - alpha * mean)
    return denoise


def test_distribution_matching_moves_each_picture_by_fake_minus_real_over_its_distance():
    schedule = NoiseSchedule.from_name("cosine", 1000)
    x0 = torch.randn(4, 3, 8, 8, requires_grad=True)
    real, fake = (lambda x, t: x * 0.5), (lambda x, t: x * 0.5 + 0.1)
    generator = torch.Generator().manual_seed(3)
    distribution_matching_loss(x0, real, fake, schedule, "sample", generator).backward()
    # replay the same draws: t, then the noise
    replay = torch.Generator().manual_seed(3)
    t = torch.randint(20, 980, (4,), generator=replay)
    abar = schedule.alphas_cumprod[t].float().view(-1, 1, 1, 1)
    x_t = abar.sqrt() * x0.detach() + (1 - abar).sqrt() * torch.randn(x0.shape, generator=replay)
    distance = (x0.detach() - real(x_t, t)).abs().flatten(1).mean(1).view(-1, 1, 1, 1)
    torch.testing.assert_close(x0.grad, (fake(x_t, t) - real(x_t, t)) / distance / x0.numel())
    same = torch.randn(2, 3, 4, 4, requires_grad=True)
    distribution_matching_loss(same, real, real, schedule, "sample", generator).backward()
    assert same.grad.abs().max() == 0  # a generator that already draws the real distribution is left alone


def test_distribution_matching_pulls_a_generator_onto_the_real_distribution():
    """A Gaussian generator x = m + c z, trained only through the matching loss against the exact denoiser of
    N(2, 0.5^2) while its fake denoiser is its own exact one, ends on N(2, 0.5^2): the mean and the spread."""
    schedule = NoiseSchedule.from_name("cosine", 1000)
    torch.manual_seed(0)
    mean, log_std = torch.zeros(16, requires_grad=True), torch.zeros(1, requires_grad=True)
    real = gaussian_denoiser(schedule, torch.tensor(2.0), torch.tensor(0.5))
    optimizer = torch.optim.Adam([mean, log_std], lr=0.02)
    generator = torch.Generator().manual_seed(0)
    for _ in range(600):
        x0 = mean + log_std.exp() * torch.randn(256, 16, generator=generator)
        fake = gaussian_denoiser(schedule, mean.detach(), log_std.detach().exp())
        loss = distribution_matching_loss(x0, real, fake, schedule, "sample", generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert (mean - 2).abs().max() < 0.1, mean
    assert abs(log_std.exp().item() - 0.5) < 0.05, log_std.exp()


def test_the_backward_simulation_is_the_students_own_ddpm_sampling(tmp_path):
    """Run to its end, the rollout is exactly the app's DDPM sampler on the student's steps from the same noise; run
    to step k, it is that sampler's x_t at step k."""
    from playground.diffusion.samplers import iter_sample

    torch.manual_seed(0)
    network = model_fn(build_unet(PRESETS["tiny"], seed=0).eval())
    schedule = NoiseSchedule.from_name("cosine", 1000)
    x_T = torch.randn(2, 3, 8, 8)
    steps = list(iter_sample(network, make_sampler("ddpm", schedule, 4, prediction_type="v_prediction",
                                                   clip_sample=1.0), x_T, torch.Generator().manual_seed(5)))
    for stop in (2, 4):
        rolled = student_rollout(network, schedule, x_T, 4, stop, "v_prediction", torch.Generator().manual_seed(5),
                                   1.0)
        expected = steps[stop].x_t if stop < 4 else steps[-1].prev_sample
        torch.testing.assert_close(rolled, expected)


def test_on_policy_regression_starts_where_the_students_own_ddim_sampling_went():
    """The empty prompt's on-policy loss: x_t is the app's DDIM sampler's state after ``stop`` of the student's steps
    from the same noise, the target the teacher's two DDIM steps from there, and for a v-predicting student the
    squared v error equals the x_0 error over sigma_t^2 (v = alpha eps - sigma x_0). A teacher that is the student
    itself, one step across one, leaves nothing to learn."""
    from playground.diffusion.samplers import iter_sample

    torch.manual_seed(0)
    student_net = model_fn(build_unet(PRESETS["tiny"], seed=0).eval())
    teacher_net = model_fn(build_unet(PRESETS["tiny"], seed=1).eval())
    student = lambda x_t, t, words, w: student_net(x_t, t)  # noqa: E731
    teacher = lambda x_t, t, words, w: teacher_net(x_t, t)  # noqa: E731
    schedule = NoiseSchedule.from_name("cosine", 1000)
    x_T, none = torch.randn(2, 3, 8, 8), torch.zeros(2, 1, dtype=torch.long)
    config = DistillConfig(student_steps=4)
    ddim = list(iter_sample(student_net, make_sampler("ddim", schedule, 4, prediction_type="v_prediction",
                                                      clip_sample=1.0), x_T, None))
    grid, midpoints = student_grid(1000, 4)
    levels = grid + [-1]
    for stop in range(4):
        x_t, t = ddim[stop].x_t, torch.full((2,), grid[stop])
        with torch.no_grad():
            loss = on_policy_loss(student, teacher, schedule, x_T, none, torch.ones(2), stop, config,
                                  "v_prediction", 1.0)
            target = two_step_target(schedule, teacher_net, x_t, t, torch.full((2,), midpoints[stop]),
                                     torch.full((2,), levels[stop + 1]), "v_prediction", 1.0)
            guess = predicted_x0(schedule, student_net(x_t, t), x_t, t, "v_prediction")
            sigma2 = 1 - schedule.alphas_cumprod[grid[stop]]
            expected = ((guess - target).pow(2).flatten(1).mean(1) / sigma2).mean()
            itself = on_policy_loss(student, student, schedule, x_T, none, torch.ones(2), stop, config,
                                    "v_prediction", None, substeps=1)
        torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-6)
        assert loss > 1e-3 and itself < 1e-8 * loss, (stop, float(loss), float(itself))


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


def test_matching_moves_prompted_examples_and_keeps_the_progressive_target_for_the_empty_prompt(tmp_path,
                                                                                                 monkeypatch):
    from playground.diffusion import distillation
    from playground.diffusion.training import new_train_state
    from playground.services.distillation import guided_teacher, student_call

    teacher = load_checkpoint(make_tiny_prompt_checkpoint(tmp_path / "teacher"))
    config = distillation.DistillConfig(student_steps=2, steps=1, batch_size=5, fake_warmup=2, empty_substeps=4,
                                        fake_updates=2)
    state = new_train_state(teacher.unet.with_guidance(), config)
    fake = new_train_state(teacher.unet.with_guidance(), config)
    words = teacher.vocabulary.batch(["cat", "", "red heart", "", "dog"])
    seen = {}
    for name in ("distribution_matching_loss", "distillation_loss"):
        original = getattr(distillation, name)

        def spy(*args, name=name, original=original, **kwargs):
            seen[name] = args[0] if name == "distribution_matching_loss" else args[4]  # its pictures / word ids
            seen["substeps"] = args[10] if name == "distillation_loss" else seen.get("substeps")
            return original(*args, **kwargs)
        monkeypatch.setattr(distillation, name, spy)
    before = [p.detach().clone() for p in state.model.parameters()]
    distillation.match(state, fake, student_call(state.model), student_call(fake.model), guided_teacher(teacher.unet),
                       teacher.schedule, lambda generator: (torch.randn(5, 3, 8, 8, generator=generator), words),
                       config, teacher.prediction_type, 1.0)
    assert len(seen["distribution_matching_loss"]) == 3  # "cat", "red heart", "dog"
    assert seen["distillation_loss"].eq(0).all() and len(seen["distillation_loss"]) == 2  # the two empty prompts
    assert seen["substeps"] == 4  # the teacher's finer path for the empty prompt
    assert (state.step, fake.step) == (1, 4)  # the fresh fake learned alone for two steps first, then two per step
    assert any(not torch.equal(a, b) for a, b in zip(before, state.model.parameters(), strict=True))


def test_matching_splits_the_empty_prompt_between_noised_pictures_and_the_students_own_states(tmp_path,
                                                                                               monkeypatch):
    from playground.diffusion import distillation
    from playground.diffusion.training import new_train_state
    from playground.services.distillation import guided_teacher, student_call

    teacher = load_checkpoint(make_tiny_prompt_checkpoint(tmp_path / "teacher"))
    words = teacher.vocabulary.batch(["", "cat", "", "", ""])
    for share, split in ((0.0, (4, 0)), (0.5, (2, 2)), (1.0, (0, 4))):
        config = distillation.DistillConfig(student_steps=2, steps=1, batch_size=5, empty_on_policy=share)
        state = new_train_state(teacher.unet.with_guidance(), config)
        fake = new_train_state(teacher.unet.with_guidance(), config)
        seen = {"distillation_loss": 0, "on_policy_loss": 0}
        for name in ("distillation_loss", "on_policy_loss"):
            original = getattr(distillation, name)

            def spy(*args, name=name, original=original, seen=seen, **kwargs):
                assert args[4].eq(0).all()  # its word ids: only the empty prompt's
                seen[name] = len(args[4])
                return original(*args, **kwargs)
            monkeypatch.setattr(distillation, name, spy)
        distillation.match(state, fake, student_call(state.model), student_call(fake.model),
                           guided_teacher(teacher.unet), teacher.schedule,
                           lambda generator: (torch.randn(5, 3, 8, 8, generator=generator), words), config,
                           teacher.prediction_type, 1.0)
        monkeypatch.undo()
        assert (seen["distillation_loss"], seen["on_policy_loss"]) == split, share


def test_matching_adds_empty_first_examples_at_the_students_first_step_from_pure_noise(tmp_path, monkeypatch):
    from playground.diffusion import distillation
    from playground.diffusion.training import new_train_state
    from playground.services.distillation import guided_teacher, student_call

    teacher = load_checkpoint(make_tiny_prompt_checkpoint(tmp_path / "teacher"))
    words = teacher.vocabulary.batch(["", "cat", "", "", ""])
    config = distillation.DistillConfig(student_steps=2, steps=1, batch_size=5, empty_first=3)
    state = new_train_state(teacher.unet.with_guidance(), config)
    fake = new_train_state(teacher.unet.with_guidance(), config)
    calls = []
    original = distillation.on_policy_loss

    def spy(student, teacher_fn, schedule, x_T, words, guidance, stop, *args):
        calls.append((x_T.clone(), words.clone(), guidance.clone(), stop))
        return original(student, teacher_fn, schedule, x_T, words, guidance, stop, *args)
    monkeypatch.setattr(distillation, "on_policy_loss", spy)
    distillation.match(state, fake, student_call(state.model), student_call(fake.model), guided_teacher(teacher.unet),
                       teacher.schedule, lambda generator: (torch.rand(5, 3, 8, 8, generator=generator), words),
                       config, teacher.prediction_type, 1.0)
    assert len(calls) == 1  # none of the batch's own empty examples (empty_on_policy 0), only the extra ones
    x_T, ids, guidance, stop = calls[0]
    assert stop == 0 and x_T.shape == (3, 3, 8, 8) and ids.shape == (3, words.shape[1]) and not ids.any()
    assert x_T.min() < 0 and 0.5 < float(x_T.std()) < 1.5  # pure noise, not the batch's pictures (in [0, 1] here)
    assert ((guidance >= config.guidance_min) & (guidance <= config.guidance_max)).all()


def test_matching_matches_the_empty_prompt_too_only_when_asked(tmp_path, monkeypatch):
    from playground.diffusion import distillation
    from playground.diffusion.training import new_train_state
    from playground.services.distillation import guided_teacher, student_call

    teacher = load_checkpoint(make_tiny_prompt_checkpoint(tmp_path / "teacher"))
    words = teacher.vocabulary.batch(["", "cat", "", "heart", ""])
    for weight, sizes in ((0.0, [2]), (0.5, [2, 3])):
        config = distillation.DistillConfig(student_steps=2, steps=1, batch_size=5, empty_match=weight)
        state = new_train_state(teacher.unet.with_guidance(), config)
        fake = new_train_state(teacher.unet.with_guidance(), config)
        seen = []
        original = distillation.distribution_matching_loss

        def spy(x0, real, fake_fn, *args, seen=seen, original=original, **kwargs):
            seen.append(len(x0))
            return original(x0, real, fake_fn, *args, **kwargs)
        monkeypatch.setattr(distillation, "distribution_matching_loss", spy)
        distillation.match(state, fake, student_call(state.model), student_call(fake.model),
                           guided_teacher(teacher.unet), teacher.schedule,
                           lambda generator: (torch.randn(5, 3, 8, 8, generator=generator), words), config,
                           teacher.prediction_type, 1.0)
        monkeypatch.undo()
        assert seen == sizes, weight  # the two prompted examples, then (only with a weight) the three empty ones


def test_the_guided_teacher_on_the_empty_prompt_is_its_plain_output(tmp_path):
    from playground.diffusion.guidance import classifier_free_guidance
    from playground.services.distillation import guided_teacher

    teacher = load_checkpoint(make_tiny_prompt_checkpoint(tmp_path / "teacher"))
    x, t = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([10, 500, 900])
    empty, scale = teacher.vocabulary.batch(["", "", ""]), torch.tensor([1.0, 5.0, 10.0])
    with torch.no_grad():
        both = teacher.unet(torch.cat([x, x]), torch.cat([t, t]), torch.cat([empty, empty])).chunk(2)
        expected = classifier_free_guidance(both[1], both[0], scale.view(-1, 1, 1, 1))
        torch.testing.assert_close(guided_teacher(teacher.unet)(x, t, empty, scale), expected, atol=1e-5, rtol=1e-5)
        prompted = teacher.vocabulary.batch(["cat", "", ""])  # one word in the batch: both halves, as before
        halves = teacher.unet(torch.cat([x, x]), torch.cat([t, t]), torch.cat([prompted, empty])).chunk(2)
        torch.testing.assert_close(guided_teacher(teacher.unet)(x, t, prompted, scale),
                                   classifier_free_guidance(halves[1], halves[0], scale.view(-1, 1, 1, 1)))


@pytest.mark.slow
def test_distill_cli_matches_a_finished_student_resumes_and_records_it(tmp_path, capsys):
    from safetensors.torch import load_file

    from playground.cli import main

    teacher = make_tiny_prompt_checkpoint(tmp_path / "teacher")
    first = tmp_path / "first"
    assert main(["distill", "--teacher", str(teacher), "--rounds", "2", "--steps-per-round", "2", "--batch-size", "4",
                 "--preview-every", "2", "--out", str(first)]) == 0
    out = tmp_path / "matched"
    args = ["distill", "--teacher", str(teacher), "--from-student", str(first / "checkpoint"), "--match-steps", "3",
            "--batch-size", "4", "--preview-every", "3", "--out", str(out)]
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "distribution matching: the 2-step student" in printed and "round:" not in printed  # no rounds run
    info = json.loads((out / "checkpoint" / "playground.json").read_text())
    assert info["distilled"]["matched"]["steps"] == 3 and info["distilled"]["student_steps"] == 2
    assert info["distilled"]["rounds"] == [2]  # the student's own rounds, not the command's default
    assert "distribution matching" in (out / "checkpoint" / "README.md").read_text()
    stage = out / "rounds" / "002-steps-matched" / "checkpoint" / "training" / "state.safetensors"
    assert any(key.startswith("fake/model.") for key in load_file(str(stage)))  # the fake network resumes too
    student, before = load_checkpoint(out / "checkpoint"), load_checkpoint(first / "checkpoint")
    moved = [not torch.equal(a, b) for a, b in zip(student.unet.parameters(), before.unet.parameters(), strict=True)]
    assert any(moved)
    longer = args[:6] + ["5"] + args[7:] + ["--empty-on-policy", "0.5", "--empty-first", "2", "--empty-match", "0.5"]
    assert main(longer) == 0  # resumed: 2 more steps from the saved 3
    info = json.loads((out / "checkpoint" / "playground.json").read_text())
    assert info["steps"] == 5 and info["distilled"]["matched"]["empty_on_policy"] == 0.5
    assert info["distilled"]["matched"]["empty_first"] == 2 and info["distilled"]["matched"]["empty_match"] == 0.5
    card = (out / "checkpoint" / "README.md").read_text()
    assert "50% of them from where its own DDIM sampling went" in card and "2 more in each batch at its first" in card
    assert "matched too at weight 0.5" in card
    assert main(args[:5] + args[7:]) == 2
    assert "give --match-steps or --gan-steps too" in capsys.readouterr().err
    assert main(["distill", "--teacher", str(teacher), "--from-student", str(teacher), "--match-steps", "2",
                 "--out", str(tmp_path / "x")]) == 2
    assert "not a distilled student" in capsys.readouterr().err


def test_distill_cli_refuses_matching_settings_out_of_range_in_a_sentence(tmp_path, capsys):
    from playground.cli import main

    for flag, value, sentence in (("--empty-on-policy", "1.5", "--empty-on-policy a share from 0 to 1"),
                                  ("--fake-updates", "0", "--fake-updates 1 or more"),
                                  ("--empty-substeps", "17", "--empty-substeps must be from 1 to 16"),
                                  ("--empty-match", "-1", "--empty-match must be 0 or more")):
        assert main(["distill", "--teacher", str(tmp_path / "none"), "--from-student", str(tmp_path / "none"),
                     "--match-steps", "2", flag, value, "--out", str(tmp_path / "x")]) == 2
        error = capsys.readouterr().err
        assert sentence in error and "Traceback" not in error
    assert not (tmp_path / "x").exists()  # refused before any work


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


def test_spread_is_the_mean_rms_distance_between_a_prompts_samples():
    from playground.services.sample_quality import spread

    one = torch.rand(3, 8, 8) * 2 - 1
    assert spread(one.expand(5, 3, 8, 8)) == pytest.approx(0.0, abs=1e-6)  # one picture, drawn five times
    pair = torch.stack([torch.ones(3, 8, 8), -torch.ones(3, 8, 8)])
    assert spread(pair) == pytest.approx(2.0)
    x = torch.randn(6, 3, 4, 4)
    by_hand = [float((x[i] - x[j]).pow(2).mean().sqrt()) for i in range(6) for j in range(6) if i != j]
    assert spread(x) == pytest.approx(sum(by_hand) / len(by_hand), rel=1e-5)


def test_matching_weighs_the_empty_prompts_regression_by_empty_weight(tmp_path, monkeypatch):
    from playground.diffusion import distillation
    from playground.diffusion.training import new_train_state
    from playground.services.distillation import guided_teacher, student_call

    teacher = load_checkpoint(make_tiny_prompt_checkpoint(tmp_path / "teacher"))
    words = teacher.vocabulary.batch(["", "", ""])
    losses, current = {}, {}
    original = distillation.optimizer_step

    def spy(state, loss, *args, **kwargs):
        if state is current["student"]:
            losses[current["weight"]] = float(loss.detach())
        return original(state, loss, *args, **kwargs)
    monkeypatch.setattr(distillation, "optimizer_step", spy)
    for weight in (1.0, 3.0):
        config = distillation.DistillConfig(student_steps=2, steps=1, batch_size=3, empty_weight=weight)
        torch.manual_seed(0)
        student_state = new_train_state(teacher.unet.with_guidance(), config)
        current.update(student=student_state, weight=weight)
        fake = new_train_state(teacher.unet.with_guidance(), config)
        distillation.match(student_state, fake, student_call(student_state.model), student_call(fake.model),
                           guided_teacher(teacher.unet), teacher.schedule,
                           lambda generator: (torch.randn(3, 3, 8, 8, generator=generator), words),
                           config, teacher.prediction_type, 1.0)
    assert losses[1.0] > 0
    assert losses[3.0] == pytest.approx(3 * losses[1.0], rel=1e-5)  # the same draws, the regression weighed 3x
