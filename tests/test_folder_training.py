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
