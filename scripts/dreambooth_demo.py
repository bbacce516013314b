"""The README's DreamBooth figure: six photos of one cat taught to a prompt model as "chelsea cat".

    python scripts/dreambooth_demo.py [--base checkpoints/emoji32-prompts] [--out runs/dreambooth-demo]
                                      [--preset quick] [--word chelsea] [--class-word cat]

The photos are six overlapping crops of scikit-image's bundled photo of Chelsea the cat (public domain; needs
`pip install scikit-image`, as only the demo scripts do). Trains as the Train tab does with a subject word, then
writes docs/dreambooth.png: the photos as trained on; "cat" from the base; "chelsea cat" and "cat" after training,
all from the same noise. Prints the time, the memorisation meter, and how well "cat" still means the emoji cats
(the share of samples whose nearest emoji has "cat" in its name, services.sample_quality.word_fidelity) before and
after.
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
from PIL import Image  # noqa: E402

from playground import media  # noqa: E402
from playground.checkpoints import load_checkpoint  # noqa: E402
from playground.data.dataset import dataset_from_uint8  # noqa: E402
from playground.data.emoji import emoji_subset  # noqa: E402
from playground.services import finetune_recipes as recipes  # noqa: E402
from playground.services import finetuning  # noqa: E402
from playground.services.memorisation import memorisation_meter  # noqa: E402
from playground.services.sample_quality import word_fidelity  # noqa: E402

CROPS = [(0.50, 0.45, 0.62), (0.46, 0.40, 0.55), (0.55, 0.48, 0.70), (0.52, 0.38, 0.50), (0.44, 0.50, 0.66),
         (0.58, 0.42, 0.58)]  # (centre x, centre y, side) as shares of the photo's width and height


def six_photos() -> list[Image.Image]:
    photo = Image.open(importlib.resources.files("skimage") / "data" / "chelsea.png").convert("RGB")
    w, h = photo.size
    crops = []
    for cx, cy, side in CROPS:
        s = side * min(w, h)
        box = (int(cx * w - s / 2), int(cy * h - s / 2), int(cx * w + s / 2), int(cy * h + s / 2))
        crops.append(photo.crop(box))
    return crops


def row(images: torch.Tensor, caption: str) -> Image.Image:
    return media.label(media.image_grid(images, columns=len(images)).resize(
        (len(images) * 34 * 3, 34 * 3), Image.NEAREST), caption, size=18)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default=str(ROOT / "checkpoints" / "emoji32-prompts"))
    parser.add_argument("--out", default=str(ROOT / "runs" / "dreambooth-demo"))
    parser.add_argument("--preset", default="quick", choices=list(recipes.PRESETS))
    parser.add_argument("--word", default="chelsea")
    parser.add_argument("--class-word", default="cat")
    parser.add_argument("--samples", type=int, default=8)
    args = parser.parse_args()
    base = finetuning.load_base(args.base)
    subject = recipes.check_subject(base, args.word, args.class_word)
    photos = six_photos()
    started = time.perf_counter()
    config = recipes.train_config(args.preset, base)
    run = Path(args.out) / "run"
    finetuning.start_run(run, photos, base.path, config, preview_every=recipes.PRESETS[args.preset].preview_every,
                         name="dreambooth", subject=subject)
    finetuning.finetune(run)
    seconds = time.perf_counter() - started
    after = load_checkpoint(run / "checkpoint")
    n = args.samples
    before_class = finetuning.prior_images(base, count=n, seed=7, steps=25, prompt=subject.class_word)
    after_subject = finetuning.prior_images(after, count=n, seed=7, steps=25, prompt=subject.prompt)
    after_class = finetuning.prior_images(after, count=n, seed=7, steps=25, prompt=subject.class_word)
    training = dataset_from_uint8("", finetuning.run_photos(run)).images
    rows = [row(training, "the six photos, as trained on"), row(before_class, f"“{subject.class_word}”, the base"),
            row(after_subject, f"“{subject.prompt}”, after"), row(after_class, f"“{subject.class_word}”, after")]
    media.grid(rows, columns=1, gap=8).save(ROOT / "docs" / "dreambooth.png")
    emoji = emoji_subset(32)
    data = dataset_from_uint8("emoji", emoji.images).images
    many = 32
    fidelity = [word_fidelity(finetuning.prior_images(model, count=many, seed=11, steps=25, prompt=subject.class_word),
                              subject.class_word, data, emoji.names) for model in (base, after)]
    used = finetuning.run_settings(run).config
    print(f"{args.preset}: {used.steps} steps of {used.batch_size} ({used.prior_fraction:.0%} from the base's own "
          f"“{subject.class_word}”) in {seconds:.0f} s on {torch.get_num_threads()} threads")
    print("memorisation meter, “" + subject.prompt + "”: " + memorisation_meter(after_subject, training).sentence())
    print(f"“{subject.class_word}” still draws emoji {subject.class_word}s: {fidelity[0]:.0%} of {many} samples' "
          f"nearest emoji has the word before, {fidelity[1]:.0%} after")
    print(f"wrote {ROOT / 'docs' / 'dreambooth.png'}")


if __name__ == "__main__":
    main()
