"""What the Train tab shows of a fine-tuning run: the photos as the model sees them, the progress line, the
memorisation meter's pairs and the subject word's before-and-after. Plain values in, pictures and text out."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from playground import media
from playground.data.dataset import dataset_from_uint8, match_channels
from playground.data.photos import open_photos, photos_array
from playground.diffusion.autoencoding import psnr
from playground.diffusion.training import TrainEvent
from playground.models import Autoencoder, pick_device
from playground.services.finetuning import prior_images, run_photos, run_settings
from playground.services.gpu import on_gpu
from playground.services.image_sampling import on_device
from playground.services.memorisation import memorisation_meter
from playground.services.model_catalog import get_checkpoint
from playground.services.run_folder import RunFolder


def gallery(photos: list[dict], crop_mode: str, resolution: int, display: int = 128, grey: bool = False,
            autoencoder: Autoencoder | None = None) -> list[tuple[Image.Image, str]]:
    """Each kept photo as the model will see it (its training square, enlarged crisply, in grey for a greyscale
    model), with its file name. For a latent base, each beside its reconstruction through the autoencoder, and the
    reconstruction's PSNR: what the latent model can learn of it."""
    squares = photos_array(open_photos(photos), resolution, crop_mode) if photos else []
    pictures = [Image.fromarray(square) for square in squares]
    if grey:  # the luminance the model trains on (data.dataset.match_channels uses the same weights)
        pictures = [picture.convert("L").convert("RGB") for picture in pictures]
    names = [photo["name"] for photo in photos]
    if autoencoder is not None and pictures:
        originals = torch.cat([media.pil_to_tensor(picture) for picture in pictures])
        with torch.inference_mode():
            rebuilt = autoencoder.reconstruct(originals).clamp(-1, 1)
        scores = psnr(rebuilt, originals).tolist()
        pictures = [media.strip([picture, media.tensor_to_pil(again)], gap=2)
                    for picture, again in zip(pictures, rebuilt, strict=True)]
        names = [f"{name} · decoded again: {score:.1f} dB" for name, score in zip(names, scores, strict=True)]
    return [(media.zoom(picture, min_side=display), name) for picture, name in zip(pictures, names, strict=True)]


def time_left(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


@dataclass
class ProgressReport:
    """Turns a run's TrainEvents into the line a person reads, with a time-left estimate once there is a rate."""

    started_at_step: int | None = None
    started_at: float = 0.0

    def line(self, event: TrainEvent, now: float) -> str:
        if self.started_at_step is None:
            self.started_at_step, self.started_at = event.step, now
        done = event.step - self.started_at_step
        # no estimate until a few steps give a rate: "about 0 s left" at step 1 would be false
        left = (f"about {time_left((event.total_steps - event.step) * (now - self.started_at) / done)} left"
                if done >= 3 else "estimating time left")
        return (f"Step {event.step} of {event.total_steps} · loss {event.loss:.4f} · "
                f"{event.images_per_second:.0f} images/s · {left}")


@on_gpu(duration=30)
def meter_view(run_dir: str | os.PathLike, count: int = 8, seed: int = 0) -> tuple[str, str]:
    """``count`` fresh samples from the run's model (for a subject run: of "<word> <class>"), each beside its nearest
    training photo, as captioned HTML pairs, and the memorisation meter's sentence (on the GPU when there is one)."""
    run = RunFolder(Path(run_dir))
    checkpoint = get_checkpoint(run.checkpoint)
    on_device(checkpoint, pick_device())
    subject = run_settings(run.path).subject
    samples = prior_images(checkpoint, count=count, seed=seed, steps=25, prompt=subject.prompt if subject else "")
    photos = dataset_from_uint8("photos", run_photos(run.path)).images
    reading = memorisation_meter(samples, match_channels(photos, samples.shape[1]))
    pairs = []
    nearest, matches, copies = reading.nearest.tolist(), reading.similarity.tolist(), reading.is_copy.tolist()
    for i, (sample, j, match, copy_) in enumerate(zip(samples, nearest, matches, copies, strict=True)):
        pairs.append((media.tensor_to_pil(sample), media.tensor_to_pil(photos[j]),
                      f"{i + 1}: {'copy' if copy_ else 'new'} (match {match:.2f})", "#c92a2a" if copy_ else "#2b8a3e"))
    return media.pairs_html(pairs), reading.sentence()


@on_gpu(duration=30)
def subject_view(run_dir: str | os.PathLike, count: int = 8, seed: int = 0) -> list[tuple[Image.Image, str]]:
    """A subject run's result side by side, from the same noise: "<word> <class>" and "<class>" from the trained
    model, and "<class>" from the base before training (empty for a plain fine-tuning run)."""
    run = RunFolder(Path(run_dir))
    settings = run_settings(run.path)
    subject = settings.subject
    if subject is None:
        return []
    after, before = get_checkpoint(run.checkpoint), get_checkpoint(settings.base)
    shown = []
    for checkpoint, prompt, caption in ((after, subject.prompt, f"“{subject.prompt}” after training"),
                                        (after, subject.class_word, f"“{subject.class_word}” after training"),
                                        (before, subject.class_word, f"“{subject.class_word}” before (the base)")):
        on_device(checkpoint, pick_device())
        images = prior_images(checkpoint, count=count, seed=seed, steps=25, prompt=prompt)
        shown.append((media.grid_picture(images, display=256), caption))
    return shown
