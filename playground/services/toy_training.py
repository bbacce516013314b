"""The 2-D toy lab's training: a small MLP denoiser on a point cloud, in seconds, streamed in chunks.

The core's training loop with the toy network (models.ToyMLP) and recipe (TOY_TRAINING). Shared by the toy lab tab
(which shows the loss curve as it falls) and ``python -m playground toy``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from playground.diffusion.schedules import get_schedule
from playground.diffusion.training import TrainConfig, TrainEvent, TrainState, new_train_state, train
from playground.models import ToyConfig, ToyMLP
from playground.services.toy_lab import ToyData, one_thread

# Seconds on a laptop CPU (bench/toy_quality.py times it). v-prediction, because the x_0 an eps-predictor implies is
# (x_t - sigma eps_hat) / sqrt(alpha_bar): at t = 999 that multiplies the network's error by 156, and where x_T lies in
# the tails (rarely seen in training) the error is large, so every deterministic sampler threw a few points far off
# the data (tests/test_toy.py fails on that recipe). With v, x_0 = sqrt(alpha_bar) x_t - sigma v: no division.
TOY_TRAINING = TrainConfig(
    steps=6000, batch_size=256, lr=3e-3, warmup_steps=100, lr_min_ratio=0.05, weight_decay=0.0, grad_clip=1.0,
    ema_max_decay=0.995, prediction_type="v_prediction", min_snr_gamma=None, schedule="linear", num_timesteps=1000,
    hflip=False, seed=0,
)
MIN_STEPS, MAX_STEPS = 100, 20_000


def toy_config(steps: int = TOY_TRAINING.steps, schedule: str = TOY_TRAINING.schedule,
               seed: int = TOY_TRAINING.seed) -> TrainConfig:
    """The toy recipe with these overrides; ValueError with one sentence when out of range."""
    if not MIN_STEPS <= int(steps) <= MAX_STEPS:
        raise ValueError(f"Training steps must be between {MIN_STEPS} and {MAX_STEPS}.")
    return dataclasses.replace(TOY_TRAINING, steps=int(steps), schedule=schedule, seed=int(seed))


def new_toy_state(config: TrainConfig = TOY_TRAINING, model_config: ToyConfig = ToyConfig()) -> TrainState:
    """A fresh MLP (weights from config.seed, without touching torch's global generator) and its optimiser."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = ToyMLP(model_config)
    return new_train_state(model, config)


def train_toy(
    data: torch.Tensor,
    state: TrainState | None = None,
    config: TrainConfig = TOY_TRAINING,
    callback: Callable[[TrainEvent, TrainState], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> TrainState:
    """Train (or continue training) the toy denoiser on ``data`` (N, 2)."""
    state = state or new_toy_state(config)
    schedule = get_schedule(config.schedule, config.num_timesteps)
    with one_thread():
        return train(state, data, schedule, config, callback, should_stop)


def train_toy_in_chunks(data: torch.Tensor, config: TrainConfig, chunks: int = 40) -> Iterator[TrainState]:
    """Train a fresh model, yielding its state about ``chunks`` times (and at the end), so a viewer can draw the
    loss as it falls. Breaking out of the loop keeps the weights trained so far."""
    state = new_toy_state(config)
    chunk = max(50, config.steps // chunks)
    while state.step < config.steps:
        boundary = state.step + chunk
        train_toy(data, state, config, should_stop=lambda boundary=boundary: state.step >= boundary)
        yield state


@dataclass(frozen=True)
class ToyModel:
    """A toy model a session trained: its weights (the EMA's sample), its recipe, and the cloud it learned."""

    state: TrainState
    config: TrainConfig
    data: ToyData

    @property
    def network(self) -> torch.nn.Module:
        return self.state.ema.model
