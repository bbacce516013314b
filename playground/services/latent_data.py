"""Pictures into latents, for training a latent model: encoded once, the autoencoder frozen.

A latent can't be mirrored or cropped the way a picture can (the encoder's view of a mirrored picture is not the
mirrored latent), so augmentation happens before encoding: the emoji set is encoded with its mirror images
(:func:`encode_dataset`), a person's few photos in many augmented versions each (:func:`latent_variants`).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from playground.data.augment import augmenter
from playground.data.dataset import Dataset
from playground.diffusion.training import TrainConfig, as_float
from playground.models import Autoencoder

ENCODE_BATCH = 64


@torch.inference_mode()
def encode(autoencoder: Autoencoder, pictures: torch.Tensor) -> torch.Tensor:
    """Pictures (uint8 or in [-1, 1]) to scaled latents, in batches, on the CPU."""
    device = next(autoencoder.parameters()).device
    return torch.cat([autoencoder.encode(as_float(part).to(device)).cpu() for part in pictures.split(ENCODE_BATCH)])


def check_fits(autoencoder: Autoencoder, channels: int, resolution: int) -> None:
    """ValueError with one sentence when pictures of ``channels`` at ``resolution`` px can't go through it."""
    if channels != autoencoder.image_channels:
        raise ValueError(f"This autoencoder takes {autoencoder.image_channels}-channel pictures, and these have "
                         f"{channels} (a {'greyscale' if channels == 1 else 'colour'} folder needs an autoencoder of "
                         "its own kind).")
    if resolution % autoencoder.factor:
        raise ValueError(f"This autoencoder shrinks pictures {autoencoder.factor} times along each side; "
                         f"{resolution} px is not a multiple of that.")


def encode_dataset(autoencoder: Autoencoder, dataset: Dataset, mirror: bool = True) -> Dataset:
    """The dataset's pictures as latents (and, with ``mirror``, their mirror images' after them, captions repeated)."""
    pictures = dataset.images
    if mirror:
        pictures = torch.cat([pictures, pictures.flip(-1)])
    captions = dataset.captions * 2 if mirror and dataset.captions is not None else dataset.captions
    return replace(dataset, images=encode(autoencoder, pictures), captions=captions)


def latent_variants(autoencoder: Autoencoder, pictures: torch.Tensor, config: TrainConfig,
                    count: int) -> torch.Tensor:
    """``count`` augmented versions of each picture (the recipe's flips, crops and jitter, drawn from its seed, so a
    resumed run gets the same), encoded: (N * count, C, h, w)."""
    generator = torch.Generator().manual_seed(config.seed)
    augment = augmenter(config)
    versions = as_float(pictures).repeat(count, 1, 1, 1)
    if augment is not None:
        versions = augment(versions, generator)
    return encode(autoencoder, versions)
