"""Training images as one tensor, fingerprinted: what a run trains on, from uint8 arrays and back."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Dataset:
    name: str
    images: torch.Tensor  # (N, C, R, R) float32 in [-1, 1], or uint8 0..255 (a memory-mapped folder cache)
    fingerprint: str  # sha256 of the uint8 pixels
    count: int
    captions: tuple[str, ...] | None = None  # one prompt per image (the emoji's names; "<word> dog"), for prompt models


def dataset_from_uint8(name: str, images: np.ndarray) -> Dataset:
    """(N, R, R, 3) uint8 -> a Dataset in [-1, 1], fingerprinted."""
    fingerprint = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).contiguous()
    return Dataset(name, tensor, fingerprint, len(images))


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, C, R, R) images with ``channels`` channels: colour to grey by luminance (ITU-R BT.601, as PIL's "L"),
    grey to colour by repeating; unchanged when they already match."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        return (images * weights).sum(dim=1, keepdim=True)
    if have == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    raise ValueError(f"Images with {have} channels can't become {channels}-channel images.")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, R, R) in [-1, 1] -> (N, R, R, 3) uint8, the inverse of :func:`dataset_from_uint8`'s conversion."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
