"""Pictures in and out: tensors <-> PIL, pixel-crisp zoom, strips and GIFs.

Images are tensors of shape (B, 3, H, W) in [-1, 1] inside the core; PIL images at the edges.
"""

from __future__ import annotations

import base64
import html
import io
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (1, 3, H, W) float32 in [-1, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32)  # (H, W, 3) in 0..255
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).div(127.5).sub(1.0)


def tensor_to_pil(x: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> Image.Image:
    """(C, H, W) or (1, C, H, W) tensor, C = 3 or 1 (grey) -> RGB PIL image; values outside ``value_range`` are
    clipped."""
    if x.ndim == 4:
        x = x[0]
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    low, high = value_range
    x = ((x.detach().float().cpu() - low) / (high - low)).clamp(0.0, 1.0)
    array = (x.permute(1, 2, 0) * 255.0 + 0.5).to(torch.uint8).numpy()
    return Image.fromarray(array, "RGB")


def noise_to_pil(noise: torch.Tensor) -> Image.Image:
    """Show eps ~ N(0, I): -3 sigma is black, 0 is mid-grey, +3 sigma is white."""
    return tensor_to_pil(noise, value_range=(-3.0, 3.0))


def zoom(image: Image.Image, min_side: int = 256) -> Image.Image:
    """Enlarge by a whole factor with nearest-neighbour so a small image stays pixel-crisp."""
    factor = max(1, -(-min_side // max(1, min(image.size))))  # ceil
    if factor == 1:
        return image
    return image.resize((image.width * factor, image.height * factor), Image.NEAREST)


def strip(images: Sequence[Image.Image], gap: int = 4,
          background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Images of one height side by side, ``gap`` pixels apart."""
    height = max(image.height for image in images)
    width = sum(image.width for image in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (width, height), background)
    x = 0
    for image in images:
        canvas.paste(image, (x, 0))
        x += image.width + gap
    return canvas


def label(image: Image.Image, text: str, size: int | None = None,
          colour: tuple[int, int, int] = (40, 40, 40)) -> Image.Image:
    """``image`` with ``text`` written in a white band under it (font ``size`` px; default scales with the width)."""
    font = ImageFont.load_default(size=size or max(14, image.width // 7))
    band = font.size + 8
    out = Image.new("RGB", (image.width, image.height + band), (255, 255, 255))
    out.paste(image, (0, 0))
    ImageDraw.Draw(out).text((image.width // 2, image.height + band // 2), text, fill=colour, font=font, anchor="mm")
    return out


def image_grid(images: torch.Tensor, columns: int | None = None, pad: int = 2) -> Image.Image:
    """(B, 3, H, W) in [-1, 1] -> one picture, ``columns`` wide, on white."""
    count = images.shape[0]
    columns = columns or max(1, int(np.ceil(np.sqrt(count))))
    rows = int(np.ceil(count / columns))
    height, width = images.shape[-2:]
    grid = Image.new("RGB", (columns * (width + pad) + pad, rows * (height + pad) + pad), (255, 255, 255))
    for i, image in enumerate(images):
        grid.paste(tensor_to_pil(image), (pad + (i % columns) * (width + pad), pad + (i // columns) * (height + pad)))
    return grid


def grid_picture(images: torch.Tensor, display: int = 512) -> Image.Image:
    """A square-ish grid of (B, C, H, W) images in [-1, 1], enlarged crisply to about ``display`` px."""
    picture = image_grid(images.clamp(-1, 1))
    return zoom(picture, min_side=min(display, 8 * picture.width))


def channel_grid(latents: torch.Tensor, rows: int = 4, display: int = 512) -> Image.Image:
    """A latent model's samples as their channels: a row per sample (the first ``rows``), a grey tile per channel
    (-3 sigma black, +3 sigma white), enlarged crisply to at least half of ``display`` px."""
    tiles = [noise_to_pil(channel[None]) for sample in latents[:rows] for channel in sample]
    picture = grid(tiles, columns=latents.shape[1], gap=2)
    return zoom(picture, min_side=display // 2)


def outline(images: torch.Tensor, mask: torch.Tensor, colour: tuple[float, float, float] = (1.0, -0.6, -0.6)
            ) -> torch.Tensor:
    """(B, C, H, W) pictures in [-1, 1] with the edge of ``mask``'s region ((1, 1, H, W), 1 inside) drawn in red, to
    show where a repainted region meets the kept one."""
    inside = mask.bool()
    grown = torch.nn.functional.max_pool2d(mask, 3, stride=1, padding=1).bool()
    edge = (grown & ~inside).expand(images.shape[0], 1, -1, -1)
    pictures = images.expand(-1, 3, -1, -1).clone() if images.shape[1] == 1 else images.clone()
    for channel, value in enumerate(colour):
        pictures[:, channel:channel + 1][edge] = value
    return pictures


def animation_frame(left: torch.Tensor, right: torch.Tensor, caption: str, display: int = 256) -> Image.Image:
    """One frame of a sampling animation: two grids side by side (the samples x_t and the model's x_0 from them),
    captioned (e.g. "t = 873 · step 3 of 25")."""
    return label(strip([grid_picture(left, display), grid_picture(right, display)], gap=12), caption, size=18)


def save_animation(frames: Sequence[Image.Image], gif: str | os.PathLike | None,
                   mp4: str | os.PathLike | None = None) -> list[Path]:
    """A sampling animation as a GIF and, with PyAV, an MP4 (each only where a path is given; atomic writes)."""
    written = [save_gif(frames, gif, duration_ms=70)] if gif else []
    movie = save_mp4(frames, mp4) if mp4 else None
    return written + ([movie] if movie is not None else [])


def grid(pictures: Sequence[Image.Image], columns: int, gap: int = 12) -> Image.Image:
    """PIL pictures (any sizes) in rows of ``columns``, ``gap`` apart, on white."""
    rows = [strip(pictures[i:i + columns], gap=gap) for i in range(0, len(pictures), columns)]
    width, height = max(r.width for r in rows), sum(r.height for r in rows) + gap * (len(rows) - 1)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    y = 0
    for row in rows:
        canvas.paste(row, (0, y))
        y += row.height + gap
    return canvas


def png_data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def pairs_html(pairs: Sequence[tuple[Image.Image, Image.Image, str, str]], side: int = 96) -> str:
    """Pictures in captioned pairs (left, right, caption, colour), wrapping to the width: 4 a row on a laptop,
    2 on a phone. Real text, so captions stay whole and readable at any width."""
    figures = []
    for left, right, caption, colour in pairs:
        pictures = "".join(
            f'<img src="{png_data_uri(zoom(p, side))}" alt="" width="{side}" height="{side}" '
            'style="image-rendering:pixelated;margin:0;max-width:none">' for p in (left, right))
        figures.append(f'<figure style="margin:6px;text-align:center;width:{2 * side + 4}px">'
                       f'<div style="display:flex;gap:4px">{pictures}</div>'
                       f'<figcaption style="font-size:14px;line-height:1.3;color:{colour}">{html.escape(caption)}'
                       "</figcaption></figure>")
    return '<div style="display:flex;flex-wrap:wrap;justify-content:flex-start">' + "".join(figures) + "</div>"


def save_gif(frames: Sequence[Image.Image], path: str | os.PathLike, duration_ms: int = 80,
             hold_last_ms: int = 1200) -> Path:
    """Write an endlessly looping GIF, holding the last frame a moment; written atomically."""
    path = Path(path)
    durations = [duration_ms] * (len(frames) - 1) + [hold_last_ms]
    quantized = [frame.convert("RGB") for frame in frames]
    with atomic_path(path) as tmp:
        quantized[0].save(
            tmp, format="GIF", save_all=True, append_images=quantized[1:], duration=durations, loop=0, optimize=False
        )
    return path


def mp4_available() -> bool:
    """MP4 needs PyAV (the `av` package, which bundles FFmpeg with H.264)."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def save_mp4(frames: Sequence[Image.Image], path: str | os.PathLike, fps: int = 14,
             hold_last_s: float = 1.0) -> Path | None:
    """Write an H.264 MP4 (yuv420p, plays in every browser), holding the last frame; None without PyAV."""
    if not mp4_available():
        return None
    import av

    path = Path(path)
    first = frames[0].convert("RGB")
    width, height = first.width + first.width % 2, first.height + first.height % 2  # yuv420p needs even sides
    hold = [frames[-1]] * max(0, round(hold_last_s * fps) - 1)
    with atomic_path(path) as tmp:
        container = av.open(str(tmp), mode="w", format="mp4")
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "20"}
        for frame in [*frames, *hold]:
            canvas = Image.new("RGB", (width, height), (255, 255, 255))
            canvas.paste(frame.convert("RGB"), (0, 0))
            for packet in stream.encode(av.VideoFrame.from_image(canvas)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        container.close()
    return path


class atomic_path:
    """``with atomic_path(p) as tmp:`` write to ``tmp``; on success it is renamed to ``p`` in one step."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
