"""Editing, measured: RePaint on emoji with half masked, and SDEdit's trade between the picture and the model's world.

    python bench/editing.py [--checkpoint checkpoints/emoji32] [--count 32] [--settings ddpm:100:10:1,ddpm:50:5:4]
    python bench/editing.py --sdedit [--photos DIR]
    python bench/editing.py --command            # the default `edit --mask` command, eight pictures, timed whole

RePaint: ``count`` training emoji (every k-th of the curated set), each with one half masked (left, right, top, bottom
in turn). For each setting (sampler:steps:jump length:resamplings; resamplings 1 is plain replacement) it prints the
largest change in the known half (in 1/255 steps: 0 means kept exactly), the share of completions whose nearest
training emoji (pixel distance) is the original, the masked half's RMS error against the original, network calls and
seconds per picture.

SDEdit: the bundled example pictures (and with --photos a folder's photos), at each strength of the sweep from the
same seed: the RMS distance of the result to the input, and to its nearest training emoji (the model's world).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from playground.data.dataset import dataset_from_uint8  # noqa: E402
from playground.data.emoji import emoji_subset  # noqa: E402
from playground.services.editing import STRENGTHS, EditRequest, iter_edit, load_picture  # noqa: E402
from playground.services.model_catalog import get_checkpoint  # noqa: E402
from playground.services.sample_quality import nearest_images  # noqa: E402

HALVES = ("left", "right", "top", "bottom")
EXAMPLES = ROOT / "playground" / "data" / "examples"


def half_mask(which: str, side: int) -> torch.Tensor:
    mask = torch.zeros(1, 1, side, side)
    half = side // 2
    region = {"left": (slice(None), slice(0, half)), "right": (slice(None), slice(half, None)),
              "top": (slice(0, half), slice(None)), "bottom": (slice(half, None), slice(None))}[which]
    mask[0, 0][region] = 1
    return mask


def repaint_bench(checkpoint, emoji: torch.Tensor, settings: list[str], count: int) -> None:
    chosen = torch.linspace(0, len(emoji) - 1, count).long()
    pictures = emoji[chosen]
    side = pictures.shape[-1]
    print(f"RePaint, {count} emoji with half masked ({', '.join(HALVES)} in turn), {checkpoint.name}")
    print(f"{'setting':>22} {'known Δ (/255)':>14} {'finds original':>14} {'masked RMS':>10} {'calls':>6} "
          f"{'s/picture':>9}")
    for setting in settings:
        sampler, steps, jump, resample = setting.split(":")
        found, changed, errors, seconds, calls = 0, 0.0, [], 0.0, 0
        for k, half in enumerate(HALVES):
            batch = pictures[k::len(HALVES)]
            if not len(batch):
                continue
            mask = half_mask(half, side)
            request = EditRequest(str(checkpoint.path), "", "mask", sampler, int(steps), len(batch), seed=k,
                                  jump_length=int(jump), resample=int(resample))
            started = time.perf_counter()
            *_, last = iter_edit(checkpoint, batch, mask, request, show_every_s=float("inf"), animate=False)
            seconds += time.perf_counter() - started
            calls = last.walk[-1][0]
            result = last.result
            known = (1 - mask).bool().expand_as(batch)
            changed = max(changed, float((result - batch).abs()[known].max()) * 127.5)
            nearest = nearest_images(result, emoji)
            found += int((nearest == chosen[k::len(HALVES)]).sum())
            masked = mask.bool().expand_as(batch)
            errors.append(((result - batch)[masked] ** 2).mean().sqrt())
        print(f"{setting:>22} {changed:14.2f} {found / count:14.0%} {float(torch.stack(errors).mean()):10.3f} "
              f"{calls:6d} {seconds / count:9.2f}")


def sdedit_bench(checkpoint, emoji: torch.Tensor, photos: Path | None, steps: int) -> None:
    files = sorted(EXAMPLES.glob("*.png")) + (sorted(p for p in photos.iterdir() if p.is_file())[:12] if photos else [])
    pictures = torch.cat([load_picture(f, checkpoint) for f in files])
    print(f"SDEdit, {len(files)} pictures (the bundled examples{' and photos' if photos else ''}), DDPM {steps}, "
          f"{checkpoint.name}: RMS distance (in [-1, 1]) of the result to the input and to the nearest emoji")
    print(f"{'strength':>8} {'to input':>9} {'to emoji':>9}   (the inputs themselves: to emoji "
          f"{float(nearest_distance(pictures, emoji).mean()):.3f})")
    for strength in STRENGTHS:
        request = EditRequest(str(checkpoint.path), "", None, "ddpm", steps, len(pictures), seed=0, strength=strength)
        *_, last = iter_edit(checkpoint, pictures, None, request, show_every_s=float("inf"), animate=False)
        to_input = float((last.result - pictures).pow(2).flatten(1).mean(1).sqrt().mean())
        to_emoji = float(nearest_distance(last.result, emoji).mean())
        print(f"{strength:8.1f} {to_input:9.3f} {to_emoji:9.3f}")


def nearest_distance(images: torch.Tensor, emoji: torch.Tensor) -> torch.Tensor:
    """Each picture's RMS distance to its nearest training emoji."""
    nearest = emoji[nearest_images(images, emoji)]
    return (images - nearest).pow(2).flatten(1).mean(1).sqrt()


def time_command(checkpoint: str) -> None:
    """The default `edit --mask` command for eight pictures, start to finish, as a person runs it."""
    import tempfile

    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        picture = EXAMPLES / "dog.png"
        mask = Image.new("L", Image.open(picture).size, 0)
        mask.paste(255, (mask.width // 2, 0, mask.width, mask.height))
        mask.save(Path(tmp) / "mask.png")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "playground", "edit", str(picture), "--checkpoint", checkpoint,
                        "--mask", str(Path(tmp) / "mask.png"), "--n", "8", "--out", tmp], cwd=ROOT, check=True)
        print(f"whole command, eight pictures with the defaults: {time.perf_counter() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "emoji32"))
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--settings", default="ddpm:100:10:1,ddpm:50:5:4,ddpm:40:5:4,ddpm:50:10:3,ddim:50:5:4")
    parser.add_argument("--sdedit", action="store_true", help="measure SDEdit instead")
    parser.add_argument("--photos", type=Path, help="with --sdedit: also up to 12 photos from this folder")
    parser.add_argument("--steps", type=int, default=50, help="with --sdedit: DDPM steps")
    parser.add_argument("--command", action="store_true", help="time the default edit command instead")
    args = parser.parse_args()
    if args.command:
        return time_command(args.checkpoint)
    checkpoint = get_checkpoint(args.checkpoint)
    emoji = dataset_from_uint8("emoji", emoji_subset(checkpoint.resolution).images).images
    if args.sdedit:
        return sdedit_bench(checkpoint, emoji, args.photos, args.steps)
    repaint_bench(checkpoint, emoji, args.settings.split(","), args.count)


if __name__ == "__main__":
    main()
