"""Checkpoints: diffusers folders that DDPMPipeline loads; safetensors only; foreign folders load as is."""

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch
from diffusers import AutoencoderTiny, DDPMPipeline, DDPMScheduler, UNet2DModel

from playground.checkpoints import CheckpointError, list_checkpoints, load_checkpoint
from playground.cli import main
from playground.services.image_sampling import generate
from playground.services.model_catalog import get_checkpoint

from tiny_checkpoint import make_tiny_checkpoint


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


def test_ddpm_pipeline_loads_our_checkpoint_and_agrees_on_the_model(tiny):
    pipeline = DDPMPipeline.from_pretrained(tiny, use_safetensors=True)
    ours = load_checkpoint(tiny)
    assert pipeline.scheduler.config.beta_schedule == "squaredcos_cap_v2"
    assert pipeline.scheduler.config.prediction_type == ours.prediction_type == "v_prediction"
    torch.testing.assert_close(pipeline.scheduler.alphas_cumprod, ours.schedule.alphas_cumprod.float(), atol=1e-6,
                               rtol=0)
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([10, 900])
    with torch.no_grad():
        torch.testing.assert_close(pipeline.unet(x, t).sample, ours.unet(x, t).sample)
    info = json.loads((tiny / "playground.json").read_text())
    assert info["model"]["resolution"] == 8 and "code_version" in info
    assert list_checkpoints(tiny.parent) == [tiny]


def test_a_foreign_diffusers_folder_loads_as_is(tmp_path):
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=500)).save_pretrained(tmp_path / "foreign")
    checkpoint = load_checkpoint(tmp_path / "foreign")
    assert checkpoint.info == {} and checkpoint.schedule.num_timesteps == 500
    assert checkpoint.prediction_type == "epsilon" and checkpoint.schedule.name == "linear"


def test_pickle_weights_are_refused_with_a_sentence(tmp_path):
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(tmp_path / "pickled", safe_serialization=False)
    assert (tmp_path / "pickled" / "unet" / "diffusion_pytorch_model.bin").is_file()
    with pytest.raises(CheckpointError, match="pickle file .*only .safetensors"):
        load_checkpoint(tmp_path / "pickled")
    with pytest.raises(CheckpointError, match="not a diffusers DDPM folder"):
        load_checkpoint(tmp_path)


@pytest.mark.slow
def test_same_seed_same_images_and_every_step_streams(tiny):
    checkpoint = get_checkpoint(tiny)

    def final(seed, sampler="ddpm"):
        steps = list(generate(checkpoint, sampler, 12, 3, seed))
        assert [s.index for s in steps] == list(range(12))
        return steps[-1].prev_sample

    assert torch.equal(final(5), final(5))
    assert not torch.equal(final(5), final(6))
    first_noise = next(iter(generate(checkpoint, "dpmpp", 5, 3, 5))).x_t
    assert torch.equal(first_noise, next(iter(generate(checkpoint, "ddim", 9, 3, 5))).x_t)  # same x_T for every sampler


@pytest.mark.slow
def test_sample_cli_writes_images_grid_and_gif(tiny, tmp_path):
    out = tmp_path / "out"
    assert main(["sample", "--checkpoint", str(tiny), "--sampler", "ddim", "--steps", "8", "--n", "5",
                 "--seed", "1", "--out", str(out), "--gif", str(tmp_path / "a.gif"),
                 "--mp4", str(tmp_path / "a.mp4")]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["grid.png"] + [f"sample_{i:03d}.png" for i in range(5)]
    from PIL import Image

    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 9  # every step, then the result
    import av

    with av.open(str(tmp_path / "a.mp4")) as video:
        frames = [frame.to_image() for frame in video.decode(video=0)]
    assert len(frames) >= 8 and frames[0].width % 2 == 0
    assert np.asarray(Image.open(out / "sample_000.png")).shape == (8, 8, 3)
    assert main(["sample", "--checkpoint", str(tiny), "--steps", "5000", "--out", str(out)]) == 2
    assert main(["sample", "--checkpoint", str(tmp_path), "--out", str(out)]) == 2


@pytest.mark.slow
def test_training_resumes_exactly_and_warm_starts(tmp_path):
    """Stop at step 5 and resume to 10 == 10 straight; a warm start carries the step count and weights on."""
    from playground.data.dataset import dataset_from_uint8
    from playground.diffusion.training import TrainConfig
    from playground.models import PRESETS
    from playground.services.run_folder import RunFolder
    from playground.services.training_runs import RunSpec, run_training

    images = (np.random.default_rng(0).random((20, 8, 8, 3)) * 255).astype(np.uint8)
    dataset = dataset_from_uint8("random", images)
    config = TrainConfig(steps=10, batch_size=4, warmup_steps=2)
    spec = RunSpec(config, model=PRESETS["tiny"], preview_every=1000)
    straight = run_training(tmp_path / "straight", dataset, dataclasses.replace(spec, preview_every=5))
    done = [0]
    run_training(tmp_path / "stopped", dataset, spec, on_event=lambda e: done.__setitem__(0, e.step),
                 should_stop=lambda: done[0] >= 5)
    stopped = RunFolder(tmp_path / "stopped")
    assert stopped.checkpoint_step() == 5 and stopped.can_resume() and len(stopped.losses()) == 5
    resumed = run_training(stopped.path, dataset, spec)
    assert stopped.checkpoint_step() == 10 and len(stopped.losses()) == 10  # the log goes on, no restart from 0
    a, b = load_checkpoint(straight).unet.state_dict(), load_checkpoint(resumed).unet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit for bit: weights, optimizer, EMA and RNG restored
    previews = sorted(p.name for p in (tmp_path / "straight" / "samples").iterdir())
    assert previews == ["step_000005.png", "step_000010.png"]

    longer = TrainConfig(steps=12, batch_size=4, warmup_steps=2)
    warm = run_training(tmp_path / "warm", dataset, dataclasses.replace(spec, config=longer, init_from=straight))
    info = json.loads((warm / "playground.json").read_text())
    assert info["steps"] == 12 and len(info["loss_history_full"]) == 12
    # its lr schedule starts again: warm-up from the carried step, not the tail of a cosine that ended at step 10
    logged = {int(row["step"]): float(row["lr"]) for row in csv.DictReader(open(warm.parent / "log.csv"))}
    assert logged == pytest.approx({11: longer.lr / 2, 12: longer.lr})


@pytest.mark.slow
def test_every_shipped_checkpoint_loads_in_diffusers_and_samples():
    from playground.services.model_catalog import SHIPPED

    shipped = list_checkpoints(SHIPPED)
    assert shipped, "checkpoints/ should ship at least one model"
    for folder in shipped:
        checkpoint = get_checkpoint(folder)
        if checkpoint.is_latent:  # diffusers loads its parts: the UNet on latents, and the autoencoder that draws them
            unet = UNet2DModel.from_pretrained(folder, subfolder="unet", use_safetensors=True)
            vae = AutoencoderTiny.from_pretrained(folder, subfolder="vae", use_safetensors=True)
            assert unet.config.in_channels == vae.config.latent_channels
            side = unet.config.sample_size * 2 ** (len(vae.config.encoder_block_out_channels) - 1)
        else:
            side = DDPMPipeline.from_pretrained(folder, use_safetensors=True).unet.config.sample_size
        assert side == checkpoint.resolution
        assert (folder / "README.md").is_file() and (folder / "playground.json").is_file()
        assert not (folder / "training").exists()  # resume state stays out of git
        images = checkpoint.to_pictures(list(generate(checkpoint, "dpmpp", 10, 2, 0))[-1].prev_sample)
        assert images.shape[-3:] == (checkpoint.channels, checkpoint.resolution, checkpoint.resolution)
        # a trained model draws on white: most pixels near 1 at the border, unlike noise
        border = torch.cat([images[..., 0, :], images[..., -1, :]], -1)
        assert border.mean() > 0.5
    # shipped weights are stored in half precision (every file under the Hub's 10 MB) and compute in float32
    from safetensors.torch import load_file

    from playground.checkpoints import UNET_WEIGHTS

    for folder in shipped:
        stored = {v.dtype for v in load_file(str(folder / UNET_WEIGHTS)).values()}
        assert stored == {torch.float16}, f"{folder.name} stores {stored}"
        assert {p.dtype for p in get_checkpoint(folder).unet.parameters()} == {torch.float32}


@pytest.mark.slow
def test_half_precision_weights_halve_the_file_and_sample_like_float32(tiny, tmp_path):
    import shutil

    from diffusers import DDPMPipeline

    from playground.checkpoints import UNET_WEIGHTS, store_half

    for dtype, tolerance in (("float16", 0.02), ("bfloat16", 0.2)):
        half = shutil.copytree(tiny, tmp_path / dtype)
        before, after = store_half(half, dtype)
        assert after < 0.55 * before
        assert json.loads((half / "playground.json").read_text())["weights_dtype"] == dtype
        pipeline = DDPMPipeline.from_pretrained(half, use_safetensors=True)  # diffusers loads it, in float32
        assert {p.dtype for p in pipeline.unet.parameters()} == {torch.float32}
        ours, theirs = load_checkpoint(tiny), load_checkpoint(half)
        assert {p.dtype for p in theirs.unet.parameters()} == {torch.float32}
        reference = list(generate(ours, "dpmpp", 10, 4, 3))[-1].prev_sample
        halved = list(generate(theirs, "dpmpp", 10, 4, 3))[-1].prev_sample
        error = (reference - halved).abs().mean().item()
        assert 0 < error < tolerance, (dtype, error)  # rounded weights, nearly the same pictures
    with pytest.raises(ValueError, match="Half precision"):
        store_half(tiny, "float8")
    assert load_file_dtype(tiny / UNET_WEIGHTS) == torch.float32  # a refused request leaves the file alone


def load_file_dtype(path):
    from safetensors.torch import load_file

    return next(iter(load_file(str(path)).values())).dtype


@pytest.mark.slow
def test_a_greyscale_diffusers_folder_of_any_size_samples_and_fine_tunes(tmp_path, capsys):
    from PIL import Image

    from playground.services import finetune_recipes, finetune_views, finetuning

    from tiny_checkpoint import make_greyscale_diffusers_folder

    folder = make_greyscale_diffusers_folder(tmp_path / "mnist-like")
    checkpoint = load_checkpoint(folder)
    assert (checkpoint.channels, checkpoint.resolution) == (1, 28)
    out = tmp_path / "out"
    assert main(["sample", "--checkpoint", str(folder), "--out", str(out), "--steps", "4", "--n", "3",
                 "--gif", str(tmp_path / "a.gif")]) == 0
    with Image.open(out / "sample_000.png") as picture:
        assert picture.size == (28, 28)
        pixels = np.asarray(picture.convert("RGB"), dtype=int)
        assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()  # grey
    # fine-tuned on colour photos: it learns them in grey and stays a 1-channel diffusers folder
    photos = [Image.fromarray(np.full((40, 40, 3), (200, 30, 30), np.uint8)) for _ in range(3)]
    config = finetune_recipes.train_config("quick", checkpoint, steps=3, batch_size=2)
    run = finetuning.start_run(tmp_path / "run", photos, folder, config, preview_every=3)
    trained = finetuning.finetune(run.path)
    pipeline = DDPMPipeline.from_pretrained(trained, use_safetensors=True)
    assert pipeline.unet.config.in_channels == 1 and pipeline.unet.config.sample_size == 28
    html, sentence = finetune_views.meter_view(run.path, count=2)
    assert html.count("<img ") == 4 and sentence
