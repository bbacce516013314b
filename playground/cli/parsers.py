"""The command line's arguments: one function per command, each adding its parser (checked values, help texts)."""

from __future__ import annotations

import argparse

from playground.diffusion import BETA_SCHEDULES
from playground.diffusion.guidance import DEFAULT_GUIDANCE
from playground.diffusion.schedules import MAX_TIMESTEPS, MIN_TIMESTEPS

# Kept in step with services.image_sampling's PROMPT_SAMPLING and PLAIN_SAMPLING by a test (not imported here: that
# module loads diffusers, and --help should stay quick).
PROMPT_STEPS, PLAIN_STEPS = 200, 25


def timesteps(text: str) -> int:
    value = int(text)
    if not MIN_TIMESTEPS <= value <= MAX_TIMESTEPS:
        raise argparse.ArgumentTypeError(f"T must be between {MIN_TIMESTEPS} and {MAX_TIMESTEPS}")
    return value


def add_noise_parser(commands) -> None:
    noise = commands.add_parser("noise", help="noise a photo at timestep t: x_t = sqrt(abar) x0 + sqrt(1-abar) eps")
    noise.add_argument("image", help="a JPEG, PNG, WebP, BMP, GIF or TIFF file")
    noise.add_argument("--schedule", choices=list(BETA_SCHEDULES), default="linear")
    noise.add_argument("--T", dest="num_timesteps", type=timesteps, default=1000, help="number of steps (default 1000)")
    noise.add_argument("--t", type=int, default=250, help="timestep, 0-based as in diffusers (default 250)")
    noise.add_argument("--seed", type=int, default=0, help="seed of the noise eps (default 0)")
    noise.add_argument("--resolution", type=int, choices=[64, 128, 256], default=128)
    noise.add_argument("--zero-snr", action="store_true", help="rescale the schedule to zero terminal SNR")
    noise.add_argument("--out", default="x_t.png", help="where to write x_t (default x_t.png)")
    noise.add_argument("--noise-out", help="also write the noise eps here")
    noise.add_argument("--strip", help="also write x_t at 8 evenly spaced t here")
    noise.add_argument("--gif", help="also write a GIF of the whole forward process here")


def add_schedule_parser(commands) -> None:
    schedule = commands.add_parser("schedule", help="print key numbers of noise schedules")
    schedule.add_argument("names", nargs="*", metavar="NAME",
                          help=f"schedules among {', '.join(BETA_SCHEDULES)} (default: all)")
    schedule.add_argument("--T", dest="num_timesteps", type=timesteps, default=1000)
    schedule.add_argument("--zero-snr", action="store_true")


def add_sample_parser(commands) -> None:
    sample = commands.add_parser("sample", help="generate images from a checkpoint folder")
    sample.add_argument("--checkpoint", required=True, help="a checkpoint folder (diffusers DDPM layout)")
    sample.add_argument("--sampler", choices=["ddpm", "ddim", "dpmpp"],
                        help="default: dpmpp; with --prompt, ddpm (its fresh noise at every step lets guidance keep "
                             "steering, so more samples follow the prompt)")
    sample.add_argument("--steps", type=int,
                        help=f"default: {PROMPT_STEPS} for ddpm with --prompt, else {PLAIN_STEPS}")
    sample.add_argument("--n", type=int, default=16, help="how many images (1..64)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--eta", type=float, default=0.0, help="DDIM's eta (0: deterministic)")
    sample.add_argument("--prompt", default="", help="prompt models only: words from emoji names, e.g. 'red heart'")
    sample.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE,
                        help=f"classifier-free guidance scale s with --prompt: 0 ignores the prompt, 1 follows it "
                             f"plainly, more follows it closer and varies less (default {DEFAULT_GUIDANCE:g})")
    sample.add_argument("--sweep", action="store_true",
                        help="with --prompt: also write sweep.png, the same seed at s = 0, 1, 2, 4, 7 (one row each)")
    sample.add_argument("--out", required=True, help="folder for sample_000.png ... and grid.png")
    sample.add_argument("--gif", help="also write the animation (samples | predicted x0) here")
    sample.add_argument("--mp4", help="also write the animation as an H.264 MP4 here (needs PyAV)")


def add_edit_parser(commands) -> None:
    edit = commands.add_parser("edit", help="edit a picture with a model: SDEdit at --strength, or RePaint what a "
                                             "--mask marks (white = repaint)")
    edit.add_argument("image", help="the picture to edit (JPEG, PNG, WebP, BMP, GIF or TIFF)")
    edit.add_argument("--checkpoint", required=True, help="a checkpoint folder (diffusers DDPM layout)")
    edit.add_argument("--strength", type=float,
                      help="SDEdit: how far into the noise to start, above 0 to 1 (0.2 keeps the picture, 1 keeps "
                           "nothing; default 0.6)")
    edit.add_argument("--mask", help="RePaint: a picture the size of IMAGE (any size is scaled to it), white where the "
                                     "model draws anew, black where the picture is kept")
    edit.add_argument("--sampler", choices=["ddpm", "ddim", "dpmpp"], default="ddpm",
                      help="default ddpm; RePaint takes ddpm or ddim")
    edit.add_argument("--steps", type=int, help="the sampler's steps over the whole of T (default 50)")
    edit.add_argument("--jump-length", type=int, help="RePaint: how many steps each climb back up (default 5)")
    edit.add_argument("--resample", type=int,
                      help="RePaint: how many times each stretch is walked down (default 4; 1: no resampling)")
    edit.add_argument("--eta", type=float, default=0.0, help="DDIM's eta (0: deterministic)")
    edit.add_argument("--prompt", default="", help="prompt models only: words from emoji names, e.g. 'cat'")
    edit.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE,
                      help=f"classifier-free guidance scale with --prompt (default {DEFAULT_GUIDANCE:g})")
    edit.add_argument("--n", type=int, default=4, help="how many edits, each from its own noise (1..64)")
    edit.add_argument("--seed", type=int, default=0)
    edit.add_argument("--out", required=True, help="folder for sample_000.png ... and grid.png")
    edit.add_argument("--gif", help="also write the animation (x_t | predicted x0) here")
    edit.add_argument("--mp4", help="also write the animation as an H.264 MP4 here (needs PyAV)")


def add_toy_parser(commands) -> None:
    toy = commands.add_parser("toy", help="train a 2-D toy model (seconds), sample it, write CSVs")
    toy.add_argument("--dataset", choices=["swiss_roll", "moons", "s_curve", "gmm"], default="swiss_roll")
    toy.add_argument("--out", required=True, help="CSV of the generated points (x,y per line)")
    toy.add_argument("--data-out", help="CSV of as many fresh true points")
    toy.add_argument("--sampler", choices=["ddpm", "ddim", "dpmpp", "langevin", "pc"], default="dpmpp",
                     help="dpmpp (default), ddim, ddpm; langevin: annealed Langevin dynamics on the learned score; "
                          "pc: predictor-corrector (a DDIM or DDPM step, then Langevin corrections)")
    toy.add_argument("--steps", type=int,
                     help="sampling steps, or Langevin's noise levels (default: ddpm 1000, ddim 50, dpmpp 20, "
                          "langevin 100, pc 50)")
    toy.add_argument("--spacing", choices=["logsnr", "linspace", "trailing"], default="logsnr",
                     help="where ddim, dpmpp and pc's predictor put their steps (default logsnr: evenly in log-SNR, "
                          "the last at t = 0; linspace/trailing: as image models do)")
    toy.add_argument("--step-size", type=float,
                     help="langevin: epsilon, each step is epsilon x sigma_t^2 (default 0.1)")
    toy.add_argument("--corrector-steps", type=int,
                     help="langevin: steps per noise level (default 5); pc: Langevin corrections per step (default 1)")
    toy.add_argument("--predictor", choices=["ddim", "ddpm"], default="ddim", help="pc: the predictor (default ddim)")
    toy.add_argument("--snr", type=float, help="pc: the corrector's signal-to-noise ratio (default 0.16)")
    toy.add_argument("--n", type=int, default=2000, help="points to generate (default 2000)")
    toy.add_argument("--train-steps", type=int, default=6000, help="training steps (default 6000)")
    toy.add_argument("--seed", type=int, default=0)


def _add_finetune_arguments(train) -> None:
    train.add_argument("--images", help="a folder of 1 to 100 photos: fine-tune --base on them (the Train tab)")
    train.add_argument("--base", help="with --images: the base checkpoint folder, or 'scratch' "
                                      "(default: checkpoints/emoji32)")
    train.add_argument("--preset", choices=["quick", "better", "gpu"], default="quick",
                       help="with --images: the recipe (steps, lr, batch, augmentation, prior preservation)")
    train.add_argument("--crop", choices=["center", "pad"], default="center",
                       help="with --images: centre-crop each photo to a square, or pad it with white")
    train.add_argument("--prior-fraction", type=float,
                       help="with --images: share of each batch from the base model's own samples (0: off)")
    train.add_argument("--subject", metavar="WORD",
                       help="with --images and a prompt base: DreamBooth, a new word for your subject (e.g. zork); "
                            "afterwards 'WORD CLASS' draws it and CLASS alone still draws the class")
    train.add_argument("--class-word", metavar="CLASS", help="with --subject: what the subject is, in words the base "
                                                             "knows (e.g. dog)")


def _add_data_arguments(train) -> None:
    train.add_argument("--data", help="train from scratch (or --init-from) on every image under this folder: decoded "
                                      "once into a cache, greyscale folders give 1-channel models")
    train.add_argument("--resolution", type=int, choices=[32, 64, 128],
                       help="with --data: the training size (default 64); with --autoencoder: 64")
    train.add_argument("--autoencoder", metavar="FOLDER",
                       help="a latent model: the diffusion model learns this autoencoder's latents (a folder with "
                            "vae/: an autoencoder run's checkpoint or a latent model), encoded once")
    train.add_argument("--quality-samples", type=int, default=64,
                       help="with --data: at every preview, draw this many samples and measure density, coverage "
                            "and near-copies against held-out images (RUN/quality.csv, RUN/progress.html; 0: off)")
    train.add_argument("--dataset", choices=["emoji"], default="emoji")
    train.add_argument("--subset", choices=["curated", "all"], default="curated",
                       help="curated: faces, people, animals, food, places, activities, objects without skin-tone "
                            "variants; all: every emoji (~3,600)")


def _add_prompt_arguments(train) -> None:
    train.add_argument("--prompts", action="store_true",
                       help="--dataset emoji: learn prompts from the emoji's names (classifier-free guidance; with "
                            "--init-from an unconditional model, step 0 draws exactly what it drew)")
    train.add_argument("--prompt-dropout", type=float, default=0.15,
                       help="--prompts: share of examples trained with the empty prompt (default 0.15)")
    train.add_argument("--word-dropout", type=float, default=0.5,
                       help="--prompts: chance each word of a name is left out, one always kept (default 0.5)")
    train.add_argument("--word-focus", type=float, default=0.0,
                       help="--prompts: share of each batch drawn word first (a word two or more names share, then "
                            "one of its pictures, captioned by that word alone), so rare words are practised as "
                            "often as common ones (default 0)")
    train.add_argument("--word-focus-min-t", type=int, default=0,
                       help="--prompts --word-focus: draw the word-first examples' timesteps from [this, T) (at low "
                            "noise the picture already shows what it is, and the word adds little; default 0)")
    train.add_argument("--encoder-lr", type=float, default=1e-2,
                       help="--prompts: the word embeddings' peak learning rate (default 1e-2)")


def _add_recipe_arguments(train) -> None:
    train.add_argument("--model", choices=["tiny", "emoji32", "emoji64", "unet64", "unet128", "latent16"],
                       help="network size (default emoji32; with --data the resolution's: emoji32, unet64, unet128; "
                            "with --autoencoder latent16)")
    train.add_argument("--steps", type=int, help="optimizer steps in total (default 20000; with --images the preset's)")
    train.add_argument("--batch-size", type=int, help="default 64; with --images the preset's")
    train.add_argument("--lr", type=float, help="AdamW peak learning rate (default 5e-4; with --images the preset's)")
    train.add_argument("--warmup-steps", type=int, help="default 200; with --images the preset's")
    train.add_argument("--prediction-type", choices=["epsilon", "v_prediction", "sample"], default="v_prediction")
    train.add_argument("--min-snr-gamma", type=float, default=5.0, help="Min-SNR-gamma loss weight (0: off)")
    train.add_argument("--schedule", choices=list(BETA_SCHEDULES), default="cosine")
    train.add_argument("--seed", type=int, default=0)


def _add_run_arguments(command, out_help: str) -> None:
    command.add_argument("--out", required=True, help=out_help)
    command.add_argument("--no-resume", action="store_true", help="start over even if OUT has a checkpoint")
    command.add_argument("--checkpoint-every", type=float,
                         help="at most this many seconds between checkpoints (default 600; with --images 120); the "
                              "first comes 15 s in and the gaps double up to it, so short runs are saved early too")
    command.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    command.add_argument("--device", help="cpu, cuda, ... (default: CUDA when present)")


def add_train_parser(commands) -> None:
    train = commands.add_parser("train", help="train on the emoji set, or fine-tune on your own photos (--images); "
                                               "resumable")
    _add_finetune_arguments(train)
    _add_data_arguments(train)
    _add_prompt_arguments(train)
    _add_recipe_arguments(train)
    _add_run_arguments(train, "the run folder (checkpoint/, samples/, log.csv)")
    train.add_argument("--init-from", help="warm-start from this checkpoint folder when OUT has none "
                                           "(its weights, step count and loss history; fresh optimizer)")
    train.add_argument("--preview-every", type=int,
                       help="steps between preview grids (default 500; with --images the preset's)")


def add_autoencoder_parser(commands) -> None:
    autoencoder = commands.add_parser("autoencoder", help="train the autoencoder of a latent model on the emoji set "
                                                          "and a folder of photos; resumable")
    autoencoder.add_argument("--photos", help="a folder of photos, cut into squares at many scales (one file in ten "
                                              "held out to measure); without it, emoji only")
    autoencoder.add_argument("--steps", type=int, default=20_000, help="optimizer steps in total (default 20000)")
    autoencoder.add_argument("--batch-size", type=int, default=32)
    autoencoder.add_argument("--lr", type=float, default=1e-3)
    autoencoder.add_argument("--crop", type=int, default=32, help="train on crops of this side (default 32)")
    autoencoder.add_argument("--photo-share", type=float, default=0.5,
                             help="share of each batch cut from photos (default 0.5)")
    autoencoder.add_argument("--edge-weight", type=float, default=1.0,
                             help="weight of the image-gradient loss that keeps edges sharp (default 1; 0: L1 only)")
    autoencoder.add_argument("--channels", type=int, default=48, help="the network's width (default 48)")
    autoencoder.add_argument("--measure-every", type=int, default=500,
                             help="steps between PSNR readings of the held-out pictures (default 500)")
    autoencoder.add_argument("--seed", type=int, default=0)
    _add_run_arguments(autoencoder, "the run folder (checkpoint/vae, log.csv, quality.csv)")


def add_distill_parser(commands) -> None:
    distill = commands.add_parser("distill", help="distil a prompt model into a few-step student (progressive "
                                                  "distillation with guidance as an input); resumable")
    distill.add_argument("--teacher", required=True, help="the prompt model to distil (a checkpoint folder)")
    distill.add_argument("--rounds", default="16,8,4",
                         help="the students' steps, each half the one before (default 16,8,4: the first teacher "
                              "takes 32 guided DDIM steps)")
    distill.add_argument("--steps-per-round", type=int, default=1500, help="optimizer steps in each round")
    distill.add_argument("--batch-size", type=int, default=16)
    distill.add_argument("--lr", type=float, default=5e-5)
    distill.add_argument("--guidance-min", type=float, default=1.0)
    distill.add_argument("--guidance-max", type=float, default=10.0,
                         help="the guidance scales the student learns, drawn uniformly (default 1 to 10)")
    distill.add_argument("--prompt-dropout", type=float, default=0.15)
    distill.add_argument("--word-dropout", type=float, default=0.5)
    distill.add_argument("--word-focus", type=float, default=0.5,
                         help="share of each batch drawn word first: a word two or more names share, captioned alone "
                              "(default 0.5)")
    distill.add_argument("--match-steps", type=int, default=0,
                         help="then refine the last student this many steps by distribution matching against the "
                              "guided teacher (DMD; default 0: none)")
    distill.add_argument("--match-lr", type=float, default=4e-5, help="the student's lr while matching")
    distill.add_argument("--fake-lr", type=float, default=1e-4,
                         help="while matching, the lr of the network that follows the student's pictures")
    distill.add_argument("--fake-warmup", type=int, default=0,
                         help="while matching, steps a fresh fake network learns alone first (default 0)")
    distill.add_argument("--empty-substeps", type=int, default=2,
                         help="while matching, the teacher's DDIM steps across each student step in the empty "
                              "prompt's target (default 2, progressive distillation's)")
    distill.add_argument("--empty-weight", type=float, default=1.0,
                         help="while matching, the weight of the empty prompt's regression loss (default 1)")
    distill.add_argument("--empty-on-policy", type=float, default=0.0,
                         help="while matching, the share of the empty prompt's examples that regress where the "
                              "student's own DDIM sampling went, not on noised pictures (default 0)")
    distill.add_argument("--empty-first", type=int, default=0,
                         help="while matching, extra empty-prompt examples in each batch that regress at the student's "
                              "first step, from pure noise (default 0)")
    distill.add_argument("--empty-match", type=float, default=0.0,
                         help="while matching, the weight of distribution matching on the empty prompt's examples "
                              "too, beside their regression (default 0: regression only)")
    distill.add_argument("--fake-updates", type=int, default=1,
                         help="while matching, the fake network's steps for each of the student's (default 1)")
    distill.add_argument("--gan-steps", type=int, default=0,
                         help="then sharpen the last student's empty-prompt pictures this many steps against a "
                              "discriminator of the data, the rest held where it was (default 0: none)")
    distill.add_argument("--gan-weight", type=float, default=0.05, help="the adversarial stage's GAN loss weight")
    distill.add_argument("--gan-lr", type=float, default=1e-5, help="the student's lr in the adversarial stage")
    distill.add_argument("--gan-batch-size", type=int, default=8, help="the adversarial stage's batch")
    distill.add_argument("--disc-lr", type=float, default=2e-4, help="the discriminator's lr")
    distill.add_argument("--layout-weight", type=float, default=1.0,
                         help="in the adversarial stage, the weight holding the pictures' 4-pixel block averages "
                              "to the student's before (default 1)")
    distill.add_argument("--anchor-weight", type=float, default=10.0,
                         help="in the adversarial stage, the weight holding the prompted outputs to the student's "
                              "before (default 10)")
    distill.add_argument("--anchor-on-policy", type=float, default=0.0,
                         help="in the adversarial stage, the share of the prompted outputs held where the student's "
                              "own DDPM sampling of them went, not at noised pictures (default 0)")
    distill.add_argument("--from-student", help="a finished student (a checkpoint folder): skip the rounds and only "
                                                "refine it (needs --match-steps or --gan-steps)")
    distill.add_argument("--preview-every", type=int, default=250)
    distill.add_argument("--seed", type=int, default=0)
    _add_run_arguments(distill, "the run folder (rounds/N-steps/ each, then checkpoint/)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m playground", description="Diffusion Playground from a terminal.")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (add_noise_parser, add_schedule_parser, add_train_parser, add_autoencoder_parser, add_sample_parser,
                add_edit_parser, add_distill_parser, add_toy_parser):
        add(commands)
    return parser
