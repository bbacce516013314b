"""How well a latent model's autoencoder keeps a picture, against the plain way of keeping a quarter-size copy.

    python bench/autoencoder.py [--vae checkpoints/emoji64-latent] [--photos DIR] [--resolution 64]

The held-out pictures of `python -m playground autoencoder` (every 20th emoji; with --photos, the same one photo in ten
that the autoencoder run held out, centre-cropped and resized as the Train tab does), each encoded and decoded whole.
Beside the autoencoder's PSNR, the same pictures shrunk by the autoencoder's factor and enlarged again (bicubic,
antialiased): a 4 x 16 x 16 latent holds 1024 numbers, a 3 x 16 x 16 thumbnail 768, so the autoencoder should beat
the thumbnail clearly to earn its place. Then what decoding costs: milliseconds per picture, batch of 8, one thread
and all of them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from playground.checkpoints import load_autoencoder  # noqa: E402
from playground.diffusion.autoencoding import psnr  # noqa: E402
from playground.diffusion.training import as_float  # noqa: E402
from playground.services.autoencoder_training import autoencoder_data, measure  # noqa: E402


def thumbnail_psnr(pictures: torch.Tensor, factor: int) -> float:
    """Mean PSNR of ``pictures`` (uint8) shrunk ``factor`` times and enlarged back, both bicubic; nan when none."""
    if not len(pictures):
        return float("nan")
    x = as_float(pictures)
    side = x.shape[-1]
    small = F.interpolate(x, size=side // factor, mode="bicubic", antialias=True, align_corners=False)
    back = F.interpolate(small, size=side, mode="bicubic", align_corners=False).clamp(-1, 1)
    return float(psnr(back, x).mean())


@torch.inference_mode()
def decode_ms(autoencoder, pictures: torch.Tensor, threads: int, repeats: int = 5) -> float:
    """Milliseconds per picture to decode a batch of 8 latents (the fastest of ``repeats``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    latents = autoencoder.encode(as_float(pictures[:8]))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        autoencoder.decode(latents)
        best = min(best, time.perf_counter() - start)
    torch.set_num_threads(before)
    return 1000 * best / len(latents)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vae", default=str(ROOT / "checkpoints" / "emoji64-latent"),
                        help="a folder with vae/ (a latent model, or an autoencoder run's checkpoint)")
    parser.add_argument("--photos", help="the photo folder the autoencoder was trained with (its held-out share)")
    parser.add_argument("--resolution", type=int, default=64)
    args = parser.parse_args()

    autoencoder = load_autoencoder(args.vae)
    data = autoencoder_data(args.photos, args.resolution, crops_per_photo=1, say=lambda line: None)
    factor = autoencoder.factor
    print(f"{Path(args.vae).name}: {autoencoder.latent_channels} x {args.resolution // factor} x "
          f"{args.resolution // factor} latents of {args.resolution} px pictures")
    print(f"{'held out':>10} {'pictures':>8} {'autoencoder dB':>14} {'thumbnail dB':>12}")
    for name, pictures in (("emoji", data.held_out_emoji), ("photos", data.held_out_photos)):
        if len(pictures):
            print(f"{name:>10} {len(pictures):>8} {measure(autoencoder, pictures):>14.2f} "
                  f"{thumbnail_psnr(pictures, factor):>12.2f}")
    threads = torch.get_num_threads()
    print(f"decode: {decode_ms(autoencoder, data.held_out_emoji, 1):.1f} ms per picture on 1 thread, "
          f"{decode_ms(autoencoder, data.held_out_emoji, threads):.1f} on {threads}")


if __name__ == "__main__":
    main()
