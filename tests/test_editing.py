"""Editing: SDEdit's start and RePaint's walk and step, proved equal to diffusers; the known region kept exactly; the
Edit service, the CLI and the refusals."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDIMScheduler, RePaintScheduler

from playground.diffusion import NoiseSchedule, make_sampler
from playground.diffusion.editing import (
    iter_repaint,
    iter_sdedit,
    renoise,
    repaint_step,
    repaint_timesteps,
    sdedit_start_index,
    steps_down,
)
from playground.diffusion.samplers import split_prediction


@pytest.mark.parametrize("steps", [1, 7, 25, 50, 1000])
@pytest.mark.parametrize("strength", [0.05, 0.2, 0.3, 0.5, 0.75, 0.99, 1.0])
def test_sdedit_starts_where_diffusers_img2img_starts(steps, strength):
    # diffusers' StableDiffusionImg2ImgPipeline.get_timesteps, on a scheduler with these steps
    scheduler = DDIMScheduler(num_train_timesteps=1000)
    scheduler.set_timesteps(steps)
    init_timestep = min(int(steps * strength), steps)
    t_start = max(steps - init_timestep, 0)
    theirs = scheduler.timesteps[t_start * scheduler.order:]
    start = sdedit_start_index(steps, strength)
    ours = make_sampler("ddim", NoiseSchedule.from_name("linear", 1000), steps, timestep_spacing="leading").timesteps
    if len(theirs):
        assert ours[start:] == theirs.tolist()
    else:  # a strength too small for one step: diffusers runs none; we run the last one
        assert start == steps - 1


@pytest.mark.parametrize("steps, jump_length, resample", [(250, 10, 10), (50, 5, 4), (100, 10, 1), (20, 3, 2),
                                                          (7, 10, 3), (1000, 10, 10)])
def test_repaint_walk_equals_diffusers(steps, jump_length, resample):
    scheduler = RePaintScheduler(num_train_timesteps=1000)
    scheduler.set_timesteps(steps, jump_length, resample)
    assert repaint_timesteps(1000, steps, jump_length, resample) == scheduler.timesteps.tolist()


def test_the_papers_walk_takes_about_2400_network_calls():
    walk = repaint_timesteps(1000, 250, 10, 10)
    assert 2400 <= len(steps_down(walk)) <= 2500


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("t", [999, 500, 20, 0])
def test_repaint_step_equals_diffusers(prediction_type, t):
    """Same inputs and noise: our step (DDIM, eta 0, no clipping, as diffusers' RePaintPipeline runs by default) equals
    RePaintScheduler.step on the eps our prediction implies; diffusers' mask is 1 where the picture is kept."""
    steps = 100
    schedule = NoiseSchedule.from_name("linear", 1000)
    sampler = make_sampler("ddim", schedule, steps, prediction_type=prediction_type, timestep_spacing="leading")
    theirs = RePaintScheduler(num_train_timesteps=1000, clip_sample=False, eta=0.0)
    theirs.set_timesteps(steps, 10, 10)
    theirs.alphas_cumprod = schedule.alphas_cumprod.clone()  # the same float64 abar: an x_0 model's eps at t = 0
    # divides by sqrt(1 - abar) = 0.01, which float32 rounding would show
    t = sampler.timesteps[min(range(steps), key=lambda i: abs(sampler.timesteps[i] - t))]
    g = torch.Generator().manual_seed(0)
    sample, output, known = (torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(3))
    mask = (torch.rand(2, 1, 8, 8, generator=g) > 0.5).double()  # 1: repaint
    ours = repaint_step(sampler, output, t, sample, known, mask, torch.Generator().manual_seed(7))
    _, eps = split_prediction(output, sample, float(schedule.alphas_cumprod[t]), prediction_type)
    expected = theirs.step(eps, t, sample, known, 1 - mask, torch.Generator().manual_seed(7))
    torch.testing.assert_close(ours.prev_sample, expected.prev_sample, rtol=1e-10, atol=1e-10)
    repainted = mask.bool().expand_as(sample)
    torch.testing.assert_close(ours.pred_original_sample[repainted], expected.pred_original_sample[repainted],
                               rtol=1e-10, atol=1e-10)


def test_renoise_has_the_forward_processs_law():
    """A climb from s to t gives x_t ~ N(sqrt(abar_t / abar_s) x_s, 1 - abar_t / abar_s): what t - s Markov steps
    give, in one draw."""
    schedule = NoiseSchedule.from_name("cosine", 1000)
    x = torch.full((200_000, 1), 0.8)
    climbed = renoise(schedule, x, 300, 340, torch.Generator().manual_seed(0))
    ratio = float(schedule.alphas_cumprod[340] / schedule.alphas_cumprod[300])
    assert climbed.mean().item() == pytest.approx(math.sqrt(ratio) * 0.8, abs=3e-3)
    assert climbed.var().item() == pytest.approx(1 - ratio, rel=0.02)
    from_clean = renoise(schedule, x, -1, 0, torch.Generator().manual_seed(1))
    assert from_clean.mean().item() == pytest.approx(float(schedule.sqrt_alphas_cumprod[0]) * 0.8, abs=1e-3)


def test_repaint_keeps_the_known_region_exactly_and_calls_the_model_once_per_step_down():
    schedule = NoiseSchedule.from_name("cosine", 1000)
    sampler = make_sampler("ddpm", schedule, 20, prediction_type="epsilon", timestep_spacing="leading",
                           clip_sample=1.0)
    known = torch.rand(2, 3, 8, 8) * 2 - 1
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, :4] = 1  # repaint the left half
    calls = []

    def model(x_t, t):
        calls.append(int(t[0]))
        return torch.zeros_like(x_t)  # eps = 0: the model guesses x_0 = x_t / sqrt(abar)

    walk = repaint_timesteps(1000, 20, 5, 3)
    moves = list(iter_repaint(model, sampler, known, mask, torch.randn(2, 3, 8, 8), walk,
                              torch.Generator().manual_seed(0)))
    result = moves[-1].sample
    assert torch.equal(result[..., 4:], known[..., 4:])  # the known half is the picture itself
    assert not torch.allclose(result[..., :4], known[..., :4])
    assert moves[-1].t == -1 and moves[-1].model_calls == len(calls)
    assert calls == steps_down(walk)
    assert [m.step is not None for m in moves] == [t < before for before, t in zip([walk[0] + 1, *walk[:-1]], walk,
                                                                                  strict=True)]


def test_sdedit_at_full_strength_is_sampling_from_the_noisiest_step_and_low_strength_stays_close():
    schedule = NoiseSchedule.from_name("cosine", 1000)
    x0 = torch.rand(4, 3, 8, 8) * 2 - 1

    def model(x_t, t):  # a model that knows the answer: v for x_0 exactly
        abar = schedule.alphas_cumprod[t].float().view(-1, 1, 1, 1)
        eps = (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()
        return abar.sqrt() * eps - (1 - abar).sqrt() * x0

    def edit(strength):
        sampler = make_sampler("ddim", schedule, 20, prediction_type="v_prediction")
        steps = list(iter_sdedit(model, sampler, x0, strength, torch.Generator().manual_seed(3)))
        return steps

    full = edit(1.0)
    assert len(full) == 20 and full[0].index == 0 and full[0].t == 999
    low = edit(0.2)
    assert len(low) == 4 and low[0].index == 16  # the last int(0.2 * 20) steps
    torch.testing.assert_close(low[-1].prev_sample, x0, atol=1e-4, rtol=1e-4)


# --- the service, the command line and the app ---

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_checkpoint import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("edit") / "tiny")


@pytest.fixture()
def files(tmp_path):
    from PIL import Image

    from image_files import photo

    picture = tmp_path / "picture.png"
    photo(120, 80).save(picture)  # wide: centre-cropped to its middle 80 x 80
    right = Image.new("L", (120, 80), 0)
    right.paste(255, (60, 0, 120, 80))  # the right half of the picture, which is the right half of its square
    right.save(tmp_path / "right.png")
    Image.new("L", (120, 80), 0).save(tmp_path / "empty.png")
    Image.new("L", (30, 20), 0).save(tmp_path / "small.png")
    small = Image.open(tmp_path / "small.png")
    small.paste(255, (15, 0, 30, 20))
    small.save(tmp_path / "small.png")  # the same mask at a quarter of the size
    return {"picture": picture, "right": tmp_path / "right.png", "empty": tmp_path / "empty.png",
            "small": tmp_path / "small.png"}


def test_masks_are_cropped_as_the_picture_and_scaled_when_smaller(files):
    from playground.services.editing import load_mask

    mask = load_mask(files["right"], files["picture"], 8)
    assert mask.shape == (1, 1, 8, 8) and mask[..., :, 4:].eq(1).all() and mask[..., :, :4].eq(0).all()
    assert torch.equal(load_mask(files["small"], files["picture"], 8), mask)
    with pytest.raises(ValueError, match="The mask is empty"):
        load_mask(files["empty"], files["picture"], 8)


@pytest.mark.slow
def test_a_latent_models_repaint_keeps_the_known_pixels_exactly(tmp_path, files):
    from playground.services.editing import EditRequest, iter_edit, load_mask, load_picture
    from playground.services.model_catalog import get_checkpoint

    from tiny_checkpoint import make_tiny_latent_checkpoint

    checkpoint = get_checkpoint(make_tiny_latent_checkpoint(tmp_path / "latent"))
    picture = load_picture(files["picture"], checkpoint)
    mask = load_mask(files["right"], files["picture"], checkpoint.resolution)
    request = EditRequest(str(checkpoint.path), "", "mask", "ddpm", 10, 2, seed=0, jump_length=2, resample=2)
    *_, last = iter_edit(checkpoint, picture, mask, request, show_every_s=0, animate=False)
    kept = (1 - mask).bool().expand_as(last.result)
    assert torch.equal(last.result[kept], picture.expand_as(last.result)[kept])  # pasted back, not decoded
    assert last.result.shape == (2, 3, checkpoint.resolution, checkpoint.resolution)


def test_cli_edits_with_strength_and_with_a_mask(tiny, files, tmp_path, capsys):
    from PIL import Image

    from playground.cli import main

    out = tmp_path / "sdedit"
    assert main(["edit", str(files["picture"]), "--checkpoint", str(tiny), "--strength", "0.5", "--steps", "10",
                 "--n", "3", "--out", str(out), "--gif", str(tmp_path / "a.gif")]) == 0
    printed = capsys.readouterr().out
    assert "SDEdit at strength 0.5" in printed and "5 network calls" in printed
    assert Image.open(out / "sample_002.png").size == (8, 8) and (out / "grid.png").is_file()
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 6  # every step, and the result
    out = tmp_path / "repaint"
    assert main(["edit", str(files["picture"]), "--checkpoint", str(tiny), "--mask", str(files["right"]),
                 "--steps", "10", "--jump-length", "2", "--resample", "2", "--n", "2", "--out", str(out)]) == 0
    assert "RePaint" in capsys.readouterr().out
    for args, sentence in ((["--mask", str(files["empty"])], "The mask is empty"),
                           (["--mask", str(files["right"]), "--sampler", "dpmpp"], "runs ddpm or ddim"),
                           (["--mask", str(files["right"]), "--strength", "0.4"], "give one of them"),
                           (["--strength", "1.5"], "above 0 and at most 1"),
                           (["--resample", "3"], "give a --mask too")):
        assert main(["edit", str(files["picture"]), "--checkpoint", str(tiny), "--out", str(out), *args]) == 2
        assert sentence in capsys.readouterr().err, args
