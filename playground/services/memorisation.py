"""The memorisation meter: is each sample a copy of one of the training photos, or a new image?

A fine-tuned model's samples are often *soft* copies of its photos: the same picture, blurred, paler or darker. A
pixel distance calls those far (blur and a contrast change move every pixel), so the meter compares *layouts*: each
picture is reduced to 8x8 block averages (which blur hardly changes), and a sample is matched to a photo by the
correlation of those blocks (which ignores brightness and contrast). A sample is a copy when its best match reaches
``COPY_SIMILARITY``, a threshold between what blurred and washed-out copies of photos match at and what other photos
match at (tests/test_learner_views.py holds it to labelled cases; docs/measurements.md has the figures). Plain torch;
no files, no UI.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

COMPARE_SIDE = 8  # pictures are compared as COMPARE_SIDE x COMPARE_SIDE block averages (blur-tolerant)
COPY_SIMILARITY = 0.6  # a sample whose layout correlates this well with one photo is a copy of it


def layouts(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, R, R) in [-1, 1] -> (N, 3 * 8 * 8) block averages, centred and scaled to unit length, so that the dot
    product of two is the correlation of their layouts (brightness and contrast do not count)."""
    blocks = torch.nn.functional.adaptive_avg_pool2d(images.float(), COMPARE_SIDE).flatten(1)
    blocks = blocks - blocks.mean(dim=1, keepdim=True)
    return blocks / blocks.norm(dim=1, keepdim=True).clamp(min=1e-6)


def layout_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(A, B) correlations between the layouts of two sets of images: 1 same layout, about 0 unrelated."""
    return layouts(a) @ layouts(b).T


@dataclass(frozen=True)
class MeterReading:
    """For each sample: its best-matching photo and how well it matches."""

    nearest: torch.Tensor  # (B,) index of the best-matching photo
    similarity: torch.Tensor  # (B,) layout correlation with it: 1 is the same picture

    @property
    def is_copy(self) -> torch.Tensor:  # (B,) bool
        return self.similarity >= COPY_SIMILARITY

    def sentence(self) -> str:
        """One line for a person: mostly copies of the photos, or mostly new images?"""
        copies, total = int(self.is_copy.sum()), len(self.similarity)
        scale = (f"a sample counts as a copy when its layout matches one of your photos at {COPY_SIMILARITY} or more, "
                 f"blurred or paler copies included; median match {float(self.similarity.median()):.2f}")
        if copies * 2 > total:
            return (f"Copies: {copies} of {total} samples are copies of one of your photos ({scale}). "
                    "With a handful of photos a model learns them by heart; that is expected.")
        return f"New images: {total - copies} of {total} samples are not copies of any of your photos ({scale})."


def memorisation_meter(samples: torch.Tensor, photos: torch.Tensor) -> MeterReading:
    """Read the meter for ``samples`` (B, 3, R, R) against the training ``photos`` (N, 3, R, R), both in [-1, 1]."""
    similarity, nearest = layout_similarity(samples, photos).max(dim=1)
    return MeterReading(nearest, similarity)
