"""Draw the bundled example images in playground/data/examples/ (run once; the PNGs are committed).

landscape.png and chart.png are drawn here from code (CC0). dog.png is the U+1F436 glyph of Noto Color Emoji
(Debian's fonts-noto-color-emoji; the font is under the SIL Open Font License 1.1, the emoji art under Apache 2.0).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter, ImageFont  # noqa: E402

from playground.data.emoji import FONT_PATH, FONT_SIZE, content_square, render  # noqa: E402

OUT = ROOT / "playground" / "data" / "examples"


def landscape(size: int = 512) -> Image.Image:
    """Sunset over hills and a lake: smooth gradients plus sharp edges."""
    y = np.linspace(0, 1, size)[:, None]
    sky = np.stack([255 - 60 * y, 140 + 60 * y, 90 + 150 * y], -1) * np.ones((1, size, 1))
    image = Image.fromarray(sky.clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse((300, 120, 400, 220), fill=(255, 236, 150))
    for depth, (colour, height, phase) in enumerate([((90, 70, 120), 300, 0.0), ((40, 90, 70), 340, 1.7)]):
        points = [(x, height - 50 * math.sin(x / 70 + phase) - 25 * math.sin(x / 23 + depth))
                  for x in range(0, size + 1, 4)]
        draw.polygon(points + [(size, size), (0, size)], fill=colour)
    draw.rectangle((0, 400, size, size), fill=(60, 110, 160))
    for i in range(14):  # the sun's reflection
        draw.line((330 - 4 * i, 410 + 7 * i, 370 + 4 * i, 410 + 7 * i), fill=(250, 220, 140), width=2)
    for x in (60, 110, 150):  # trees
        draw.polygon([(x, 330), (x - 18, 395), (x + 18, 395)], fill=(20, 60, 40))
    return image.filter(ImageFilter.SMOOTH)


def chart(size: int = 512) -> Image.Image:
    """Colour bars, fine stripes and text: fine detail is what noise hides first."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    colours = [(230, 50, 50), (240, 160, 30), (240, 220, 40), (60, 180, 75), (40, 120, 220), (140, 70, 200)]
    bar = size // len(colours)
    for i, colour in enumerate(colours):
        draw.rectangle((i * bar, 0, (i + 1) * bar, size // 3), fill=colour)
    for i in range(0, size, 4):  # 2 px stripes
        draw.line((i, size // 3, i, size // 2), fill="black", width=2)
    for i in range(0, size, 16):
        draw.line((0, size // 2 + i // 4, size, size // 2 + i // 4), fill=(120, 120, 120), width=1)
    font = ImageFont.load_default(size=56)
    draw.text((size // 2, 3 * size // 4), "x_t = ?", fill="black", font=font, anchor="mm")
    draw.ellipse((20, size - 100, 100, size - 20), outline=(200, 30, 30), width=6)
    return image


def dog(size: int = 512) -> Image.Image:
    """The dog-face emoji on white, framed as the emoji set frames every glyph (so the app's emoji models know it:
    SDEdit at a low strength keeps it), enlarged smoothly from Noto's 136 px bitmap."""
    font = ImageFont.truetype(str(FONT_PATH), FONT_SIZE, layout_engine=ImageFont.Layout.RAQM)
    glyph = render("\U0001F436", font)
    return glyph.crop(content_square(glyph)).resize((size, size), Image.LANCZOS)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    landscape().save(OUT / "landscape.png", optimize=True)
    chart().save(OUT / "chart.png", optimize=True)
    dog().save(OUT / "dog.png", optimize=True)
    print(sorted(p.name for p in OUT.glob("*.png")))
