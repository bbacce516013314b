"""See the latent: a photo through a latent model's autoencoder and its noise in latent space, for the Forward tab.

    view = latent_view(photo, autoencoder_folder, schedule, t, seed)
    view.latents            # (1, 4, 16, 16): what the diffusion model works on
    view.reconstruction     # decode(encode(photo)) and its PSNR against the photo
    view.noised_decoded     # the latents noised to t, decoded: not speckle, because the decoder draws pictures
    view.noised_pixels      # the photo itself noised to t with the same formula, for comparison

Inference only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from playground.checkpoints import VAE, Checkpoint
from playground.data.images import load_image, prepare_image
from playground.diffusion import NoiseSchedule, add_noise
from playground.diffusion.autoencoding import psnr
from playground.media import pil_to_tensor
from playground.services.model_catalog import shared_models
from playground.services.photo_noising import make_noise


def latent_models() -> dict[str, Path]:
    """The shared models that have an autoencoder (vae/), by name."""
    return {name: folder for name, folder in shared_models().items() if (folder / VAE).is_dir()}


@dataclass(frozen=True)
class LatentView:
    picture: torch.Tensor  # (1, 3, R, R) in [-1, 1]: the photo as the autoencoder sees it
    latents: torch.Tensor  # (1, 4, r, r), scaled to unit variance
    reconstruction: torch.Tensor  # (1, 3, R, R)
    psnr: float  # of the reconstruction against the picture, dB
    noised_latents: torch.Tensor  # the latents at t
    noised_decoded: torch.Tensor  # ...decoded
    noised_pixels: torch.Tensor  # the picture at t, in pixel space

    @property
    def compression(self) -> float:
        """How many numbers of the picture each number of the latent stands for (64 x 64 x 3 into 16 x 16 x 4: 12)."""
        return self.picture.numel() / self.latents.numel()


@torch.inference_mode()
def latent_view(path: str | os.PathLike, checkpoint: Checkpoint, schedule: NoiseSchedule, t: int,
                seed: int) -> LatentView:
    """The photo at ``path`` at a latent model's resolution, encoded by its autoencoder, decoded, and noised to ``t``
    in both spaces (the same seed's noise)."""
    autoencoder, side = checkpoint.autoencoder, checkpoint.resolution
    picture = pil_to_tensor(prepare_image(load_image(path, max_side=4 * side), side))
    latents = autoencoder.encode(picture)
    reconstruction = autoencoder.decode(latents)
    noised_latents = add_noise(schedule, latents, make_noise(tuple(latents.shape), seed), t)
    noised_pixels = add_noise(schedule, picture, make_noise(tuple(picture.shape), seed), t)
    return LatentView(picture, latents, reconstruction, float(psnr(reconstruction, picture)[0]), noised_latents,
                      autoencoder.decode(noised_latents), noised_pixels)
