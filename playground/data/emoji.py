"""The emoji base set: every fully-qualified emoji of Noto Color Emoji, rendered on white.

Built from Debian's ``fonts-noto-color-emoji`` (SIL OFL 1.1) and ``unicode-data`` (emoji-test.txt names and
groups them): Pillow's RAQM layout, ``embedded_color=True``, size 109 (the font's bitmap size), composited on
white, reduced to the training resolution, deduplicated by pixels. Deterministic; cached as an .npz outside git.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_PATH = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
FONT_SIZE = 109  # Noto Color Emoji's only bitmap strike
CANVAS = 160  # room for the 136x128 glyph, centred
MISSING = ("The emoji set needs Debian's packages fonts-noto-color-emoji and unicode-data: "
           "run `apt-get install -y fonts-noto-color-emoji unicode-data`.")
CACHE_VERSION = 1


@dataclass(frozen=True)
class EmojiEntry:
    text: str
    name: str
    group: str
    subgroup: str


@dataclass(frozen=True)
class EmojiSet:
    images: np.ndarray  # (N, R, R, 3) uint8 on white
    names: list[str]
    groups: list[str]

    def __len__(self) -> int:
        return len(self.names)


def cache_dir() -> Path:
    base = os.environ.get("PLAYGROUND_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(base) / "diffusion-playground"


def read_emoji_test(path: Path = EMOJI_TEST) -> list[EmojiEntry]:
    """Every fully-qualified emoji in emoji-test.txt, in file order, with its name, group and subgroup."""
    if not path.is_file():
        raise FileNotFoundError(MISSING)
    entries, group, subgroup = [], "", ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif "; fully-qualified" in line:
            codes, comment = line.split(";", 1)[0], line.split("#", 1)[1].strip()
            text = "".join(chr(int(code, 16)) for code in codes.split())
            name = comment.split(" ", 2)[2] if comment.count(" ") >= 2 else comment  # "😀 E1.0 grinning face"
            entries.append(EmojiEntry(text, name, group, subgroup))
    return entries


def render(text: str, font: ImageFont.FreeTypeFont) -> Image.Image:
    """One emoji at the font's native size, centred on a white CANVAS x CANVAS square."""
    canvas = Image.new("RGBA", (CANVAS, CANVAS), (255, 255, 255, 255))
    ImageDraw.Draw(canvas).text((CANVAS // 2, CANVAS // 2), text, font=font, embedded_color=True, anchor="mm")
    return canvas.convert("RGB")


def build_emoji_set(resolution: int, groups: tuple[str, ...] | None = None, skin_tones: bool = False) -> EmojiSet:
    """Render, crop to the glyph's square, resize to ``resolution``, drop exact duplicates.

    groups: keep only these emoji-test groups (None: all). skin_tones: keep the skin-tone variants
    (they are mostly recolourings of one picture).
    """
    if not FONT_PATH.is_file():
        raise FileNotFoundError(MISSING)
    font = ImageFont.truetype(str(FONT_PATH), FONT_SIZE, layout_engine=ImageFont.Layout.RAQM)
    images, names, group_names, seen = [], [], [], set()
    for entry in read_emoji_test():
        if groups is not None and entry.group not in groups:
            continue
        if not skin_tones and "skin tone" in entry.name:
            continue
        image = render(entry.text, font)
        box = content_square(image)
        if box is None:  # the font has no glyph: nothing was drawn
            continue
        small = image.crop(box).resize((resolution, resolution), Image.LANCZOS)
        array = np.asarray(small, dtype=np.uint8)
        digest = hashlib.sha1(array.tobytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        images.append(array)
        names.append(entry.name)
        group_names.append(entry.group)
    return EmojiSet(np.stack(images), names, group_names)


def content_square(image: Image.Image, margin: int = 4) -> tuple[int, int, int, int] | None:
    """The square (with a small margin) around the non-white pixels, clipped to the canvas."""
    array = np.asarray(image, dtype=np.int16)
    ink = np.argwhere((255 - array).max(-1) > 8)
    if len(ink) < 20:
        return None
    (top, left), (bottom, right) = ink.min(0), ink.max(0) + 1
    side = max(bottom - top, right - left) + 2 * margin
    cy, cx = (top + bottom) // 2, (left + right) // 2
    x0 = int(min(max(cx - side // 2, 0), CANVAS - side)) if side <= CANVAS else 0
    y0 = int(min(max(cy - side // 2, 0), CANVAS - side)) if side <= CANVAS else 0
    side = min(side, CANVAS)
    return x0, y0, x0 + side, y0 + side


def load_emoji_set(resolution: int = 32, groups: tuple[str, ...] | None = None, skin_tones: bool = False) -> EmojiSet:
    """The emoji set at ``resolution``, from the cache when present (built and cached otherwise, ~10 s)."""
    key = hashlib.sha1(repr((CACHE_VERSION, resolution, groups, skin_tones)).encode()).hexdigest()[:12]
    path = cache_dir() / f"emoji-{resolution}px-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            return EmojiSet(data["images"], data["names"].tolist(), data["groups"].tolist())
    emoji = build_emoji_set(resolution, groups, skin_tones)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, images=emoji.images, names=np.array(emoji.names), groups=np.array(emoji.groups))
    os.replace(tmp, path)
    return emoji


# The set the shipped models learn ("curated"): every group but symbols and flags, without the skin-tone variants.
CURATED_GROUPS = ("Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places",
                  "Activities", "Objects")
SUBSETS = {"curated": (CURATED_GROUPS, False), "all": (None, True)}  # name -> (groups, skin tones)


def emoji_subset(resolution: int, subset: str = "curated") -> EmojiSet:
    """The "curated" emoji (CURATED_GROUPS, no skin tones) or "all" of them, at ``resolution``."""
    if subset not in SUBSETS:
        raise ValueError(f"Unknown emoji subset {subset!r}; choose one of {', '.join(SUBSETS)}.")
    groups, skin_tones = SUBSETS[subset]
    return load_emoji_set(resolution, groups, skin_tones=skin_tones)
