"""Training the autoencoder of latent diffusion (Rombach et al. 2022): its recipe and the loop.

The autoencoder is trained first and on its own; the diffusion model then learns its latents with the autoencoder
frozen. Like :mod:`playground.diffusion.training` (whose EMA, lr schedule and resumable state it shares), the loop
knows no files or data sets: batches come from a ``draw(generator)`` callable and progress goes to a callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from playground.diffusion.autoencoding import reconstruction_loss
from playground.diffusion.training import TrainEvent, TrainState, optimizer_step, scheduled_lr

Reconstruct = Callable[[torch.Tensor], torch.Tensor]  # (B, C, H, W) in [-1, 1] -> its reconstruction


@dataclass(frozen=True)
class AutoencoderTrainConfig:
    """How to train an autoencoder. Saved with its checkpoint."""

    steps: int = 20_000
    batch_size: int = 32
    crop: int = 32  # train on crops of this side (a multiple of the downsampling factor): a convolutional
    # network's weights do not depend on the picture's size, and a 32 px crop costs a quarter of a 64 px picture
    photo_share: float = 0.5  # the share of each batch cut from photos; the rest are emoji
    lr: float = 1e-3  # AdamW peak learning rate
    warmup_steps: int = 200
    lr_min_ratio: float = 0.05
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_max_decay: float = 0.999
    edge_weight: float = 1.0  # weight of the image-gradient term that keeps edges sharp (0: plain L1)
    seed: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def train_autoencoder(
    state: TrainState,
    reconstruct: Reconstruct,
    draw: Callable[[torch.Generator], torch.Tensor],
    config: AutoencoderTrainConfig,
    callback: Callable[[TrainEvent, TrainState], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> TrainState:
    """Train until ``config.steps`` or ``should_stop()``: each step ``draw(state.generator)`` gives a batch in [-1, 1]
    and ``reconstruct`` (the autoencoder's encode then decode, through ``state.model``) is fitted to it with
    :func:`reconstruction_loss`. EMA, lr schedule and resuming are :mod:`training`'s own."""
    model = state.model.train()
    device = next(model.parameters()).device
    while state.step < config.steps and not should_stop():
        started = time.perf_counter()
        lr = scheduled_lr(state, config)
        batch = draw(state.generator).to(device).contiguous(memory_format=torch.channels_last)
        loss = reconstruction_loss(reconstruct(batch).float(), batch, config.edge_weight)
        optimizer_step(state, loss, config, lr, started, callback)
    model.eval()
    return state
