"""Does a prompt model draw what the prompt names, and is its empty prompt as good as the model it started from?

    python bench/prompt_fidelity.py [--checkpoint checkpoints/emoji32-prompts] [--base checkpoints/emoji32]
                                    [--guidance 5] [--count 16] [--words cat,heart,...] [--sampler ddpm --steps 50]
                                    [--empty ddim:4,ddim:4:0.3,dpmpp:25] [--count 0: the empty prompt only]
                                    [--sharpness]
    python bench/prompt_fidelity.py --by-timestep [--words dog,ball,...]

For each word: ``count`` samples of the prompt (by default as the app samples a prompt with this model: DDPM 200, a
distilled student DDPM on its steps; seed 0), and the share whose nearest training emoji (pixel distance,
services.sample_quality.word_fidelity) has the word in its name, beside the share of emoji names that have it (what
a model that ignores the prompt would score), and their spread (services.sample_quality.spread: how different a
word's samples are from each other; a model that draws one picture per word scores 0). Then the empty prompt
against the base: density and coverage (random-CNN features, services.sample_quality) of 512 samples each, drawn as
the app draws the empty prompt (DPM-Solver++ 25, a student DDIM on its steps), against the emoji set at the size
each draws (64 px for a latent model); ``--empty`` draws it with each listed sampler and steps (and DDIM's eta, as
a third number) instead, both models the same way (the teacher and its student on the same number of network calls).
``--sharpness``: each model's empty-prompt samples also blurred (a 3 x 3 binomial kernel) and sharpened (an unsharp
mask of that blur, amount 0.5), to see how much of a density gap is fine detail rather than layout.

``--by-timestep``: instead, where in the noise the word matters. Every training picture whose name has one of the
words, noised at a ladder of timesteps (4 noise draws each), and how much giving the model its word (rather than the
empty prompt) cuts the error of its x_0 guess there. What ``train --word-focus-min-t`` builds on.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from playground.data.dataset import dataset_from_uint8  # noqa: E402
from playground.data.emoji import emoji_subset  # noqa: E402
from playground.diffusion.forward import add_noise  # noqa: E402
from playground.diffusion.guidance import DEFAULT_GUIDANCE  # noqa: E402
from playground.diffusion.samplers import split_prediction  # noqa: E402
from playground.services.image_sampling import default_sampling, default_steps, final_images  # noqa: E402
from playground.services.model_catalog import get_checkpoint  # noqa: E402
from playground.services.sample_quality import (  # noqa: E402
    chance_fidelity,
    density_coverage,
    features,
    spread,
    word_fidelity,
)

WORDS = ("cat,dog,heart,moon,clock,face,tree,car,star,flag,fish,bird,house,sun,flower,apple,ball,hand,cloud,fire,"
         "train,boat,hat,book,cake")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "emoji32-prompts"))
    parser.add_argument("--base", default=str(ROOT / "checkpoints" / "emoji32"))
    parser.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    parser.add_argument("--sampler", choices=["ddpm", "ddim", "dpmpp"],
                        help="default: as the app samples a prompt with this model (a student: DDPM on its steps)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--quality-count", type=int, default=512)
    parser.add_argument("--empty", help="the empty prompt's sampler:steps[:eta] list, such as ddim:4,ddim:4:0.3,"
                                        "dpmpp:25 (default: as the app draws it with each model)")
    parser.add_argument("--sharpness", action="store_true",
                        help="also measure each model's empty-prompt samples blurred and sharpened")
    parser.add_argument("--words", default=WORDS)
    parser.add_argument("--by-timestep", action="store_true",
                        help="measure how much the word cuts the x_0 error at each noise level, and stop")
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    checkpoint = get_checkpoint(args.checkpoint)
    sampler, steps = default_sampling("a prompt", checkpoint)
    args.sampler, args.steps = args.sampler or sampler, args.steps or default_steps(args.sampler or sampler, "a prompt",
                                                                                     checkpoint)
    emoji = emoji_subset(checkpoint.resolution)  # the set at the size the model draws (64 px for a latent model)
    data = dataset_from_uint8("emoji", emoji.images).images
    if args.by_timestep:
        return word_gain_by_timestep(checkpoint, args.words.split(","), data, emoji.names)
    if args.count > 0:
        follow_words(checkpoint, args, data, emoji.names)
    if args.quality_count >= 64:
        empty_prompt_quality(args)


def follow_words(checkpoint, args, data: torch.Tensor, names: list[str]) -> None:
    """Print each word's fidelity, chance and spread, then their means."""
    started = time.perf_counter()
    scores, chances, spreads = [], [], []
    print(f"{'word':>8}  follows  chance  spread   ({args.count} samples each, {args.sampler} {args.steps} steps, "
          f"guidance {args.guidance:g})")
    for word in args.words.split(","):
        if word not in checkpoint.vocabulary.index:
            print(f"{word:>8}  (not a word this model knows)")
            continue
        samples = final_images(checkpoint, args.sampler, args.steps, args.count, 0, prompt=word,
                               guidance=args.guidance)
        score, chance = word_fidelity(samples, word, data, names), chance_fidelity(word, names)
        scores.append(score)
        chances.append(chance)
        spreads.append(spread(samples))
        print(f"{word:>8}  {score:6.0%}  {chance:6.1%}  {spreads[-1]:6.3f}")
    majority = sum(score > 0.5 for score in scores)
    print(f"mean {sum(scores) / len(scores):.0%} (chance {sum(chances) / len(chances):.1%}); most samples follow the "
          f"word for {majority} of {len(scores)} words; spread within a word {sum(spreads) / len(spreads):.3f}; "
          f"{time.perf_counter() - started:.0f} s")


def empty_prompt_quality(args) -> None:
    """Print the density and coverage of the base's and this model's empty prompt, as the app draws each or with
    each of ``args.empty``'s sampler:steps."""
    for name, folder in (("base, no prompt", args.base), ("this, empty prompt", args.checkpoint)):
        model = get_checkpoint(folder)  # each against the emoji at the size it draws
        real = features(dataset_from_uint8("emoji", emoji_subset(model.resolution).images).images)
        settings = ([empty_setting(item) for item in args.empty.split(",")] if args.empty
                    else [(*default_sampling("", model), 0.0)])  # as the app draws the empty prompt
        for sampler, steps, eta in settings:
            samples = torch.cat([final_images(model, sampler, steps, 64, seed, eta=eta)
                                 for seed in range(args.quality_count // 64)])
            density, coverage = density_coverage(real, features(samples))
            print(f"{name:>20}: density {density:.3f}, coverage {coverage:.3f} ({len(samples)} samples, "
                  f"{model.resolution} px, {sampler} {steps} steps{f', eta {eta:g}' if eta else ''}), pixel spread "
                  f"{pixel_spread(samples):.3f}")
            for filtered, pictures in (("blurred", blur(samples)), ("sharpened", sharpen(samples))) if args.sharpness \
                    else ():
                density, coverage = density_coverage(real, features(pictures))
                print(f"{filtered:>20}: density {density:.3f}, coverage {coverage:.3f}, pixel spread "
                      f"{pixel_spread(pictures):.3f}")


def pixel_spread(pictures: torch.Tensor) -> float:
    """The mean over pictures of each one's pixel standard deviation (pale, washed-out pictures score low)."""
    return float(pictures.std(dim=(1, 2, 3)).mean())


def blur(pictures: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) pictures through a 3 x 3 binomial kernel, edges replicated."""
    kernel = torch.tensor([1.0, 2.0, 1.0])
    kernel = (kernel[:, None] * kernel[None]).div(16).expand(pictures.shape[1], 1, 3, 3)
    padded = torch.nn.functional.pad(pictures, (1, 1, 1, 1), mode="replicate")
    return torch.nn.functional.conv2d(padded, kernel, groups=pictures.shape[1])


def sharpen(pictures: torch.Tensor, amount: float = 0.5) -> torch.Tensor:
    """An unsharp mask: the pictures plus ``amount`` times their difference from :func:`blur`, clamped to [-1, 1]."""
    return (pictures + amount * (pictures - blur(pictures))).clamp(-1, 1)


def empty_setting(item: str) -> tuple[str, int, float]:
    """``sampler:steps`` or ``sampler:steps:eta`` as (sampler, steps, eta)."""
    sampler, steps, *eta = item.split(":")
    return sampler, int(steps), float(eta[0]) if eta else 0.0


def word_gain_by_timestep(checkpoint, words: list[str], data: torch.Tensor, names: list[str],
                          timesteps=(50, 150, 300, 400, 500, 600, 750, 850, 950), draws: int = 4) -> None:
    """Print, at each timestep, the x_0 error given the empty prompt and the share giving each picture's word cuts."""
    pairs = [(i, word) for word in words for i, name in enumerate(names) if word in name.split()]
    x0 = data[[i for i, _ in pairs]]
    ids = checkpoint.unet.vocabulary.batch([word for _, word in pairs])
    generator = torch.Generator().manual_seed(0)
    schedule = checkpoint.schedule
    print(f"{len(pairs)} pictures of {len(words)} words; x_0 error with the empty prompt, and the share the word cuts")
    for step in timesteps:
        t = torch.full((len(pairs),), step)
        alpha_bar = float(schedule.alphas_cumprod[step])
        errors = torch.zeros(2)
        for _ in range(draws):
            x_t = add_noise(schedule, x0, torch.randn(x0.shape, generator=generator), t)
            for k, words_in in enumerate((torch.zeros_like(ids), ids)):
                guess, _ = split_prediction(checkpoint.unet(x_t, t, words_in), x_t, alpha_bar,
                                            checkpoint.prediction_type)
                errors[k] += (guess - x0).pow(2).mean() / draws
        print(f"t = {step:3d} (SNR {alpha_bar / (1 - alpha_bar):7.3f}): error {errors[0]:.4f}, the word cuts "
              f"{1 - errors[1] / errors[0]:5.1%}")


if __name__ == "__main__":
    main()
