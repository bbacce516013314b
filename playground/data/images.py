"""Open any image a person really has, or say in one sentence why not.

Every upload goes through :func:`load_image`: JPEG, PNG, WebP, BMP, GIF (first frame), TIFF; RGBA and
palette images composited on white; greyscale, 16-bit and CMYK converted to RGB; EXIF rotation applied.
Files too big, too many pixels (decompression bombs), empty, truncated or not images raise
:class:`ImageError`, whose message is meant to be shown to the person as is.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_FILE_BYTES = 30 * 1024 * 1024  # 30 MB: larger than any phone photo
MAX_PIXELS = 40_000_000  # 40 megapixels, checked from the header before decoding anything
FORMATS = "JPEG, PNG, WebP, BMP, GIF or TIFF"

# Pillow's own bomb check fires at 2x this; ours (MAX_PIXELS) runs first, from the header.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageError(ValueError):
    """A bad upload. ``str(error)`` is one sentence for a person: what was wrong and what to do."""


def load_image(path: str | os.PathLike, max_side: int | None = None) -> Image.Image:
    """Open ``path`` as an 8-bit RGB image, upright, on white.

    max_side: when given, a large image is reduced while decoding (JPEG draft mode) and then shrunk so
    its shorter side is about ``max_side``; this keeps a 12 MP phone photo fast without hurting a crop
    to ``max_side``.
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise ImageError(f"Could not find the file {name!r}; please upload it again.")
    size = path.stat().st_size
    if size == 0:
        raise ImageError(f"{name!r} is empty (0 bytes); please upload a {FORMATS} image.")
    if size > MAX_FILE_BYTES:
        raise ImageError(
            f"{name!r} is {size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB. "
            "Please upload a smaller image."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            _check_pixels(image, name)
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)  # animated GIF/WebP/TIFF: the first frame
            if max_side is not None and image.format == "JPEG":
                image.draft("RGB", (max_side, max_side))  # decode at 1/2, 1/4 or 1/8 scale
            image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # Pillow refuses before we see the size; its message has the pixel count ("Image size (N pixels) ...").
        found = re.search(r"\((\d+) pixels\)", str(error))
        size = f"is {int(found.group(1)) / 1e6:,.0f} megapixels" if found else "has too many pixels"
        raise ImageError(
            f"{name!r} {size}; the limit is {MAX_PIXELS // 1_000_000} megapixels. Please downscale it first."
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"{name!r} is not an image we can read; please upload a {FORMATS} file.") from None
    except (OSError, ValueError, SyntaxError, EOFError):
        raise ImageError(
            f"{name!r} looks truncated or corrupt and could not be decoded; please upload another copy."
        ) from None
    image = _upright(image)
    image = to_rgb_on_white(image)
    if max_side is not None and min(image.size) > 2 * max_side:
        scale = 2 * max_side / min(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BOX)
    return image


def _check_pixels(image: Image.Image, name: str) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(f"{name!r} has no pixels ({width}x{height}); please upload another image.")
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{name!r} is {width}x{height} = {width * height / 1e6:.0f} megapixels; the limit is "
            f"{MAX_PIXELS // 1_000_000} megapixels. Please downscale it first."
        )


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag (phone photos are often stored sideways)."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block should not cost the person their photo
        return image


def to_rgb_on_white(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparency is composited on white, 16-bit is scaled, not clipped."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif mode in ("LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image).convert("RGB")
    return image.convert("RGB")


def center_crop_square(image: Image.Image) -> Image.Image:
    """The largest centred square."""
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


def pad_square(image: Image.Image) -> Image.Image:
    """The whole picture, centred on a white square."""
    side = max(image.size)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return canvas


SQUARE_MODES = {"center": center_crop_square, "pad": pad_square}


def prepare_image(image: Image.Image, resolution: int, mode: str = "center") -> Image.Image:
    """What a model sees: the picture made square (its centre, or the whole of it padded with white: ``mode``
    "center" or "pad") and resized to ``resolution`` x ``resolution``."""
    if mode not in SQUARE_MODES:
        raise ValueError(f"Unknown crop mode {mode!r}; choose one of {', '.join(SQUARE_MODES)}.")
    square = SQUARE_MODES[mode](image)
    if square.width == resolution:
        return square
    # Lanczos when shrinking keeps edges sharp; bicubic when a tiny image must grow.
    resample = Image.LANCZOS if square.width > resolution else Image.BICUBIC
    return square.resize((resolution, resolution), resample, reducing_gap=3.0)
