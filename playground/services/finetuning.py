"""Fine-tune a model on a handful of your own photos: the Train tab's job and ``python -m playground train --images``.

    RUN/photos.npz        the training crops, exactly as the model sees them (N, R, R, 3) uint8
    RUN/prior.npz         the base model's own samples mixed into batches (prior preservation), if any
    RUN/settings.json     RunSettings: base, crop mode, preview interval, name and TrainConfig (what Resume uses)
    RUN/checkpoint/ ...   as services.training_runs writes it (diffusers folder + training state), samples/, log.csv

:func:`start_run` sets a run up from photos and settings (the tab and the CLI both call it); :func:`train_run`
trains it or continues it; :func:`train_in_chunks` is the tab's way, on the GPU when there is one: on a ZeroGPU
Space each chunk is one borrowed-GPU call of at most GPU_CHUNK_S seconds that ends with a checkpoint, and the next
resumes from it. Plain values in and out; no UI here.
"""

from __future__ import annotations

import copy
import json
import os
import queue
import re
import shutil
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from playground import media
from playground.checkpoints import Checkpoint, load_checkpoint
from playground.data.dataset import dataset_from_uint8, match_channels, to_uint8
from playground.data.images import ImageError, center_crop_square, load_image
from playground.data.prompts import Vocabulary, words_of
from playground.diffusion.training import TrainConfig, TrainEvent
from playground.models import PRESETS as MODEL_PRESETS
from playground.models import pick_device
from playground.services.gpu import hardware, on_gpu
from playground.services.image_sampling import get_checkpoint, grid_picture, preview
from playground.services.memorisation import memorisation_meter
from playground.services.training_runs import RunFolder, RunSpec, run_training

MAX_PHOTOS = 100
SOURCE_SIDE = 256  # uploads are kept with their shorter side about this long; crops are made from these
CROP_MODES = {"center": "Centre crop", "pad": "Whole picture, padded with white"}
SCRATCH = "scratch"  # the base value that means: a fresh network, no base model
PRIOR_COUNT = 32  # base-model samples drawn once per run for prior preservation
MAX_STEPS, MAX_BATCH, MAX_LR = 100_000, 512, 0.1
CHECKPOINT_EVERY_S = 120.0
GPU_CHUNK_S = 75.0  # on ZeroGPU: one borrowed-GPU call trains this long at most, saves, and the next resumes
FREE_DAILY_GPU_S = 300.0  # a free Hugging Face account's daily ZeroGPU quota, about 5 minutes (2026)

# What every fine-tuning recipe shares; each preset overrides a few fields of it.
FINETUNE = TrainConfig(steps=400, batch_size=16, lr=5e-4, warmup_steps=20, ema_max_decay=0.995, hflip=True,
                       crop_scale=0.85, color_jitter=0.05, prior_fraction=0.0)


@dataclass(frozen=True)
class Preset:
    """A named recipe: the TrainConfig overrides it makes, how often it previews, and what it costs where it runs."""

    name: str
    config: TrainConfig
    preview_every: int = 50
    cpu_minutes: float = 0.0  # measured on the 2-core development CPU (as a CPU Basic Space has: 2 vCPU)
    note: str = ""

    def gpu_seconds(self, resolution: int = 32, chunked: bool = False) -> float:
        """Estimated training time on a GPU: per step about 20 ms plus 1 ms per 32 px image (by area above that),
        and on ZeroGPU each chunk's start-up and save (an estimate, not a measurement)."""
        c = self.config
        per_step = 0.02 + 0.001 * c.batch_size * (resolution / 32) ** 2
        chunks = max(1, -(-c.steps * per_step // GPU_CHUNK_S)) if chunked else 0
        return c.steps * per_step + 25 * chunks

    def label(self, where: str = "local") -> str:
        """The preset's name and cost on this hardware (services.gpu.hardware())."""
        if where == "zerogpu":
            seconds = self.gpu_seconds(chunked=True)
            over = " (more than a free account's day: train part, come back, Resume)"
            cost = f"~{_duration(seconds)} of your daily ZeroGPU minutes" + (over if seconds > FREE_DAILY_GPU_S else "")
        elif where == "space-cpu":
            cost = f"~{_duration(60 * self.cpu_minutes)} on this Space's 2 vCPUs"
        elif self.name == "GPU":
            cost = f"~{_duration(self.gpu_seconds())} on a CUDA GPU"
        else:
            cost = f"~{_duration(60 * self.cpu_minutes)} on a laptop CPU"
        return f"{self.name}: {cost}" + (f", {self.note}" if self.note else "")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


# CPU times measured with bench/training.py and scripts/finetune_demo.py on the 2-core development CPU (README).
PRESETS: dict[str, Preset] = {
    "quick": Preset("Quick", FINETUNE, cpu_minutes=3),
    "better": Preset("Better", replace(FINETUNE, steps=1200, lr=2e-4, batch_size=24, prior_fraction=0.2),
                     preview_every=150, cpu_minutes=10, note="keeps more variety"),
    "gpu": Preset("GPU", replace(FINETUNE, steps=3000, lr=2e-4, batch_size=64, prior_fraction=0.2,
                                 ema_max_decay=0.999, warmup_steps=100), preview_every=500, cpu_minutes=90,
                  note="sharpest"),
}


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
# The least share of each batch a subject run takes from the base's class samples. DreamBooth weighs the two losses
# equally; scripts/dreambooth_demo.py: with 0.25 "cat" fell from 88% to 69% emoji cats, with 0.5 to 84%.
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


# --- photos ---

def square(image: Image.Image, mode: str = "center") -> Image.Image:
    """The square a photo becomes: its centre, or the whole picture padded with white."""
    if mode == "center":
        return center_crop_square(image)
    if mode != "pad":
        raise ValueError(f"Unknown crop mode {mode!r}; choose one of {', '.join(CROP_MODES)}.")
    side = max(image.size)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return canvas


def training_crop(image: Image.Image, resolution: int, mode: str = "center") -> Image.Image:
    """Exactly what the model trains on: the square, resized to ``resolution``."""
    sq = square(image, mode)
    resample = Image.LANCZOS if sq.width > resolution else Image.BICUBIC
    return sq.resize((resolution, resolution), resample, reducing_gap=3.0)


def load_photo(path: str | os.PathLike) -> Image.Image:
    """An upload as an RGB image whose shorter side is about SOURCE_SIDE; ImageError says what is wrong."""
    image = load_image(path, max_side=SOURCE_SIDE)
    scale = SOURCE_SIDE / min(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
    return image


def load_photos(paths: list[str | os.PathLike]) -> tuple[list[tuple[str, Image.Image]], list[str]]:
    """Every readable photo among ``paths`` (name, image), and one sentence for each that is not."""
    photos, problems = [], []
    for path in paths:
        try:
            photos.append((Path(path).name, load_photo(path)))
        except ImageError as error:
            problems.append(str(error))
    return photos, problems


def photos_array(images: list[Image.Image], resolution: int, mode: str = "center") -> np.ndarray:
    """(N, R, R, 3) uint8 training crops."""
    if not images:
        raise ValueError("There are no photos to train on; add at least one.")
    return np.stack([np.asarray(training_crop(image, resolution, mode)) for image in images])


def keep_photos(paths: list[str | os.PathLike], folder: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """Save every readable upload into ``folder`` as PNG: ([{"name", "path"}, ...], one sentence per bad file)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    loaded, problems = load_photos(paths)
    kept = []
    for name, image in loaded:
        path = folder / f"{uuid.uuid4().hex[:12]}.png"
        image.save(path)
        kept.append({"name": name, "path": str(path)})
    return kept, problems


def open_photos(photos: list[dict]) -> list[Image.Image]:
    """The kept photos as images; ValueError once the session's files are gone (cleaned after 6 hours)."""
    try:
        return [Image.open(photo["path"]).convert("RGB") for photo in photos]
    except (OSError, KeyError):
        raise ValueError("Your photos have expired (sessions are cleaned after 6 hours); please add them "
                         "again.") from None


def gallery(photos: list[dict], crop_mode: str, resolution: int, display: int = 128,
            grey: bool = False) -> list[tuple[Image.Image, str]]:
    """Each kept photo as the model will see it (its training crop, enlarged crisply, in grey for a greyscale
    model), with its file name."""
    crops = [training_crop(image, resolution, crop_mode) for image in open_photos(photos)]
    if grey:  # the luminance the model trains on (data.dataset.match_channels uses the same weights)
        crops = [crop.convert("L").convert("RGB") for crop in crops]
    return [(media.zoom(crop, min_side=display), photo["name"]) for crop, photo in zip(crops, photos, strict=True)]


# --- base models ---

def load_base(base: str | os.PathLike | None) -> Checkpoint | None:
    """The base checkpoint, or None for training from scratch."""
    if base is None or str(base) == SCRATCH:
        return None
    return load_checkpoint(base)


def base_resolution(base: Checkpoint | None) -> int:
    return base.resolution if base is not None else MODEL_PRESETS["emoji32"].resolution


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


def prior_images(base: Checkpoint, count: int = PRIOR_COUNT, seed: int = 0, steps: int = 20,
                 prompt: str = "") -> torch.Tensor:
    """``count`` of the base model's own samples (DPM-Solver++; for ``prompt``, guided), in [-1, 1]: what prior
    preservation mixes in."""
    return preview(base.unet, base.schedule, base.prediction_type, count=count, seed=seed, steps=steps,
                   prompt=prompt)


# --- a run ---

def subject_config(config: TrainConfig) -> TrainConfig:
    """A subject run's recipe: fixed prompts (no word or prompt dropout: "<word> <class>" is always the caption),
    at least DREAMBOOTH_PRIOR of each batch from the base's class samples, and fast-learning word embeddings."""
    return replace(config, prior_fraction=max(config.prior_fraction, DREAMBOOTH_PRIOR), word_dropout=0.0,
                   prompt_dropout=0.0, word_focus=0.0, encoder_lr=config.encoder_lr or DREAMBOOTH_ENCODER_LR)


def start_run(run_dir: str | os.PathLike, images: list[Image.Image], base: str | os.PathLike | None,
              config: TrainConfig, crop_mode: str = "center", preview_every: int = 50, name: str = "",
              subject: Subject | None = None) -> RunFolder:
    """Set a run up from photos and settings: the training crops, the base's prior samples and settings.json.

    The one way a fine-tuning run starts, for the Train tab and ``train --images`` alike; train it with
    :func:`train_run`. With a ``subject`` (checked by :func:`check_subject`), it is DreamBooth: the prior samples
    are the base's own for the class word.
    """
    if crop_mode not in CROP_MODES:
        raise ValueError(f"Unknown crop mode {crop_mode!r}; choose one of {', '.join(CROP_MODES)}.")
    checkpoint = load_base(base)
    if subject is not None:
        subject = check_subject(checkpoint, subject.word, subject.class_word)
        config = subject_config(config)
    run = RunFolder(Path(run_dir))
    run.path.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(run.path / "photos.npz", images=photos_array(images, base_resolution(checkpoint), crop_mode))
    if checkpoint is not None and config.prior_fraction > 0:
        prior = prior_images(checkpoint, seed=config.seed, prompt=subject.class_word if subject else "")
        np.savez_compressed(run.path / "prior.npz", images=to_uint8(prior))
    settings = RunSettings(str(base) if checkpoint is not None else SCRATCH, config, crop_mode, int(preview_every),
                           name, *((subject.word, subject.class_word) if subject else ()))
    run.settings_file.write_text(settings.to_json())
    return run


def run_settings(run_dir: str | os.PathLike) -> RunSettings:
    return RunSettings.from_json(RunFolder(Path(run_dir)).settings_file.read_text())


def train_run(run_dir: str | os.PathLike, on_event: Callable[[TrainEvent], None] | None = None,
              should_stop: Callable[[], bool] = lambda: False, device: torch.device | str = "cpu",
              steps: int | None = None, checkpoint_every_s: float = CHECKPOINT_EVERY_S) -> Path:
    """Train a prepared run, or continue it at the step it stopped at; returns the checkpoint folder.

    ``steps`` raises (or lowers) the total; everything else comes from settings.json. Checkpoints come 15 s in,
    then at doubling gaps up to ``checkpoint_every_s``, and at the end (so a killed run loses at most that).
    """
    run = RunFolder(Path(run_dir))
    settings = run_settings(run.path)
    config = settings.config if steps is None else replace(settings.config, steps=int(steps))
    photos = run_photos(run.path)
    prior = None
    if (run.path / "prior.npz").is_file():
        with np.load(run.path / "prior.npz") as data:
            prior = dataset_from_uint8("prior", data["images"]).images
    base = load_base(settings.base)
    subject = settings.subject
    network = copy.deepcopy(base.unet) if base is not None else None
    if subject is not None:  # the base's words and the new one, which starts at zero
        network = base.unet.with_vocabulary(Vocabulary(tuple(sorted({*base.vocabulary.words, subject.word}))))
    finetune = {"crop_mode": settings.crop_mode, "photos": len(photos)}
    if subject is not None:
        finetune.update(subject_word=subject.word, class_word=subject.class_word)
    spec = RunSpec(
        config, model=MODEL_PRESETS["emoji32"] if base is None else None, unet=network,
        preview_every=settings.preview_every, preview_count=8, checkpoint_every_s=checkpoint_every_s,
        preview_prompt=subject.prompt if subject else "",
        info={"base": settings.base, "finetune": finetune,
              "data": {"description": f"{len(photos)} uploaded photos ({CROP_MODES[settings.crop_mode].lower()})"}})
    dataset = dataset_from_uint8(f"{len(photos)} photos", photos)
    if subject is not None:
        dataset = replace(dataset, captions=(subject.prompt,) * len(photos))
    elif base is not None and base.vocabulary is not None:  # plain fine-tuning of a prompt model: no words
        dataset = replace(dataset, captions=("",) * len(photos))
    channels = base.channels if base is not None else 3
    if channels != 3:  # a greyscale base learns the photos in grey
        dataset = replace(dataset, images=match_channels(dataset.images, channels))
    prior_captions = [subject.class_word if subject else ""] * len(prior) if prior is not None else None
    return run_training(run.path, dataset, spec, prior=prior, on_event=on_event, should_stop=should_stop,
                        device=device, prior_captions=prior_captions)


def chunk_seconds(run_dir: str, until_step: int, budget_s: float | None, *args, **kwargs) -> float:
    """ZeroGPU's duration for one chunk: its training budget, plus loading, the last preview and the save."""
    return (budget_s or GPU_CHUNK_S) + 30


@on_gpu(duration=chunk_seconds)
def train_steps(run_dir: str, until_step: int, budget_s: float | None = None,
                should_stop: Callable[[], bool] = lambda: False) -> Iterator[TrainEvent]:
    """Train the run towards ``until_step`` in all, for at most ``budget_s`` seconds (None: no limit), on the GPU
    when there is one, then save; yields each step's TrainEvent."""
    events: queue.Queue = queue.Queue()
    closed = threading.Event()
    started = time.perf_counter()
    finished = object()

    def stop() -> bool:
        return closed.is_set() or should_stop() or (budget_s is not None and time.perf_counter() - started > budget_s)

    def work() -> None:
        try:
            train_run(run_dir, events.put, stop, device=pick_device(), steps=until_step)
        except BaseException as error:  # raised in the caller's thread below
            events.put(error)
        finally:
            events.put(finished)

    worker = threading.Thread(target=work, daemon=True, name="train-steps")
    worker.start()
    try:
        while (item := events.get()) is not finished:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        closed.set()
        worker.join()


def train_in_chunks(run_dir: str | os.PathLike, should_stop: Callable[[], bool] = lambda: False,
                    steps: int | None = None) -> Iterator[TrainEvent]:
    """Train a prepared run (or continue it) up to ``steps`` in all (default: its settings'), yielding each step's
    TrainEvent: in one go locally; on ZeroGPU in borrowed-GPU calls of at most GPU_CHUNK_S seconds each."""
    run = RunFolder(Path(run_dir))
    target = int(steps or run_settings(run.path).config.steps)
    budget = GPU_CHUNK_S if hardware() == "zerogpu" else None
    while True:
        before = run.checkpoint_step()
        yield from train_steps(str(run.path), target, budget, should_stop)
        after = run.checkpoint_step()
        if should_stop() or after >= target or budget is None:
            return
        if after <= before:
            raise RuntimeError(f"Training made no progress in a {budget:.0f} s chunk (still at step {after}).")


def run_photos(run_dir: str | os.PathLike) -> np.ndarray:
    with np.load(Path(run_dir) / "photos.npz") as data:
        return data["images"]


def time_left(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


@dataclass
class ProgressReport:
    """Turns a run's TrainEvents into the line a person reads, with a time-left estimate once there is a rate."""

    started_at_step: int | None = None
    started_at: float = 0.0

    def line(self, event: TrainEvent, now: float) -> str:
        if self.started_at_step is None:
            self.started_at_step, self.started_at = event.step, now
        done = event.step - self.started_at_step
        # no estimate until a few steps give a rate: "about 0 s left" at step 1 would be false
        left = (f"about {time_left((event.total_steps - event.step) * (now - self.started_at) / done)} left"
                if done >= 3 else "estimating time left")
        return (f"Step {event.step} of {event.total_steps} · loss {event.loss:.4f} · "
                f"{event.images_per_second:.0f} images/s · {left}")


# --- the result ---

@on_gpu(duration=30)
def meter_view(run_dir: str | os.PathLike, count: int = 8, seed: int = 0) -> tuple[str, str]:
    """``count`` fresh samples from the run's model (for a subject run: of "<word> <class>"), each beside its nearest
    training photo, as captioned HTML pairs, and the memorisation meter's sentence (on the GPU when there is one)."""
    run = RunFolder(Path(run_dir))
    checkpoint = get_checkpoint(run.checkpoint)
    checkpoint.unet.to(pick_device())
    subject = run_settings(run.path).subject
    samples = prior_images(checkpoint, count=count, seed=seed, steps=25, prompt=subject.prompt if subject else "")
    photos = dataset_from_uint8("photos", run_photos(run.path)).images
    reading = memorisation_meter(samples, match_channels(photos, samples.shape[1]))
    pairs = []
    nearest, matches, copies = reading.nearest.tolist(), reading.similarity.tolist(), reading.is_copy.tolist()
    for i, (sample, j, match, copy_) in enumerate(zip(samples, nearest, matches, copies, strict=True)):
        pairs.append((media.tensor_to_pil(sample), media.tensor_to_pil(photos[j]),
                      f"{i + 1}: {'copy' if copy_ else 'new'} (match {match:.2f})", "#c92a2a" if copy_ else "#2b8a3e"))
    return media.pairs_html(pairs), reading.sentence()


@on_gpu(duration=30)
def subject_view(run_dir: str | os.PathLike, count: int = 8, seed: int = 0) -> list[tuple[Image.Image, str]]:
    """A subject run's result side by side, from the same noise: "<word> <class>" and "<class>" from the trained
    model, and "<class>" from the base before training (empty for a plain fine-tuning run)."""
    run = RunFolder(Path(run_dir))
    settings = run_settings(run.path)
    subject = settings.subject
    if subject is None:
        return []
    after, before = get_checkpoint(run.checkpoint), get_checkpoint(settings.base)
    shown = []
    for checkpoint, prompt, caption in ((after, subject.prompt, f"“{subject.prompt}” after training"),
                                        (after, subject.class_word, f"“{subject.class_word}” after training"),
                                        (before, subject.class_word, f"“{subject.class_word}” before (the base)")):
        checkpoint.unet.to(pick_device())
        images = prior_images(checkpoint, count=count, seed=seed, steps=25, prompt=prompt)
        shown.append((grid_picture(images, display=256), caption))
    return shown


def sanitize_name(text: str | None, default: str = "my-model") -> str:
    """A safe folder name: lower-case letters, digits and dashes, at most 40 characters."""
    name = re.sub(r"[^a-z0-9]+", "-", (text or "").lower()).strip("-")[:40].strip("-")
    return name or default


def export_zip(checkpoint_dir: str | os.PathLike, zip_path: str | os.PathLike) -> Path:
    """The diffusers folder (weights, configs, model card; no resume state) as a zip, written atomically."""
    checkpoint_dir, zip_path = Path(checkpoint_dir), Path(zip_path)
    tmp = zip_path.with_name(f".{zip_path.name}.{uuid.uuid4().hex[:6]}.tmp")
    root = zip_path.stem
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(checkpoint_dir.rglob("*")):
            relative = path.relative_to(checkpoint_dir)
            if path.is_file() and relative.parts[0] != "training":
                archive.write(path, f"{root}/{relative.as_posix()}")
    os.replace(tmp, zip_path)
    return zip_path


def copy_checkpoint(checkpoint_dir: str | os.PathLike, target: str | os.PathLike, overwrite: bool = False) -> Path:
    """Copy a checkpoint (without resume state) to ``target`` atomically; refuses to replace one unless asked."""
    checkpoint_dir, target = Path(checkpoint_dir), Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"A model called {target.name!r} already exists there; choose another name.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:6]}.tmp")
    shutil.copytree(checkpoint_dir, tmp, ignore=shutil.ignore_patterns("training"))
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target
