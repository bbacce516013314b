"""The README's fine-tuning figure: six 64x64 photos, the Quick preset from a shipped base, timed and measured.

    python scripts/finetune_demo.py [--out runs/finetune-demo] [--preset quick] [--base checkpoints/emoji32]
                                    [--figure docs/finetune.png]

The six photos are scikit-image's bundled sample photos (astronaut, Chelsea the cat, coffee, rocket, motorcycle,
Hubble deep field; public domain or CC0), centre-cropped to 64x64. Needs `pip install scikit-image`
(only this script does; the app and the tests do not).
Writes --figure (docs/finetune.png): the training crops, the base model's samples (before) and the fine-tuned model's
samples from the same noise (after), and prints the time, the steps, the memorisation meter and how much closer
to the photos the samples came: the mean RMS distance (0-255 scale) from each of 12 samples (DDIM 25, seed 7, the
base's and the fine-tuned model's from the same noise) to its nearest photo, at 64 px (a 32 px model's samples are
enlarged bicubically), before against after.
"""

from __future__ import annotations

import argparse
import importlib.resources
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from playground.checkpoints import load_checkpoint  # noqa: E402
from playground.data.dataset import dataset_from_uint8  # noqa: E402
from playground.data.images import prepare_image  # noqa: E402
from playground.data.photos import load_photos, photos_array  # noqa: E402
from playground.media import image_grid  # noqa: E402
from playground.services import finetune_recipes as recipes  # noqa: E402
from playground.services import finetuning  # noqa: E402
from playground.services.image_sampling import final_images  # noqa: E402
from playground.services.memorisation import memorisation_meter  # noqa: E402

PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "hubble_deep_field.jpg"]


def six_photos(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in PHOTOS:
        image = Image.open(importlib.resources.files("skimage") / "data" / name).convert("RGB")
        path = folder / (name.split(".")[0] + ".png")
        prepare_image(image, 64).save(path)
        paths.append(path)
    return paths


def samples(checkpoint, count: int = 12, seed: int = 7) -> torch.Tensor:
    """What closeness is measured on: ``count`` pictures, DDIM 25 from ``seed``, in [-1, 1]."""
    with torch.inference_mode():
        return final_images(checkpoint, "ddim", 25, count, seed)


def nearest_photo_rms(pictures: torch.Tensor, photos: torch.Tensor) -> float:
    """Mean RMS distance (0-255 scale) from each picture, at 64 px, to its nearest photo (64 px)."""
    if pictures.shape[-1] != photos.shape[-1]:
        pictures = F.interpolate(pictures, size=photos.shape[-1], mode="bicubic", align_corners=False).clamp(-1, 1)
    flat = pictures.flatten(1)
    nearest = torch.cdist(flat, photos.flatten(1)).amin(dim=1)
    return float((nearest / flat.shape[1] ** 0.5).mean() * 127.5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "runs" / "finetune-demo"))
    parser.add_argument("--preset", default="quick", choices=list(recipes.PRESETS))
    parser.add_argument("--base", default=str(ROOT / "checkpoints" / "emoji32"))
    parser.add_argument("--figure", default=str(ROOT / "docs" / "finetune.png"),
                        help="where to write the figure (the README shows docs/finetune.png and, from "
                             "checkpoints/emoji64-latent, docs/finetune_latent.png)")
    args = parser.parse_args()
    out = Path(args.out)
    paths = six_photos(out / "photos")
    started = time.perf_counter()
    photos, _ = load_photos(paths)
    base = finetuning.load_base(args.base)
    config = recipes.train_config(args.preset, base)
    array = photos_array([image for _, image in photos], base.resolution)
    run = out / "run"
    finetuning.start_run(run, [image for _, image in photos], base.path, config,
                         preview_every=recipes.PRESETS[args.preset].preview_every, name="six-photos")
    finetuning.finetune(run)
    seconds = time.perf_counter() - started
    after = load_checkpoint(run / "checkpoint")
    before_samples, after_samples = samples(base), samples(after)
    training = dataset_from_uint8("", array).images
    photos64 = dataset_from_uint8("", photos_array([image for _, image in photos], 64)).images
    before_rms, after_rms = nearest_photo_rms(before_samples, photos64), nearest_photo_rms(after_samples, photos64)
    rows = [image_grid(images, columns=12) for images in (training, before_samples, after_samples)]
    figure = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)), "white")
    y = 0
    for row in rows:
        figure.paste(row, (0, y))
        y += row.height
    figure = figure.resize((figure.width * 3, figure.height * 3), Image.NEAREST)
    figure.save(args.figure)
    print(f"{args.preset}: {config.steps} steps of {config.batch_size} in {seconds:.0f} s "
          f"({torch.get_num_threads()} threads), photos to trained model")
    print("memorisation meter: " + memorisation_meter(after_samples, training).sentence())
    print(f"nearest-photo RMS at 64 px: base {before_rms:.1f}, fine-tuned {after_rms:.1f} "
          f"({1 - after_rms / before_rms:.0%} closer)")
    print(f"wrote {args.figure} (rows: the photos as trained on, base samples, "
          "fine-tuned samples)")


if __name__ == "__main__":
    main()
