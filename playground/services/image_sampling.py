"""Generate images from a checkpoint, step by step: what the Sample tab streams and ``playground sample`` writes.

Inference only: this module never imports the training loop.

Plain values in (a checkpoint, a sampler name, steps, how many, a seed); Steps and pictures out.
:func:`stream_sampling` and :func:`compare_samplers` are what the Sample tab calls: they take a checkpoint folder,
run on the GPU when there is one (on a ZeroGPU Space, borrowed for the call: services.gpu) and hand back CPU
tensors and pictures.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from playground import media
from playground.checkpoints import Checkpoint, list_checkpoints, load_checkpoint
from playground.data.prompts import PromptError, nearest_words, words_of
from playground.diffusion import SAMPLERS, NoiseSchedule, Step, iter_sample, make_sampler, sample
from playground.diffusion.guidance import DEFAULT_GUIDANCE, guided_model_fn
from playground.diffusion.samplers import split_prediction
from playground.models import cpu_rows, in_chunks, model_fn, pick_device
from playground.services.gpu import on_gpu

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints"  # the repository's checkpoints/
MAX_IMAGES = 64
MAX_GUIDANCE = 15.0
SWEEP_SCALES = (0.0, 1.0, 2.0, 4.0, 7.0)
# What a person gets without choosing a sampler: DPM-Solver++ looks finished in 25 steps; with a prompt, ancestral
# DDPM, whose fresh noise at every step lets guidance keep steering (bench/prompt_fidelity.py: on the shipped prompt
# model far more samples draw the word than with a deterministic sampler on as many model calls), and the more
# steps the more so (on the shipped weights, 67%, 73% and 76% of samples at 50, 100 and 200 steps); 200 take about
# 18 s for 16 pictures on two CPU cores.
PLAIN_SAMPLING = ("dpmpp", 25)
PROMPT_SAMPLING = ("ddpm", 200)
SAMPLER_LABELS = {"ddpm": "DDPM (ancestral)", "ddim": "DDIM", "dpmpp": "DPM-Solver++(2M)"}  # as people see them


def default_sampling(prompt: str | None) -> tuple[str, int]:
    """The (sampler, steps) to use when a person names neither: PROMPT_SAMPLING for a prompt, else PLAIN_SAMPLING."""
    return PROMPT_SAMPLING if (prompt or "").strip() else PLAIN_SAMPLING


def default_steps(sampler: str, prompt: str | None) -> int:
    """The steps for a sampler a person chose without saying how many: the default's own, else 25."""
    chosen, steps = default_sampling(prompt)
    return steps if sampler == chosen else PLAIN_SAMPLING[1]


def checkpoint_roots() -> list[Path]:
    """Where checkpoints are listed from: the shipped ones, then any in $PLAYGROUND_CHECKPOINTS (os.pathsep-separated
    folders)."""
    extra = [Path(p) for p in os.environ.get("PLAYGROUND_CHECKPOINTS", "").split(os.pathsep) if p]
    return [SHIPPED, *extra]


def available_checkpoints(*more_roots: Path) -> list[Path]:
    return list_checkpoints(*checkpoint_roots(), *more_roots)


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> Checkpoint:
    checkpoint = load_checkpoint(path)
    checkpoint.unet.to(memory_format=torch.channels_last)
    return checkpoint


def get_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load (cached by folder and modification time) a checkpoint, in eval mode, channels-last."""
    path = Path(path)
    weights = path / "unet" / "diffusion_pytorch_model.safetensors"
    return _load(str(path), weights.stat().st_mtime_ns if weights.is_file() else 0)


def initial_noise(checkpoint: Checkpoint, count: int, seed: int) -> tuple[torch.Tensor, torch.Generator]:
    """x_T for ``count`` images from ``seed``, and the generator that then drives any sampler noise."""
    generator = torch.Generator().manual_seed(int(seed))
    resolution = checkpoint.resolution
    x_T = torch.randn(count, checkpoint.channels, resolution, resolution, generator=generator)
    return x_T.contiguous(memory_format=torch.channels_last), generator


@dataclass(frozen=True)
class GuidanceParts:
    """One step of classifier-free guidance in numbers a learner can check: the root-mean-square size (per pixel,
    so pure noise is about 1) of eps(x_t, empty), eps(x_t, c), their difference, and the guided eps."""

    scale: float
    uncond: float
    cond: float
    difference: float
    guided: float


def guidance_markdown(parts: GuidanceParts, t: int) -> str:
    """Classifier-free guidance's formula, then this step's sizes in it, as Markdown with LaTeX (fits a phone)."""
    s = f"{parts.scale:g}"
    return (
        "$$\\tilde\\epsilon = \\epsilon(x_t, \\varnothing) + s\\,\\big(\\epsilon(x_t, c) - "
        "\\epsilon(x_t, \\varnothing)\\big)$$\n\n"
        f"At t = {t}, s = {s}, sizes as RMS per pixel (pure noise is 1): "
        f"$\\lVert\\epsilon(\\varnothing)\\rVert = {parts.uncond:.3f}$, "
        f"$\\lVert\\epsilon(c)\\rVert = {parts.cond:.3f}$, "
        f"$\\lVert\\epsilon(c) - \\epsilon(\\varnothing)\\rVert = {parts.difference:.3f}$ "
        f"(× {s}), $\\lVert\\tilde\\epsilon\\rVert = {parts.guided:.3f}$."
    )


def prompt_suggestions(checkpoint: Checkpoint, prompt: str | None, count: int = 10) -> str:
    """One line for the prompt box: words that complete the word being typed, or what is wrong with the prompt."""
    vocabulary = checkpoint.vocabulary
    if vocabulary is None:
        return ""
    words = words_of(prompt or "")
    if not words:
        return "Type words from emoji names, such as *cat*, *red heart*, *moon* or *smiling face with sunglasses*."
    try:
        vocabulary.encode(" ".join(words[:-1]))
    except PromptError as error:
        return f"⚠️ {error}"
    last = words[-1]
    if last in vocabulary.index and (prompt or "").rstrip() != (prompt or ""):
        return f"✓ All {len(words)} word{'s' * (len(words) > 1)} known."
    completions = [w for w in vocabulary.words if w.startswith(last)][:count]
    if last in vocabulary.index:
        return f"✓ All words known. Also: {', '.join(w for w in completions if w != last) or 'nothing longer'}."
    if completions:
        return f"Words starting with *{last}*: {', '.join(completions)}."
    near = nearest_words(last, vocabulary.words)
    return f"⚠️ No emoji name has *{last}*." + (f" Nearest: {', '.join(near)}." if near else "")


def guided_fn(unet: torch.nn.Module, prompt: str, scale: float, count: int,
              on_parts: Callable[[torch.Tensor, torch.Tensor], None] | None = None):
    """The ``model_fn`` to sample with: unconditional for an empty prompt, else classifier-free guidance of the
    prompt's word ids (in the PromptedUNet's own vocabulary) against the empty prompt, at ``scale``, both halves in
    one batched forward (on a CPU, fed through in cache-sized pieces: models.in_chunks)."""
    device = next(unet.parameters()).device
    network = model_fn(unet)
    if device.type == "cpu":  # one batch of 2B on a GPU; cache-sized pieces on a CPU (models.CPU_CHUNK_PIXELS)
        network = in_chunks(network, cpu_rows(unet.config.sample_size))
    if not (prompt or "").strip():
        return network
    words = unet.vocabulary.batch([prompt]).to(device)
    return guided_model_fn(network, words.expand(count, -1), torch.zeros_like(words), scale, on_parts)


def generate(checkpoint: Checkpoint, sampler_name: str, steps: int, count: int, seed: int,
             eta: float = 0.0, device: torch.device | str | None = None, prompt: str = "",
             guidance: float = DEFAULT_GUIDANCE,
             on_parts: Callable[[torch.Tensor, torch.Tensor], None] | None = None) -> Iterator[Step]:
    """Every step of sampling ``count`` images; the last Step's prev_sample is the result.

    The same seed gives the same images (and the same starting noise for every sampler), on any device: the noise
    is drawn on the CPU. ``device``: where to compute (the checkpoint's network moves there); default, where it is.
    ``prompt`` (a prompt model only) is followed with classifier-free guidance at scale ``guidance``; ``on_parts``
    sees each step's conditional and unconditional outputs.
    """
    if not 1 <= count <= MAX_IMAGES:
        raise ValueError(f"The number of images must be between 1 and {MAX_IMAGES}.")
    kwargs = {"prediction_type": checkpoint.prediction_type, "clip_sample": 1.0}
    if sampler_name == "ddim":
        kwargs["eta"] = eta
    sampler = make_sampler(sampler_name, checkpoint.schedule, int(steps), **kwargs)
    x_T, generator = initial_noise(checkpoint, count, seed)
    unet = checkpoint.unet if device is None else checkpoint.unet.to(device)
    denoiser = guided_fn(unet, prompt, guidance, count, on_parts)
    return iter_sample(denoiser, sampler, x_T.to(next(unet.parameters()).device), generator)


def final_images(checkpoint: Checkpoint, sampler_name: str, steps: int, count: int, seed: int,
                 **kwargs) -> torch.Tensor:
    """Only the result of :func:`generate` (same arguments): the images in [-1, 1], on the CPU."""
    *_, last = generate(checkpoint, sampler_name, steps, count, seed, **kwargs)
    return last.prev_sample.clamp(-1, 1).cpu()


@torch.inference_mode()
def preview(unet: torch.nn.Module, schedule: NoiseSchedule, prediction_type: str, count: int = 16, seed: int = 1234,
            steps: int = 25, prompt: str = "", guidance: float = DEFAULT_GUIDANCE) -> torch.Tensor:
    """``count`` samples from a fixed seed with DPM-Solver++(2M), pred x_0 clipped to [-1, 1], on the CPU: the
    training previews, the prior-preservation images and the memorisation meter's samples. A prompt model (one
    with a ``vocabulary``) follows ``prompt`` with guidance."""
    resolution = unet.config.sample_size
    generator = torch.Generator().manual_seed(seed)
    device = next(unet.parameters()).device
    x_T = torch.randn(count, unet.config.in_channels, resolution, resolution, generator=generator).to(device)
    sampler = make_sampler("dpmpp", schedule, steps, prediction_type=prediction_type, clip_sample=1.0)
    return sample(guided_fn(unet, prompt, guidance, count), sampler, x_T, generator).clamp(-1, 1).cpu()


def grid_picture(images: torch.Tensor, display: int = 512) -> Image.Image:
    """A square-ish grid of (B, 3, H, W) images in [-1, 1], enlarged crisply to about ``display`` px."""
    grid = media.image_grid(images.clamp(-1, 1))
    return media.zoom(grid, min_side=min(display, 8 * grid.width))


def keep_every(steps: int, max_frames: int = 60) -> int:
    """Store one animation frame in this many, so long runs stay light (DDPM 1000: every 17th)."""
    return max(1, -(-steps // max_frames))


def check_prompt(checkpoint: Checkpoint, prompt: str | None, guidance=DEFAULT_GUIDANCE) -> tuple[str, float]:
    """A prompt and guidance scale this checkpoint can follow, or ValueError (PromptError) with one sentence."""
    prompt = (prompt or "").strip()
    try:
        guidance = float(DEFAULT_GUIDANCE if guidance is None else guidance)
    except (TypeError, ValueError):
        raise ValueError("The guidance scale must be a number, such as 3.") from None
    if not 0.0 <= guidance <= MAX_GUIDANCE:
        raise ValueError(f"The guidance scale must be between 0 and {MAX_GUIDANCE:g}; you asked for {guidance:g}.")
    if prompt and checkpoint.vocabulary is None:
        raise PromptError(f"{checkpoint.name!r} was trained without prompts, so it can't follow one: clear the "
                          "prompt, or choose a prompt model.")
    if prompt:
        checkpoint.vocabulary.encode(prompt)  # an unknown word: a sentence with the nearest known ones
    return prompt, guidance


def check_settings(checkpoint: Checkpoint, sampler_name: str, steps, count, eta=0.0) -> tuple[int, int, float]:
    """Sampling settings as numbers, or ValueError with one sentence: shared by the tab, the API and the CLI."""
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


def animation_frame(left: torch.Tensor, right: torch.Tensor, caption: str, display: int = 256) -> Image.Image:
    """One animation frame: the samples beside the model's guess of x_0, captioned (e.g. "t = 873 · step 3 of 25")."""
    pictures = media.strip([grid_picture(left, display), grid_picture(right, display)], gap=12)
    return media.label(pictures, caption, size=18)


@dataclass(frozen=True)
class SamplingProgress:
    """What a viewer shows while sampling: the step, the animation so far, and whether it has ended."""

    step: Step  # its tensors on the CPU
    new_frames: list[Image.Image]  # animation frames kept since the last update (about 60 in all)
    seconds: float
    done: bool = False  # the last step is taken: step.prev_sample is the result
    stopped: bool = False  # stopped early by should_stop()
    guidance: GuidanceParts | None = None  # this step's guidance in numbers (a prompt was followed)

    @property
    def result(self) -> torch.Tensor:
        return self.step.prev_sample


def step_caption(step: Step) -> str:
    return f"t = {step.t} · step {step.index + 1} of {step.num_steps}"


def iter_sampling(checkpoint: Checkpoint, sampler_name: str, steps: int, count: int, seed: int, eta: float = 0.0,
                  should_stop: Callable[[], bool] = lambda: False, show_every_s: float = 0.3,
                  animate: bool = True, device: torch.device | str | None = None, prompt: str = "",
                  guidance: float = DEFAULT_GUIDANCE) -> Iterator[SamplingProgress]:
    """Sample and report: the first step, then at most one update per ``show_every_s``, then the end.

    Each update's step shows x_t as the model saw it at step.t and its prediction of x_0. Animation frames are kept
    for one step in :func:`keep_every` and the last one; the final frame shows the result; each update carries the
    frames kept since the one before. ``should_stop()`` ends it early, keeping what was drawn so far. With a
    ``prompt``, each update also carries that step's guidance in numbers (:class:`GuidanceParts`).
    """
    every = keep_every(int(steps))
    frames: list[Image.Image] = []
    started = time.perf_counter()
    shown = -math.inf
    parts: list[tuple[torch.Tensor, torch.Tensor]] = []
    on_parts = (lambda cond, uncond: parts.append((cond, uncond))) if prompt else None
    for step in generate(checkpoint, sampler_name, steps, count, seed, eta, device, prompt, guidance, on_parts):
        numbers = guidance_parts(checkpoint, step, *parts[-1], guidance) if parts else None
        parts.clear()
        step = dataclasses.replace(step, x_t=step.x_t.cpu(), pred_x0=step.pred_x0.cpu(),
                                   prev_sample=step.prev_sample.cpu())
        done = step.index == step.num_steps - 1
        stopped = not done and should_stop()
        if animate and (step.index % every == 0 or done or stopped):
            frames.append(animation_frame(step.x_t, step.pred_x0, step_caption(step)))
        now = time.perf_counter()
        if done and animate:
            frames.append(animation_frame(step.prev_sample, step.pred_x0, f"the result · {step.num_steps} steps"))
        if done or stopped or now - shown >= show_every_s:
            shown = now
            yield SamplingProgress(step, frames, now - started, done, stopped, numbers)
            frames = []
        if stopped:
            return


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


def sampling_seconds(folder: str, sampler_name: str, steps: int, count: int, seed: int = 0, eta: float = 0.0,
                     should_stop=None, prompt: str = "", *args, **kwargs) -> float:
    """A generous GPU time for one sampling call (ZeroGPU's duration): start-up, then the network's evaluations
    (about 0.4 ms per image-step at 32 px on ZeroGPU's GPU slice, by area above that; twice that with a prompt,
    whose guidance evaluates every image with and without it), then the frames."""
    resolution = _resolution(folder)
    evaluations = int(steps) * int(count) * (2 if (prompt or "").strip() else 1)
    return 8 + evaluations * 4e-4 * (resolution / 32) ** 2 + 0.02 * min(int(steps), 60)


def _resolution(folder: str) -> int:
    try:
        return int(get_checkpoint(folder).resolution)
    except Exception:  # the call itself says what is wrong with the folder
        return 32


@on_gpu(duration=sampling_seconds)
def stream_sampling(folder: str, sampler_name: str, steps: int, count: int, seed: int, eta: float = 0.0,
                    should_stop: Callable[[], bool] = lambda: False, prompt: str = "",
                    guidance: float = DEFAULT_GUIDANCE) -> Iterator[SamplingProgress]:
    """:func:`iter_sampling` of the checkpoint in ``folder``, on the GPU when there is one (settings checked
    first with :func:`check_settings` and :func:`check_prompt`)."""
    yield from iter_sampling(get_checkpoint(folder), sampler_name, steps, count, seed, eta, should_stop,
                             device=pick_device(), prompt=prompt, guidance=guidance)


def sweep_seconds(folder: str, prompt: str, sampler_name: str, steps: int, count: int, *args, **kwargs) -> float:
    return sampling_seconds(folder, sampler_name, steps, 2 * count * len(SWEEP_SCALES))


@on_gpu(duration=sweep_seconds)
def guidance_sweep(folder: str, prompt: str, sampler_name: str, steps: int, count: int, seed: int,
                   scales: tuple[float, ...] = SWEEP_SCALES) -> Iterator[tuple[float, torch.Tensor]]:
    """The same seed and starting noise followed at each guidance scale (s = 0: the unconditional model, 1: the
    plain conditional one, more: closer to the prompt and less varied): yields (scale, images on the CPU)."""
    checkpoint = get_checkpoint(folder)
    device = pick_device()
    for scale in scales:
        yield float(scale), final_images(checkpoint, sampler_name, steps, count, seed, device=device, prompt=prompt,
                                         guidance=scale)


COMPARISON = (("ddpm", 1000), ("ddim", 50), ("dpmpp", 20))


@dataclass(frozen=True)
class SamplerRun:
    sampler: str
    steps: int
    images: torch.Tensor  # (B, C, H, W) in [-1, 1], on the CPU
    seconds: float


def comparison_seconds(folder: str, seed: int, count: int) -> float:
    return sum(sampling_seconds(folder, name, steps, count) for name, steps in COMPARISON)


@on_gpu(duration=comparison_seconds)
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
        yield SamplerRun(name, steps, step.prev_sample.cpu(), time.perf_counter() - started)


def save_animation(frames: list[Image.Image], stem: str | os.PathLike) -> list[Path]:
    """The animation as STEM.gif and, with PyAV, STEM.mp4 (atomic writes)."""
    stem = Path(stem)
    written = [media.save_gif(frames, stem.with_suffix(".gif"), duration_ms=70)]
    mp4 = media.save_mp4(frames, stem.with_suffix(".mp4"))
    return written + ([mp4] if mp4 is not None else [])


@dataclass(frozen=True)
class SampleResult:
    images: torch.Tensor  # (B, 3, H, W) in [-1, 1]
    frames: list[Image.Image]  # x_t grid | pred x_0 grid, thinned, captioned
    seconds: float


def sample_to_files(checkpoint: Checkpoint, sampler_name: str, steps: int, count: int, seed: int,
                    out_dir: str | os.PathLike, gif: str | os.PathLike | None = None, eta: float = 0.0,
                    mp4: str | os.PathLike | None = None, prompt: str = "",
                    guidance: float = DEFAULT_GUIDANCE) -> SampleResult:
    """Sample and write OUT/sample_000.png..., OUT/grid.png, and optionally the animation as GIF and MP4."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if mp4 and not media.mp4_available():
        raise ValueError("MP4 needs PyAV: pip install av (it is in requirements.txt).")
    frames: list[Image.Image] = []
    for progress in iter_sampling(checkpoint, sampler_name, steps, count, seed, eta, show_every_s=math.inf,
                                  animate=bool(gif or mp4), device=pick_device(), prompt=prompt, guidance=guidance):
        frames += progress.new_frames
    images = progress.result.clamp(-1, 1)
    for i, image in enumerate(images):
        media.tensor_to_pil(image).save(out_dir / f"sample_{i:03d}.png")
    media.image_grid(images).save(out_dir / "grid.png")
    if gif:
        media.save_gif(frames, gif, duration_ms=70)
    if mp4:
        media.save_mp4(frames, mp4)
    return SampleResult(images, frames, progress.seconds)
