"""Training from scratch on any folder (train --data): decoded once into a memory-mapped cache, bad files listed and
skipped, greyscale folders train 1-channel models, and the result is a diffusers folder that samples."""

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline
from PIL import Image

from playground.cli import main
from playground.data.folder import image_folder
from playground.diffusion.training import TrainConfig, draw_batch


def make_folder(folder, count=12, grey=False):
    (folder / "nested").mkdir(parents=True)
    rng = np.random.RandomState(0)
    for i in range(count):
        pixels = (rng.rand(40, 48, 3) * 255).astype(np.uint8)
        if grey:
            pixels[..., 1] = pixels[..., 2] = pixels[..., 0]
        Image.fromarray(pixels).save(folder / ("nested" if i % 3 == 0 else ".") / f"img_{i}.png")
    (folder / "notes.txt").write_text("not a picture")
    (folder / ".hidden.png").write_bytes(b"")  # hidden files are not listed
    return folder


def test_a_folder_is_decoded_once_into_a_memory_mapped_cache(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "photos")
    data = image_folder(folder, 16, cache_root=tmp_path / "cache")
    assert (data.count, data.channels, tuple(data.images.shape)) == (12, 3, (12, 3, 16, 16))
    assert data.images.dtype == torch.uint8 and isinstance(data.images.untyped_storage().filename, str | None)
    assert [path for path, _ in data.skipped] == ["notes.txt"] and "not an image" in data.skipped[0][1]
    # the second time it opens the cache: nothing is decoded
    monkeypatch.setattr("playground.data.folder._decode", lambda *a: pytest.fail("decoded again"))
    again = image_folder(folder, 16, cache_root=tmp_path / "cache")
    assert again.fingerprint == data.fingerprint and torch.equal(again.images, data.images)
    monkeypatch.undo()
    # a changed folder, or another size, is a new cache
    Image.new("RGB", (20, 20), "red").save(folder / "new.png")
    assert image_folder(folder, 16, cache_root=tmp_path / "cache").count == 13
    assert image_folder(folder, 8, cache_root=tmp_path / "cache").images.shape[-1] == 8
    # batches come out in [-1, 1] from the uint8 cache
    batch = draw_batch(data.images, torch.Generator().manual_seed(0), TrainConfig(batch_size=5))
    assert batch.dtype == torch.float32 and batch.shape == (5, 3, 16, 16) and -1 <= batch.min() < batch.max() <= 1


@pytest.mark.slow
def test_a_grey_folder_trains_a_one_channel_model_that_diffusers_loads(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PLAYGROUND_DATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("playground.data.folder.CACHE_ROOT", tmp_path / "cache")
    folder = make_folder(tmp_path / "digits", grey=True)
    out = tmp_path / "run"
    assert main(["train", "--data", str(folder), "--resolution", "32", "--model", "tiny", "--steps", "3",
                 "--batch-size", "4", "--preview-every", "3", "--out", str(out), "--threads", "1"]) == 0
    printed = capsys.readouterr()
    assert "12 greyscale images at 32 px" in printed.out and "skipped notes.txt" in printed.err
    pipeline = DDPMPipeline.from_pretrained(out / "checkpoint", use_safetensors=True)
    assert pipeline.unet.config.in_channels == 1 and pipeline.unet.config.sample_size == 32
    assert main(["sample", "--checkpoint", str(out / "checkpoint"), "--out", str(tmp_path / "s"), "--steps", "3",
                 "--n", "2"]) == 0
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert main(["train", "--data", str(folder), "--images", str(folder), "--out", str(out)]) == 2


@pytest.mark.slow
def test_quality_is_read_against_held_out_images_at_every_preview(tmp_path, monkeypatch, capsys):
    import csv

    monkeypatch.setattr("playground.data.folder.CACHE_ROOT", tmp_path / "cache")
    folder = make_folder(tmp_path / "photos", count=60)
    out = tmp_path / "run"
    assert main(["train", "--data", str(folder), "--resolution", "32", "--model", "tiny", "--steps", "4",
                 "--batch-size", "4", "--preview-every", "2", "--quality-samples", "8", "--out", str(out),
                 "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "holding out 10 images" in printed and "50 colour images" in printed
    assert "sample quality at step 4" in printed
    with open(out / "quality.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert all(0 <= float(r["coverage"]) <= 1 and float(r["density"]) >= 0 and 0 <= float(r["near_copies"]) <= 1
               for r in rows)
    assert (out / "progress.html").stat().st_size > 100_000  # plotly inlined: it opens offline


@pytest.mark.slow
def test_density_and_coverage_rank_copies_blurs_noise_and_collapse():
    from playground.data.dataset import dataset_from_uint8
    from playground.data.emoji import load_emoji_set
    from playground.services.sample_quality import copy_share, copy_threshold, density_coverage, features

    images = dataset_from_uint8("emoji", load_emoji_set(32).images).images
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    real, fresh = images[order[:300]], images[order[300:600]]
    reference = features(real)
    same = density_coverage(reference, features(fresh))
    noise = density_coverage(reference, features(torch.rand_like(fresh) * 2 - 1))
    collapsed = density_coverage(reference, features(fresh[:1].expand(300, -1, -1, -1)))
    assert same[0] > 0.7 and same[1] > 0.85  # fresh real images: dense and covering
    assert noise[0] < 0.05 and noise[1] < 0.05  # noise: neither
    assert collapsed[1] < 0.05 < same[1]  # one image repeated: no coverage, whatever its density
    # near-copies, relative to how far new images lie from the training set: emoji look alike, yet new ones are new
    threshold = copy_threshold(fresh[:100], real)
    assert copy_share(fresh[100:200], real, threshold) < 0.15 and copy_share(real[:50], real, threshold) == 1.0
    noisy_copies = real[:50] + 0.05 * torch.randn(50, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert copy_share(noisy_copies, real, threshold) == 1.0


@pytest.mark.parametrize("extra, sentence", [(["--prompts"], "a folder of images has no captions"),
                                             (["--quality-samples", "-1"], "--quality-samples must be 0"),
                                             (["--word-focus-min-t", "400"], "give it with --prompts --word-focus")])
def test_arguments_are_checked_before_the_folder_is_read(tmp_path, capsys, extra, sentence):
    """The folder does not exist: had it been read first, that would be the sentence."""
    assert main(["train", "--data", str(tmp_path / "no-such-folder"), "--out", str(tmp_path / "run"), *extra]) == 2
    assert sentence in capsys.readouterr().err
