"""Training a denoiser: the loss, EMA with warm-up, the learning-rate schedule, and the loop.

The loop knows nothing of UI or files: it reports through a callback (minGPT's trigger_callbacks) and
stops when ``should_stop()`` says so. Checkpointing and previews belong to the caller.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """The simple loss of Ho et al. 2020 (eq. 14): MSE between the model's output and its target at random t.

    prediction_type picks the target: eps, v = sqrt(abar) eps - sqrt(1-abar) x_0 (Salimans & Ho 2022) or x_0.
    min_snr_gamma weights each sample as Min-SNR-gamma (Hang et al. 2023), in the units of that target:
    min(SNR, gamma) / SNR for eps, min(SNR, gamma) / (SNR + 1) for v, min(SNR, gamma) for x_0.
    ``t`` and ``noise``: given, they replace the random draws (the same loss on the same samples, anywhere).
    """
    batch = x0.shape[0]
    where = generator.device if generator is not None else x0.device
    if t is None:
        t = torch.randint(0, schedule.num_timesteps, (batch,), generator=generator, device=where).to(x0.device)
    if noise is None:
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
        for averaged, current in zip(self.model.buffers(), model.buffers(), strict=True):
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
    # Prompts (runs whose images have captions): classifier-free guidance's unconditional share, each caption word
    # dropped at random (one always kept) so single words are learned, and the prompt encoder's own peak lr.
    prompt_dropout: float = 0.0
    word_dropout: float = 0.0
    encoder_lr: float | None = None  # None: lr
    # Share of each batch drawn word first (draw_word_first): a word that two or more captions share, then one of its
    # images, captioned by that word alone, so rare words (a handful of trees among the emoji) are learned as often as
    # common ones.
    word_focus: float = 0.0
    # The word-first examples' timesteps drawn from [this, T) rather than [0, T): at low noise the picture already
    # shows what it is and the word has almost nothing to add (bench/prompt_fidelity.py --by-timestep measures where
    # in the noise a word cuts the x_0 error).
    word_focus_min_t: int = 0
    seed: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # (batch, generator) -> augmented batch


def draw_batch(data: torch.Tensor, generator: torch.Generator, config: TrainConfig,
               prior: torch.Tensor | None = None, augment: Augment | None = None) -> torch.Tensor:
    """A training batch: drawn with replacement from ``data``, ``prior_fraction`` of it from ``prior``, then augmented.

    Every random number comes from ``generator`` in a fixed order (indices, then ``augment``'s), so a resumed run
    draws what an uninterrupted one would. ``data`` may be uint8 (0..255, e.g. a memory-mapped image cache): only
    the drawn batch is read and converted to [-1, 1].
    """
    return draw_examples(data, generator, config, prior, augment)[0]


def draw_examples(data: torch.Tensor, generator: torch.Generator, config: TrainConfig,
                  prior: torch.Tensor | None = None, augment: Augment | None = None,
                  words: torch.Tensor | None = None, prior_words: torch.Tensor | None = None,
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`draw_batch` with each image's caption: ``words`` (N, L) word ids (0 pads) beside ``data``, and
    ``prior_words`` beside ``prior``. The drawn captions go through :func:`drop_words`; with ``word_focus`` the batch
    ends with that share drawn by :func:`draw_word_first`. Without ``words`` the random draws are exactly
    :func:`draw_batch`'s and the captions are None."""
    count, focus = batch_shares(config, prior, words)
    index = torch.randint(0, data.shape[0], (config.batch_size - count - focus,), generator=generator)
    x0 = as_float(data[index])
    prior_index = torch.randint(0, prior.shape[0], (count,), generator=generator) if count else None
    if count:
        x0 = torch.cat([x0, prior[prior_index]])
    if focus:
        focus_index, focus_words = draw_word_first(words, focus, generator)
        x0 = torch.cat([x0, as_float(data[focus_index])])
    x0 = augment(x0, generator) if augment is not None else x0
    if words is None:
        return x0, None
    captions = [words[index]]
    if count:
        captions.append(prior_words[prior_index] if prior_words is not None else torch.zeros(count, 1).long())
    captions = drop_words(pad_words(captions), generator, config.word_dropout, config.prompt_dropout)
    return x0, pad_words([captions, focus_words]) if focus else captions


def batch_shares(config: TrainConfig, prior: torch.Tensor | None, words: torch.Tensor | None) -> tuple[int, int]:
    """How many of a batch's examples come from ``prior`` and how many are drawn word first (the batch's last)."""
    count = round(config.batch_size * config.prior_fraction) if prior is not None and len(prior) else 0
    return count, round((config.batch_size - count) * config.word_focus) if words is not None else 0


def draw_timesteps(config: TrainConfig, num_timesteps: int, focus: int, generator: torch.Generator) -> torch.Tensor:
    """A batch's timesteps, uniform on [0, T) as diffusion_loss draws them, the last ``focus`` (the word-first
    examples) then redrawn on [config.word_focus_min_t, T)."""
    t = torch.randint(0, num_timesteps, (config.batch_size,), generator=generator)
    if focus and config.word_focus_min_t:
        t[-focus:] = torch.randint(config.word_focus_min_t, num_timesteps, (focus,), generator=generator)
    return t


def as_float(images: torch.Tensor) -> torch.Tensor:
    """Stored uint8 pictures as floats in [-1, 1]; float ones as they are."""
    return images.float().div(127.5).sub(1.0) if images.dtype == torch.uint8 else images


def pad_words(captions: list[torch.Tensor]) -> torch.Tensor:
    """(B_i, L_i) word-id tensors stacked into one (sum B_i, max L_i), padded with 0."""
    length = max(c.shape[1] for c in captions)
    return torch.cat([torch.nn.functional.pad(c, (0, length - c.shape[1])) for c in captions])


def draw_word_first(words: torch.Tensor, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` examples drawn word first: a word uniformly among those that two or more of the (N, L) captions
    share, then uniformly one of the images whose caption has it. Returns their (count,) image indices and (count, 1)
    captions of that word alone (never dropped: they teach what a one-word prompt draws). The conditional
    distribution of images given the word is the data's; only how often each word is practised changes."""
    rows = torch.arange(words.shape[0]).repeat_interleave(words.shape[1])
    flat = words.flatten()
    pairs = torch.unique(torch.stack([flat[flat > 0], rows[flat > 0]]), dim=1)  # (word, image), sorted by word
    ids, counts = torch.unique_consecutive(pairs[0], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    shared = torch.nonzero(counts >= 2).squeeze(1)
    if not len(shared):
        raise ValueError("Drawing word first needs a word that at least two captions share.")
    chosen = shared[torch.randint(0, len(shared), (count,), generator=generator)]
    offset = (torch.rand(count, generator=generator) * counts[chosen]).long().clamp(max=counts[chosen] - 1)
    return pairs[1][starts[chosen] + offset], ids[chosen][:, None]


def drop_words(words: torch.Tensor, generator: torch.Generator, word_dropout: float,
               prompt_dropout: float) -> torch.Tensor:
    """(B, L) word ids with each word dropped (set to 0) with probability ``word_dropout``, a caption that would
    lose all its words keeping one at random, then whole captions emptied with probability ``prompt_dropout`` (the
    unconditional model of classifier-free guidance, Ho & Salimans 2022, sec. 3.2)."""
    present = words > 0
    if word_dropout:
        score = torch.rand(words.shape, generator=generator)
        keep = (score >= word_dropout) & present
        lost = present.any(1) & ~keep.any(1)
        favourite = torch.where(present, score, -1.0).argmax(1)
        keep[lost, favourite[lost]] = True
        words = words * keep
    if prompt_dropout:
        empty = torch.rand(words.shape[0], generator=generator) < prompt_dropout
        words = words * ~empty[:, None]
    return words


@dataclass
class TrainState:
    """Everything needed to continue a run exactly where it stopped."""

    model: torch.nn.Module
    ema: EMA
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    step: int = 0
    losses: list[float] = field(default_factory=list)
    schedule_start: int = 0  # the step the lr schedule (warm-up, cosine) starts from: a warm start's carried step

    def to_tensors(self) -> tuple[dict[str, torch.Tensor], dict]:
        """The state as flat CPU tensors (online weights, AdamW moments, RNG) and the rest as JSON-able values.

        The EMA weights are not included: they are the checkpoint's own weights, saved beside these.
        """
        tensors = {f"model.{k}": v.detach().cpu() for k, v in self.model.state_dict().items()}
        optimizer = self.optimizer.state_dict()
        for index, values in optimizer["state"].items():
            for key, value in values.items():
                tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu()
        tensors["rng"] = self.generator.get_state()
        meta = {"step": self.step, "ema_updates": self.ema.num_updates, "param_groups": optimizer["param_groups"],
                "schedule_start": self.schedule_start}
        return tensors, meta

    def load_tensors(self, tensors: dict[str, torch.Tensor], meta: dict, ema_weights: dict[str, torch.Tensor],
                     losses: list[float]) -> None:
        """Restore what :meth:`to_tensors` gave, with the EMA weights and the loss history kept beside them."""
        self.model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer_state: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                optimizer_state.setdefault(int(index), {})[name] = value
        self.optimizer.load_state_dict({"state": optimizer_state, "param_groups": meta["param_groups"]})
        self.ema.model.load_state_dict(ema_weights)
        self.ema.model.to(next(self.model.parameters()).device)
        self.ema.num_updates = int(meta["ema_updates"])
        self.generator.set_state(tensors["rng"])
        self.step = int(meta["step"])
        self.schedule_start = int(meta.get("schedule_start", 0))
        self.losses = list(losses)

    def warm_start(self, weights: dict[str, torch.Tensor], step: int, losses: list[float], seed: int) -> None:
        """Start from a finished model's weights (both online and EMA), carrying its step count and losses on;
        AdamW's moments start fresh, batches are new ones, not a replay, and the lr schedule (warm-up, then cosine
        to ``config.steps``) starts again from here."""
        self.model.load_state_dict(weights)
        self.ema.model.load_state_dict(weights)
        self.step = self.ema.num_updates = self.schedule_start = int(step)
        self.losses = list(losses)
        self.generator.manual_seed(int(seed) + self.step)


def new_train_state(model: torch.nn.Module, config: TrainConfig, encoder: torch.nn.Module | None = None
                    ) -> TrainState:
    """A fresh state for ``model``; ``encoder`` (a submodule: a prompt encoder) learns at ``config.encoder_lr``."""
    if encoder is None:
        groups = [{"params": list(model.parameters()), "lr_scale": 1.0}]
    else:
        own = {id(p) for p in encoder.parameters()}
        groups = [{"params": [p for p in model.parameters() if id(p) not in own], "lr_scale": 1.0},
                  {"params": list(encoder.parameters()), "lr_scale": (config.encoder_lr or config.lr) / config.lr}]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
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
    augment: Augment | None = None,
    model_fn: ModelFn | None = None,
    words: torch.Tensor | None = None,
    prior_words: torch.Tensor | None = None,
) -> TrainState:
    """Train ``state.model`` on ``data`` ((N, C, H, W) or (N, 2) in [-1, 1]) until config.steps or should_stop().

    ``model_fn(x_t, t)`` calls the model for a tensor (default: ``state.model`` itself; a diffusers UNet needs
    ``playground.models.call_model``). Batches come from :func:`draw_batch` with ``state.generator``, so a resumed
    run draws what an uninterrupted one would. ``prior``: images (e.g. the base model's own samples) that make up
    ``config.prior_fraction`` of every batch; ``augment``: applied to every batch. On a GPU the forward pass runs
    under bf16 autocast; the loss stays fp32.

    ``words`` (N, L) (and ``prior_words``): each image's caption as word ids; the model is then called as
    ``model_fn(x_t, t, word_ids)`` with the drawn captions after word and prompt dropout (:func:`drop_words`).
    """
    model = state.model.train()
    model_fn = model_fn or model
    device = next(model.parameters()).device
    while state.step < config.steps and not should_stop():
        started = time.perf_counter()
        lr = scheduled_lr(state, config)
        x0, captions = draw_examples(data, state.generator, config, prior, augment, words, prior_words)
        x0 = x0.to(device)
        if x0.ndim == 4:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        denoiser = model_fn if captions is None else _with_condition(model_fn, captions.to(device))
        t = None  # diffusion_loss draws it, unless word-first examples want noisier timesteps
        if config.word_focus_min_t and captions is not None:
            t = draw_timesteps(config, schedule.num_timesteps, batch_shares(config, prior, words)[1],
                               state.generator).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):  # GPU: bf16 matmuls
            loss = diffusion_loss(denoiser, schedule, x0, state.generator, config.prediction_type, config.min_snr_gamma,
                                  t=t)
        optimizer_step(state, loss, config, lr, started, callback)
    model.eval()
    return state


def scheduled_lr(state: TrainState, config) -> float:
    """This step's learning rate (:func:`lr_at`, counted from a warm start's step), set on every parameter group
    (times the group's ``lr_scale``); ``config`` is any recipe with lr, warmup_steps, steps and lr_min_ratio."""
    lr = lr_at(state.step - state.schedule_start, config.lr, config.warmup_steps, config.steps - state.schedule_start,
               config.lr_min_ratio)
    for group in state.optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    return lr


def optimizer_step(state: TrainState, loss: torch.Tensor, config, lr: float, started: float,
                   callback: Callable[[TrainEvent, TrainState], None] | None) -> None:
    """What ends every training step, whatever the loss: backward, gradient clipping (``config.grad_clip``), the
    optimizer, the EMA, the step count and loss history, and the callback's TrainEvent."""
    model = state.model
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


def _with_condition(model_fn: Callable, condition: torch.Tensor) -> ModelFn:
    return lambda x_t, t: model_fn(x_t, t, condition)
