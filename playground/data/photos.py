"""Photos as training material: a person's handful for fine-tuning, and folders of them for the autoencoder.

    photos, problems = load_photos(paths)                         # uploads, each one checked; a sentence per bad one
    crops = photos_array(images, resolution=32, mode="center")    # (N, R, R, 3) uint8, exactly what the model sees
    bank = photo_bank(files, resolution=64, crops_per_photo=64)   # many squares of many photos, for an autoencoder

Every file goes through the upload checks (data.images.load_image). A person's photo reaches a model whole, made
square and shrunk (data.images.prepare_image); an autoencoder that is to reconstruct it must also see the detail of
a photo shrunk that much, and the texture of a small part of one, so :func:`photo_bank` cuts squares of random side,
from the whole shorter side down to the resolution itself, at random places, each resized with the same filter.
"""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from playground.data.folder import folder_files
from playground.data.images import ImageError, load_image, prepare_image

MAX_PHOTOS = 100  # a fine-tuning run's photos
SOURCE_SIDE = 256  # uploads are kept with their shorter side about this long; crops are made from these
CROP_MODES = {"center": "Centre crop", "pad": "Whole picture, padded with white"}  # SQUARE_MODES, as people read them


def check_photo_count(have: int, adding: int) -> None:
    """ValueError with one sentence when ``adding`` more photos to ``have`` would pass MAX_PHOTOS (or adds none)."""
    if adding < 1:
        raise ValueError("Drop one or more photos (JPEG, PNG, WebP...) into the box first.")
    room = MAX_PHOTOS - have
    if adding > room:
        raise ValueError(f"That would make {have + adding} photos; the limit is {MAX_PHOTOS}. You can add "
                         f"{max(room, 0)} more.")


def load_photo(path: str | os.PathLike) -> Image.Image:
    """An upload as an RGB image whose shorter side is about SOURCE_SIDE; ImageError says what is wrong."""
    image = load_image(path, max_side=SOURCE_SIDE)
    scale = SOURCE_SIDE / min(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
    return image


def load_photos(paths: list[str | os.PathLike]) -> tuple[list[tuple[str, Image.Image]], list[str]]:
    """Every readable photo among ``paths`` (name, image), and one sentence for each that is not."""
    photos, problems = [], []
    for path in paths:
        try:
            photos.append((Path(path).name, load_photo(path)))
        except ImageError as error:
            problems.append(str(error))
    return photos, problems


def photos_array(images: list[Image.Image], resolution: int, mode: str = "center") -> np.ndarray:
    """(N, R, R, 3) uint8: each photo made square (``mode``: one of CROP_MODES) and resized."""
    if not images:
        raise ValueError("There are no photos to train on; add at least one.")
    return np.stack([np.asarray(prepare_image(image, resolution, mode)) for image in images])


def keep_photos(paths: list[str | os.PathLike], folder: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """Save every readable upload into ``folder`` as PNG: ([{"name", "path"}, ...], one sentence per bad file)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    loaded, problems = load_photos(paths)
    kept = []
    for name, image in loaded:
        path = folder / f"{uuid.uuid4().hex[:12]}.png"
        image.save(path)
        kept.append({"name": name, "path": str(path)})
    return kept, problems


def open_photos(photos: list[dict]) -> list[Image.Image]:
    """The kept photos as images; ValueError once the session's files are gone (cleaned after 6 hours)."""
    try:
        return [Image.open(photo["path"]).convert("RGB") for photo in photos]
    except (OSError, KeyError):
        raise ValueError("Your photos have expired (sessions are cleaned after 6 hours); please add them "
                         "again.") from None


def photo_files(folder: str | os.PathLike) -> list[Path]:
    """Every file under ``folder`` (recursively, hidden ones aside), sorted; ValueError when there is none."""
    return folder_files(folder, "photos")


def split_held_out(files: list[Path], share: float = 0.1, minimum: int = 4) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files): every 1/share-th file of the sorted list is held out (at least
    ``minimum`` when there are twice that many), so the split is the same on every run."""
    every = max(2, round(1 / share)) if share > 0 else 0
    if not every or len(files) < 2 * minimum:
        return files, []
    held = set(range(0, len(files), every))
    for index in range(1, len(files), every):  # top up to the minimum, still spread over the list
        if len(held) >= minimum:
            break
        held.add(index)
    return [f for i, f in enumerate(files) if i not in held], [f for i, f in enumerate(files) if i in held]


def _readable(files: list[Path], max_side: int) -> list[Image.Image]:
    images = []
    for path in files:
        try:
            images.append(load_image(path, max_side=max_side))
        except ImageError:
            continue
    return images


def centre_squares(files: list[Path], resolution: int) -> np.ndarray:
    """Each readable photo as the Train tab makes it: centre-cropped and resized. (N, R, R, 3) uint8."""
    images = _readable(files, max_side=4 * resolution)
    if not images:
        raise ValueError("None of these files is a photo we can read.")
    return np.stack([np.asarray(prepare_image(image, resolution)) for image in images])


def random_squares(image: Image.Image, resolution: int, count: int, rng: random.Random) -> list[np.ndarray]:
    """``count`` squares of ``image`` at random places, their sides log-uniform from ``resolution`` to the shorter
    side, each resized to ``resolution`` (Lanczos when shrinking, as uploads are)."""
    shorter = min(image.size)
    crops = []
    for _ in range(count):
        side = round(resolution * (shorter / resolution) ** rng.random()) if shorter > resolution else shorter
        left, top = rng.randint(0, image.width - side), rng.randint(0, image.height - side)
        square = image.crop((left, top, left + side, top + side))
        crops.append(np.asarray(prepare_image(square, resolution)))
    return crops


def photo_bank(files: list[Path], resolution: int, crops_per_photo: int = 64, seed: int = 0,
               max_side: int = 512) -> np.ndarray:
    """(N, R, R, 3) uint8: ``crops_per_photo`` random squares of every readable photo (photos are first reduced so
    their shorter side is about ``max_side``), in a random order fixed by ``seed``."""
    rng = random.Random(seed)
    crops = []
    for image in _readable(files, max_side=max_side):
        if min(image.size) > max_side:
            scale = max_side / min(image.size)
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
        crops += random_squares(image, resolution, crops_per_photo, rng)
    if not crops:
        raise ValueError("None of these files is a photo we can read.")
    order = list(range(len(crops)))
    rng.shuffle(order)
    return np.stack([crops[i] for i in order])
