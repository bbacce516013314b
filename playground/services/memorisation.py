"""The memorisation meter: is each sample a copy of one of the training photos, or a new image?

A fine-tuned model's samples are often *soft* copies of its photos: the same picture, blurred. A plain pixel
distance calls those far (blur changes every pixel a little), so the meter compares pictures as 8x8 block
averages, which blur hardly changes, and judges each sample against the spacing of the photos themselves:

    relative = d(sample, nearest photo) / d(that photo, its own nearest other photo)

A sample is a copy when ``relative < COPY_RATIO``: it is much nearer to one photo than your other photos are to
it (Carlini et al. 2023 judge an extraction the same way, against the other nearest training images). Measured
on scikit-image's photos at 32 px: Gaussian-blurred copies (sigma up to 1.5 px) score at most 0.43 even among
six overlapping crops of one cat; other photos score at least 0.51. Plain torch; no files, no UI.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

COMPARE_SIDE = 8  # pictures are compared as COMPARE_SIDE x COMPARE_SIDE block averages (blur-tolerant)
COPY_RATIO = 0.5  # nearer to a photo than half that photo's distance to its nearest other photo: a copy
SINGLE_PHOTO_SPACING = 0.2  # the spacing assumed with one photo (typical of unrelated photos at 8x8)


def blur_tolerant_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(A, B) RMS differences on a 0..1 scale between 8x8 block averages of (A, 3, R, R) and (B, 3, R, R) in [-1, 1]."""
    def blocks(x: torch.Tensor) -> torch.Tensor:
        x = (x.float() + 1) / 2
        return torch.nn.functional.adaptive_avg_pool2d(x, COMPARE_SIDE).flatten(1)  # (N, 3 * 8 * 8)

    a, b = blocks(a), blocks(b)
    return torch.cdist(a, b).div(a.shape[1] ** 0.5)


def photo_spacing(photos: torch.Tensor) -> torch.Tensor:
    """(N,) each photo's distance to its nearest other photo (SINGLE_PHOTO_SPACING when there is one)."""
    if len(photos) < 2:
        return torch.full((len(photos),), SINGLE_PHOTO_SPACING)
    distances = blur_tolerant_distances(photos, photos)
    distances.fill_diagonal_(float("inf"))
    return distances.min(dim=1).values.clamp(min=1e-6)


@dataclass(frozen=True)
class MeterReading:
    """For each sample: its nearest photo, the distance to it, and that distance relative to the photos' spacing."""

    nearest: torch.Tensor  # (B,) index of the nearest photo
    distance: torch.Tensor  # (B,) blur-tolerant distance to it (0: identical)
    relative: torch.Tensor  # (B,) distance / that photo's distance to its nearest other photo

    @property
    def is_copy(self) -> torch.Tensor:  # (B,) bool
        return self.relative < COPY_RATIO

    def sentence(self) -> str:
        """One line for a person: mostly copies of the photos, or mostly new images?"""
        copies, total = int(self.is_copy.sum()), len(self.relative)
        scale = (f"a sample counts as a copy when it is nearer to one of your photos than half the distance from "
                 f"that photo to your next most similar one; median {float(self.relative.median()):.2f} of it")
        if copies * 2 > total:
            return (f"Copies: {copies} of {total} samples are copies of one of your photos, if blurred ones ({scale}). "
                    "With a handful of photos a model learns them by heart; that is expected.")
        return f"New images: {total - copies} of {total} samples are not copies of any of your photos ({scale})."


def memorisation_meter(samples: torch.Tensor, photos: torch.Tensor) -> MeterReading:
    """Read the meter for ``samples`` (B, 3, R, R) against the training ``photos`` (N, 3, R, R), both in [-1, 1]."""
    distance, nearest = blur_tolerant_distances(samples, photos).min(dim=1)
    return MeterReading(nearest, distance, distance / photo_spacing(photos)[nearest])
