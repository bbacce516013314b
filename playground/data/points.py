"""2-D toy point clouds, normalised to zero mean and unit variance per axis, drawn from explicit generators.

Every draw of a dataset is normalised with the same constants (the distribution's own mean and spread, not the
draw's), so two draws are two samples of one distribution: a fine-grained metric comparing them reads about zero.
The Gaussian mixture's constants are exact, so its density (and score) has a closed form: :func:`gmm_parameters`.
"""

from __future__ import annotations

import functools
import math
import os

import numpy as np
import torch
from PIL import Image

from playground.data.images import load_image


def _normalise(points: torch.Tensor) -> torch.Tensor:
    """By the points' own mean and spread: for a one-off cloud (a drawing)."""
    return (points - points.mean(0)) / points.std(0)


def swiss_roll(n: int, generator: torch.Generator, noise: float = 0.25) -> torch.Tensor:
    """The 2-D Swiss roll (x = t cos t, y = t sin t for t in [1.5 pi, 4.5 pi]), as in sklearn."""
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator, dtype=torch.float64))
    points = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1)
    return points + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)


def moons(n: int, generator: torch.Generator, noise: float = 0.06) -> torch.Tensor:
    """Two interleaving half circles."""
    upper = torch.rand(n, generator=generator) < 0.5
    angle = math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    return torch.stack([x, y], 1) + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)


def s_curve(n: int, generator: torch.Generator, noise: float = 0.05) -> torch.Tensor:
    """The S-curve seen from the side: (sin t, sign(t)(cos t - 1)) for t in [-1.5 pi, 1.5 pi]."""
    t = 3 * math.pi * (torch.rand(n, generator=generator, dtype=torch.float64) - 0.5)
    points = torch.stack([torch.sin(t), torch.sign(t) * (torch.cos(t) - 1)], 1)
    return points + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)


GMM_MODES, GMM_RADIUS, GMM_STD = 8, 4.0, 0.3


def gmm(n: int, generator: torch.Generator, modes: int = GMM_MODES, radius: float = GMM_RADIUS,
        std: float = GMM_STD) -> torch.Tensor:
    """A mixture of ``modes`` Gaussians evenly spaced on a circle."""
    which = torch.randint(0, modes, (n,), generator=generator)
    angle = 2 * math.pi * which.double() / modes
    centres = radius * torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    return centres + std * torch.randn(n, 2, generator=generator, dtype=torch.float64)


TOY_DATASETS = {"swiss_roll": swiss_roll, "moons": moons, "s_curve": s_curve, "gmm": gmm}


@functools.cache
def _normalisation(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The dataset's mean and per-axis spread: exact for the mixture (by symmetry: mean 0, variance r^2/2 + s^2
    per axis), from one fixed draw of 400,000 points for the others (their last digits don't matter, only that
    every draw shares them)."""
    if name == "gmm":
        scale = math.sqrt(GMM_RADIUS**2 / 2 + GMM_STD**2)
        return torch.zeros(2, dtype=torch.float64), torch.full((2,), scale, dtype=torch.float64)
    points = TOY_DATASETS[name](400_000, torch.Generator().manual_seed(12345))
    return points.mean(0), points.std(0)


def gmm_parameters() -> tuple[torch.Tensor, float]:
    """The normalised Gaussian mixture as toy_points("gmm", ...) draws it: its means (modes, 2) and the common
    standard deviation (equal weights, isotropic)."""
    _, scale = _normalisation("gmm")
    angle = 2 * math.pi * torch.arange(GMM_MODES, dtype=torch.float64) / GMM_MODES
    centres = GMM_RADIUS * torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    return centres / scale, GMM_STD / float(scale[0])


def toy_points(name: str, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` points of the named dataset, (n, 2) float32, from ``seed``."""
    if name not in TOY_DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(TOY_DATASETS)}.")
    mean, spread = _normalisation(name)
    return ((TOY_DATASETS[name](int(n), torch.Generator().manual_seed(int(seed))) - mean) / spread).float()


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
