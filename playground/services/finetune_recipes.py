"""Fine-tuning recipes: the presets (overrides of one TrainConfig) with what each costs where it runs, the one check
of a person's settings, and DreamBooth's subject word. Shared by the Train tab, the API and ``train --images``."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from playground.checkpoints import Checkpoint
from playground.data.prompts import words_of
from playground.diffusion.training import TrainConfig
from playground.services.gpu import training_seconds

SCRATCH = "scratch"  # the base value that means: a fresh network, no base model
MAX_STEPS, MAX_BATCH, MAX_LR = 100_000, 512, 0.1
GPU_CHUNK_S = 75.0  # on ZeroGPU: one borrowed-GPU call trains this long at most, saves, and the next resumes
GPU_CHUNK_OVERHEAD_S = 25.0  # each chunk's start-up and save (an estimate)
FREE_DAILY_GPU_S = 300.0  # a free Hugging Face account's daily ZeroGPU quota, about 5 minutes

# What every fine-tuning recipe shares; each preset overrides a few fields of it.
FINETUNE = TrainConfig(steps=400, batch_size=16, lr=5e-4, warmup_steps=20, ema_max_decay=0.995, hflip=True,
                       crop_scale=0.85, color_jitter=0.05, prior_fraction=0.0)


@dataclass(frozen=True)
class Preset:
    """A named recipe: the TrainConfig overrides it makes, how often it previews, and what it costs where it runs."""

    name: str
    config: TrainConfig
    preview_every: int = 50
    cpu_minutes: float = 0.0  # on a 2-core laptop CPU (as a CPU Basic Space has), by scripts/finetune_demo.py
    note: str = ""

    def gpu_seconds(self, resolution: int = 32, chunked: bool = False) -> float:
        """Estimated training time on a GPU (services.gpu.training_seconds), and on ZeroGPU each chunk's start-up."""
        seconds = training_seconds(self.config.steps, self.config.batch_size, resolution)
        chunks = max(1, -(-seconds // GPU_CHUNK_S)) if chunked else 0
        return seconds + GPU_CHUNK_OVERHEAD_S * chunks

    def label(self, where: str = "local") -> str:
        """The preset's name and cost on this hardware (services.gpu.hardware())."""
        if where == "zerogpu":
            seconds = self.gpu_seconds(chunked=True)
            over = " (more than a free account's day: train part, come back, Resume)"
            cost = f"~{duration(seconds)} of your daily ZeroGPU minutes" + (over if seconds > FREE_DAILY_GPU_S else "")
        elif where == "space-cpu":
            cost = f"~{duration(60 * self.cpu_minutes)} on this Space's 2 vCPUs"
        elif self.name == "GPU":
            cost = f"~{duration(self.gpu_seconds())} on a CUDA GPU"
        else:
            cost = f"~{duration(60 * self.cpu_minutes)} on a laptop CPU"
        return f"{self.name}: {cost}" + (f", {self.note}" if self.note else "")


def duration(seconds: float) -> str:
    """A time for a person: "45 s", "3 min"."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


PRESETS: dict[str, Preset] = {
    "quick": Preset("Quick", FINETUNE, cpu_minutes=3),
    "better": Preset("Better", replace(FINETUNE, steps=1200, lr=2e-4, batch_size=24, prior_fraction=0.2),
                     preview_every=150, cpu_minutes=10, note="keeps more variety"),
    "gpu": Preset("GPU", replace(FINETUNE, steps=3000, lr=2e-4, batch_size=64, prior_fraction=0.2,
                                 ema_max_decay=0.999, warmup_steps=100), preview_every=500, cpu_minutes=90,
                  note="sharpest"),
}


def train_config(preset: str, base: Checkpoint | None, **overrides) -> TrainConfig:
    """The preset's TrainConfig for this base (its schedule and prediction target), with overrides (None: keep).

    Raises ValueError with one sentence when a setting is out of range: the one check for the tab, API and CLI.
    """
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    config = PRESETS[preset].config
    if base is not None:
        config = replace(config, prediction_type=base.prediction_type, schedule=base.schedule.name,
                         num_timesteps=base.schedule.num_timesteps)
    try:
        config = replace(config, **{k: type(getattr(config, k))(v) for k, v in overrides.items() if v is not None})
    except (TypeError, ValueError):
        raise ValueError("One of the settings is not a number; please check them.") from None
    if not (1 <= config.steps <= MAX_STEPS and 1 <= config.batch_size <= MAX_BATCH and 0 < config.lr <= MAX_LR):
        raise ValueError(f"Steps must be 1 to {MAX_STEPS:,}, batch 1 to {MAX_BATCH} and the learning rate above 0 "
                         f"and at most {MAX_LR}.")
    if not (0 <= config.prior_fraction < 1 and 0 < config.crop_scale <= 1 and 0 <= config.color_jitter < 1
            and 0 < config.ema_max_decay < 1):
        raise ValueError("Prior share, crop, jitter and EMA decay must each be between 0 and 1.")
    return config


@dataclass(frozen=True)
class Subject:
    """DreamBooth's naming (Ruiz et al. 2023): a new word for your subject and the class word it belongs to. The
    photos train on "<word> <class>", the base's own samples for "<class>" on "<class>" (prior preservation), so
    afterwards the pair draws your subject and the class word alone still draws the class."""

    word: str
    class_word: str

    @property
    def prompt(self) -> str:
        return f"{self.word} {self.class_word}"


SUBJECT_WORD = re.compile(r"^[a-z][a-z0-9]{1,19}$")
# The least share of each batch a subject run takes from the base's class samples: DreamBooth weighs the two losses
# equally, and a smaller share lets the class word drift to the photos (scripts/dreambooth_demo.py measures how well
# "cat" keeps its meaning; docs/measurements.md has it for shares of a quarter and a half).
DREAMBOOTH_PRIOR = 0.5
DREAMBOOTH_ENCODER_LR = 1e-2  # the word embeddings learn fast: the new word starts at zero


def check_subject(base: Checkpoint | None, word: str | None, class_word: str | None) -> Subject | None:
    """The subject word and class word, checked against the base (None when neither is given), or ValueError with
    one sentence: the one check for the tab, the API and ``train --subject``."""
    word, class_word = (word or "").strip().lower(), " ".join(words_of(class_word or ""))
    if not word and not class_word:
        return None
    if base is None or base.vocabulary is None:
        name = "Training from scratch" if base is None else f"{base.name!r}"
        raise ValueError(f"{name} has no prompts, so it can't learn a word for your subject: start from a prompt "
                         "model such as emoji32-prompts, or leave the subject word empty.")
    if not word:
        raise ValueError(f"Give your subject a new word too (such as 'zork'), so \"zork {class_word}\" can mean it.")
    if not SUBJECT_WORD.match(word):
        raise ValueError("The subject word is one word of 2 to 20 letters or digits, starting with a letter, such as "
                         "'zork' or 'rex2'.")
    if word in base.vocabulary.index:
        raise ValueError(f"'{word}' already means something to this model (it is in emoji names); choose a new word, "
                         "such as 'zork' or your dog's name.")
    if not class_word:
        raise ValueError("Name what your subject is with a word the model knows, such as 'dog' or 'cat'.")
    base.vocabulary.encode(class_word)  # an unknown class word: a sentence with the nearest known ones
    return Subject(word, class_word)


def subject_config(config: TrainConfig) -> TrainConfig:
    """A subject run's recipe: fixed prompts (no word or prompt dropout: "<word> <class>" is always the caption),
    at least DREAMBOOTH_PRIOR of each batch from the base's class samples, and fast-learning word embeddings."""
    return replace(config, prior_fraction=max(config.prior_fraction, DREAMBOOTH_PRIOR), word_dropout=0.0,
                   prompt_dropout=0.0, word_focus=0.0, encoder_lr=config.encoder_lr or DREAMBOOTH_ENCODER_LR)
