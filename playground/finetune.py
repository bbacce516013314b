"""Fine-tune a model on a handful of your own photos: what the Train tab runs and ``python -m playground train --images``.

    RUN/photos.npz        the training crops, exactly as the model sees them (N, R, R, 3) uint8
    RUN/prior.npz         the base model's own samples mixed into batches (prior preservation), if any
    RUN/settings.json     base, crop mode and TrainConfig: what Resume continues with
    RUN/checkpoint/ ...   as playground.runs writes it (diffusers folder + training state), samples/, log.csv

Plain values in and out; no UI here.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import uuid
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from playground.checkpoints import Checkpoint, load_checkpoint
from playground.data.images import ImageError, center_crop_square, load_image
from playground.diffusion.training import TrainConfig, TrainEvent
from playground.models import PRESETS as MODEL_PRESETS, build_unet
from playground.runs import dataset_from_uint8, preview, run_training

MAX_PHOTOS = 100
SOURCE_SIDE = 256  # uploads are kept with their shorter side about this long; crops are made from these
CROP_MODES = {"center": "Centre crop", "pad": "Whole picture, padded with white"}
SCRATCH = "scratch"  # the base value that means: a fresh network, no base model
PRIOR_COUNT = 32  # base-model samples drawn once per run for prior preservation


@dataclass(frozen=True)
class Preset:
    """A named recipe; ``label`` says what it costs on the machine it was measured on."""

    name: str
    label: str
    steps: int
    lr: float
    batch_size: int
    hflip: bool = True
    crop_scale: float = 0.85
    color_jitter: float = 0.05
    prior_fraction: float = 0.0
    ema_max_decay: float = 0.995
    warmup_steps: int = 20
    preview_every: int = 50


# Measured with bench/training.py and scripts/finetune_demo.py on the 2-core development CPU (see README).
PRESETS: dict[str, Preset] = {
    "quick": Preset("quick", "Quick: ~3 min on a laptop CPU", steps=400, lr=5e-4, batch_size=16),
    "better": Preset("better", "Better: ~10 min on a laptop CPU, keeps more variety", steps=1200, lr=2e-4,
                     batch_size=24, prior_fraction=0.2, preview_every=150),
    "gpu": Preset("gpu", "GPU: ~4 min on a CUDA GPU, sharpest", steps=3000, lr=2e-4, batch_size=64, prior_fraction=0.2,
                  ema_max_decay=0.999, warmup_steps=100, preview_every=500),
}


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


# --- base models ---

def load_base(base: str | os.PathLike | None) -> Checkpoint | None:
    """The base checkpoint, or None for training from scratch."""
    if base is None or str(base) == SCRATCH:
        return None
    return load_checkpoint(base)


def base_resolution(base: Checkpoint | None) -> int:
    return base.resolution if base is not None else MODEL_PRESETS["emoji32"].resolution


def train_config(preset: str | Preset, base: Checkpoint | None, **overrides) -> TrainConfig:
    """The TrainConfig of a preset for this base (its schedule and prediction target), with overrides."""
    p = PRESETS[preset] if isinstance(preset, str) else preset
    config = TrainConfig(steps=p.steps, batch_size=p.batch_size, lr=p.lr, warmup_steps=p.warmup_steps,
                         ema_max_decay=p.ema_max_decay, hflip=p.hflip, crop_scale=p.crop_scale,
                         color_jitter=p.color_jitter, prior_fraction=p.prior_fraction)
    if base is not None:
        config = replace(config, prediction_type=base.prediction_type, schedule=base.schedule.name,
                         num_timesteps=base.schedule.num_timesteps)
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def prior_images(base: Checkpoint, count: int = PRIOR_COUNT, seed: int = 0, steps: int = 20) -> torch.Tensor:
    """``count`` of the base model's own samples (DPM-Solver++), in [-1, 1]: what prior preservation mixes in."""
    return preview(base.unet, base.schedule, base.prediction_type, count=count, seed=seed, steps=steps)


# --- a run ---

def _to_uint8(images: torch.Tensor) -> np.ndarray:
    return ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def prepare_run(run_dir: str | os.PathLike, photos: np.ndarray, base: str | os.PathLike | None,
                config: TrainConfig, crop_mode: str = "center", preview_every: int = 50, name: str = "") -> Path:
    """Write what a run needs to start and to resume: photos, prior samples and settings."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(run_dir / "photos.npz", images=photos)
    checkpoint = load_base(base)
    if checkpoint is not None and config.prior_fraction > 0:
        np.savez_compressed(run_dir / "prior.npz", images=_to_uint8(prior_images(checkpoint, seed=config.seed)))
    settings = {"base": str(base) if checkpoint is not None else SCRATCH, "crop_mode": crop_mode,
                "preview_every": int(preview_every), "name": name, "config": asdict(config)}
    (run_dir / "settings.json").write_text(json.dumps(settings, indent=2))
    return run_dir


def run_settings(run_dir: str | os.PathLike) -> dict:
    return json.loads((Path(run_dir) / "settings.json").read_text())


def train_run(run_dir: str | os.PathLike, on_event: Callable[[TrainEvent], None] | None = None,
              should_stop: Callable[[], bool] = lambda: False, device: torch.device | str = "cpu",
              steps: int | None = None) -> Path:
    """Train a prepared run, or continue it at the step it stopped at; returns the checkpoint folder.

    ``steps`` raises (or lowers) the total; everything else comes from settings.json.
    """
    run_dir = Path(run_dir)
    settings = run_settings(run_dir)
    config = TrainConfig(**settings["config"])
    if steps is not None:
        config = replace(config, steps=int(steps))
    with np.load(run_dir / "photos.npz") as data:
        photos = data["images"]
    prior = None
    if (run_dir / "prior.npz").is_file():
        with np.load(run_dir / "prior.npz") as data:
            prior = dataset_from_uint8("prior", data["images"]).images
    base = load_base(settings["base"])
    if base is not None:
        unet, model_config = copy.deepcopy(base.unet), None
    else:
        model_config = MODEL_PRESETS["emoji32"]
        torch.manual_seed(config.seed)
        unet = build_unet(model_config)
    dataset = dataset_from_uint8(f"{len(photos)} photos", photos)
    extra = {"base": settings["base"], "finetune": {"crop_mode": settings["crop_mode"], "photos": len(photos)},
             "data": {"description": f"{len(photos)} uploaded photos ({CROP_MODES[settings['crop_mode']].lower()})"}}
    return run_training(run_dir, dataset, model_config, config, resume=True,
                        preview_every=settings["preview_every"], checkpoint_every_s=120.0, extra_info=extra,
                        on_event=on_event, should_stop=should_stop, device=device, unet=unet, prior=prior,
                        preview_count=8)


def run_photos(run_dir: str | os.PathLike) -> np.ndarray:
    with np.load(Path(run_dir) / "photos.npz") as data:
        return data["images"]


# --- the result ---

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
