"""Sample quality while a model trains, with nothing downloaded: density and coverage (Naeem et al. 2020,
"Reliable Fidelity and Diversity Metrics for Generative Models") in a fixed random feature space, and the share of
samples that are near-copies of a training image.

Features: a randomly initialised CNN (seed 0; 4 stride-2 3x3 convolutions, 3 -> 32 -> 64 -> 128 -> 256 channels with
ReLU, then global average and max pooling: 512 numbers), on images resized to 64 x 64, grey ones repeated to 3
channels. Naeem et al. show such random embeddings rank models sensibly where ImageNet features do not apply;
they are comparable within one run and one data set, not across them.

Density: how many real-sample neighbourhoods (the ball to each real point's k-th nearest real neighbour) a fake
sample falls in, per k and per sample: about 1 when samples sit where the data is, below 1 for off-data samples.
Coverage: the share of real neighbourhoods that hold at least one sample: low when samples miss parts of the data.
Near-copies: samples closer to a training image than half the median distance from a held-out image to its
nearest training image (8 x 8 block averages).

Prompt fidelity: a sample follows a word when the training image nearest to it (Euclidean distance over all its
pixels) has that word in its name: for each word, the share of samples that do.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from playground.data.dataset import match_channels
from playground.data.prompts import words_of

FEATURE_SIZE = 64
NEIGHBOURS = 5


@functools.cache
def _network() -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        layers: list[torch.nn.Module] = []
        width = 3
        for out in (32, 64, 128, 256):
            layers += [torch.nn.Conv2d(width, out, 3, stride=2, padding=1), torch.nn.ReLU()]
            width = out
        return torch.nn.Sequential(*layers).eval()


@torch.inference_mode()
def features(images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """(N, C, H, W) images in [-1, 1] (or uint8) -> (N, 512) random-CNN features."""
    network = _network()
    out = []
    for start in range(0, len(images), batch):
        x = images[start:start + batch]
        x = x.float().div(127.5).sub(1.0) if x.dtype == torch.uint8 else x.float().cpu()
        x = torch.nn.functional.interpolate(match_channels(x, 3), size=FEATURE_SIZE, mode="bilinear",
                                            align_corners=False, antialias=True)
        h = network(x)
        out.append(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1))
    return torch.cat(out)


def density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = NEIGHBOURS) -> tuple[float, float]:
    """Naeem et al. 2020, eq. 3 and 4, for real and fake feature sets (M, D) and (N, D)."""
    real, fake = real.double(), fake.double()
    k = max(1, min(k, len(real) - 1))
    radii = torch.cdist(real, real).kthvalue(k + 1, dim=1).values  # the k-th neighbour (the first is itself)
    inside = torch.cdist(fake, real) <= radii.unsqueeze(0)  # (N, M)
    density = float(inside.sum()) / (k * len(fake))
    coverage = float(inside.any(dim=0).double().mean())
    return density, coverage


def _blocks(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) in [-1, 1] or uint8 -> (N, 3 * 8 * 8) block averages: small shifts and blur barely move them."""
    x = images.float().div(127.5).sub(1.0) if images.dtype == torch.uint8 else images.float().cpu()
    return torch.nn.functional.adaptive_avg_pool2d(match_channels(x, 3), 8).flatten(1)


def nearest_distances(images: torch.Tensor, training: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """Each image's distance (8 x 8 block averages) to its nearest training image, the training set in chunks."""
    mine = _blocks(images)
    best = torch.full((len(images),), float("inf"))
    for start in range(0, len(training), chunk):
        best = torch.minimum(best, torch.cdist(mine, _blocks(training[start:start + chunk])).amin(dim=1))
    return best


def copy_threshold(held_out: torch.Tensor, training: torch.Tensor) -> float:
    """Half the median distance from a held-out image (new, by construction) to its nearest training image: a
    sample closer than that to a training image is a near-copy. Relative to the data's own spacing, so aligned
    faces or centred emoji, whose layouts all look alike, are not all called copies."""
    return 0.5 * float(nearest_distances(held_out, training).median())


def copy_share(samples: torch.Tensor, training: torch.Tensor, threshold: float) -> float:
    """The share of samples closer than ``threshold`` to some training image."""
    return float((nearest_distances(samples, training) < threshold).float().mean())


@dataclass(frozen=True)
class QualityReading:
    step: int
    density: float
    coverage: float
    copies: float  # share of samples that are near-copies of a training image


class QualityProbe:
    """Holds the held-out images' features, so each reading only embeds the new samples."""

    def __init__(self, held_out: torch.Tensor, training: torch.Tensor) -> None:
        self.real = features(held_out)
        self.training = training
        self.threshold = copy_threshold(held_out, training)

    def read(self, step: int, samples: torch.Tensor) -> QualityReading:
        density, coverage = density_coverage(self.real, features(samples))
        return QualityReading(step, density, coverage, copy_share(samples, self.training, self.threshold))


def nearest_images(samples: torch.Tensor, images: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """The index of each sample's nearest image (Euclidean distance over all pixels; same size and channels)."""
    mine = samples.float().cpu().flatten(1)
    best = torch.full((len(samples),), float("inf"))
    index = torch.zeros(len(samples), dtype=torch.long)
    for start in range(0, len(images), chunk):
        part = images[start:start + chunk]
        part = part.float().div(127.5).sub(1.0) if part.dtype == torch.uint8 else part.float().cpu()
        distance, where = torch.cdist(mine, part.flatten(1)).min(dim=1)
        closer = distance < best
        best, index = torch.where(closer, distance, best), torch.where(closer, where + start, index)
    return index


def word_fidelity(samples: torch.Tensor, word: str, images: torch.Tensor, names: list[str]) -> float:
    """The share of ``samples`` whose nearest image in ``images`` has ``word`` in its name (``names[i]``)."""
    return sum(word in words_of(names[i]) for i in nearest_images(samples, images).tolist()) / len(samples)


def spread(samples: torch.Tensor) -> float:
    """How different a prompt's samples are from each other: the mean RMS distance (per pixel, pictures in [-1, 1])
    over every pair. One picture drawn again and again gives 0; 16 emoji drawn at random from the set, about 0.7."""
    flat = samples.flatten(1).float()
    distances = torch.cdist(flat, flat) / flat.shape[1] ** 0.5
    count = len(flat)
    return float(distances.sum() / (count * (count - 1)))


def chance_fidelity(word: str, names: list[str]) -> float:
    """What :func:`word_fidelity` would give samples that ignore the prompt and spread like the data: the share of
    names with the word."""
    return sum(word in words_of(name) for name in names) / len(names)


BENCH_WORDS = ("cat", "dog", "heart", "moon", "clock", "face", "tree", "car", "star", "flag", "fish", "bird", "house",
               "sun", "flower", "apple", "ball", "hand", "cloud", "fire", "train", "boat", "hat", "book", "cake")


def prompt_fidelity(draw: Callable[[str], torch.Tensor], words: tuple[str, ...], images: torch.Tensor,
                    names: list[str]) -> dict[str, float]:
    """Each word's :func:`word_fidelity` for the pictures ``draw(word)`` gives (a model sampled with that prompt):
    what bench/prompt_fidelity.py and bench/sampling.py --distilled report, as a mean and per word."""
    return {word: word_fidelity(draw(word), word, images, names) for word in words}
