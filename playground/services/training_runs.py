"""A training run: data in; checkpoints, preview grids, a log and quality readings out; resumable at the exact step.

:func:`run_training` trains one run folder (services.run_folder names its files) as a :class:`RunSpec` says. Shared
by ``python -m playground train`` and fine-tuning (services.finetuning). A latent run (``RunSpec.autoencoder``)
trains on latents encoded once, and decodes them for its previews; its checkpoint carries the autoencoder in vae/.
"""

from __future__ import annotations

import dataclasses
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
from playground.models import Autoencoder, ModelConfig, PromptedUNet, build_unet, count_parameters, model_fn
from playground.plots import training_progress_figure
from playground.services.distributed import Distributed
from playground.services.image_sampling import preview
from playground.services.run_folder import RunFolder, RunLog
from playground.services.sample_quality import QualityProbe

FIRST_CHECKPOINT_S = 15.0
RANK_SEED_STRIDE = 1_000_003  # process r draws its batches and noise from seed + r * this (rank 0: the seed itself)
QUALITY_SEED = 4321  # the quality readings' samples, the same noise at every preview


def process_seed(seed: int, rank: int, step: int = 0) -> int:
    """The seed of process ``rank``'s random stream when it starts (or restarts without its saved stream) at
    ``step``; for process 0 the generator is the run's own."""
    return seed + RANK_SEED_STRIDE * rank + step


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
    autoencoder: Autoencoder | None = None  # a latent run: the data are its latents; previews are decoded


def _network(spec: RunSpec, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """The network to train (on ``device``, channels-last) and its description for playground.json."""
    unet = spec.unet if spec.unet is not None else build_unet(spec.model, seed=spec.config.seed)
    if spec.prompts is not None and not isinstance(unet, PromptedUNet):
        unet = PromptedUNet.from_unconditional(unet, spec.prompts)
    unet = unet.to(device, memory_format=torch.channels_last)
    model_info = spec.model.to_dict() if spec.model is not None else {
        "resolution": int(unet.config.sample_size), "channels": list(unet.config.block_out_channels)}
    return unet, model_info


def _start_state(run: RunFolder, spec: RunSpec, dist: Distributed) -> tuple[TrainState, float, dict]:
    """A new or restored training state, the wall time already spent, and the network's description."""
    unet, model_info = _network(spec, dist.device)
    state = new_train_state(unet, spec.config, encoder=unet.encoder if isinstance(unet, PromptedUNet) else None)
    saved = load_training_state(run.checkpoint) if spec.resume else None
    seed = spec.config.seed
    if saved is not None:
        tensors, meta = saved
        info = read_info(run.checkpoint)
        state.load_tensors(tensors, meta, load_weights_into(unet, run.checkpoint), info.get("loss_history_full", []))
        if dist.rank:  # every process continues its own random stream, when the run had as many processes
            own = tensors.get(f"rng.rank{dist.rank}")
            if own is not None and meta.get("world_size") == dist.world_size:
                state.generator.set_state(own)
            else:
                state.generator.manual_seed(process_seed(seed, dist.rank, state.step))
        return state, float(info.get("wall_time_s", 0.0)), model_info
    wall_before = 0.0
    if spec.init_from is not None:
        info = read_info(spec.init_from)
        weights, fresh = transplant(unet, load_weights_into(unet, spec.init_from))
        if fresh:  # another kind of network (a pixel model's for a latent one): its inner layers, from step 0
            state.warm_start(weights, 0, [], seed)
        else:
            state.warm_start(weights, info.get("steps", 0), info.get("loss_history_full", []), info.get("seed", 0))
            wall_before = float(info.get("wall_time_s", 0.0))
    if dist.rank:
        state.generator.manual_seed(process_seed(seed, dist.rank, state.step))
    return state, wall_before, model_info


def transplant(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``weights`` for ``model``, where every tensor of another shape keeps the model's own (fresh) values: a pixel
    model's UNet warm-starts a latent one except its first and last convolutions (3 picture channels, not 4 latent
    ones). Returns the weights and the names kept fresh (none when the two networks are alike)."""
    own = model.state_dict()
    fresh = [name for name, value in weights.items() if name in own and own[name].shape != value.shape]
    return {**weights, **{name: own[name] for name in fresh}}, fresh


@dataclass
class CheckpointClock:
    """When to save: FIRST_CHECKPOINT_S in, then at gaps that double up to ``longest_s``."""

    longest_s: float
    gap: float = 0.0
    last: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.gap = min(FIRST_CHECKPOINT_S, self.longest_s)

    def due(self) -> bool:
        return time.perf_counter() - self.last > self.gap

    def saved(self) -> None:
        self.last, self.gap = time.perf_counter(), min(2 * self.gap, self.longest_s)


@dataclass
class _RunInProgress:
    """One run while it trains: what every step's callback, the stop check and the saves share."""

    run: RunFolder
    spec: RunSpec
    dataset: Dataset
    dist: Distributed
    state: TrainState
    schedule: NoiseSchedule
    wall_before: float
    model_info: dict
    on_event: Callable[[TrainEvent], None] | None
    should_stop: Callable[[], bool]
    clock: CheckpointClock
    started: float = field(default_factory=time.perf_counter)
    stopping: bool = False
    log: RunLog | None = None  # the main process's

    def open_log(self) -> None:
        if self.dist.is_main:
            self.run.samples.mkdir(parents=True, exist_ok=True)
            self.log = self.run.open_log()

    def close_log(self) -> None:
        if self.log is not None:
            self.log.close()

    def stop_now(self) -> bool:
        """Alone: the person's flag; on several processes: what they agreed on after the last step."""
        return self.stopping if self.dist.active else self.should_stop()

    def on_step(self, event: TrainEvent, state: TrainState) -> None:
        dist = self.dist
        loss, self.stopping, save_now = dist.agree(event.loss, dist.active and self.should_stop(), self.clock.due())
        state.losses[-1] = loss
        event = dataclasses.replace(event, loss=loss, images_per_second=event.images_per_second * dist.world_size)
        if dist.is_main:
            self.log.write(event.step, event.loss, event.lr, event.images_per_second)
            if self.on_event is not None:
                self.on_event(event)
            if event.step % self.spec.preview_every == 0 or event.step == event.total_steps:
                self.write_preview(event.step)
                if self.spec.quality is not None:
                    read_quality(self.run, self.spec, state, self.schedule, event.step)
        if save_now:
            self.save()
            self.clock.saved()

    def write_preview(self, step: int) -> None:
        spec = self.spec
        images = preview(self.state.ema.model, self.schedule, spec.config.prediction_type, spec.preview_count,
                         prompt=spec.preview_prompt, autoencoder=spec.autoencoder)
        grid = media.image_grid(images)
        zoom = max(1, 128 // images.shape[-1])
        grid.resize((grid.width * zoom, grid.height * zoom), Image.NEAREST).save(self.run.preview_path(step))

    def save(self) -> None:
        """Every process calls it (the random states are gathered); the main one writes."""
        state, config, dist = self.state, self.spec.config, self.dist
        tensors, meta = state.to_tensors()
        streams = dist.gather(state.generator.get_state())
        if not dist.is_main:
            return
        tensors.update({f"rng.rank{r}": stream for r, stream in enumerate(streams) if r})
        meta["world_size"] = dist.world_size
        info = self.info()
        save_checkpoint(self.run.checkpoint, state.ema.model, config.schedule, config.num_timesteps,
                        config.prediction_type, info, model_card(self.run.path.name, info), tensors, meta,
                        autoencoder=self.spec.autoencoder)

    def info(self) -> dict:
        """playground.json's content for the checkpoint saved now."""
        state, config, spec = self.state, self.spec.config, self.spec
        losses = state.losses
        stride = max(1, len(losses) // 2000)
        info = {
            "model": self.model_info, "training": config.to_dict(), "parameters": count_parameters(state.model),
            "data": {"name": self.dataset.name, "count": self.dataset.count, "sha256": self.dataset.fingerprint},
            "steps": state.step, "seed": config.seed, "processes": self.dist.world_size,
            "global_batch": config.batch_size * self.dist.world_size,
            "wall_time_s": self.wall_before + time.perf_counter() - self.started,
            "final_loss": float(np.mean(losses[-100:])) if losses else float("nan"),
            "loss_history": [float(np.mean(losses[i:i + stride])) for i in range(0, len(losses), stride)],
            "loss_history_stride": stride, "loss_history_full": losses,
            **{k: v for k, v in spec.info.items() if k != "data"},
        }
        info["data"].update(spec.info.get("data", {}))  # merged, so count and sha256 stay
        autoencoder = spec.autoencoder
        if autoencoder is not None:  # what the model card says of a latent model
            size = int(state.model.config.sample_size)
            info["latent"] = {"channels": autoencoder.latent_channels, "size": size,
                              "resolution": size * autoencoder.factor, "scaling_factor": autoencoder.scaling_factor,
                              "autoencoder_parameters": count_parameters(autoencoder)}
        return info


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
    state, wall_before, model_info = _start_state(run, spec, dist)
    progress = _RunInProgress(run, spec, dataset, dist, state, NoiseSchedule.from_name(config.schedule,
                              config.num_timesteps), wall_before, model_info, on_event, should_stop,
                              CheckpointClock(spec.checkpoint_every_s))
    words = prior_words = None
    vocabulary = getattr(state.model, "vocabulary", None)
    if vocabulary is not None:
        if dataset.captions is None:
            raise ValueError("A prompt model trains on images with captions, and these have none.")
        words = dist.shard(vocabulary.batch(list(dataset.captions)))
        prior_words = vocabulary.batch(prior_captions) if prior_captions else None
    progress.open_log()
    try:
        train(state, dist.shard(dataset.images), progress.schedule, config, progress.on_step, progress.stop_now,
              prior, augment=augmenter(config), model_fn=model_fn(dist.wrap(state.model)), words=words,
              prior_words=prior_words)
    finally:
        progress.close_log()
        progress.save()
    return run.checkpoint


def read_quality(run: RunFolder, spec: RunSpec, state: TrainState, schedule: NoiseSchedule, step: int) -> None:
    """Sample, read the quality against the held-out images, add it to quality.csv and replot progress.html."""
    samples = preview(state.ema.model, schedule, spec.config.prediction_type, spec.quality_samples, seed=QUALITY_SEED,
                      autoencoder=spec.autoencoder)
    reading = spec.quality.read(step, samples)
    run.append_quality({"step": step, "density": f"{reading.density:.4f}", "coverage": f"{reading.coverage:.4f}",
                        "near_copies": f"{reading.copies:.4f}"})
    readings = [(int(r["step"]), float(r["density"]), float(r["coverage"]), float(r["near_copies"]))
                for r in run.quality_rows()]
    training_progress_figure(run.losses() or state.losses, readings).write_html(run.progress_page,
                                                                                include_plotlyjs=True)


def resume_note(run_dir: str | Path, init_from: str | Path | None = None) -> str | None:
    """What :func:`run_training` will start from, for a person: None for a fresh start."""
    run = RunFolder(Path(run_dir))
    if run.can_resume():
        return f"resuming {run.checkpoint} at step {run.checkpoint_step()}"
    if init_from is not None:
        return f"warm-starting from {init_from} (fresh optimizer; a network of another kind takes its inner layers)"
    return None
