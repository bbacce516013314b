"""Sample a checkpoint, step by step: what the Sample tab streams and ``python -m playground sample`` writes.

Inference only: this module never imports the training loop. A :class:`SampleRequest` is every setting checked once
(:func:`sample_request`); :func:`stream_sampling` runs it on the GPU when there is one (on a ZeroGPU Space, borrowed
for the call: services.gpu) and hands back CPU tensors and pictures. A latent model's steps are in its latent space;
what a person sees (x_t, the model's x_0, the result) is decoded at the edges, never inside the sampler.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from playground import media
from playground.checkpoints import Checkpoint
from playground.diffusion import SAMPLERS, Step, iter_sample, make_sampler
from playground.diffusion.guidance import DEFAULT_GUIDANCE, guided_model_fn
from playground.diffusion.samplers import split_prediction
from playground.models import Autoencoder, count_parameters, cpu_rows, in_chunks, model_fn, pick_device
from playground.services import gpu
from playground.services.checks import check_seed
from playground.services.model_catalog import get_checkpoint, resolve_checkpoint
from playground.services.prompting import check_prompt

MAX_IMAGES = 64
MAX_ANIMATION_FRAMES = 60  # a long run keeps one frame in keep_every(steps); the result adds one more
SWEEP_SCALES = (0.0, 1.0, 2.0, 4.0, 7.0)
COMPARISON = (("ddpm", 1000), ("ddim", 50), ("dpmpp", 20))
# What a person gets without choosing a sampler: DPM-Solver++ looks finished in 25 steps; with a prompt, ancestral
# DDPM, whose fresh noise at every step lets guidance keep steering where a deterministic sampler commits to a
# picture early, and more steps steer more (bench/prompt_fidelity.py --sampler S --steps N measures it; the figures
# are in docs/measurements.md).
PLAIN_SAMPLING = ("dpmpp", 25)
PROMPT_SAMPLING = ("ddpm", 200)
SAMPLER_LABELS = {"ddpm": "DDPM (ancestral)", "ddim": "DDIM", "dpmpp": "DPM-Solver++(2M)"}  # as people see them


def default_sampling(prompt: str | None, checkpoint: Checkpoint | None = None) -> tuple[str, int]:
    """The (sampler, steps) to use when a person names neither: PROMPT_SAMPLING for a prompt and PLAIN_SAMPLING
    without; a distilled student on the steps it was distilled for, with the same split: DDPM's fresh noise for a
    prompt (the student's x_0 guess, re-noised, steered again at every step), DDIM without, whose varied pictures
    cover more of the data (bench/prompt_fidelity.py measures both)."""
    prompted = bool((prompt or "").strip())
    student = checkpoint.info.get("distilled") if checkpoint is not None else None
    if student:
        return "ddpm" if prompted else "ddim", int(student["student_steps"])
    return PROMPT_SAMPLING if prompted else PLAIN_SAMPLING


def default_steps(sampler: str, prompt: str | None, checkpoint: Checkpoint | None = None) -> int:
    """The steps for a sampler a person chose without saying how many: the default's own, else 25."""
    chosen, steps = default_sampling(prompt, checkpoint)
    return steps if sampler == chosen else PLAIN_SAMPLING[1]


def check_settings(checkpoint: Checkpoint, sampler_name: str, steps, count, eta=0.0) -> tuple[int, int, float]:
    """Sampling settings as numbers, or ValueError with one sentence: shared by the tabs, the API and the CLI."""
    if sampler_name not in SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler_name!r}; choose one of {', '.join(SAMPLERS)}.")
    T = checkpoint.schedule.num_timesteps
    try:
        steps, count, eta = int(steps), int(count), float(eta or 0.0)
    except (TypeError, ValueError):
        raise ValueError("Steps and the number of images must be whole numbers, and eta a number.") from None
    if not 1 <= steps <= T:
        raise ValueError(f"Steps must be between 1 and T = {T} for this model; you asked for {steps}.")
    if not 1 <= count <= MAX_IMAGES:
        raise ValueError(f"The number of images must be between 1 and {MAX_IMAGES}; you asked for {count}.")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"DDIM's eta must be between 0 and 1; you asked for {eta}.")
    return steps, count, eta


@dataclass(frozen=True)
class SampleRequest:
    """Every setting of one sampling run, checked (plain values: a forked ZeroGPU worker receives it whole)."""

    folder: str
    sampler: str
    steps: int
    count: int
    seed: int
    eta: float = 0.0
    prompt: str = ""
    guidance: float = DEFAULT_GUIDANCE


def sample_request(name: str | None, session_dir: Path | None, sampler: str, steps, count, seed, eta=0.0,
                   prompt: str | None = "", guidance=DEFAULT_GUIDANCE) -> SampleRequest:
    """The model a session listed as ``name`` (services.model_catalog) and the settings for it, all checked, or
    ValueError with one sentence: the one call a tab makes before it streams."""
    checkpoint = resolve_checkpoint(name, session_dir)
    steps, count, eta = check_settings(checkpoint, sampler, steps, count, eta)
    prompt, guidance = check_prompt(checkpoint, prompt, guidance)
    return SampleRequest(str(checkpoint.path), sampler, steps, count, check_seed(seed), eta, prompt, guidance)


SWEEP_IMAGES = 4


def sweep_request(name: str | None, session_dir: Path | None, prompt: str | None, sampler: str, steps,
                  seed) -> SampleRequest:
    """:func:`sample_request` for the guidance sweep (SWEEP_IMAGES pictures at each of SWEEP_SCALES), which needs a
    prompt model and a prompt; ValueError with one sentence otherwise."""
    checkpoint = resolve_checkpoint(name, session_dir)
    if checkpoint.vocabulary is None:
        raise ValueError(f"{checkpoint.name!r} was trained without prompts, so there is no guidance to sweep; choose "
                         "a prompt model.")
    if not (prompt or "").strip():
        raise ValueError("Type a prompt first: the sweep shows how the guidance scale changes what it draws.")
    return sample_request(name, session_dir, sampler, steps, SWEEP_IMAGES, seed, prompt=prompt)


def describe(checkpoint: Checkpoint, label: str) -> str:
    """A model in one paragraph (Markdown): what it draws, its size, schedule and target, what it was trained on."""
    info, data = checkpoint.info, checkpoint.info.get("data", {})
    colour = "greyscale" if checkpoint.channels == 1 else "colour"
    side = checkpoint.resolution
    parts = [f"**{label}**: {side}×{side} px {colour}, {count_parameters(checkpoint.unet) / 1e6:.1f} M parameters, "
             f"{checkpoint.schedule.name} schedule (T = {checkpoint.schedule.num_timesteps}), "
             f"predicts {checkpoint.prediction_type}."]
    if checkpoint.is_latent:
        channels, height, width = checkpoint.sample_shape
        parts.append(f"A **latent model**: it denoises {channels}×{height}×{width} latents, and its autoencoder "
                     f"({count_parameters(checkpoint.autoencoder) / 1e6:.2f} M parameters) decodes them into "
                     "pictures.")
    if info:
        parts.append(f"Trained {info.get('steps')} steps on {data.get('count')} images ({data.get('name')}).")
    return " ".join(parts)


def initial_noise(checkpoint: Checkpoint, count: int, seed: int) -> tuple[torch.Tensor, torch.Generator]:
    """x_T for ``count`` samples from ``seed`` (on the CPU, so every device draws the same numbers), and the generator
    that then drives any sampler noise."""
    generator = torch.Generator().manual_seed(int(seed))
    x_T = torch.randn(count, *checkpoint.sample_shape, generator=generator)
    return x_T.contiguous(memory_format=torch.channels_last), generator


def guided_fn(unet: torch.nn.Module, prompt: str, scale: float, count: int,
              on_parts: Callable[[torch.Tensor, torch.Tensor], None] | None = None):
    """The ``model_fn`` to sample with: unconditional for an empty prompt, else classifier-free guidance of the
    prompt's word ids (in the PromptedUNet's own vocabulary) against the empty prompt, at ``scale``, both halves in
    one batched forward (on a CPU, fed through in cache-sized pieces: models.in_chunks). A distilled student takes
    the scale as an input and needs one call a step."""
    device = next(unet.parameters()).device
    student = getattr(unet, "guidance", None) is not None  # a distilled student: the scale is an input
    if student:
        scale_input = torch.tensor([float(scale)], device=device)
        network = lambda x_t, t, condition=None: unet(x_t, t, condition, scale_input)  # noqa: E731
    else:
        network = model_fn(unet)
    if device.type == "cpu":  # one batch of 2B on a GPU; cache-sized pieces on a CPU (models.CPU_CHUNK_PIXELS)
        network = in_chunks(network, cpu_rows(unet.config.sample_size))
    if not (prompt or "").strip():
        return network
    words = unet.vocabulary.batch([prompt]).to(device)
    if student:  # one network call a step: the guidance it learned to do in one
        return lambda x_t, t: network(x_t, t, words.expand(x_t.shape[0], -1))
    return guided_model_fn(network, words.expand(count, -1), torch.zeros_like(words), scale, on_parts)


def on_device(checkpoint: Checkpoint, device: torch.device | str | None) -> Checkpoint:
    """The checkpoint with its network (and autoencoder) moved to ``device``; None: where they are."""
    if device is not None:
        checkpoint.unet.to(device)
        if checkpoint.autoencoder is not None:
            checkpoint.autoencoder.to(device)
    return checkpoint


def generate(checkpoint: Checkpoint, sampler_name: str, steps: int, count: int, seed: int,
             eta: float = 0.0, device: torch.device | str | None = None, prompt: str = "",
             guidance: float = DEFAULT_GUIDANCE,
             on_parts: Callable[[torch.Tensor, torch.Tensor], None] | None = None) -> Iterator[Step]:
    """Every step of sampling ``count`` samples (a latent model's in its latent space); the last Step's
    prev_sample is the result.

    The same seed gives the same samples (and the same starting noise for every sampler), on any device: the noise
    is drawn on the CPU. ``device``: where to compute (the checkpoint's networks move there); default, where they
    are. ``prompt`` (a prompt model only) is followed with classifier-free guidance at scale ``guidance``;
    ``on_parts`` sees each step's conditional and unconditional outputs.
    """
    if not 1 <= count <= MAX_IMAGES:
        raise ValueError(f"The number of images must be between 1 and {MAX_IMAGES}.")
    kwargs = {"prediction_type": checkpoint.prediction_type, "clip_sample": None if checkpoint.is_latent else 1.0}
    if sampler_name == "ddim":
        kwargs["eta"] = eta
    sampler = make_sampler(sampler_name, checkpoint.schedule, int(steps), **kwargs)
    x_T, generator = initial_noise(checkpoint, count, seed)
    unet = on_device(checkpoint, device).unet
    denoiser = guided_fn(unet, prompt, guidance, count, on_parts)
    return iter_sample(denoiser, sampler, x_T.to(next(unet.parameters()).device), generator)


def final_images(checkpoint: Checkpoint, sampler_name: str, steps: int, count: int, seed: int,
                 **kwargs) -> torch.Tensor:
    """Only the result of :func:`generate` (same arguments), as pictures in [-1, 1] on the CPU (decoded, for a latent
    model)."""
    *_, last = generate(checkpoint, sampler_name, steps, count, seed, **kwargs)
    return checkpoint.to_pictures(last.prev_sample).clamp(-1, 1).cpu()


def preview(unet: torch.nn.Module, schedule, prediction_type: str, count: int = 16, seed: int = 1234,
            steps: int = 25, prompt: str = "", guidance: float = DEFAULT_GUIDANCE,
            autoencoder: Autoencoder | None = None) -> torch.Tensor:
    """``count`` pictures from a network being trained (or any network with its schedule), from a fixed seed with
    DPM-Solver++(2M), in [-1, 1] on the CPU: training previews, prior-preservation pictures, the memorisation meter's
    samples. A prompt model (one with a ``vocabulary``) follows ``prompt`` with guidance; with ``autoencoder`` the
    network is a latent model's."""
    checkpoint = Checkpoint(Path("."), unet, schedule, prediction_type, autoencoder=autoencoder)
    with torch.inference_mode():
        return final_images(checkpoint, "dpmpp", steps, count, seed, prompt=prompt, guidance=guidance)


def keep_every(steps: int, max_frames: int = MAX_ANIMATION_FRAMES) -> int:
    """Keep one animation frame in this many, so long runs stay light (DDPM 1000: every 17th)."""
    return max(1, -(-steps // max_frames))


@dataclass(frozen=True)
class GuidanceParts:
    """One step of classifier-free guidance in numbers a learner can check: the root-mean-square size (per pixel,
    so pure noise is about 1) of eps(x_t, empty), eps(x_t, c), their difference, and the guided eps."""

    scale: float
    uncond: float
    cond: float
    difference: float
    guided: float


def guidance_parts(checkpoint: Checkpoint, step: Step, cond: torch.Tensor, uncond: torch.Tensor,
                   scale: float) -> GuidanceParts:
    """The step's eps(c), eps(empty), their difference and the guided eps, as RMS sizes. A v- or x_0-predicting
    network's outputs are turned into eps first (guiding either is guiding eps: diffusion.guidance)."""
    alpha_bar = float(checkpoint.schedule.alphas_cumprod[step.t])
    x_t = step.x_t.to(cond.device, cond.dtype)
    eps_cond = split_prediction(cond, x_t, alpha_bar, checkpoint.prediction_type)[1].float()
    eps_uncond = split_prediction(uncond, x_t, alpha_bar, checkpoint.prediction_type)[1].float()
    rms = lambda x: float(x.pow(2).mean().sqrt())  # noqa: E731
    return GuidanceParts(scale, rms(eps_uncond), rms(eps_cond), rms(eps_cond - eps_uncond),
                         rms(eps_uncond + scale * (eps_cond - eps_uncond)))


@dataclass(frozen=True)
class SamplingProgress:
    """What a viewer shows while sampling: the step, its pictures, the animation so far, and whether it has ended."""

    step: Step  # its tensors on the CPU, in the model's own space (a latent model's latents)
    x_t: torch.Tensor  # the step's x_t as a picture (decoded, for a latent model)
    pred_x0: torch.Tensor  # the model's x_0 as a picture
    new_frames: list[Image.Image]  # animation frames kept since the last update
    seconds: float
    done: bool = False  # the last step is taken: ``result`` is the finished pictures
    stopped: bool = False  # stopped early by should_stop()
    guidance: GuidanceParts | None = None  # this step's guidance in numbers (a prompt was followed)
    result: torch.Tensor | None = None  # done: the finished pictures
    decode_seconds: float = 0.0  # a latent model: time spent decoding what was shown so far


def step_caption(step: Step) -> str:
    return f"t = {step.t} · step {step.index + 1} of {step.num_steps}"


def iter_sampling(checkpoint: Checkpoint, sampler_name: str, steps: int, count: int, seed: int, eta: float = 0.0,
                  should_stop: Callable[[], bool] = lambda: False, show_every_s: float = 0.3,
                  animate: bool = True, device: torch.device | str | None = None, prompt: str = "",
                  guidance: float = DEFAULT_GUIDANCE) -> Iterator[SamplingProgress]:
    """Sample and report: the first step, then at most one update per ``show_every_s``, then the end.

    Each update shows x_t as the model saw it at step.t and its prediction of x_0, as pictures. Animation frames are
    kept for one step in :func:`keep_every` and the last one; the final frame shows the result; each update carries
    the frames kept since the one before. ``should_stop()`` ends it early, keeping what was drawn so far. With a
    ``prompt``, each update also carries that step's guidance in numbers (:class:`GuidanceParts`). A latent model's
    steps are decoded only for what is shown or kept.
    """
    every = keep_every(int(steps))
    frames: list[Image.Image] = []
    started = time.perf_counter()
    shown, decoding = -math.inf, 0.0
    parts: list[tuple[torch.Tensor, torch.Tensor]] = []
    on_parts = (lambda cond, uncond: parts.append((cond, uncond))) if prompt else None
    for step in generate(checkpoint, sampler_name, steps, count, seed, eta, device, prompt, guidance, on_parts):
        numbers = guidance_parts(checkpoint, step, *parts[-1], guidance) if parts else None
        parts.clear()
        done = step.index == step.num_steps - 1
        stopped = not done and should_stop()
        now = time.perf_counter()
        update = done or stopped or now - shown >= show_every_s
        keep = animate and (step.index % every == 0 or done or stopped)
        if not (update or keep):
            continue
        decode_started = time.perf_counter()
        x_t, pred_x0 = (checkpoint.to_pictures(x).cpu() for x in (step.x_t, step.pred_x0))
        result = checkpoint.to_pictures(step.prev_sample).clamp(-1, 1).cpu() if done else None
        decoding += time.perf_counter() - decode_started if checkpoint.is_latent else 0.0
        if keep:
            frames.append(media.animation_frame(x_t, pred_x0, step_caption(step)))
        if done and animate:
            frames.append(media.animation_frame(result, pred_x0, f"the result · {step.num_steps} steps"))
        if update:
            shown = time.perf_counter()
            step = dataclasses.replace(step, x_t=step.x_t.cpu(), pred_x0=step.pred_x0.cpu(),
                                       prev_sample=step.prev_sample.cpu())
            yield SamplingProgress(step, x_t, pred_x0, frames, shown - started, done, stopped, numbers, result,
                                   decoding)
            frames = []
        if stopped:
            return


def _resolution(folder: str) -> int:
    try:
        return int(get_checkpoint(folder).resolution)
    except Exception:  # the call itself says what is wrong with the folder
        return 32


def _stream_seconds(request: SampleRequest, *args, **kwargs) -> float:
    return gpu.sampling_seconds(_resolution(request.folder), request.steps, request.count, bool(request.prompt))


@gpu.on_gpu(duration=_stream_seconds)
def stream_sampling(request: SampleRequest, should_stop: Callable[[], bool] = lambda: False
                    ) -> Iterator[SamplingProgress]:
    """:func:`iter_sampling` of a checked request, on the GPU when there is one."""
    yield from iter_sampling(get_checkpoint(request.folder), request.sampler, request.steps, request.count,
                             request.seed, request.eta, should_stop, device=pick_device(), prompt=request.prompt,
                             guidance=request.guidance)


def _sweep_seconds(request: SampleRequest, *args, **kwargs) -> float:
    return len(SWEEP_SCALES) * gpu.sampling_seconds(_resolution(request.folder), request.steps, request.count, True)


@gpu.on_gpu(duration=_sweep_seconds)
def guidance_sweep(request: SampleRequest, scales: tuple[float, ...] = SWEEP_SCALES
                   ) -> Iterator[tuple[float, torch.Tensor]]:
    """The request's seed and starting noise followed at each guidance scale (s = 0: the unconditional model, 1: the
    plain conditional one, more: closer to the prompt and less varied): yields (scale, pictures on the CPU)."""
    checkpoint = get_checkpoint(request.folder)
    device = pick_device()
    for scale in scales:
        yield float(scale), final_images(checkpoint, request.sampler, request.steps, request.count, request.seed,
                                         device=device, prompt=request.prompt, guidance=scale)


@dataclass(frozen=True)
class SamplerRun:
    sampler: str
    steps: int
    images: torch.Tensor  # (B, C, H, W) pictures in [-1, 1], on the CPU
    seconds: float


def _comparison_seconds(folder: str, seed: int, count: int) -> float:
    return sum(gpu.sampling_seconds(_resolution(folder), steps, count) for _, steps in COMPARISON)


@gpu.on_gpu(duration=_comparison_seconds)
def compare_samplers(folder: str, seed: int, count: int) -> Iterator[float | SamplerRun]:
    """The same seed and starting noise through DDPM 1000, DDIM 50 and DPM-Solver++ 20 (steps capped at T):
    yields the share done now and then, and each sampler's result when it finishes."""
    checkpoint = get_checkpoint(folder)
    plan = [(name, min(steps, checkpoint.schedule.num_timesteps)) for name, steps in COMPARISON]
    total, done = sum(steps for _, steps in plan), 0
    device = pick_device()
    for name, steps in plan:
        started = time.perf_counter()
        for step in generate(checkpoint, name, steps, count, seed, device=device):
            if step.index % 10 == 0:
                yield (done + step.index + 1) / total
        done += steps
        pictures = checkpoint.to_pictures(step.prev_sample).clamp(-1, 1).cpu()
        yield SamplerRun(name, steps, pictures, time.perf_counter() - started)
