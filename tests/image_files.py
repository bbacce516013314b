"""Write the files people really upload, good and bad, into a folder (for unit, app and browser tests)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

RED, BLUE = (220, 30, 30), (30, 30, 220)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header claiming width x height 1-bit pixels, with almost no data: a decompression bomb."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth colourful picture (gradients + a disc), so resizing and JPEG behave as on a photo."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 127 + 100 * np.sin(x / max(width, 1) * 6 + seed)
    g = 127 + 100 * np.cos(y / max(height, 1) * 5)
    b = 127 + 100 * np.sin((x + y) / max(width + height, 1) * 4)
    array = np.stack([r, g, b], -1).clip(0, 255).astype(np.uint8)
    return Image.fromarray(array, "RGB")


def write_good(folder: Path) -> dict[str, Path]:
    """Good uploads by name; each should load."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    def save(name: str, image: Image.Image, **kwargs) -> None:
        paths[name] = folder / name
        image.save(paths[name], **kwargs)

    base = photo(96, 64)
    save("photo.jpg", base, quality=92)
    save("photo.png", base)
    save("photo.webp", base, quality=90)
    save("photo.bmp", base)
    save("photo.tiff", base)
    frames = [Image.new("RGB", (40, 40), RED), Image.new("RGB", (40, 40), BLUE)]
    save("animated.gif", frames[0], save_all=True, append_images=frames[1:], duration=100)
    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))  # fully transparent: should come out white
    rgba.paste((*RED, 255), (0, 0, 20, 40))
    save("transparent.png", rgba)
    save("grey.png", base.convert("L"))
    palette = base.convert("P", palette=Image.ADAPTIVE, colors=16)
    save("palette.png", palette)
    transparent_palette = Image.new("P", (40, 40), 0)
    transparent_palette.putpalette([0, 0, 0, *RED] + [0] * 762)
    transparent_palette.paste(1, (0, 0, 20, 40))
    save("palette_transparent.png", transparent_palette, transparency=0)
    sixteen = Image.fromarray((np.ones((32, 32)) * 32768).astype(np.uint16))  # mid-grey in 16 bits
    save("sixteen_bit.png", sixteen)
    save("cmyk.jpg", Image.new("CMYK", (40, 40), (0, 255, 255, 0)))  # pure red in CMYK
    tall = photo(40, 80)  # stored 40 wide, 80 tall ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... with "rotate 90 degrees clockwise to view": shown 80 wide, 40 tall
    save("phone_rotated.jpg", tall, exif=exif.tobytes())
    save("wide.png", photo(4000, 60))
    save("large.jpg", photo(6000, 4000), quality=85)  # 24 MP, under the limit
    save("tiny.png", photo(3, 2))
    return paths


def write_bad(folder: Path) -> dict[str, Path]:
    """Bad uploads by name; each must be refused with a sentence."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / name for name in
             ("empty.png", "corrupt.jpg", "truncated.png", "truncated.jpg", "notes.txt", "bomb.png", "huge.png")}
    paths["empty.png"].write_bytes(b"")
    paths["corrupt.jpg"].write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 20)
    good_png = folder / "_full.png"
    photo(200, 200).save(good_png)
    paths["truncated.png"].write_bytes(good_png.read_bytes()[:3000])
    good_png.unlink()
    good_jpg = folder / "_full.jpg"
    photo(400, 300).save(good_jpg, quality=95)
    paths["truncated.jpg"].write_bytes(good_jpg.read_bytes()[:2500])
    good_jpg.unlink()
    paths["notes.txt"].write_text("six pictures of my dog, coming soon\n")
    paths["bomb.png"].write_bytes(bomb_png())
    paths["huge.png"].write_bytes(bomb_png(9000, 5000))  # 45 MP: just over the limit, refused from the header
    return paths


# The uploads each should load, and the ones refused with (a part of) the sentence a person reads.
GOOD = ["photo.jpg", "photo.png", "photo.webp", "photo.bmp", "photo.tiff", "animated.gif", "transparent.png",
        "grey.png", "palette.png", "palette_transparent.png", "sixteen_bit.png", "cmyk.jpg", "phone_rotated.jpg",
        "wide.png", "large.jpg", "tiny.png"]

BAD = {
    "empty.png": "is empty",
    "corrupt.jpg": "truncated or corrupt|not an image",
    "truncated.png": "truncated or corrupt",
    "truncated.jpg": "truncated or corrupt",
    "notes.txt": "not an image we can read",
    "bomb.png": "megapixels",
    "huge.png": "megapixels",
}
