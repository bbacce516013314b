"""Train the autoencoder of a latent model: emoji and photos in, a diffusers AutoencoderTiny folder out, resumable.

    python -m playground autoencoder --photos DIR --out RUN [--steps N]

    RUN/checkpoint/vae/       the autoencoder (EMA weights), its latent scaling factor in vae/config.json
    RUN/checkpoint/training/  online weights, optimizer, RNG: a second run of the command continues exactly
    RUN/log.csv, RUN/quality.csv (PSNR of held-out emoji and photos), RUN/samples/ (held-out pictures over their
    reconstructions)

The emoji are the Noto Color Emoji set at the autoencoder's resolution (every one but the skin-tone variants), one
in twenty held out; the photos are random squares of a folder's photos at many scales (data.photos), with one file
in ten held out whole and measured as the Train tab would show it (centre-cropped and resized).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from playground import media
from playground.checkpoints import load_training_state, read_info, save_autoencoder
from playground.data.emoji import load_emoji_set
from playground.data.photos import centre_squares, photo_bank, photo_files, split_held_out
from playground.diffusion.autoencoder_training import AutoencoderTrainConfig, train_autoencoder
from playground.diffusion.autoencoding import psnr, unit_variance_scale
from playground.diffusion.training import TrainEvent, TrainState, as_float, new_train_state
from playground.models import Autoencoder, AutoencoderConfig, build_autoencoder, count_parameters
from playground.services.run_folder import RunFolder, RunLog
from playground.services.training_runs import CheckpointClock

HELD_OUT_EMOJI_EVERY = 20
SCALE_SAMPLES = 512  # emoji encoded to measure the latents' spread when a checkpoint is saved


@dataclass(frozen=True)
class AutoencoderData:
    """Pictures as uint8 (N, 3, R, R): what trains the autoencoder and what measures it."""

    emoji: torch.Tensor
    photos: torch.Tensor  # random squares of the training photos (empty: emoji only)
    held_out_emoji: torch.Tensor
    held_out_photos: torch.Tensor  # held-out photos, each centre-cropped and resized as the Train tab does
    description: dict = field(default_factory=dict)


def _channels_first(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


def autoencoder_data(photos: str | None, resolution: int, crops_per_photo: int = 64,
                     say: Callable[[str], None] = print) -> AutoencoderData:
    """The emoji set and (when ``photos`` names a folder) its photos, split into training and held-out pictures."""
    emoji = _channels_first(load_emoji_set(resolution).images)
    held = torch.zeros(len(emoji), dtype=torch.bool)
    held[::HELD_OUT_EMOJI_EVERY] = True
    empty = torch.zeros(0, 3, resolution, resolution, dtype=torch.uint8)
    description = {"emoji": f"{int((~held).sum())} Noto Color Emoji (every one but skin-tone variants), "
                            f"{int(held.sum())} held out"}
    if photos is None:
        return AutoencoderData(emoji[~held], empty, emoji[held], empty, description)
    train_files, held_files = split_held_out(photo_files(photos))
    say(f"cutting {crops_per_photo} squares from each of {len(train_files)} photos ({len(held_files)} held out)")
    bank = _channels_first(photo_bank(train_files, resolution, crops_per_photo))
    held_photos = _channels_first(centre_squares(held_files, resolution)) if held_files else empty
    description["photos"] = (f"{len(bank)} squares of {len(train_files)} photos from {Path(photos).name!r}, "
                             f"{len(held_photos)} photos held out")
    return AutoencoderData(emoji[~held], bank, emoji[held], held_photos, description)


def draw_crops(data: AutoencoderData, generator: torch.Generator, config: AutoencoderTrainConfig,
               factor: int) -> torch.Tensor:
    """A batch in [-1, 1]: ``photo_share`` of it from the photo squares, the rest emoji, each cut to a random
    ``config.crop`` square (its corner on the latent grid, every ``factor`` pixels) and mirrored half the time."""
    photos = round(config.batch_size * config.photo_share) if len(data.photos) else 0
    picks = [data.emoji[torch.randint(0, len(data.emoji), (config.batch_size - photos,), generator=generator)]]
    if photos:
        picks.append(data.photos[torch.randint(0, len(data.photos), (photos,), generator=generator)])
    pictures = torch.cat(picks)
    side, crop = pictures.shape[-1], config.crop
    corners = torch.randint(0, (side - crop) // factor + 1, (len(pictures), 2), generator=generator) * factor
    mirror = torch.rand(len(pictures), generator=generator) < 0.5
    crops = []
    for picture, (top, left), flip in zip(pictures, corners.tolist(), mirror.tolist(), strict=True):
        piece = picture[:, top:top + crop, left:left + crop]
        crops.append(piece.flip(-1) if flip else piece)
    return as_float(torch.stack(crops))


@torch.inference_mode()
def measure(autoencoder: Autoencoder, pictures: torch.Tensor, batch: int = 64) -> float:
    """Mean PSNR (dB) of ``pictures`` (uint8) reconstructed whole; nan when there are none."""
    if not len(pictures):
        return float("nan")
    device = next(autoencoder.parameters()).device
    scores = [psnr(autoencoder.reconstruct(as_float(part).to(device)).cpu(), as_float(part))
              for part in pictures.split(batch)]
    return float(torch.cat(scores).mean())


@torch.inference_mode()
def latent_scale(autoencoder: Autoencoder, emoji: torch.Tensor, batch: int = 64) -> float:
    """The scaling factor that gives the latents of (up to SCALE_SAMPLES of) ``emoji`` unit variance."""
    device = next(autoencoder.parameters()).device
    pictures = emoji[torch.linspace(0, len(emoji) - 1, min(SCALE_SAMPLES, len(emoji))).long()]
    latents = torch.cat([autoencoder.vae.encode(as_float(part).to(device)).latents.cpu()
                         for part in pictures.split(batch)])
    return unit_variance_scale(latents)


@dataclass(frozen=True)
class AutoencoderReading:
    step: int
    emoji_psnr: float
    photo_psnr: float

    def line(self) -> str:
        photos = f", photos {self.photo_psnr:.2f} dB" if self.photo_psnr == self.photo_psnr else ""
        return f"step {self.step}: held-out emoji {self.emoji_psnr:.2f} dB{photos} (PSNR of 64 px reconstructions)"


def _start(run: RunFolder, network: AutoencoderConfig, config: AutoencoderTrainConfig,
           device: torch.device) -> tuple[TrainState, float, list[str]]:
    """A fresh state, or the run's checkpoint resumed: (state, wall time so far, the commands that ran before)."""
    vae = build_autoencoder(network, seed=config.seed).to(device, memory_format=torch.channels_last)
    state = new_train_state(vae, config)
    saved = load_training_state(run.checkpoint)
    if saved is None:
        return state, 0.0, []
    tensors, meta = saved
    info = read_info(run.checkpoint)
    from safetensors.torch import load_file  # the EMA weights are the checkpoint's own

    ema = load_file(str(next((run.checkpoint / "vae").glob("*.safetensors"))))
    state.load_tensors(tensors, meta, ema, info.get("loss_history_full", []))
    earlier = info.get("commands") or ([info["command"]] if info.get("command") else [])
    return state, float(info.get("wall_time_s", 0.0)), earlier


@dataclass
class _AutoencoderRun:
    """One autoencoder run while it trains: what every step's callback and the saves share."""

    run: RunFolder
    data: AutoencoderData
    config: AutoencoderTrainConfig
    network: AutoencoderConfig
    state: TrainState
    wall_before: float
    earlier_commands: list[str]  # of a resumed run: the commands before this one (resumed with other settings)
    info: dict
    log: RunLog
    clock: CheckpointClock
    measure_every: int
    on_event: Callable[[TrainEvent], None] | None
    on_reading: Callable[[AutoencoderReading], None] | None
    started: float = field(default_factory=time.perf_counter)
    readings: list[AutoencoderReading] = field(default_factory=list)

    def reconstruct(self, pictures: torch.Tensor) -> torch.Tensor:
        vae = self.state.model
        return vae.decode(vae.encode(pictures).latents).sample

    def on_step(self, event: TrainEvent, state: TrainState) -> None:
        self.log.write(event.step, event.loss, event.lr, event.images_per_second)
        if self.on_event is not None:
            self.on_event(event)
        if event.step % self.measure_every == 0 or event.step == event.total_steps:
            self.read(event.step)
        if self.clock.due():
            self.save()
            self.clock.saved()

    def read(self, step: int) -> None:
        ema = Autoencoder(self.state.ema.model)
        data = self.data
        reading = AutoencoderReading(step, measure(ema, data.held_out_emoji), measure(ema, data.held_out_photos))
        self.readings.append(reading)
        self.run.append_quality({"step": step, "emoji_psnr": f"{reading.emoji_psnr:.3f}",
                                 "photo_psnr": f"{reading.photo_psnr:.3f}"})
        reconstruction_grid(ema, data).save(self.run.preview_path(step))
        if self.on_reading is not None:
            self.on_reading(reading)

    def save(self) -> None:
        state = self.state
        ema = Autoencoder(state.ema.model)
        ema.vae.register_to_config(scaling_factor=latent_scale(ema, self.data.emoji))
        tensors, meta = state.to_tensors()
        losses = state.losses
        info = {"kind": "autoencoder", "autoencoder": self.network.to_dict(), "training": self.config.to_dict(),
                "parameters": count_parameters(state.model), "steps": state.step, "seed": self.config.seed,
                "data": self.data.description, "scaling_factor": ema.scaling_factor,
                "wall_time_s": self.wall_before + time.perf_counter() - self.started,
                "final_loss": float(np.mean(losses[-100:])) if losses else float("nan"),
                "loss_history_full": losses, **self.info}
        commands = [*self.earlier_commands, self.info.get("command")]
        commands = [c for k, c in enumerate(commands) if c and (k == 0 or c != commands[k - 1])]
        if len(commands) > 1:  # the card lists them all, in order
            info["commands"] = commands
        if self.readings:
            last = self.readings[-1]
            info["quality"] = {"step": last.step, "emoji_psnr": last.emoji_psnr, "photo_psnr": last.photo_psnr}
        save_autoencoder(self.run.checkpoint, ema.vae, info, autoencoder_card(self.run.path.name, info), tensors,
                         meta)


def train_autoencoder_run(
    run_dir: str | Path, data: AutoencoderData, config: AutoencoderTrainConfig,
    network: AutoencoderConfig = AutoencoderConfig(), on_event: Callable[[TrainEvent], None] | None = None,
    on_reading: Callable[[AutoencoderReading], None] | None = None, should_stop: Callable[[], bool] = lambda: False,
    device: torch.device | str = "cpu", measure_every: int = 500, checkpoint_every_s: float = 600.0,
    info: dict | None = None,
) -> Path:
    """Train (or continue) the autoencoder run in ``run_dir``; returns its checkpoint folder. Every
    ``measure_every`` steps the EMA weights reconstruct the held-out pictures (quality.csv, a sample grid, and
    ``on_reading``); checkpoints come 15 s in, then at doubling gaps up to ``checkpoint_every_s``, and at the end."""
    run = RunFolder(Path(run_dir))
    state, wall_before, earlier = _start(run, network, config, torch.device(device))
    run.samples.mkdir(parents=True, exist_ok=True)
    progress = _AutoencoderRun(run, data, config, network, state, wall_before, earlier, info or {}, run.open_log(),
                               CheckpointClock(checkpoint_every_s), measure_every, on_event, on_reading)
    try:
        train_autoencoder(state, progress.reconstruct,
                          lambda generator: draw_crops(data, generator, config, network.factor), config,
                          progress.on_step, should_stop)
    finally:
        progress.log.close()
        progress.save()
    return run.checkpoint


def reconstruction_grid(autoencoder: Autoencoder, data: AutoencoderData, count: int = 8) -> Image.Image:
    """Held-out emoji and photos (top row of each pair) over their reconstructions, enlarged 2x."""
    pictures = torch.cat([data.held_out_emoji[:count], data.held_out_photos[:count]])
    originals = as_float(pictures)
    with torch.inference_mode():
        device = next(autoencoder.parameters()).device
        rebuilt = autoencoder.reconstruct(originals.to(device)).cpu().clamp(-1, 1)
    rows = [media.image_grid(originals, columns=len(originals)), media.image_grid(rebuilt, columns=len(originals))]
    grid = media.grid(rows, columns=1, gap=4)
    return grid.resize((grid.width * 2, grid.height * 2), Image.NEAREST)


def autoencoder_card(title: str, info: dict) -> str:
    """The model card of an autoencoder run's checkpoint."""
    network, training, quality = info.get("autoencoder", {}), info.get("training", {}), info.get("quality", {})
    lines = [
        f"# {title}", "",
        "The autoencoder of a latent diffusion model, made with Diffusion Playground: diffusers' `AutoencoderTiny` "
        "(TAESD's design). `AutoencoderTiny.from_pretrained(folder, subfolder=\"vae\")` loads it; multiply "
        "`vae.encode(x).latents` by `vae.config.scaling_factor` for latents of unit variance, and divide by it "
        "before `vae.decode`.", "",
        f"- Network: {info.get('parameters', 0) / 1e6:.2f} M parameters, {network.get('resolution')} px pictures "
        f"to {network.get('latent_channels')}-channel latents {len(network.get('encoder_blocks', [])) - 1} halvings "
        f"smaller, width {network.get('channels')}, blocks {network.get('encoder_blocks')} / "
        f"{network.get('decoder_blocks')}",
        f"- Scaling factor: {info.get('scaling_factor', 1.0):.5f}",
        f"- Trained on: {'; '.join(str(v) for v in info.get('data', {}).values())}",
        f"- Steps: {info.get('steps')} of batch {training.get('batch_size')} ({training.get('crop')} px crops, "
        f"{training.get('photo_share', 0):.0%} photos); L1 + {training.get('edge_weight')} x L1 of image gradients; "
        f"AdamW lr {training.get('lr')}; EMA up to {training.get('ema_max_decay')}",
        f"- Wall time: {info.get('wall_time_s', 0) / 3600:.2f} h on {info.get('hardware', 'unknown hardware')}",
    ]
    if quality:
        lines.append(f"- Held-out PSNR at step {quality['step']}: emoji {quality['emoji_psnr']:.2f} dB, photos "
                     f"{quality['photo_psnr']:.2f} dB")
    commands = info.get("commands") or ([info["command"]] if info.get("command") else [])
    if commands:
        lines += ["", "Trained with exactly" + (" these, in order (each resumes the one before):"
                                                 if len(commands) > 1 else ":"), "", "```bash", *commands, "```"]
    return "\n".join(lines) + "\n"
