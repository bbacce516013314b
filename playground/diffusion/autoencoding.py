"""The autoencoder of latent diffusion (Rombach et al. 2022): its reconstruction loss, PSNR, and the scale that gives
its latents unit variance. What the training loop (diffusion.autoencoder_training) and inference both use."""

from __future__ import annotations

import torch


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Differences between horizontal and vertical neighbours: (B, C, H, W-1) and (B, C, H-1, W)."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def reconstruction_loss(reconstruction: torch.Tensor, target: torch.Tensor, edge_weight: float = 1.0) -> torch.Tensor:
    """L1 between the pictures plus ``edge_weight`` times L1 between their image gradients.

    L1 alone lets an edge come out as a soft ramp that costs little; the gradient term pays for every pixel of
    the ramp, so edges stay as sharp as in the input (a "gradient difference loss", Mathieu et al. 2016).
    """
    loss = (reconstruction - target).abs().mean()
    if edge_weight:
        (rx, ry), (tx, ty) = image_gradients(reconstruction), image_gradients(target)
        loss = loss + edge_weight * 0.5 * ((rx - tx).abs().mean() + (ry - ty).abs().mean())
    return loss


def psnr(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per picture, in dB, of pictures in [-1, 1] measured on the [0, 1] scale (the usual
    one: 30 dB is an RMS error of 8 of 255 levels). (B, C, H, W) -> (B,)."""
    error = ((reconstruction.clamp(-1, 1) - target) / 2).pow(2).flatten(1).mean(1)
    return -10 * torch.log10(error.clamp(min=1e-10))


def unit_variance_scale(latents: torch.Tensor) -> float:
    """The factor that gives ``latents`` unit variance (Rombach et al. 2022, sec. G: Stable Diffusion's 0.18215)."""
    return float(1.0 / latents.float().std())
