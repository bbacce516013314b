"""Fine-tuning on a handful of photos: augmentation, prior mixing, loss, stop/resume, the meter, export, CLI."""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from playground.checkpoints import copy_checkpoint, export_zip
from playground.cli import main as cli_main
from playground.data import photos as photo_files
from playground.data.augment import augment, augmenter
from playground.data.dataset import dataset_from_uint8
from playground.data.images import prepare_image
from playground.diffusion.training import TrainConfig, draw_batch
from playground.services import finetune_recipes as recipes
from playground.services import finetuning, workdir

from image_files import photo, write_bad
from tiny_checkpoint import make_tiny_checkpoint


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("base") / "tiny-base")


@pytest.fixture(scope="module")
def six_photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for i in range(6):
        photo(96 + 8 * i, 80, seed=i).save(folder / f"dog_{i}.jpg", quality=92)
    return folder


def images(folder: Path) -> list:
    photos, problems = photo_files.load_photos(sorted(folder.iterdir()))
    assert not problems
    return [image for _, image in photos]


def photos_array(folder: Path, resolution: int = 8) -> np.ndarray:
    return photo_files.photos_array(images(folder), resolution)


# --- augmentation and batches ---

def test_augment_with_everything_off_is_the_identity():
    x = torch.rand(5, 3, 8, 8) * 2 - 1
    config = TrainConfig(hflip=False, crop_scale=1.0, color_jitter=0.0)
    assert torch.equal(augment(x, torch.Generator().manual_seed(0), config), x)


def test_flip_only_mirrors_some_images_exactly():
    x = torch.rand(64, 3, 8, 8) * 2 - 1
    out = augment(x, torch.Generator().manual_seed(0), TrainConfig(hflip=True))
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True)]
    same = [torch.equal(o, i) for o, i in zip(out, x, strict=True)]
    assert all(m or s for m, s in zip(mirrored, same, strict=True))
    assert 16 < sum(mirrored) < 48  # about half


def test_crop_and_jitter_stay_in_range_are_mild_and_repeatable():
    smooth = np.stack([np.asarray(photo(16, 16, seed=i)) for i in range(32)])  # crops of noise would differ wholly
    x = dataset_from_uint8("smooth", smooth).images
    config = TrainConfig(hflip=False, crop_scale=0.8, color_jitter=0.1)
    a = augment(x, torch.Generator().manual_seed(3), config)
    b = augment(x, torch.Generator().manual_seed(3), config)
    assert torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1
    assert 0 < (a - x).abs().mean() < 0.3  # changed, but still the same pictures
    # a crop that keeps the whole side (scale 1) is the identity up to float rounding
    full = augment(x, torch.Generator().manual_seed(3), replace(config, crop_scale=0.999999, color_jitter=0.0))
    assert torch.allclose(full, x, atol=1e-4)


def test_prior_fraction_sets_the_share_of_each_batch():
    data = torch.full((10, 3, 4, 4), -1.0)
    prior = torch.full((7, 3, 4, 4), 1.0)
    config = TrainConfig(batch_size=20, prior_fraction=0.25, hflip=False)
    batch = draw_batch(data, torch.Generator().manual_seed(0), config, prior, augmenter(config))
    assert batch.shape[0] == 20
    assert int((batch.mean(dim=(1, 2, 3)) > 0).sum()) == 5
    assert int((draw_batch(data, torch.Generator(), replace(config, prior_fraction=0.0), prior).mean((1, 2, 3)) > 0)
               .sum()) == 0


# --- photos ---

def test_square_modes(six_photos):
    image = photo(120, 60)
    assert prepare_image(image, 60, "center").size == (60, 60)
    padded = prepare_image(image, 120, "pad")
    assert padded.size == (120, 120) and padded.getpixel((0, 0)) == (255, 255, 255)
    assert padded.getpixel((60, 45)) == image.getpixel((60, 15))  # the picture itself, moved down to the middle
    with pytest.raises(ValueError, match="Unknown crop mode"):
        prepare_image(image, 60, "stretch")
    assert photos_array(six_photos, 8).shape == (6, 8, 8, 3)


def test_bad_files_are_named_and_good_ones_kept(tmp_path, six_photos):
    bad = write_bad(tmp_path)
    photos, problems = photo_files.load_photos([*sorted(six_photos.iterdir()), *bad.values()])
    assert len(photos) == 6
    assert len(problems) == len(bad)
    assert all(isinstance(p, str) and p.endswith(".") and "Traceback" not in p for p in problems)
    with pytest.raises(ValueError, match="no photos"):
        photo_files.photos_array([], 8)


# --- training ---

def quick_config(base, **overrides) -> TrainConfig:
    settings = dict(steps=120, batch_size=12, lr=1e-3, warmup_steps=5)
    settings.update(overrides)
    return recipes.train_config("quick", finetuning.load_base(base), **settings)


@pytest.mark.slow
def test_loss_decreases_on_a_tiny_fixed_set(tmp_path, tiny_base, six_photos):
    run = finetuning.start_run(tmp_path / "run", images(six_photos), tiny_base, quick_config(tiny_base),
                               preview_every=60)
    losses = []
    finetuning.finetune(run.path, lambda e: losses.append(e.loss))
    assert len(losses) == 120
    assert np.mean(losses[-30:]) < 0.7 * np.mean(losses[:30])
    assert sorted(p.name for p in run.samples.iterdir()) == ["step_000060.png", "step_000120.png"]
    assert run.losses() == pytest.approx(losses, abs=1e-5) and run.latest_preview().name == "step_000120.png"
    info = json.loads((run.checkpoint / "playground.json").read_text())
    assert info["steps"] == 120 and info["base"] == str(tiny_base) and info["data"]["count"] == 6


@pytest.mark.slow
def test_stop_then_resume_equals_an_uninterrupted_run(tmp_path, tiny_base, six_photos):
    """Prior mixing and every augmentation on: resuming restores step, weights, optimizer, EMA and RNG."""
    photos = images(six_photos)
    config = quick_config(tiny_base, steps=30, prior_fraction=0.25, crop_scale=0.8, color_jitter=0.1)
    whole = finetuning.start_run(tmp_path / "whole", photos, tiny_base, config).path
    finetuning.finetune(whole)
    parts = finetuning.start_run(tmp_path / "parts", photos, tiny_base, config).path
    seen = []
    finetuning.finetune(parts, seen.append, should_stop=lambda: len(seen) >= 12)
    state = json.loads((parts / "checkpoint" / "training" / "state.json").read_text())
    assert state["step"] == 12
    finetuning.finetune(parts, seen.append)
    assert [e.step for e in seen] == list(range(1, 31))
    for name in ("unet/diffusion_pytorch_model.safetensors", "training/state.safetensors"):
        a, b = load_file(str(whole / "checkpoint" / name)), load_file(str(parts / "checkpoint" / name))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.slow
def test_from_scratch_builds_the_default_network(tmp_path, six_photos):
    config = recipes.train_config("quick", None, steps=2, batch_size=2)
    run = finetuning.start_run(tmp_path / "scratch", images(six_photos), None, config)
    finetuning.finetune(run.path)
    assert finetuning.run_settings(run.path).base == recipes.SCRATCH
    assert json.loads((run.checkpoint / "unet" / "config.json").read_text())["sample_size"] == 32


# --- the result ---

@pytest.mark.parametrize("text, name", [("My Dog!!", "my-dog"), ("../../etc/passwd", "etc-passwd"), ("", "my-model"),
                                        ("😀", "my-model"), ("a" * 80, "a" * 40)])
def test_safe_name(text, name):
    assert workdir.safe_name(text) == name


@pytest.mark.slow
def test_zip_and_copy_are_loadable_diffusers_folders(tmp_path, tiny_base, six_photos):
    from diffusers import DDPMPipeline

    run = finetuning.start_run(tmp_path / "run", images(six_photos), tiny_base, quick_config(tiny_base, steps=2))
    checkpoint = finetuning.finetune(run.path)
    archive = export_zip(checkpoint, tmp_path / "my-dog.zip")
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        assert "my-dog/unet/diffusion_pytorch_model.safetensors" in names
        assert not any("/training/" in n for n in names)
        z.extractall(tmp_path / "unzipped")
    DDPMPipeline.from_pretrained(tmp_path / "unzipped" / "my-dog")
    copied = copy_checkpoint(checkpoint, tmp_path / "checkpoints" / "my-dog")
    assert not (copied / "training").exists()
    with pytest.raises(FileExistsError, match="already exists"):
        copy_checkpoint(checkpoint, copied)


# --- the command line ---

@pytest.mark.slow
def test_cli_fine_tunes_resumes_and_reports_the_meter(tmp_path, tiny_base, six_photos, capsys):
    out = tmp_path / "run"
    args = ["train", "--images", str(six_photos), "--base", str(tiny_base), "--preset", "quick", "--steps", "4",
            "--batch-size", "4", "--out", str(out)]
    assert cli_main(args) == 0
    printed = capsys.readouterr().out
    assert "6 photos at 8 px" in printed and "memorisation meter:" in printed
    assert cli_main(args[:-4] + ["--steps", "6", "--out", str(out)]) == 0  # continues to 6
    assert "continuing the run" in capsys.readouterr().out
    assert json.loads((out / "checkpoint" / "playground.json").read_text())["steps"] == 6


def test_cli_says_what_is_wrong(tmp_path, tiny_base, capsys):
    assert cli_main(["train", "--images", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "is not one" in capsys.readouterr().err
    write_bad(tmp_path / "bad")
    assert cli_main(["train", "--images", str(tmp_path / "bad"), "--base", str(tiny_base),
                     "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "nothing to train on" in err and "Traceback" not in err


@pytest.mark.slow
def test_a_killed_fine_tuning_run_resumes_from_its_last_checkpoint(tmp_path):
    """SIGKILL (no chance to save) after the first checkpoints; the same command then continues from the last one."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from PIL import Image

    from playground.services.run_folder import RunFolder

    from tiny_checkpoint import make_tiny_checkpoint

    base = make_tiny_checkpoint(tmp_path / "base")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.new("RGB", (32, 32), (60 * i, 100, 200)).save(photos / f"{i}.png")
    run = RunFolder(tmp_path / "run")
    command = [sys.executable, "-m", "playground", "train", "--images", str(photos), "--base", str(base),
               "--out", str(run.path), "--steps", "100000", "--batch-size", "2", "--preview-every", "100000",
               "--checkpoint-every", "1", "--threads", "1"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = subprocess.Popen(command, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        first = 0
        while True:  # until a second checkpoint has replaced the first (1 s gaps): the kill lands mid-run
            assert time.monotonic() < deadline and process.poll() is None, "no second checkpoint was written"
            step = run.checkpoint_step() if run.can_resume() else 0
            first = first or step
            if first and step > first:
                break
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    saved = run.checkpoint_step()
    assert saved > first
    at = command.index("--steps") + 1
    resumed = subprocess.run(command[:at] + [str(saved + 5)] + command[at + 1:], cwd=root, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"at step {saved}" in resumed.stdout
    assert run.checkpoint_step() == saved + 5


@pytest.mark.parametrize("extra, sentence", [
    (["--checkpoint-every", "0"], "--checkpoint-every must be a number of seconds above 0"),
    (["--prior-fraction", "1.5"], "--prior-fraction is a share"),
    (["--steps", "0"], "--steps must be 1 or more"),
    (["--prompts"], "a folder of images has no captions"),
    (["--autoencoder", "x"], "leave out --autoencoder"),
    (["--subject", "zork", "--data", "x"], "not both"),
])
def test_cli_refuses_bad_arguments_before_any_work(tmp_path, six_photos, capsys, extra, sentence):
    out = tmp_path / "run"
    assert cli_main(["train", "--images", str(six_photos), "--out", str(out), *extra]) == 2
    assert sentence in capsys.readouterr().err
    assert not out.exists()  # nothing was read, drawn or written
