"""Training images as one tensor, fingerprinted: what a run trains on, from uint8 arrays and back."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Dataset:
    name: str
    images: torch.Tensor  # (N, 3, R, R) float32 in [-1, 1]
    fingerprint: str  # sha256 of the uint8 pixels
    count: int


def dataset_from_uint8(name: str, images: np.ndarray) -> Dataset:
    """(N, R, R, 3) uint8 -> a Dataset in [-1, 1], fingerprinted."""
    fingerprint = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).contiguous()
    return Dataset(name, tensor, fingerprint, len(images))


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, R, R) in [-1, 1] -> (N, R, R, 3) uint8, the inverse of :func:`dataset_from_uint8`'s conversion."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
