"""Copy a training run's checkpoint into checkpoints/NAME for shipping: weights to sample with, no resume state.

    python scripts/package_checkpoint.py RUN_DIR NAME [--status "in training: ..."]

Writes checkpoints/NAME/ (unet/, scheduler/, model_index.json, playground.json without the per-step loss list),
a 64-sample grid (DPM-Solver++ 25 steps, seed 1234) as samples.png, and the model card README.md with the
exact training command, steps, wall time and hardware. The training state (optimizer moments, online weights)
stays in the run folder: it is too big for git, and `train --init-from checkpoints/NAME` warm-starts from here.
The weights are stored in float16 (checkpoints.store_half), so every file stays under the Hub's 10 MB limit;
the sample grid is drawn from the float32 weights, before halving. A prompt model's grid has one row per prompt
(--prompts, the empty prompt first), each drawn as the app draws it by default, at guidance --guidance;
--earlier names commands that ran before the run's own
(a warm start's history), in order; --autoencoder-earlier does the same for a latent model's autoencoder run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from playground import media  # noqa: E402
from playground.checkpoints import load_checkpoint, model_card, store_half  # noqa: E402
from playground.media import image_grid  # noqa: E402
from playground.services.distillation import distilled_card  # noqa: E402
from playground.services.image_sampling import (  # noqa: E402
    SAMPLER_LABELS,
    default_sampling,
    final_images,
    preview,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("name")
    parser.add_argument("--status", help="a line for the model card, e.g. that training goes on")
    parser.add_argument("--prompts", default=",heart,cat,face,moon,tree,car,clock,fish",
                        help="a prompt model's grid: one row per prompt (the first, empty, is no prompt)")
    parser.add_argument("--guidance", type=float, default=4.0)
    parser.add_argument("--earlier", action="append", default=[], help="a command that ran before this run's own")
    parser.add_argument("--autoencoder-earlier", action="append", default=[],
                        help="a latent model's: an autoencoder command that ran before the one its run recorded")
    parser.add_argument("--title", default="emoji from noise")
    args = parser.parse_args()

    source = Path(args.run_dir) / "checkpoint"
    target = ROOT / "checkpoints" / args.name
    tmp = target.with_name(f".{args.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, ignore=shutil.ignore_patterns("training"))
    info = json.loads((tmp / "playground.json").read_text())
    info.pop("loss_history_full", None)  # the thinned loss_history stays
    if args.autoencoder_earlier and info.get("autoencoder_run"):
        run = info["autoencoder_run"]
        run["commands"] = [*args.autoencoder_earlier, run.get("command", "")]
    (tmp / "playground.json").write_text(json.dumps(info, indent=2))

    checkpoint = load_checkpoint(tmp)
    grid_note = "Samples (DPM-Solver++, 25 steps, seed 1234):"
    if checkpoint.vocabulary is None:
        images = preview(checkpoint.unet, checkpoint.schedule, checkpoint.prediction_type, count=64, seed=1234,
                         steps=25, autoencoder=checkpoint.autoencoder)
        grid = image_grid(images, columns=8)
        grid.resize((grid.width * 2, grid.height * 2), Image.NEAREST).save(tmp / "samples.png")
    else:
        rows = []
        for prompt in args.prompts.split(","):  # each row as the app draws it by default (default_sampling)
            images = final_images(checkpoint, *default_sampling(prompt, checkpoint), 8, 1234, prompt=prompt,
                                  guidance=args.guidance)
            row = image_grid(images, columns=8)
            rows.append(media.label(row.resize((row.width * 2, row.height * 2), Image.NEAREST),
                                    f"“{prompt}”" if prompt else "no prompt", size=16))
        media.grid(rows, columns=1, gap=6).save(tmp / "samples.png")
        (plain, plain_steps), (prompted, prompted_steps) = (default_sampling("", checkpoint),
                                                            default_sampling("cat", checkpoint))
        plain, prompted = SAMPLER_LABELS[plain], SAMPLER_LABELS[prompted]
        grid_note = (f"Samples, one row per prompt, each as the app draws it by default (no prompt: {plain}, "
                     f"{plain_steps} steps; a prompt: {prompted}, {prompted_steps} steps, guidance {args.guidance:g}; "
                     "seed 1234):")

    store_half(tmp)
    info["weights_dtype"] = "float16"
    if info.get("distilled"):  # a student's card says how it was distilled; the grid follows it
        card = distilled_card(f"{args.name}: {args.title}", info) + f"\n{grid_note}\n\n![samples](samples.png)\n"
    else:
        card = model_card(f"{args.name}: {args.title}", info, grid_name="samples.png")
        card = card.replace("Samples (DPM-Solver++, 25 steps, seed 1234):", grid_note)
    if args.earlier:
        history = "\n".join(args.earlier)
        for verb in ("Trained", "Distilled"):
            card = card.replace(f"{verb} with exactly:\n\n```bash\n",
                                f"{verb} with exactly these, in order (each starts from the one before):\n\n"
                                f"```bash\n{history}\n")
    if args.status:
        card = card.replace("\n\n", f"\n\n**Status:** {args.status}\n\n", 1)
    (tmp / "README.md").write_text(card)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(f"wrote {target} ({size / 2**20:.1f} MB)")


if __name__ == "__main__":
    main()
