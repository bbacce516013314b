"""Any folder of images as training data, decoded once into a memory-mapped cache.

    cache = image_folder("photos/", resolution=64)      # decodes what is new, else opens the cache
    cache.images        # (N, C, R, R) uint8 tensor backed by the file: batches read only their own pages
    cache.skipped       # [(relative path, sentence)] for files the upload rules refuse, listed once

Every file under the folder (recursively, hidden ones aside) goes through the same checks as an upload
(data.images.load_image: format, size, pixels, EXIF orientation, transparency on white), is centre-cropped to a
square and resized to R x R. A folder whose every image is grey (R = G = B) becomes 1-channel data, so it trains a
greyscale model; otherwise 3-channel.

Images are stored in an order shuffled from the key, so any tail of the cache is a random sample of the folder
(train --data holds one out to measure sample quality against).

The cache lives in CACHE_ROOT/<key>/ (images.u8, index.json), the key a hash of every file's relative path, size and
modification time plus the resolution: change the folder and it is rebuilt; point at it again and it opens at once.
RAM stays bounded: images are decoded in chunks straight into the memory-mapped file, and training reads pages.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from playground.data.images import ImageError, load_image, prepare_image

CACHE_ROOT = Path(os.environ.get("PLAYGROUND_DATA_CACHE", Path.home() / ".cache" / "diffusion-playground" / "data"))


@dataclass(frozen=True)
class FolderData:
    name: str
    images: torch.Tensor  # (N, C, R, R) uint8, memory-mapped
    fingerprint: str  # the cache key
    count: int
    skipped: list[tuple[str, str]]  # (relative path, why)
    channels: int
    cache_dir: Path


def list_files(folder: Path) -> list[Path]:
    """Every file under ``folder``, recursively, sorted; hidden files and folders are left out."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / f for f in sorted(files) if not f.startswith(".")]
    return found


def folder_files(folder: str | os.PathLike, what: str = "images") -> list[Path]:
    """:func:`list_files` of a folder that must hold some, or ValueError with one sentence (``what`` it should
    hold: "images", "photos")."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{str(folder)!r} is not a folder of {what}.")
    files = list_files(folder)
    if not files:
        raise ValueError(f"{str(folder)!r} holds no files.")
    return files


def cache_key(folder: Path, files: list[Path], resolution: int) -> str:
    digest = hashlib.sha256(f"v1|{resolution}".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(folder).as_posix()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _decode(path: Path, resolution: int) -> np.ndarray:
    """(R, R, 3) uint8 of one file, or ImageError."""
    image = load_image(path, max_side=4 * resolution)
    return np.asarray(prepare_image(image, resolution), dtype=np.uint8)


def image_folder(folder: str | os.PathLike, resolution: int, cache_root: Path | None = None,
                 progress=None) -> FolderData:
    """The folder's images at ``resolution``, from the cache (built on first use). ``progress(done, total)`` is
    called while decoding. ValueError when the folder has no usable image."""
    folder = Path(folder)
    files = folder_files(folder)
    key = cache_key(folder, files, resolution)  # hex: its first digits also seed the stored order
    where = (cache_root or CACHE_ROOT) / key
    if not (where / "index.json").is_file():
        _build(folder, files, resolution, where, progress)
    index = json.loads((where / "index.json").read_text())
    count, channels = index["count"], index["channels"]
    # copy-on-write: the file is never written, and torch gets the writable array it asks for
    array = np.memmap(where / "images.u8", dtype=np.uint8, mode="c", shape=(count, channels, resolution, resolution))
    images = torch.from_numpy(array)
    return FolderData(folder.name, images, key, count, [tuple(s) for s in index["skipped"]], channels, where)


def _build(folder: Path, files: list[Path], resolution: int, where: Path, progress) -> None:
    tmp = where.with_name(f".{where.name}.{uuid.uuid4().hex[:6]}.tmp")
    tmp.mkdir(parents=True)
    try:
        colour = np.lib.format.open_memmap(tmp / "rgb.npy", mode="w+", dtype=np.uint8,
                                           shape=(len(files), resolution, resolution, 3))
        kept, skipped, grey = 0, [], True
        order = np.random.RandomState(int(where.name[:8], 16)).permutation(len(files))
        for i, path in enumerate(files[j] for j in order):
            try:
                pixels = _decode(path, resolution)
            except ImageError as error:
                skipped.append((path.relative_to(folder).as_posix(), str(error)))
            else:
                colour[kept] = pixels
                grey = grey and bool((pixels[..., 0] == pixels[..., 1]).all() and
                                     (pixels[..., 1] == pixels[..., 2]).all())
                kept += 1
            if progress is not None and (i % 256 == 0 or i == len(files) - 1):
                progress(i + 1, len(files))
        if not kept:
            first = f" First problem: {skipped[0][1]}" if skipped else ""
            raise ValueError(f"None of the {len(files)} files under {folder.name!r} is an image we can read.{first}")
        channels = 1 if grey else 3
        out = np.memmap(tmp / "images.u8", dtype=np.uint8, mode="w+",
                        shape=(kept, channels, resolution, resolution))
        for start in range(0, kept, 1024):  # channels first, in chunks: RAM stays bounded
            chunk = colour[start:min(start + 1024, kept)]
            out[start:start + len(chunk)] = (chunk[..., :1] if grey else chunk).transpose(0, 3, 1, 2)
        out.flush()
        del out, colour
        (tmp / "rgb.npy").unlink()
        (tmp / "index.json").write_text(json.dumps({"folder": str(folder), "count": kept, "channels": channels,
                                                    "resolution": resolution, "skipped": skipped}))
        where.parent.mkdir(parents=True, exist_ok=True)
        if where.exists():  # another process built it meanwhile
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, where)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
