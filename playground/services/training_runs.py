"""A training run on disk: data in; checkpoints, preview grids and a log out; resumable at the exact step.

    RUN/checkpoint/      the diffusers folder (EMA weights) plus training/ to resume from
    RUN/samples/         a preview grid every ``preview_every`` steps (fixed seed, DPM-Solver++ 25 steps)
    RUN/log.csv          step, loss, lr, images/s
    RUN/quality.csv      step, density, coverage, near-copy share (runs given held-out images), at every preview
    RUN/progress.html    the loss and the quality readings, plotted (a page that works offline)
    RUN/settings.json    fine-tuning runs only: what Resume continues with (see services.finetuning)

:class:`RunFolder` knows a run's files; :func:`run_training` trains one. Shared by ``python -m playground train``
and the Train tab (through services.finetuning).
"""

from __future__ import annotations

import csv
import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from playground import media
from playground.checkpoints import load_training_state, load_weights_into, model_card, read_info, save_checkpoint
from playground.data.augment import augmenter
from playground.data.dataset import Dataset
from playground.data.prompts import Vocabulary
from playground.diffusion import NoiseSchedule
from playground.diffusion.training import TrainConfig, TrainEvent, TrainState, new_train_state, train
from playground.models import ModelConfig, PromptedUNet, build_unet, count_parameters, model_fn
from playground.plots import training_progress_figure
from playground.services.distributed import Distributed
from playground.services.image_sampling import preview
from playground.services.sample_quality import QualityProbe


@dataclass(frozen=True)
class RunFolder:
    """The files of one training run, and what can be read from them."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def log(self) -> Path:
        return self.path / "log.csv"

    @property
    def settings_file(self) -> Path:
        return self.path / "settings.json"

    def has_model(self) -> bool:
        return (self.checkpoint / "model_index.json").is_file()

    def can_resume(self) -> bool:
        return (self.checkpoint / "training").is_dir()

    def checkpoint_step(self) -> int:
        """The step the saved checkpoint is at (0 when there is none)."""
        return int(read_info(self.checkpoint).get("steps", 0)) if self.has_model() else 0

    def latest_preview(self) -> Path | None:
        previews = sorted(self.samples.glob("step_*.png"))
        return previews[-1] if previews else None

    def losses(self, up_to_step: int | None = None) -> list[float]:
        """The logged loss of every step (up to ``up_to_step``), so a resumed run shows its whole curve."""
        if not self.log.is_file() or (up_to_step is not None and up_to_step <= 0):
            return []
        values = {}
        with open(self.log, newline="") as f:
            for row in csv.DictReader(f):
                values[int(row["step"])] = float(row["loss"])
        return [values[s] for s in sorted(values) if up_to_step is None or s <= up_to_step]

    def forget_training(self) -> None:
        """Start over: remove the checkpoint, previews, log and prior samples (photos and settings stay)."""
        for name in ("checkpoint", "samples", "log.csv", "prior.npz"):
            path = self.path / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


FIRST_CHECKPOINT_S = 15.0


@dataclass(frozen=True)
class RunSpec:
    """Everything a run needs besides its data: the recipe, the network to start from, and how often to report."""

    config: TrainConfig
    model: ModelConfig | None = None  # a fresh network of this shape, its weights drawn from config.seed
    unet: torch.nn.Module | None = None  # ...or train this network (fine-tuning passes a copy of its base)
    init_from: Path | None = None  # ...and without a checkpoint to resume, warm-start from this finished one
    resume: bool = True  # continue from RUN/checkpoint when it holds a training state
    preview_every: int = 500  # steps between preview grids
    preview_count: int = 16
    checkpoint_every_s: float = 600.0  # at most this many seconds between checkpoints (one is always written at the
    # end); the first comes after FIRST_CHECKPOINT_S and the gaps double up to it, so short runs have one early
    info: dict = field(default_factory=dict)  # more playground.json content (command, hardware, base, data notes)
    quality: QualityProbe | None = None  # sample quality against held-out images at every preview (main process)
    quality_samples: int = 64  # samples drawn for each quality reading
    prompts: Vocabulary | None = None  # a fresh network (``model``) learns prompts with these words from the captions
    preview_prompt: str = ""  # a prompt model's previews follow this prompt (guided); "" draws unconditionally


RANK_SEED_STRIDE = 1_000_003  # process r draws its batches and noise from seed + r * this (rank 0: the seed itself)


def _start_state(run: RunFolder, spec: RunSpec, dist: Distributed) -> tuple[TrainState, float, dict]:
    """A new or restored training state, the wall time already spent, and the network's description."""
    unet = spec.unet if spec.unet is not None else build_unet(spec.model, seed=spec.config.seed)
    if spec.prompts is not None and not isinstance(unet, PromptedUNet):
        unet = PromptedUNet.from_unconditional(unet, spec.prompts)
    unet = unet.to(dist.device, memory_format=torch.channels_last)
    model_info = spec.model.to_dict() if spec.model is not None else {
        "resolution": int(unet.config.sample_size), "channels": list(unet.config.block_out_channels)}
    state = new_train_state(unet, spec.config, encoder=unet.encoder if isinstance(unet, PromptedUNet) else None)
    saved = load_training_state(run.checkpoint) if spec.resume else None
    if saved is not None:
        tensors, meta = saved
        info = read_info(run.checkpoint)
        state.load_tensors(tensors, meta, load_weights_into(unet, run.checkpoint), info.get("loss_history_full", []))
        if dist.rank:  # every process continues its own random stream, when the run had as many processes
            own = tensors.get(f"rng.rank{dist.rank}")
            if own is not None and meta.get("world_size") == dist.world_size:
                state.generator.set_state(own)
            else:
                state.generator.manual_seed(spec.config.seed + RANK_SEED_STRIDE * dist.rank + state.step)
        return state, float(info.get("wall_time_s", 0.0)), model_info
    if spec.init_from is not None:
        info = read_info(spec.init_from)
        state.warm_start(load_weights_into(unet, spec.init_from), info.get("steps", 0),
                         info.get("loss_history_full", []),
                         info.get("seed", 0))
        if dist.rank:
            state.generator.manual_seed(spec.config.seed + RANK_SEED_STRIDE * dist.rank + state.step)
        return state, float(info.get("wall_time_s", 0.0)), model_info
    if dist.rank:
        state.generator.manual_seed(spec.config.seed + RANK_SEED_STRIDE * dist.rank)
    return state, 0.0, model_info


def run_training(
    run_dir: str | Path,
    dataset: Dataset,
    spec: RunSpec,
    prior: torch.Tensor | None = None,
    on_event: Callable[[TrainEvent], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    device: torch.device | str = "cpu",
    dist: Distributed | None = None,
    prior_captions: list[str] | None = None,
) -> Path:
    """Train (or continue) the run in ``run_dir`` as ``spec`` says; returns the checkpoint folder.

    Resume restores everything from RUN/checkpoint exactly. Without one, ``spec.init_from`` warm-starts: its
    weights become both the model and the EMA, its step count and loss history carry on, and AdamW's moments start
    fresh. ``prior``: images mixed into every batch (see core ``train``). ``on_event`` gets every step's TrainEvent.

    ``dist`` (services.distributed, under torchrun or accelerate launch): the model is wrapped for data parallelism,
    each process trains on its shard of the images with its own random stream, the loss is averaged over processes
    every step, the main process alone writes the log, previews and checkpoints (with every process's random
    state, so a resumed run continues each one), and the EMA, identical on every device, is saved once.

    A prompt model (``spec.prompts``, or a :class:`PromptedUNet` in ``spec.unet``) learns from ``dataset.captions``
    (and ``prior_captions`` beside ``prior``), with the recipe's word and prompt dropout.
    """
    dist = dist or Distributed(device=torch.device(device))
    run = RunFolder(Path(run_dir))
    config = spec.config
    schedule = NoiseSchedule.from_name(config.schedule, config.num_timesteps)
    state, wall_before, model_info = _start_state(run, spec, dist)
    started = last_save = time.perf_counter()
    gap = min(FIRST_CHECKPOINT_S, spec.checkpoint_every_s)
    log_file = log = None
    if dist.is_main:
        run.samples.mkdir(parents=True, exist_ok=True)
        new_log = not run.log.exists()
        log_file = open(run.log, "a", newline="")  # noqa: SIM115 - closed in the finally below, after the last save
        log = csv.writer(log_file)
        if new_log:
            log.writerow(["step", "loss", "lr", "images_per_s"])

    def save() -> None:  # every process calls it (the random states are gathered); the main one writes
        tensors, meta = state.to_tensors()
        streams = dist.gather(state.generator.get_state())
        if not dist.is_main:
            return
        tensors.update({f"rng.rank{r}": stream for r, stream in enumerate(streams) if r})
        meta["world_size"] = dist.world_size
        losses = state.losses
        stride = max(1, len(losses) // 2000)
        info = {
            "model": model_info, "training": config.to_dict(),
            "parameters": count_parameters(state.model),
            "data": {"name": dataset.name, "count": dataset.count, "sha256": dataset.fingerprint},
            "steps": state.step, "seed": config.seed, "processes": dist.world_size,
            "global_batch": config.batch_size * dist.world_size,
            "wall_time_s": wall_before + time.perf_counter() - started,
            "final_loss": float(np.mean(losses[-100:])) if losses else float("nan"),
            "loss_history": [float(np.mean(losses[i:i + stride])) for i in range(0, len(losses), stride)],
            "loss_history_stride": stride, "loss_history_full": losses,
            **{k: v for k, v in spec.info.items() if k != "data"},
        }
        info["data"].update(spec.info.get("data", {}))  # merged, so count and sha256 stay
        save_checkpoint(run.checkpoint, state.ema.model, config.schedule, config.num_timesteps,
                        config.prediction_type, info, model_card(run.path.name, info), tensors, meta)

    stopping = False

    def callback(event: TrainEvent, current: TrainState) -> None:
        nonlocal last_save, gap, stopping
        due = time.perf_counter() - last_save > gap
        loss, stopping, save_now = dist.agree(event.loss, dist.active and should_stop(), due)
        current.losses[-1] = loss
        event = dataclasses.replace(event, loss=loss, images_per_second=event.images_per_second * dist.world_size)
        if dist.is_main:
            log.writerow([event.step, f"{event.loss:.5f}", f"{event.lr:.6g}", f"{event.images_per_second:.1f}"])
            log_file.flush()  # so `tail -f log.csv` follows the run
            if on_event is not None:
                on_event(event)
            if event.step % spec.preview_every == 0 or event.step == event.total_steps:
                grid = media.image_grid(preview(current.ema.model, schedule, config.prediction_type,
                                                spec.preview_count, prompt=spec.preview_prompt))
                grid.resize((grid.width * 4, grid.height * 4), Image.NEAREST).save(
                    run.samples / f"step_{event.step:06d}.png")
                if spec.quality is not None:
                    read_quality(run, spec, current, schedule, event.step)
        if save_now:
            if log_file is not None:
                log_file.flush()
            save()
            last_save = time.perf_counter()
            gap = min(2 * gap, spec.checkpoint_every_s)

    def stop_now() -> bool:  # alone: the person's flag; on several processes: what they agreed on after a step
        return stopping if dist.active else should_stop()

    words = prior_words = None
    vocabulary = getattr(state.model, "vocabulary", None)
    if vocabulary is not None:
        if dataset.captions is None:
            raise ValueError("A prompt model trains on images with captions, and these have none.")
        words = dist.shard(vocabulary.batch(list(dataset.captions)))
        prior_words = vocabulary.batch(prior_captions) if prior_captions else None
    try:
        train(state, dist.shard(dataset.images), schedule, config, callback, stop_now, prior,
              augment=augmenter(config), model_fn=model_fn(dist.wrap(state.model)), words=words,
              prior_words=prior_words)
    finally:
        if log_file is not None:
            log_file.close()
        save()
    return run.checkpoint


def read_quality(run: RunFolder, spec: RunSpec, state: TrainState, schedule: NoiseSchedule, step: int) -> None:
    """Sample, read the quality against the held-out images, append it to quality.csv and replot progress.html."""
    samples = preview(state.ema.model, schedule, spec.config.prediction_type, spec.quality_samples, seed=4321)
    reading = spec.quality.read(step, samples)
    path = run.path / "quality.csv"
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["step", "density", "coverage", "near_copies"])
        writer.writerow([step, f"{reading.density:.4f}", f"{reading.coverage:.4f}", f"{reading.copies:.4f}"])
    with open(path, newline="") as f:
        readings = [(int(r["step"]), float(r["density"]), float(r["coverage"]), float(r["near_copies"]))
                    for r in csv.DictReader(f)]
    training_progress_figure(run.losses() or state.losses, readings).write_html(
        run.path / "progress.html", include_plotlyjs=True)


def resume_note(run_dir: str | Path, init_from: str | Path | None = None) -> str | None:
    """What :func:`run_training` will start from, for a person: None for a fresh start."""
    run = RunFolder(Path(run_dir))
    if run.can_resume():
        return f"resuming {run.checkpoint} at step {run.checkpoint_step()}"
    if init_from is not None:
        return f"warm-starting from {init_from} at step {read_info(init_from).get('steps', 0)} (fresh optimizer)"
    return None
