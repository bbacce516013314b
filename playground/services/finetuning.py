"""Fine-tune a model on a handful of your own photos: the Train tab's job and ``python -m playground train --images``.

A run's files are services.run_folder's (photos.npz, prior.npz, settings.json, checkpoint/, ...); its recipe and
the checks of a person's settings are services.finetune_recipes'; what the tab shows of it, services.finetune_views'.

    run = start_run(run_dir, images, base, config, ...)   # crops the photos, draws the base's prior samples
    finetune(run_dir)                                     # trains it, or continues it where it stopped
    for event in stream_finetune(run_dir, should_stop):   # the same, a step at a time: the tab's way; on a ZeroGPU
        ...                                               # Space in borrowed-GPU chunks that each resume the last

A latent base (one with an autoencoder) trains on the photos' latents, encoded once with the autoencoder frozen;
since a latent can't be mirrored or cropped, every photo is encoded in LATENT_VARIANTS augmented versions instead.
"""

from __future__ import annotations

import copy
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from playground.checkpoints import Checkpoint, load_checkpoint
from playground.data.dataset import Dataset, dataset_from_uint8, match_channels, to_uint8
from playground.data.photos import CROP_MODES, photos_array
from playground.data.prompts import Vocabulary
from playground.diffusion.training import TrainConfig, TrainEvent
from playground.models import PRESETS as MODEL_PRESETS
from playground.models import pick_device
from playground.services.finetune_recipes import GPU_CHUNK_S, SCRATCH, Subject, check_subject, subject_config
from playground.services.gpu import hardware, on_gpu
from playground.services.image_sampling import preview
from playground.services.latent_data import encode, latent_variants
from playground.services.run_folder import RunFolder
from playground.services.training_runs import RunSpec, run_training

PRIOR_COUNT = 32  # base-model samples drawn once per run for prior preservation
CHECKPOINT_EVERY_S = 120.0
LATENT_VARIANTS = 16  # a latent base: augmented versions of each photo, encoded once


@dataclass(frozen=True)
class RunSettings:
    """How a fine-tuning run trains: written to RUN/settings.json when it starts, read back to resume."""

    base: str  # the base checkpoint folder, or SCRATCH
    config: TrainConfig
    crop_mode: str = "center"
    preview_every: int = 50
    name: str = ""
    subject_word: str = ""  # DreamBooth: the photos' word and class word ("" for plain fine-tuning)
    class_word: str = ""

    @property
    def subject(self) -> Subject | None:
        return Subject(self.subject_word, self.class_word) if self.subject_word else None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> RunSettings:
        values = json.loads(text)
        return cls(**{**values, "config": TrainConfig(**values["config"])})


def run_settings(run_dir: str | os.PathLike) -> RunSettings:
    return RunSettings.from_json(RunFolder(Path(run_dir)).read_settings())


def load_base(base: str | os.PathLike | None) -> Checkpoint | None:
    """The base checkpoint, or None for training from scratch."""
    if base is None or str(base) == SCRATCH:
        return None
    return load_checkpoint(base)


def base_shape(base: Checkpoint | None) -> tuple[int, int]:
    """(side, channels) of the pictures a base draws, and so of the squares the photos become for it."""
    return (base.resolution, base.channels) if base is not None else (MODEL_PRESETS["emoji32"].resolution, 3)


def prior_images(base: Checkpoint, count: int = PRIOR_COUNT, seed: int = 0, steps: int = 20,
                 prompt: str = "") -> torch.Tensor:
    """``count`` of the base model's own pictures (DPM-Solver++; for ``prompt``, guided), in [-1, 1]: what prior
    preservation mixes in."""
    return preview(base.unet, base.schedule, base.prediction_type, count=count, seed=seed, steps=steps,
                   prompt=prompt, autoencoder=base.autoencoder)


def start_run(run_dir: str | os.PathLike, images: list[Image.Image], base: str | os.PathLike | None,
              config: TrainConfig, crop_mode: str = "center", preview_every: int = 50, name: str = "",
              subject: Subject | None = None) -> RunFolder:
    """Set a run up from photos and settings: the training crops, the base's prior samples and settings.json.

    The one way a fine-tuning run starts, for the Train tab and ``train --images`` alike; train it with
    :func:`finetune` or :func:`stream_finetune`. With a ``subject`` (checked by
    finetune_recipes.check_subject), it is DreamBooth: the prior samples are the base's own for the class word.
    """
    if crop_mode not in CROP_MODES:
        raise ValueError(f"Unknown crop mode {crop_mode!r}; choose one of {', '.join(CROP_MODES)}.")
    checkpoint = load_base(base)
    if subject is not None:
        subject = check_subject(checkpoint, subject.word, subject.class_word)
        config = subject_config(config)
    run = RunFolder(Path(run_dir))
    run.write_pictures("photos", photos_array(images, base_shape(checkpoint)[0], crop_mode))
    if checkpoint is not None and config.prior_fraction > 0:
        prior = prior_images(checkpoint, seed=config.seed, prompt=subject.class_word if subject else "")
        run.write_pictures("prior", to_uint8(prior))
    settings = RunSettings(str(base) if checkpoint is not None else SCRATCH, config, crop_mode, int(preview_every),
                           name, *((subject.word, subject.class_word) if subject else ()))
    run.write_settings(settings.to_json())
    return run


def check_more_steps(run_dir: str | os.PathLike, steps) -> int:
    """The total steps to resume a stopped run to: a whole number above the step it is at, or ValueError."""
    done = RunFolder(Path(run_dir)).checkpoint_step()
    try:
        target = int(steps)
    except (TypeError, ValueError):
        raise ValueError("Steps must be a whole number.") from None
    if target <= done:
        raise ValueError(f"This run is at step {done}; set Steps above that to train more.")
    return target


def run_photos(run_dir: str | os.PathLike) -> np.ndarray:
    """The run's training crops, (N, R, R, 3) uint8."""
    return RunFolder(Path(run_dir)).read_pictures("photos")


def _network(base: Checkpoint | None, subject: Subject | None) -> torch.nn.Module | None:
    """What the run trains: a copy of the base (for a subject, grown by the new word, which starts at zero), or
    None for a fresh network."""
    if base is None:
        return None
    if subject is not None:
        return base.unet.with_vocabulary(Vocabulary(tuple(sorted({*base.vocabulary.words, subject.word}))))
    return copy.deepcopy(base.unet)


def _training_data(base: Checkpoint | None, photos: Dataset, prior: torch.Tensor | None,
                   config: TrainConfig) -> tuple[Dataset, torch.Tensor | None, TrainConfig]:
    """The dataset, prior and recipe the loop sees: pictures for a pixel base (in its channels), latents for a latent
    one (its augmentation done before encoding, so the loop's is off)."""
    channels = base.channels if base is not None else 3
    photos = replace(photos, images=match_channels(photos.images, channels))
    if prior is not None:
        prior = match_channels(prior, channels)
    if base is None or not base.is_latent:
        return photos, prior, config
    latents = latent_variants(base.autoencoder, photos.images, config, LATENT_VARIANTS)
    captions = photos.captions * LATENT_VARIANTS if photos.captions is not None else None
    if prior is not None:
        prior = encode(base.autoencoder, prior)
    plain = replace(config, hflip=False, crop_scale=1.0, color_jitter=0.0)
    return replace(photos, images=latents, captions=captions), prior, plain


def finetune(run_dir: str | os.PathLike, on_event: Callable[[TrainEvent], None] | None = None,
             should_stop: Callable[[], bool] = lambda: False, device: torch.device | str = "cpu",
             steps: int | None = None, checkpoint_every_s: float = CHECKPOINT_EVERY_S) -> Path:
    """Train a prepared run, or continue it at the step it stopped at; returns the checkpoint folder.

    ``steps`` raises (or lowers) the total; everything else comes from settings.json. Checkpoints come 15 s in,
    then at doubling gaps up to ``checkpoint_every_s``, and at the end (so a killed run loses at most that).
    """
    run = RunFolder(Path(run_dir))
    settings = run_settings(run.path)
    config = settings.config if steps is None else replace(settings.config, steps=int(steps))
    photos = run.read_pictures("photos")
    prior_pixels = run.read_pictures("prior")
    prior = dataset_from_uint8("prior", prior_pixels).images if prior_pixels is not None else None
    base, subject = load_base(settings.base), settings.subject
    dataset = dataset_from_uint8(f"{len(photos)} photos", photos)
    if subject is not None:
        dataset = replace(dataset, captions=(subject.prompt,) * len(photos))
    elif base is not None and base.vocabulary is not None:  # plain fine-tuning of a prompt model: no words
        dataset = replace(dataset, captions=("",) * len(photos))
    dataset, prior, loop_config = _training_data(base, dataset, prior, config)
    finetune_info = {"crop_mode": settings.crop_mode, "photos": len(photos)}
    if subject is not None:
        finetune_info.update(subject_word=subject.word, class_word=subject.class_word)
    spec = RunSpec(
        loop_config, model=MODEL_PRESETS["emoji32"] if base is None else None, unet=_network(base, subject),
        preview_every=settings.preview_every, preview_count=8, checkpoint_every_s=checkpoint_every_s,
        preview_prompt=subject.prompt if subject else "", autoencoder=base.autoencoder if base is not None else None,
        info={"base": settings.base, "finetune": finetune_info,
              "data": {"description": f"{len(photos)} uploaded photos ({CROP_MODES[settings.crop_mode].lower()})"}})
    prior_captions = [subject.class_word if subject else ""] * len(prior) if prior is not None else None
    return run_training(run.path, dataset, spec, prior=prior, on_event=on_event, should_stop=should_stop,
                        device=device, prior_captions=prior_captions)


def _chunk_seconds(run_dir: str, until_step: int, budget_s: float | None, *args, **kwargs) -> float:
    """ZeroGPU's duration for one chunk: its training budget, plus loading, the last preview and the save."""
    return (budget_s or GPU_CHUNK_S) + 30


@on_gpu(duration=_chunk_seconds)
def finetune_chunk(run_dir: str, until_step: int, budget_s: float | None = None,
                   should_stop: Callable[[], bool] = lambda: False) -> Iterator[TrainEvent]:
    """One borrowed-GPU call (on the GPU when there is one): train the run towards ``until_step`` in all, for at most
    ``budget_s`` seconds (None: no limit), then save; yields each step's TrainEvent as it comes."""
    events: queue.Queue = queue.Queue()
    closed = threading.Event()
    started = time.perf_counter()
    finished = object()

    def stop() -> bool:
        return closed.is_set() or should_stop() or (budget_s is not None and time.perf_counter() - started > budget_s)

    def work() -> None:
        try:
            finetune(run_dir, events.put, stop, device=pick_device(), steps=until_step)
        except BaseException as error:  # raised in the caller's thread below
            events.put(error)
        finally:
            events.put(finished)

    worker = threading.Thread(target=work, daemon=True, name="finetune-chunk")
    worker.start()
    try:
        while (item := events.get()) is not finished:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        closed.set()
        worker.join()


def stream_finetune(run_dir: str | os.PathLike, should_stop: Callable[[], bool] = lambda: False,
                    steps: int | None = None) -> Iterator[TrainEvent]:
    """Train a prepared run (or continue it) up to ``steps`` in all (default: its settings'), yielding each step's
    TrainEvent: in one :func:`finetune_chunk` locally; on ZeroGPU in chunks of at most GPU_CHUNK_S seconds, each
    resuming from the checkpoint the last one saved."""
    run = RunFolder(Path(run_dir))
    target = int(steps or run_settings(run.path).config.steps)
    budget = GPU_CHUNK_S if hardware() == "zerogpu" else None
    while True:
        before = run.checkpoint_step()
        yield from finetune_chunk(str(run.path), target, budget, should_stop)
        after = run.checkpoint_step()
        if should_stop() or after >= target or budget is None:
            return
        if after <= before:
            raise RuntimeError(f"Training made no progress in a {budget:.0f} s chunk (still at step {after}).")
