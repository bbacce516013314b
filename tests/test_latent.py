"""Latent diffusion: the autoencoder (round trip, scale, diffusers' own class on our weights), latent sampling as the
pixel sampler on latents then decoded, warm starts across kinds, latent fine-tuning that resumes exactly, the latent
view, and the command line's refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import AutoencoderTiny
from safetensors.torch import load_file

from playground.checkpoints import load_autoencoder, load_checkpoint
from playground.cli import main
from playground.diffusion import make_sampler, sample
from playground.diffusion.autoencoding import psnr, reconstruction_loss, unit_variance_scale
from playground.models import Autoencoder, AutoencoderConfig, build_autoencoder, model_fn
from playground.services.image_sampling import final_images, initial_noise

from image_files import photo
from tiny_checkpoint import make_tiny_checkpoint, make_tiny_latent_checkpoint


@pytest.fixture(scope="module")
def latent(tmp_path_factory):
    return make_tiny_latent_checkpoint(tmp_path_factory.mktemp("latent") / "tiny-latent")


def test_the_autoencoder_keeps_shapes_and_its_scale_gives_unit_variance():
    config = AutoencoderConfig(resolution=64, channels=8, encoder_blocks=(1, 1, 1), decoder_blocks=(1, 1, 1))
    assert (config.factor, config.latent_resolution) == (4, 16)
    vae = build_autoencoder(config, seed=0).eval()
    pictures = torch.rand(6, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        raw = vae.encode(pictures).latents
        scaled = Autoencoder(build_autoencoder(config, seed=0, scaling_factor=unit_variance_scale(raw)).eval())
        latents = scaled.encode(pictures)
        assert latents.shape == (6, 4, 16, 16)
        assert latents.std().item() == pytest.approx(1.0, rel=1e-4)
        assert scaled.decode(latents).shape == pictures.shape
        torch.testing.assert_close(scaled.decode(latents), scaled.reconstruct(pictures))  # the scale cancels out


def test_diffusers_class_reproduces_our_encode_and_decode(latent):
    ours = load_checkpoint(latent).autoencoder
    theirs = AutoencoderTiny.from_pretrained(latent, subfolder="vae")
    pictures = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        latents = theirs.encode(pictures).latents * theirs.config.scaling_factor
        torch.testing.assert_close(ours.encode(pictures), latents)
        torch.testing.assert_close(ours.decode(latents), theirs.decode(latents / theirs.config.scaling_factor).sample)
    assert theirs.config.scaling_factor == pytest.approx(0.5)


def test_a_latent_run_is_the_pixel_sampler_on_latents_then_decoded(latent):
    checkpoint = load_checkpoint(latent)
    assert checkpoint.is_latent and checkpoint.sample_shape == (4, 8, 8) and checkpoint.resolution == 32
    pictures = final_images(checkpoint, "ddim", 6, 3, seed=5)
    x_T, generator = initial_noise(checkpoint, 3, 5)
    sampler = make_sampler("ddim", checkpoint.schedule, 6, prediction_type=checkpoint.prediction_type)
    latents = sample(model_fn(checkpoint.unet), sampler, x_T, generator)
    with torch.no_grad():
        expected = checkpoint.autoencoder.decode(latents).clamp(-1, 1)
    torch.testing.assert_close(pictures, expected)
    assert pictures.shape == (3, 3, 32, 32)


def test_reconstruction_loss_pays_for_blurred_edges_and_psnr_is_on_the_unit_scale():
    edge = torch.zeros(1, 3, 8, 8) - 1
    edge[..., 4:] = 1
    ramp = torch.linspace(-1, 1, 8).expand(1, 3, 8, 8)
    assert reconstruction_loss(ramp, edge, 1.0) > reconstruction_loss(ramp, edge, 0.0)
    off_by_8_levels = edge + 16 / 255  # 8 of 255 levels on the [0, 1] scale
    assert psnr(off_by_8_levels.clamp(-1, 1), edge).min().item() >= 30.0


def test_a_pixel_models_inner_layers_warm_start_a_latent_model(tmp_path):
    """--init-from a pixel model with --autoencoder: every weight of the same shape is taken, the first and last
    convolutions (3 picture channels, not 4 latent ones) start fresh, and the step count starts at 0."""
    from playground.data.dataset import Dataset
    from playground.diffusion.training import TrainConfig
    from playground.models import PRESETS
    from playground.services.training_runs import RunSpec, run_training

    pixel = make_tiny_checkpoint(tmp_path / "pixel")
    autoencoder = load_autoencoder(make_tiny_latent_checkpoint(tmp_path / "latent-base"))
    config = dataclass_replace(PRESETS["tiny"], image_channels=4)
    data = Dataset("latents", torch.randn(8, 4, 8, 8), "x", 8)
    spec = RunSpec(TrainConfig(steps=1, batch_size=2, lr=1e-9, warmup_steps=0, hflip=False), model=config,
                   init_from=pixel, autoencoder=autoencoder, preview_every=1000)
    folder = run_training(tmp_path / "run", data, spec)
    trained = load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    original = load_file(str(pixel / "unet" / "diffusion_pytorch_model.safetensors"))
    inner = [k for k in original if not k.startswith(("conv_in", "conv_out"))]
    assert all(torch.allclose(trained[k].float(), original[k].float(), atol=1e-4) for k in inner)
    assert trained["conv_in.weight"].shape == (16, 4, 3, 3) and trained["conv_out.weight"].shape == (4, 16, 3, 3)
    info = json.loads((tmp_path / "run" / "checkpoint" / "playground.json").read_text())
    assert info["steps"] == 1 and (tmp_path / "run" / "checkpoint" / "vae" / "config.json").is_file()


def dataclass_replace(config, **changes):
    import dataclasses

    return dataclasses.replace(config, **changes)


@pytest.mark.slow
def test_a_latent_fine_tune_resumes_exactly_after_stop(tmp_path, latent):
    from PIL import Image

    from playground.services import finetune_recipes as recipes
    from playground.services import finetuning

    photos = [photo(60, 50, seed=i) for i in range(3)]
    base = finetuning.load_base(latent)
    config = recipes.train_config("quick", base, steps=10, batch_size=4, prior_fraction=0.25)
    whole = finetuning.start_run(tmp_path / "whole", photos, latent, config).path
    finetuning.finetune(whole)
    parts = finetuning.start_run(tmp_path / "parts", photos, latent, config).path
    seen = []
    finetuning.finetune(parts, seen.append, should_stop=lambda: len(seen) >= 4)
    finetuning.finetune(parts, seen.append)
    assert [e.step for e in seen] == list(range(1, 11))
    for name in ("unet/diffusion_pytorch_model.safetensors", "training/state.safetensors"):
        a, b = load_file(str(whole / "checkpoint" / name)), load_file(str(parts / "checkpoint" / name))
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert (whole / "checkpoint" / "vae").is_dir()  # the fine-tuned model keeps its base's autoencoder
    assert Image.open(next((whole / "samples").glob("*.png"))).size[0] >= 32


def test_the_latent_view_measures_the_round_trip(latent, tmp_path):
    from playground.diffusion.schedules import get_schedule
    from playground.services.latent_view import latent_view

    picture = tmp_path / "p.png"
    photo(80, 80).save(picture)
    view = latent_view(picture, load_checkpoint(latent), get_schedule("cosine", 1000), 500, seed=0)
    assert view.latents.shape == (1, 4, 8, 8) and view.compression == pytest.approx(32 * 32 * 3 / (8 * 8 * 4))
    assert view.psnr == pytest.approx(float(psnr(view.reconstruction, view.picture)[0]))
    assert not torch.allclose(view.noised_decoded, view.reconstruction)


def test_the_cli_refuses_bad_latent_combinations(tmp_path, latent, capsys):
    from PIL import Image

    grey = tmp_path / "grey"
    grey.mkdir()
    for i in range(3):
        Image.fromarray(np.full((40, 40), 60 * i, np.uint8), "L").save(grey / f"{i}.png")
    assert main(["train", "--data", str(grey), "--resolution", "32", "--autoencoder", str(latent), "--steps", "1",
                 "--out", str(tmp_path / "run")]) == 2
    assert "takes 3-channel pictures, and these have 1" in capsys.readouterr().err
    assert main(["train", "--autoencoder", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")]) == 2
    assert "has no autoencoder" in capsys.readouterr().err


def test_a_latent_model_card_says_how_its_autoencoder_was_trained(tmp_path):
    """train --autoencoder RUN/checkpoint records that run (its commands, steps, held-out PSNR) in the latent model's
    playground.json, and the card prints it; a latent model warm-started from carries it on."""
    import argparse

    from playground.checkpoints import model_card
    from playground.cli.training import _autoencoder_record

    folder = tmp_path / "ae"
    folder.mkdir()
    run = {"kind": "autoencoder", "command": "python -m playground autoencoder --out runs/ae --steps 9000",
           "steps": 9000, "parameters": 712615, "autoencoder": {"resolution": 64},
           "quality": {"step": 9000, "emoji_psnr": 30.42, "photo_psnr": 34.9}, "data": {"emoji": "1767 emoji"},
           "loss_history_full": [1.0] * 50}
    (folder / "playground.json").write_text(json.dumps(run))
    record = _autoencoder_record(argparse.Namespace(autoencoder=str(folder), init_from=None))
    assert "loss_history_full" not in record and record["steps"] == 9000
    card = model_card("latent", {"autoencoder_run": {**record, "commands": ["python -m playground autoencoder "
                                                                             "--out runs/ae --steps 12000",
                                                                             record["command"]]}})
    assert "emoji 30.4 dB, photos 34.9 dB (step 9000)" in card and "0.71 M parameters, 9000 steps on 1767 emoji" in card
    assert card.index("--steps 12000") < card.index("--steps 9000")
    latent = tmp_path / "latent"
    latent.mkdir()
    (latent / "playground.json").write_text(json.dumps({"autoencoder_run": record}))
    assert _autoencoder_record(argparse.Namespace(autoencoder=None, init_from=str(latent))) == record


def test_an_autoencoder_run_resumes_exactly_and_keeps_its_commands(tmp_path):
    """python -m playground autoencoder, stopped and run again, ends with the weights of one run straight through; it
    measures the held-out pictures as it goes, and a resume with another command lists both on the card."""
    from playground.diffusion.autoencoder_training import AutoencoderTrainConfig
    from playground.services.autoencoder_training import AutoencoderData, train_autoencoder_run

    generator = torch.Generator().manual_seed(0)
    pictures = torch.randint(0, 256, (12, 3, 16, 16), generator=generator, dtype=torch.uint8)
    data = AutoencoderData(pictures[:8], pictures[8:10], pictures[10:11], pictures[11:])
    network = AutoencoderConfig(resolution=16, channels=8, encoder_blocks=(1, 1), decoder_blocks=(1, 1))
    config = AutoencoderTrainConfig(steps=4, batch_size=4, crop=8, warmup_steps=1)
    train = dict(network=network, measure_every=2, checkpoint_every_s=1e9)
    straight = train_autoencoder_run(tmp_path / "straight", data, config, info={"command": "ae --steps 4"}, **train)
    stops = iter([False, False, True])
    stopped = train_autoencoder_run(tmp_path / "resumed", data, config, should_stop=lambda: next(stops, False),
                                    info={"command": "ae --steps 4"}, **train)
    assert 0 < json.loads((stopped / "playground.json").read_text())["steps"] < 4
    resumed = train_autoencoder_run(tmp_path / "resumed", data, config, info={"command": "ae --steps 4 --lr 1"},
                                    **train)
    ours, theirs = (load_file(str(next((folder / "vae").glob("*.safetensors")))) for folder in (straight, resumed))
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    info = json.loads((resumed / "playground.json").read_text())
    assert info["steps"] == 4 and info["quality"]["step"] == 4 and info["quality"]["emoji_psnr"] > 0
    assert info["commands"] == ["ae --steps 4", "ae --steps 4 --lr 1"]
    assert "ae --steps 4\nae --steps 4 --lr 1" in (resumed / "README.md").read_text()
