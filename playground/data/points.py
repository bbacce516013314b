"""2-D toy point clouds, normalised to zero mean and unit variance per axis, drawn from explicit generators."""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from PIL import Image

from playground.data.images import load_image


def _normalise(points: torch.Tensor) -> torch.Tensor:
    return (points - points.mean(0)) / points.std(0)


def swiss_roll(n: int, generator: torch.Generator, noise: float = 0.25) -> torch.Tensor:
    """The 2-D Swiss roll (x = t cos t, y = t sin t for t in [1.5 pi, 4.5 pi]), as in sklearn."""
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator, dtype=torch.float64))
    points = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1)
    return _normalise(points + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)).float()


def moons(n: int, generator: torch.Generator, noise: float = 0.06) -> torch.Tensor:
    """Two interleaving half circles."""
    upper = torch.rand(n, generator=generator) < 0.5
    angle = math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    points = torch.stack([x, y], 1) + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return _normalise(points).float()


def s_curve(n: int, generator: torch.Generator, noise: float = 0.05) -> torch.Tensor:
    """The S-curve seen from the side: (sin t, sign(t)(cos t - 1)) for t in [-1.5 pi, 1.5 pi]."""
    t = 3 * math.pi * (torch.rand(n, generator=generator, dtype=torch.float64) - 0.5)
    points = torch.stack([torch.sin(t), torch.sign(t) * (torch.cos(t) - 1)], 1)
    return _normalise(points + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)).float()


def gmm(n: int, generator: torch.Generator, modes: int = 8, radius: float = 4.0, std: float = 0.3) -> torch.Tensor:
    """A mixture of ``modes`` Gaussians evenly spaced on a circle."""
    which = torch.randint(0, modes, (n,), generator=generator)
    angle = 2 * math.pi * which.double() / modes
    centres = radius * torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    points = centres + std * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return _normalise(points).float()


TOY_DATASETS = {"swiss_roll": swiss_roll, "moons": moons, "s_curve": s_curve, "gmm": gmm}


def toy_points(name: str, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` points of the named dataset, (n, 2) float32, from ``seed``."""
    if name not in TOY_DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(TOY_DATASETS)}.")
    return TOY_DATASETS[name](int(n), torch.Generator().manual_seed(int(seed)))


def points_from_drawing(path: str | os.PathLike, n: int, seed: int = 0, size: int = 256) -> torch.Tensor:
    """Sample ``n`` points from the dark pixels of a black-on-white drawing or silhouette (y up).

    Raises ImageError for a bad file and ValueError when the picture has too few dark pixels.
    """
    image = load_image(path, max_side=size)
    image.thumbnail((size, size), Image.LANCZOS)
    grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    ink = 1.0 - grey
    ink = np.where(ink > 0.35, ink, 0.0)  # ignore paper texture and JPEG halos
    if (ink > 0).sum() < 30:
        raise ValueError("That picture has almost no dark pixels; draw black shapes on a white background.")
    generator = torch.Generator().manual_seed(int(seed))
    weights = torch.from_numpy(ink.ravel()).double()
    index = torch.multinomial(weights, int(n), replacement=True, generator=generator)
    rows, cols = index // ink.shape[1], index % ink.shape[1]
    jitter = torch.rand(int(n), 2, generator=generator, dtype=torch.float64)  # spread within each pixel
    points = torch.stack([cols + jitter[:, 0], ink.shape[0] - (rows + jitter[:, 1])], 1)
    return _normalise(points).float()
