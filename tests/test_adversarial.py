"""The adversarial stage: its chain is the app's DDIM with gradients, R1 is what Mescheder et al. define, a generator
learns the data against the discriminator, the anchors hold the student to where it was, and the command line
runs the stage, resumes it and writes a diffusers student."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from diffusers import UNet2DModel

from playground.checkpoints import load_checkpoint
from playground.diffusion import NoiseSchedule, make_sampler
from playground.diffusion.adversarial import (
    AdversarialConfig,
    Discriminator,
    ddim_chain,
    discriminator_loss,
    generator_loss,
    refine,
)
from playground.diffusion.samplers import iter_sample
from playground.diffusion.training import new_train_state
from playground.models import PRESETS, build_unet, model_fn

from tiny_checkpoint import make_tiny_prompt_checkpoint


def test_the_chain_is_the_apps_ddim_from_the_same_noise_and_carries_gradients():
    torch.manual_seed(0)
    unet = build_unet(PRESETS["tiny"], seed=0).eval()
    network = model_fn(unet)
    schedule = NoiseSchedule.from_name("cosine", 1000)
    x_T = torch.randn(2, 3, 8, 8)
    for steps in (1, 4):
        sampler = make_sampler("ddim", schedule, steps, prediction_type="v_prediction", clip_sample=1.0)
        *_, last = iter_sample(network, sampler, x_T, None)
        chained = ddim_chain(network, schedule, x_T, steps, "v_prediction", 1.0)
        torch.testing.assert_close(chained, last.prev_sample.clamp(-1, 1))
    chained.pow(2).mean().backward()
    assert all(p.grad is not None for p in unet.parameters()) and any(p.grad.abs().sum() > 0 for p in unet.parameters())


def test_r1_is_half_gamma_times_the_squared_gradient_at_the_real_pictures():
    """For a linear critic D(x) = <w, x> + b the gradient at every picture is w: R1 adds gamma / 2 ||w||^2."""
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 1), torch.nn.Flatten(0))
    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    with_r1, without = discriminator_loss(critic, real, fake, 0.3), discriminator_loss(critic, real, fake, 0.0)
    weight = critic[1].weight
    torch.testing.assert_close(with_r1 - without, 0.15 * weight.pow(2).sum())
    logits_real, logits_fake = critic(real), critic(fake)
    torch.testing.assert_close(without, torch.nn.functional.softplus(-logits_real).mean()
                               + torch.nn.functional.softplus(logits_fake).mean())


def test_a_generator_learns_the_data_against_the_discriminator():
    """Pictures m + 0.1 z with a learnt per-pixel m, starting at -0.5, trained only through the generator loss
    against a discriminator of pictures 0.5 + 0.1 z, end near 0.5."""
    torch.manual_seed(0)
    mean = torch.full((1, 3, 8, 8), -0.5, requires_grad=True)
    critic = Discriminator(3, 8, width=8)
    gen_opt = torch.optim.Adam([mean], lr=0.01, betas=(0.0, 0.99))
    disc_opt = torch.optim.Adam(critic.parameters(), lr=2e-3, betas=(0.0, 0.99))
    generator = torch.Generator().manual_seed(0)
    for _ in range(400):
        real = 0.5 + 0.1 * torch.randn(16, 3, 8, 8, generator=generator)
        fake = mean + 0.1 * torch.randn(16, 3, 8, 8, generator=generator)
        disc_opt.zero_grad()
        discriminator_loss(critic, real, fake, 0.1).backward()
        disc_opt.step()
        gen_opt.zero_grad()
        generator_loss(critic, fake).backward()
        gen_opt.step()
    assert (mean.detach().mean() - 0.5).abs() < 0.1, float(mean.mean())


def _tiny_refinement(tmp_path, config: AdversarialConfig, prompts: list[str], stop_after: int | None = None):
    """A tiny student refined by ``config`` on 8 px noise 'pictures' with ``prompts``; returns its state, the
    discriminator's state and the reference network."""
    teacher = load_checkpoint(make_tiny_prompt_checkpoint(tmp_path / "teacher"))
    student = teacher.unet.with_guidance()
    reference = copy.deepcopy(student).eval().requires_grad_(False)
    state = new_train_state(student.train(), config)
    disc = new_train_state(Discriminator(3, 8, width=8), config)
    words = teacher.vocabulary.batch(prompts)

    def draw(generator):
        return torch.rand(len(prompts), 3, 8, 8, generator=generator) * 2 - 1, words

    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return stop_after is not None and len(calls) > stop_after

    call = lambda network: lambda x, t, ids, scale: network(x, t, ids, scale)  # noqa: E731
    refine(state, disc, call(student), call(reference), teacher.schedule, draw, config, 2, "v_prediction", 1.0,
           should_stop=should_stop)
    return state, disc, reference


def _moved(state, reference) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(state.model.parameters(), reference.parameters(), strict=True))


def test_the_student_waits_for_the_discriminator_then_moves_only_by_what_it_is_given(tmp_path):
    config = AdversarialConfig(steps=3, batch_size=4, disc_warmup=2, lr=1e-3)
    state, disc, reference = _tiny_refinement(tmp_path / "a", config, ["cat", "red", "", "dog"], stop_after=2)
    assert disc.step == 2 and state.step == 0 and not _moved(state, reference)  # the critic alone so far
    state, disc, reference = _tiny_refinement(tmp_path / "b", config, ["cat", "red", "", "dog"])
    assert disc.step == 5 and state.step == 3 and _moved(state, reference)
    # the anchors alone, from where the reference is: nothing to learn, so nothing moves
    for share in (0.0, 0.5):
        held = AdversarialConfig(steps=3, batch_size=4, disc_warmup=0, lr=1e-3, gan_weight=0.0, anchor_on_policy=share)
        state, _, reference = _tiny_refinement(tmp_path / f"c{share}", held, ["cat", "red", "", "dog"])
        assert state.step == 3 and not _moved(state, reference)


def test_on_policy_anchors_stand_where_the_references_own_ddpm_sampling_went():
    """The first ``own`` examples move to the app's DDPM sampler's state at a random one of the steps, from noise
    drawn after that step is; the others keep their noised pictures and levels."""
    from playground.diffusion.adversarial import _reference_states
    from playground.diffusion.forward import randn

    torch.manual_seed(0)
    network = model_fn(build_unet(PRESETS["tiny"], seed=0).eval())
    reference = lambda x, t, words, scale: network(x, t)  # noqa: E731
    schedule = NoiseSchedule.from_name("cosine", 1000)
    x_t, level = torch.randn(3, 3, 8, 8), torch.tensor([999, 499, 249])
    words, scale = torch.ones(3, 1, dtype=torch.long), torch.ones(3)
    for seed in range(4):
        with torch.no_grad():
            moved, levels = _reference_states(reference, schedule, x_t, level, words, scale, 2, 4, "v_prediction",
                                              torch.Generator().manual_seed(seed), 1.0)
            replay = torch.Generator().manual_seed(seed)
            stop = int(torch.randint(0, 4, (1,), generator=replay))
            noise = randn((2, 3, 8, 8), replay, x_t)
            sampler = make_sampler("ddpm", schedule, 4, prediction_type="v_prediction", clip_sample=1.0)
            states = list(iter_sample(network, sampler, noise, replay))
        torch.testing.assert_close(moved[:2], states[stop].x_t)
        assert levels[:2].tolist() == [sampler.timesteps[stop]] * 2
        assert torch.equal(moved[2:], x_t[2:]) and levels[2] == 249


@pytest.mark.slow
def test_distill_cli_runs_the_adversarial_stage_resumes_it_and_writes_a_diffusers_student(tmp_path, capsys):
    from safetensors.torch import load_file

    from playground.cli import main
    from playground.services.image_sampling import final_images

    teacher = make_tiny_prompt_checkpoint(tmp_path / "teacher")
    first = tmp_path / "first"
    assert main(["distill", "--teacher", str(teacher), "--rounds", "2", "--steps-per-round", "2", "--batch-size", "4",
                 "--preview-every", "2", "--out", str(first)]) == 0
    out = tmp_path / "sharp"
    args = ["distill", "--teacher", str(teacher), "--from-student", str(first / "checkpoint"), "--gan-steps", "3",
            "--gan-batch-size", "2", "--preview-every", "3", "--out", str(out)]
    capsys.readouterr()
    assert main(args + ["--gan-lr", "1e-3"]) == 0
    printed = capsys.readouterr().out
    assert "adversarial stage: the 2-step student" in printed and "round:" not in printed
    info = json.loads((out / "checkpoint" / "playground.json").read_text())
    adversarial = info["distilled"]["adversarial"]
    assert info["steps"] == 3 and adversarial["steps"] == 3 and adversarial["student_steps_before"] == 2
    assert info["distilled"]["student_steps"] == 2 and info["distilled"]["rounds"] == [2]
    assert "sharpened against a discriminator" in (out / "checkpoint" / "README.md").read_text()
    stage = out / "rounds" / "002-steps-adversarial" / "checkpoint" / "training" / "state.safetensors"
    assert any(key.startswith("disc/model.") for key in load_file(str(stage)))  # the discriminator resumes too
    assert UNet2DModel.from_pretrained(out / "checkpoint", subfolder="unet").config.class_embed_type == "identity"
    student, before = load_checkpoint(out / "checkpoint"), load_checkpoint(first / "checkpoint")
    assert any(not torch.equal(a, b) for a, b in zip(student.unet.parameters(), before.unet.parameters(), strict=True))
    assert final_images(student, "ddim", 2, 2, seed=0).shape == (2, 3, 8, 8)
    longer = args[:6] + ["5"] + args[7:]
    assert main(longer) == 0  # resumed: 2 more steps from the saved 3
    assert json.loads((out / "checkpoint" / "playground.json").read_text())["steps"] == 5
    assert main(args + ["--gan-weight", "-1"]) == 2
    assert "--gan-weight" in capsys.readouterr().err
