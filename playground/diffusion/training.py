"""Training a denoiser: the loss, EMA with warm-up, the learning-rate schedule, and the loop.

The loop knows nothing of UI or files: it reports through a callback (minGPT's trigger_callbacks) and
stops when ``should_stop()`` says so. Checkpointing and previews belong to the caller.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from playground.diffusion.forward import add_noise, extract, randn
from playground.diffusion.samplers import PredictionType
from playground.diffusion.schedules import NoiseSchedule

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def diffusion_loss(
    model_fn: ModelFn,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    generator: torch.Generator | None = None,
    prediction_type: PredictionType = "epsilon",
    min_snr_gamma: float | None = None,
) -> torch.Tensor:
    """The simple loss of Ho et al. 2020 (eq. 14): MSE between the model's output and its target at random t.

    prediction_type picks the target: eps, v = sqrt(abar) eps - sqrt(1-abar) x_0 (Salimans & Ho 2022) or x_0.
    min_snr_gamma weights each sample as Min-SNR-gamma (Hang et al. 2023), in the units of that target:
    min(SNR, gamma) / SNR for eps, min(SNR, gamma) / (SNR + 1) for v, min(SNR, gamma) for x_0.
    """
    batch = x0.shape[0]
    where = generator.device if generator is not None else x0.device
    t = torch.randint(0, schedule.num_timesteps, (batch,), generator=generator, device=where).to(x0.device)
    noise = randn(x0.shape, generator, x0)
    x_t = add_noise(schedule, x0, noise, t)
    if prediction_type == "epsilon":
        target = noise
    elif prediction_type == "v_prediction":
        target = extract(schedule.sqrt_alphas_cumprod, t, x0) * noise - extract(
            schedule.sqrt_one_minus_alphas_cumprod, t, x0) * x0
    elif prediction_type == "sample":
        target = x0
    else:
        raise ValueError(f"Unknown prediction type {prediction_type!r}.")
    per_sample = (model_fn(x_t, t).float() - target.float()).pow(2).flatten(1).mean(1)  # (B,)
    if min_snr_gamma is not None:
        snr = schedule.snr.to(x0.device)[t].float()
        clipped = snr.clamp(max=min_snr_gamma)
        weight = {"epsilon": clipped / snr.clamp(min=1e-8), "v_prediction": clipped / (snr + 1),
                  "sample": clipped}[prediction_type]
        per_sample = per_sample * weight
    return per_sample.mean()


def call_model(model: torch.nn.Module, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """model(x_t, t) as a tensor, whether the model returns one or diffusers' output with ``.sample``."""
    out = model(x_t, t)
    return out.sample if hasattr(out, "sample") else out


class EMA:
    """Exponential moving average of a model's weights, with warm-up.

    decay = min(max_decay, (1 + step) / (10 + step)): early on the average follows the model closely (a plain
    0.999 average from step 0 is mostly the random initialisation for the first thousand steps).
    """

    def __init__(self, model: torch.nn.Module, max_decay: float = 0.999) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.max_decay = max_decay
        self.num_updates = 0

    def decay(self) -> float:
        return min(self.max_decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        decay = self.decay()
        averaged = list(self.model.parameters())
        torch._foreach_lerp_(averaged, [p.detach() for p in model.parameters()], 1.0 - decay)  # one fused call
        for averaged, current in zip(self.model.buffers(), model.buffers()):
            averaged.copy_(current)
        self.num_updates += 1


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int, min_ratio: float = 0.1) -> float:
    """Linear warm-up to base_lr, then cosine decay to base_lr * min_ratio at total_steps (held after)."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Saved with every checkpoint."""

    steps: int = 1000  # optimizer steps in total (a resumed run continues towards this)
    batch_size: int = 64
    lr: float = 5e-4  # AdamW peak learning rate
    warmup_steps: int = 200
    lr_min_ratio: float = 0.1  # cosine decay ends at lr * this
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_max_decay: float = 0.999
    prediction_type: PredictionType = "v_prediction"
    min_snr_gamma: float | None = 5.0
    schedule: str = "cosine"
    num_timesteps: int = 1000
    hflip: bool = True  # augment by mirroring left-right
    crop_scale: float = 1.0  # random-resized crop keeping this much of the side at least (1.0: off)
    color_jitter: float = 0.0  # brightness, contrast and saturation each scaled by 1 +- this (0: off)
    prior_fraction: float = 0.0  # share of each batch taken from the prior images (DreamBooth's preservation)
    seed: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def augment(x: torch.Tensor, generator: torch.Generator, config: TrainConfig) -> torch.Tensor:
    """Random flips, small random-resized crops and mild colour jitter of a batch (B, 3, H, W) in [-1, 1].

    Every random number comes from ``generator`` in a fixed order, so a resumed run augments as an
    uninterrupted one would. With the defaults only the flip is on.
    """
    batch = x.shape[0]
    if config.hflip:
        flip = torch.rand(batch, generator=generator) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    if config.crop_scale < 1.0:
        # a square window of side `side` (a fraction of the image) at a random place, resized back up
        side = config.crop_scale + (1.0 - config.crop_scale) * torch.rand(batch, generator=generator)
        corner = torch.rand(batch, 2, generator=generator) * (1.0 - side)[:, None]
        theta = torch.zeros(batch, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = side
        theta[:, :, 2] = (corner + side[:, None] / 2) * 2 - 1  # window centre in [-1, 1] (x, y)
        grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
        x = torch.nn.functional.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="border",
                                            align_corners=False)
    if config.color_jitter > 0:
        brightness, contrast, saturation = (
            1.0 + config.color_jitter * (2 * torch.rand(3, batch, 1, 1, 1, generator=generator) - 1))
        image = (x + 1) / 2 * brightness
        mean = image.mean(dim=(1, 2, 3), keepdim=True)
        image = (image - mean) * contrast + mean
        gray = (0.299 * image[:, :1] + 0.587 * image[:, 1:2] + 0.114 * image[:, 2:3])
        image = (image - gray) * saturation + gray
        x = image.clamp(0, 1) * 2 - 1
    return x


def draw_batch(data: torch.Tensor, generator: torch.Generator, config: TrainConfig,
               prior: torch.Tensor | None = None) -> torch.Tensor:
    """A training batch: drawn with replacement from ``data``, ``prior_fraction`` of it from ``prior``, augmented."""
    count = round(config.batch_size * config.prior_fraction) if prior is not None and len(prior) else 0
    x0 = data[torch.randint(0, data.shape[0], (config.batch_size - count,), generator=generator)]
    if count:
        x0 = torch.cat([x0, prior[torch.randint(0, prior.shape[0], (count,), generator=generator)]])
    return augment(x0, generator, config) if x0.ndim == 4 else x0


@dataclass
class TrainState:
    """Everything needed to continue a run exactly where it stopped."""

    model: torch.nn.Module
    ema: EMA
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    step: int = 0
    losses: list[float] = field(default_factory=list)


def new_train_state(model: torch.nn.Module, config: TrainConfig) -> TrainState:
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    return TrainState(model=model, ema=EMA(model, config.ema_max_decay), optimizer=optimizer, generator=generator)


@dataclass(frozen=True)
class TrainEvent:
    step: int  # optimizer steps done
    total_steps: int
    loss: float
    lr: float
    images_per_second: float


def train(
    state: TrainState,
    data: torch.Tensor,
    schedule: NoiseSchedule,
    config: TrainConfig,
    callback: Callable[[TrainEvent, TrainState], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    prior: torch.Tensor | None = None,
) -> TrainState:
    """Train ``state.model`` on ``data`` ((N, C, H, W) in [-1, 1]) until config.steps or should_stop().

    The model is called as model(x_t, t), returning a tensor or diffusers' output with ``.sample``.
    Batches come from :func:`draw_batch` with ``state.generator``, so a resumed run draws what an
    uninterrupted one would. ``prior``: images (e.g. the base model's own samples) that make up
    ``config.prior_fraction`` of every batch. On a GPU the forward pass runs under bf16 autocast; the loss stays fp32.
    """
    import time

    model = state.model.train()
    model_fn = lambda x, t: call_model(model, x, t)  # noqa: E731
    device = next(model.parameters()).device
    while state.step < config.steps and not should_stop():
        started = time.perf_counter()
        lr = lr_at(state.step, config.lr, config.warmup_steps, config.steps, config.lr_min_ratio)
        for group in state.optimizer.param_groups:
            group["lr"] = lr
        x0 = draw_batch(data, state.generator, config, prior).to(device)
        if x0.ndim == 4:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):  # GPU: bf16 matmuls
            loss = diffusion_loss(model_fn, schedule, x0, state.generator, config.prediction_type, config.min_snr_gamma)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        state.optimizer.step()
        state.ema.update(model)
        state.step += 1
        state.losses.append(loss.item())
        if callback is not None:
            elapsed = time.perf_counter() - started
            callback(TrainEvent(state.step, config.steps, state.losses[-1], lr, config.batch_size / elapsed), state)
    model.eval()
    return state
