"""Augmenting image batches while training: random flips, small random-resized crops, mild colour jitter.

Every random number comes from the run's generator in a fixed order, so a resumed run augments exactly as an
uninterrupted one would. The settings live in the run's TrainConfig (hflip, crop_scale, color_jitter).
"""

from __future__ import annotations

import functools

import torch

from playground.diffusion.training import Augment, TrainConfig


def augment(x: torch.Tensor, generator: torch.Generator, config: TrainConfig) -> torch.Tensor:
    """Random flips, small random-resized crops and mild colour jitter of a batch (B, 3, H, W) in [-1, 1].

    Every random number comes from ``generator`` in a fixed order, so a resumed run augments as an
    uninterrupted one would. With the defaults only the flip is on.
    """
    batch = x.shape[0]
    if config.hflip:
        flip = torch.rand(batch, generator=generator) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    if config.crop_scale < 1.0:
        # a square window of side `side` (a fraction of the image) at a random place, resized back up
        side = config.crop_scale + (1.0 - config.crop_scale) * torch.rand(batch, generator=generator)
        corner = torch.rand(batch, 2, generator=generator) * (1.0 - side)[:, None]
        theta = torch.zeros(batch, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = side
        theta[:, :, 2] = (corner + side[:, None] / 2) * 2 - 1  # window centre in [-1, 1] (x, y)
        grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
        x = torch.nn.functional.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="border",
                                            align_corners=False)
    if config.color_jitter > 0:
        brightness, contrast, saturation = (
            1.0 + config.color_jitter * (2 * torch.rand(3, batch, 1, 1, 1, generator=generator) - 1))
        image = (x + 1) / 2 * brightness
        mean = image.mean(dim=(1, 2, 3), keepdim=True)
        image = (image - mean) * contrast + mean
        if image.shape[1] == 3:  # saturation means nothing for grey images
            gray = (0.299 * image[:, :1] + 0.587 * image[:, 1:2] + 0.114 * image[:, 2:3])
            image = (image - gray) * saturation + gray
        x = image.clamp(0, 1) * 2 - 1
    return x


def augmenter(config: TrainConfig) -> Augment | None:
    """The augmentation a run's config asks for, as ``(batch, generator) -> batch``; None when it asks for none."""
    if not config.hflip and config.crop_scale >= 1.0 and config.color_jitter <= 0:
        return None
    return functools.partial(augment, config=config)
