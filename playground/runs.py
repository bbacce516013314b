"""A training run on disk: data in, checkpoints, preview grids and a log out; resumable at the exact step.

    RUN/checkpoint/      the diffusers folder (EMA weights) plus training/ to resume from
    RUN/samples/         a preview grid every ``preview_every`` steps (fixed seed, DPM-Solver++ 25 steps)
    RUN/log.csv          step, loss, lr, images/s

Shared by ``python -m playground train`` and (later) the Train tab.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from playground import media
from playground.checkpoints import load_training_state, save_checkpoint
from playground.diffusion import NoiseSchedule, make_sampler, sample
from playground.diffusion.training import TrainConfig, TrainEvent, TrainState, call_model, new_train_state, train
from playground.models import ModelConfig, build_unet, count_parameters


@dataclass(frozen=True)
class Dataset:
    name: str
    images: torch.Tensor  # (N, 3, R, R) float32 in [-1, 1]
    fingerprint: str  # sha256 of the uint8 pixels
    count: int


def dataset_from_uint8(name: str, images: np.ndarray) -> Dataset:
    """(N, R, R, 3) uint8 -> a Dataset in [-1, 1], fingerprinted."""
    fingerprint = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).contiguous()
    return Dataset(name, tensor, fingerprint, len(images))


@torch.inference_mode()
def preview(unet: torch.nn.Module, schedule: NoiseSchedule, prediction_type: str, count: int = 16, seed: int = 1234,
            steps: int = 25) -> torch.Tensor:
    """``count`` samples from a fixed seed with DPM-Solver++(2M), pred x_0 clipped to [-1, 1]."""
    resolution = unet.config.sample_size
    generator = torch.Generator().manual_seed(seed)
    device = next(unet.parameters()).device
    x_T = torch.randn(count, 3, resolution, resolution, generator=generator).to(device)
    sampler = make_sampler("dpmpp", schedule, steps, prediction_type=prediction_type, clip_sample=1.0)
    return sample(lambda x, t: call_model(unet, x, t), sampler, x_T, generator).clamp(-1, 1).cpu()


UNET_WEIGHTS = "unet/diffusion_pytorch_model.safetensors"  # where save_pretrained puts them


# --- saving and restoring the whole training state (safetensors only) ---

def training_tensors(state: TrainState) -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {f"model.{k}": v.detach().cpu() for k, v in state.model.state_dict().items()}
    optimizer = state.optimizer.state_dict()
    for index, values in optimizer["state"].items():
        for key, value in values.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu()
    tensors["rng"] = state.generator.get_state()
    meta = {"step": state.step, "ema_updates": state.ema.num_updates, "param_groups": optimizer["param_groups"]}
    return tensors, meta


def restore_training_state(state: TrainState, folder: Path) -> bool:
    """Load online weights, optimizer moments, EMA and RNG from ``folder`` into ``state``; False if absent."""
    loaded = load_training_state(folder)
    if loaded is None:
        return False
    tensors, meta = loaded
    state.model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    optimizer_state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            optimizer_state.setdefault(int(index), {})[name] = value
    state.optimizer.load_state_dict({"state": optimizer_state, "param_groups": meta["param_groups"]})
    state.ema.model.load_state_dict(load_file(str(folder / UNET_WEIGHTS)))
    state.ema.model.to(next(state.model.parameters()).device)
    state.ema.num_updates = int(meta["ema_updates"])
    state.generator.set_state(tensors["rng"])
    state.step = int(meta["step"])
    info = json.loads((folder / "playground.json").read_text())
    state.losses = list(info.get("loss_history_full", []))
    return True


def warm_start(state: TrainState, folder: Path) -> float:
    """Copy a checkpoint's weights into model and EMA and carry its step count on; returns its wall time."""
    weights = load_file(str(folder / UNET_WEIGHTS))
    state.model.load_state_dict(weights)
    state.ema.model.load_state_dict(weights)
    info = json.loads((folder / "playground.json").read_text())
    state.step = state.ema.num_updates = int(info.get("steps", 0))
    state.losses = list(info.get("loss_history_full", []))
    state.generator.manual_seed(int(info.get("seed", 0)) + state.step)  # new batches, not a replay
    return float(info.get("wall_time_s", 0.0))


def model_card(title: str, info: dict, grid_name: str | None = None) -> str:
    """A README.md for a checkpoint folder, from its playground.json content."""
    model, training, data = info.get("model", {}), info.get("training", {}), info.get("data", {})
    lines = [
        f"# {title}", "",
        "A small unconditional denoising diffusion model made with Diffusion Playground. It is a diffusers "
        "DDPM pipeline folder: `DDPMPipeline.from_pretrained(folder)` loads it.", "",
        f"- Network: diffusers `UNet2DModel`, {info.get('parameters', 0) / 1e6:.2f} M parameters, "
        f"{model.get('resolution')}x{model.get('resolution')} RGB, channels {model.get('channels')}",
        f"- Trained on: {data.get('description', data.get('name'))} ({data.get('count')} images, "
        f"sha256 {str(data.get('sha256', ''))[:16]}…)",
        f"- Steps: {info.get('steps')} of batch {training.get('batch_size')}; schedule {training.get('schedule')}, "
        f"T = {training.get('num_timesteps')}; target {training.get('prediction_type')}, "
        f"Min-SNR-γ {training.get('min_snr_gamma')}; AdamW lr {training.get('lr')} (warm-up "
        f"{training.get('warmup_steps')}, cosine to ×{training.get('lr_min_ratio')}); EMA up to {training.get('ema_max_decay')} with warm-up",
        f"- Wall time: {info.get('wall_time_s', 0) / 3600:.2f} h on {info.get('hardware', 'unknown hardware')}",
        f"- Final loss (mean of last 100 steps): {info.get('final_loss', float('nan')):.4f}",
    ]
    if info.get("command"):
        lines += ["", "Trained with exactly:", "", "```bash", info["command"], "```"]
    if grid_name:
        lines += ["", "Samples (DPM-Solver++, 25 steps, seed 1234):", "", f"![samples]({grid_name})"]
    if data.get("licence"):
        lines += ["", f"Training data licence: {data['licence']}"]
    return "\n".join(lines) + "\n"


def run_training(
    run_dir: str | Path,
    dataset: Dataset,
    model_config: ModelConfig | None,
    train_config: TrainConfig,
    resume: bool = True,
    preview_every: int = 500,
    checkpoint_every_s: float = 600.0,
    extra_info: dict | None = None,
    on_event: Callable[[TrainEvent], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    device: torch.device | str = "cpu",
    init_from: str | Path | None = None,
    unet: torch.nn.Module | None = None,
    prior: torch.Tensor | None = None,
    preview_count: int = 16,
) -> Path:
    """Train (or continue) the run in ``run_dir``; returns the checkpoint folder.

    Resume restores everything from run_dir/checkpoint (exact). Without one, ``init_from`` (a checkpoint
    folder without training state, e.g. a shipped model) warm-starts: its weights become both the model
    and the EMA, its step count and loss history carry on, and AdamW's moments start fresh.
    ``unet``: the network to train instead of a fresh one from ``model_config`` (fine-tuning passes a copy of
    its base, so training starts at step 0 from the base's weights). ``prior``: see :func:`train`.
    """
    run_dir = Path(run_dir)
    checkpoint_dir = run_dir / "checkpoint"
    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    schedule = NoiseSchedule.from_name(train_config.schedule, train_config.num_timesteps)
    torch.manual_seed(train_config.seed)
    if unet is None:
        unet = build_unet(model_config)
    unet = unet.to(device, memory_format=torch.channels_last)
    model_info = model_config.to_dict() if model_config is not None else {
        "resolution": int(unet.config.sample_size), "channels": list(unet.config.block_out_channels)}
    state = new_train_state(unet, train_config)
    wall_before = 0.0
    if resume and restore_training_state(state, checkpoint_dir):
        wall_before = json.loads((checkpoint_dir / "playground.json").read_text()).get("wall_time_s", 0.0)
        print(f"resumed {checkpoint_dir} at step {state.step}", flush=True)
    elif init_from is not None:
        wall_before = warm_start(state, Path(init_from))
        print(f"warm-started from {init_from} at step {state.step} (fresh optimizer moments)", flush=True)
    started = time.perf_counter()
    last_save = time.perf_counter()
    log_path = run_dir / "log.csv"
    new_log = not log_path.exists()
    log_file = open(log_path, "a", newline="")
    log = csv.writer(log_file)
    if new_log:
        log.writerow(["step", "loss", "lr", "images_per_s"])

    def save() -> None:
        tensors, meta = training_tensors(state)
        losses = state.losses
        stride = max(1, len(losses) // 2000)
        info = {
            "model": model_info, "training": train_config.to_dict(),
            "parameters": count_parameters(state.model),
            "data": {"name": dataset.name, "count": dataset.count, "sha256": dataset.fingerprint},
            "steps": state.step, "seed": train_config.seed,
            "wall_time_s": wall_before + time.perf_counter() - started,
            "final_loss": float(np.mean(losses[-100:])) if losses else float("nan"),
            "loss_history": [float(np.mean(losses[i:i + stride])) for i in range(0, len(losses), stride)],
            "loss_history_stride": stride, "loss_history_full": losses,
            **{k: v for k, v in (extra_info or {}).items() if k != "data"},
        }
        info["data"].update((extra_info or {}).get("data", {}))  # merged, so count and sha256 stay
        save_checkpoint(checkpoint_dir, state.ema.model, train_config.schedule, train_config.num_timesteps,
                        train_config.prediction_type, info, model_card(run_dir.name, info), tensors, meta)

    def callback(event: TrainEvent, current: TrainState) -> None:
        nonlocal last_save
        log.writerow([event.step, f"{event.loss:.5f}", f"{event.lr:.6g}", f"{event.images_per_second:.1f}"])
        if on_event is not None:
            on_event(event)
        if event.step % preview_every == 0 or event.step == event.total_steps:
            grid = media.image_grid(preview(current.ema.model, schedule, train_config.prediction_type, preview_count))
            grid.resize((grid.width * 4, grid.height * 4), Image.NEAREST).save(
                run_dir / "samples" / f"step_{event.step:06d}.png")
        if time.perf_counter() - last_save > checkpoint_every_s:
            log_file.flush()
            save()
            last_save = time.perf_counter()

    try:
        train(state, dataset.images, schedule, train_config, callback, should_stop, prior)
    finally:
        log_file.close()
        save()
    return checkpoint_dir
