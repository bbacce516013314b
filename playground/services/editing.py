"""Edit a person's own picture with a trained model: SDEdit (strength) and RePaint (a mask), for the Edit tab,
``python -m playground edit`` and the API.

    request = edit_request(name, session, picture, mask=None, strength=0.6, sampler="ddpm", steps=50, ...)
    for update in stream_editing(request, should_stop): ...        # pictures, as sampling streams them

Without a mask it is SDEdit at ``strength``; with one (white = repaint) it is RePaint with ``jump_length`` and
``resample``. A latent model edits the picture's latent: the mask is shrunk to the latent (a latent pixel is repainted
when any picture pixel under it is), and at the end the known pixels are pasted back exactly. Inference only.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from playground import media
from playground.checkpoints import Checkpoint
from playground.data.dataset import match_channels
from playground.data.images import ImageError, load_image, prepare_image
from playground.diffusion import make_sampler
from playground.diffusion.editing import (
    iter_repaint,
    iter_sdedit,
    repaint_timesteps,
    sdedit_start_index,
    steps_down,
)
from playground.diffusion.forward import randn
from playground.diffusion.guidance import DEFAULT_GUIDANCE
from playground.models import pick_device
from playground.services import gpu
from playground.services.checks import check_seed
from playground.services.image_sampling import MAX_IMAGES, guided_fn, keep_every, on_device
from playground.services.model_catalog import get_checkpoint, resolve_checkpoint
from playground.services.prompting import check_prompt

MODES = {"sdedit": "Change it (SDEdit: strength)", "repaint": "Fill in what I paint (RePaint)"}
EDIT_SAMPLERS = ("ddpm", "ddim", "dpmpp")
REPAINT_SAMPLERS = ("ddpm", "ddim")  # RePaint climbs back up: a multistep solver's history would not fit
STRENGTHS = (0.2, 0.4, 0.6, 0.8, 1.0)  # the strength sweep
# Defaults chosen with bench/editing.py (docs/measurements.md): SDEdit as sampling is, RePaint as a laptop affords.
SDEDIT_DEFAULTS = {"sampler": "ddpm", "steps": 50, "strength": 0.6}
REPAINT_DEFAULTS = {"sampler": "ddpm", "steps": 50, "jump_length": 5, "resample": 3}
MAX_JUMP, MAX_RESAMPLE = 50, 20
MIN_MASKED = 0.005  # a mask must cover at least this share of the picture


@dataclass(frozen=True)
class EditRequest:
    """Every setting of one edit, checked; plain values (a forked ZeroGPU worker receives it whole)."""

    folder: str
    picture: str  # a checked picture file
    mask: str | None  # a mask file (white = repaint), or None: SDEdit
    sampler: str
    steps: int
    count: int
    seed: int
    strength: float = 0.6
    jump_length: int = REPAINT_DEFAULTS["jump_length"]
    resample: int = REPAINT_DEFAULTS["resample"]
    eta: float = 0.0
    prompt: str = ""
    guidance: float = DEFAULT_GUIDANCE

    @property
    def repaint(self) -> bool:
        return self.mask is not None


def load_picture(path: str | os.PathLike, checkpoint: Checkpoint) -> torch.Tensor:
    """The picture as the model sees it: (1, C, R, R) in [-1, 1], centre-cropped, in the model's channels."""
    image = prepare_image(load_image(path, max_side=4 * checkpoint.resolution), checkpoint.resolution)
    return match_channels(media.pil_to_tensor(image), checkpoint.channels)


def load_mask(path: str | os.PathLike, picture_path: str | os.PathLike, resolution: int) -> torch.Tensor:
    """A mask as (1, 1, R, R) of 0 and 1 (1 = repaint: white or painted), cropped as the picture is. A mask of another
    size than the picture is first scaled to the picture's size. ValueError when it marks (almost) nothing."""
    try:
        with Image.open(path) as opened:
            opened.load()
            mask = opened
    except OSError:
        raise ImageError(f"{Path(path).name!r} is not a mask picture we can read; paint one, or give a PNG.") from None
    size = load_image(picture_path).size
    if mask.mode in ("RGBA", "LA"):  # a painted layer: wherever paint is
        painted = mask.getchannel("A")
    else:
        painted = mask.convert("L")
    painted = painted.resize(size, Image.BILINEAR)
    square = prepare_image(painted.convert("RGB"), resolution).convert("L")
    values = torch.from_numpy((np.asarray(square, dtype=np.float32) >= 128).astype(np.float32))[None, None]
    if values.mean() < MIN_MASKED:
        raise ValueError("The mask is empty: paint over the part of the picture the model should draw anew.")
    if values.mean() == 1:
        raise ValueError("The mask covers the whole picture, so there is nothing to keep: that is plain sampling. "
                         "Leave part of it unpainted.")
    return values


CANVAS_SIDE = 256  # the Edit tab paints on the picture's square at this size


def prepare_canvas(upload: str | os.PathLike, folder: Path) -> Path:
    """An upload, checked (ImageError with one sentence), made square as every model sees it (centre crop) at
    CANVAS_SIDE px and kept in ``folder``: what the Edit tab shows to paint on and edits, so a painted mask and the
    picture have the same shape."""
    square = prepare_image(load_image(upload, max_side=2 * CANVAS_SIDE), CANVAS_SIDE)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"edit-{uuid.uuid4().hex[:12]}.png"
    square.save(path)
    return path


def save_painted_mask(layers: list[Image.Image] | None, folder: Path) -> Path | None:
    """The Edit tab's brush strokes (RGBA layers over the canvas) as a mask file, white wherever any layer has paint;
    None when nothing was painted."""
    painted = None
    for layer in layers or []:
        alpha = np.asarray(layer.convert("RGBA"))[..., 3] > 0
        painted = alpha if painted is None else painted | alpha
    if painted is None or not painted.any():
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"mask-{uuid.uuid4().hex[:12]}.png"
    Image.fromarray(painted.astype(np.uint8) * 255, "L").save(path)
    return path


def check_edit(checkpoint: Checkpoint, repaint: bool, sampler: str, steps, count, strength, jump_length,
               resample) -> tuple[int, int, float, int, int]:
    """The edit's numbers, or ValueError with one sentence: the one check for the tab, the API and the CLI."""
    allowed = REPAINT_SAMPLERS if repaint else EDIT_SAMPLERS
    if sampler not in allowed:
        raise ValueError(f"Inpainting with a mask runs {' or '.join(allowed)} (it climbs back up in t, which a "
                         "multistep solver can't)." if repaint else
                         f"Unknown sampler {sampler!r}; choose one of {', '.join(allowed)}.")
    try:
        steps, count, strength = int(steps), int(count), float(strength)
        jump_length, resample = int(jump_length), int(resample)
    except (TypeError, ValueError):
        raise ValueError("Steps, pictures, jump length and resamplings must be whole numbers, the strength a "
                         "number.") from None
    T = checkpoint.schedule.num_timesteps
    if not 1 <= steps <= T:
        raise ValueError(f"Steps must be between 1 and T = {T} for this model; you asked for {steps}.")
    if not 1 <= count <= MAX_IMAGES:
        raise ValueError(f"The number of pictures must be between 1 and {MAX_IMAGES}; you asked for {count}.")
    if not repaint and not 0 < strength <= 1:
        raise ValueError(f"The strength must be above 0 and at most 1; you asked for {strength:g}.")
    if repaint and not (1 <= jump_length <= MAX_JUMP and 1 <= resample <= MAX_RESAMPLE):
        raise ValueError(f"The jump length must be 1 to {MAX_JUMP} and the resamplings 1 to {MAX_RESAMPLE}.")
    return steps, count, strength, jump_length, resample


def edit_request(name: str | None, session_dir: Path | None, picture: str | None, mask: str | None = None,
                 sampler: str = "ddpm", steps=50, count=4, seed=0, strength=0.6,
                 jump_length=REPAINT_DEFAULTS["jump_length"], resample=REPAINT_DEFAULTS["resample"],
                 eta=0.0, prompt: str | None = "", guidance=DEFAULT_GUIDANCE, mode: str | None = None) -> EditRequest:
    """The model listed as ``name`` and every setting, the picture and the mask checked (ImageError or ValueError with
    one sentence): the one call a tab makes before it streams. ``mode`` "repaint" asks for a mask; "sdedit" ignores
    one; None: RePaint exactly when a mask is given."""
    if mode not in (None, *MODES):
        raise ValueError(f"Unknown mode {mode!r}; choose one of {', '.join(MODES)}.")
    if mode == "repaint" and mask is None:
        raise ValueError("Paint over the part of the picture the model should draw anew, then press Edit.")
    mask = None if mode == "sdedit" else mask
    checkpoint = resolve_checkpoint(name, session_dir)
    if not picture:
        raise ValueError("Upload a picture to edit first (or pick an example).")
    load_picture(picture, checkpoint)
    if mask is not None:
        load_mask(mask, picture, checkpoint.resolution)
    steps, count, strength, jump_length, resample = check_edit(checkpoint, mask is not None, sampler, steps, count,
                                                               strength, jump_length, resample)
    prompt, guidance = check_prompt(checkpoint, prompt, guidance)
    eta = float(eta or 0.0)
    if not 0 <= eta <= 1:
        raise ValueError(f"DDIM's eta must be between 0 and 1; you asked for {eta}.")
    return EditRequest(str(checkpoint.path), str(picture), None if mask is None else str(mask), sampler, steps,
                       count, check_seed(seed), strength, jump_length, resample, eta, prompt, guidance)


@dataclass(frozen=True)
class EditProgress:
    """What a viewer shows while editing: x_t and the model's x_0 as pictures, and for RePaint its walk so far."""

    x_t: torch.Tensor
    pred_x0: torch.Tensor
    t: int  # the level x_t is at
    index: int  # the entry of the walk (or the step) just done, 0-based
    length: int  # how many there are
    walk: list[tuple[int, int]]  # RePaint: (network calls, t) after every move so far; SDEdit: one per step
    new_frames: list[Image.Image]
    seconds: float
    done: bool = False
    stopped: bool = False
    result: torch.Tensor | None = None  # done: the edited pictures, in [-1, 1]
    picture: torch.Tensor | None = None  # the picture as the model saw it, (1, C, R, R)
    repaint_mask: torch.Tensor | None = None  # RePaint: (1, 1, R, R), 1 = repainted


def _network_inputs(checkpoint: Checkpoint, picture: torch.Tensor, mask: torch.Tensor | None, count: int,
                    device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What the network edits: the pictures (1 or ``count`` of them, (B, C, R, R)) or their latents, one per sample,
    and the mask at the network's size (a latent pixel is repainted when any picture pixel under it is)."""
    known = picture.to(device)
    if checkpoint.is_latent:
        with torch.inference_mode():
            known = checkpoint.autoencoder.encode(known)
    known = known.expand(count, -1, -1, -1).contiguous()
    if mask is None:
        return known, None
    if checkpoint.is_latent:
        mask = torch.nn.functional.max_pool2d(mask, checkpoint.autoencoder.factor)
    return known, mask.to(device)


def _moves(checkpoint: Checkpoint, request: EditRequest, known: torch.Tensor, net_mask: torch.Tensor | None,
           device) -> tuple[Iterator[tuple[int, int, torch.Tensor, torch.Tensor]], int]:
    """The edit as moves (the level after it, model calls so far, the sample after it, the model's x_0 so far) and
    how many moves there are."""
    kwargs = {"prediction_type": checkpoint.prediction_type, "clip_sample": None if checkpoint.is_latent else 1.0}
    if request.sampler == "ddim":
        kwargs["eta"] = request.eta
    generator = torch.Generator().manual_seed(request.seed)
    model = guided_fn(on_device(checkpoint, device).unet, request.prompt, request.guidance, request.count)
    if not request.repaint:
        sampler = make_sampler(request.sampler, checkpoint.schedule, request.steps, **kwargs)

        def sdedit() -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
            for calls, step in enumerate(iter_sdedit(model, sampler, known, request.strength, generator), start=1):
                yield sampler.prev_timestep(step.t), calls, step.prev_sample, step.pred_x0

        return sdedit(), request.steps - sdedit_start_index(request.steps, request.strength)
    sampler = make_sampler(request.sampler, checkpoint.schedule, request.steps, timestep_spacing="leading", **kwargs)
    walk = repaint_timesteps(checkpoint.schedule.num_timesteps, request.steps, request.jump_length, request.resample)
    x_T = randn(known.shape, generator, known)

    def repaint() -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
        x0 = known
        for move in iter_repaint(model, sampler, known, net_mask, x_T, walk, generator):
            x0 = move.step.pred_x0 if move.step is not None else x0
            yield move.t, move.model_calls, move.sample, x0

    return repaint(), len(walk)


def iter_editing(request: EditRequest, should_stop: Callable[[], bool] = lambda: False, show_every_s: float = 0.3,
                 animate: bool = True, device: torch.device | str | None = None) -> Iterator[EditProgress]:
    """The request's picture and mask loaded, then :func:`iter_edit`."""
    checkpoint = get_checkpoint(request.folder)
    picture = load_picture(request.picture, checkpoint)
    mask = load_mask(request.mask, request.picture, checkpoint.resolution) if request.repaint else None
    return iter_edit(checkpoint, picture, mask, request, should_stop, show_every_s, animate, device)


def iter_edit(checkpoint: Checkpoint, picture: torch.Tensor, mask: torch.Tensor | None, settings: EditRequest,
              should_stop: Callable[[], bool] = lambda: False, show_every_s: float = 0.3, animate: bool = True,
              device: torch.device | str | None = None) -> Iterator[EditProgress]:
    """Edit ``picture`` ((1 or settings.count, C, R, R) in [-1, 1]) as ``settings`` say (RePaint when ``mask`` is
    given, 1 = repaint), and report as :func:`image_sampling.iter_sampling` does: the first move, then at most one
    update per ``show_every_s``, then the end (or the move at which ``should_stop()`` said stop). Animation frames:
    one move in :func:`keep_every`, the known region outlined on x̂₀; a latent model's pictures decoded only for what
    is shown or kept."""
    known, net_mask = _network_inputs(checkpoint, picture, mask, settings.count, device or "cpu")
    moves, length = _moves(checkpoint, settings, known, net_mask, device)
    every, frames, walk = keep_every(length), [], []
    started, shown = time.perf_counter(), -math.inf
    for index, (t, calls, sample, x0) in enumerate(moves):
        walk.append((calls, t))
        done = index == length - 1
        stopped = not done and should_stop()
        update = done or stopped or time.perf_counter() - shown >= show_every_s
        keep = animate and (index % every == 0 or done or stopped)
        if not (update or keep):
            continue
        x_t, pred_x0 = (checkpoint.to_pictures(x).cpu() for x in (sample, x0))
        result = _result(checkpoint, sample, picture, mask) if done else None
        if keep:
            shown_x0 = media.outline(pred_x0.clamp(-1, 1), mask) if mask is not None else pred_x0
            frames.append(media.animation_frame(x_t, shown_x0, f"t = {max(t, 0)} · {calls} network calls"))
        if done and animate:
            frames.append(media.animation_frame(result, pred_x0, f"the result · {calls} network calls"))
        if update:
            shown = time.perf_counter()
            yield EditProgress(x_t, pred_x0, t, index, length, list(walk), frames, shown - started, done, stopped,
                               result, picture, mask)
            frames = []
        if stopped:
            return


def _result(checkpoint: Checkpoint, sample: torch.Tensor, picture: torch.Tensor,
            mask: torch.Tensor | None) -> torch.Tensor:
    """The finished pictures, in [-1, 1], on the CPU: decoded for a latent model, and with a mask the known pixels
    the picture's own (exactly, whatever the decoder does to them)."""
    pictures = checkpoint.to_pictures(sample).clamp(-1, 1).cpu()
    if mask is None:
        return pictures
    return mask * pictures + (1 - mask) * picture


def _edit_seconds(request: EditRequest, *args, **kwargs) -> float:
    checkpoint = get_checkpoint(request.folder)
    if request.repaint:
        walk = repaint_timesteps(checkpoint.schedule.num_timesteps, request.steps, request.jump_length,
                                 request.resample)
        calls = len(steps_down(walk))
    else:
        calls = request.steps
    return gpu.sampling_seconds(checkpoint.resolution, calls, request.count, bool(request.prompt))


@gpu.on_gpu(duration=_edit_seconds)
def stream_editing(request: EditRequest, should_stop: Callable[[], bool] = lambda: False) -> Iterator[EditProgress]:
    """:func:`iter_editing` of a checked request, on the GPU when there is one."""
    yield from iter_editing(request, should_stop, device=pick_device())


def _sweep_seconds(request: EditRequest, *args, **kwargs) -> float:
    return len(STRENGTHS) * _edit_seconds(request)


@gpu.on_gpu(duration=_sweep_seconds)
def strength_sweep(request: EditRequest, strengths: tuple[float, ...] = STRENGTHS
                   ) -> Iterator[tuple[float, torch.Tensor]]:
    """SDEdit from the same seed at each strength (faithful to the picture at 0.2, a new picture at 1): yields
    (strength, pictures)."""
    for strength in strengths:
        edit = dataclasses.replace(request, mask=None, strength=float(strength))
        *_, last = iter_editing(edit, show_every_s=math.inf, animate=False, device=pick_device())
        yield float(strength), last.result


@dataclass(frozen=True)
class EditResult:
    images: torch.Tensor
    frames: list[Image.Image]
    seconds: float
    model_calls: int


def edit_to_files(request: EditRequest, out_dir: str | os.PathLike, gif: str | os.PathLike | None = None,
                  mp4: str | os.PathLike | None = None) -> EditResult:
    """Edit and write OUT/sample_000.png ..., OUT/grid.png (as ``sample`` does), and the animation when asked."""
    from playground.services.sample_export import write_pictures

    frames: list[Image.Image] = []
    for progress in iter_editing(request, show_every_s=math.inf, animate=bool(gif or mp4), device=pick_device()):
        frames += progress.new_frames
    write_pictures(progress.result, out_dir)
    media.save_animation(frames, gif, mp4)
    return EditResult(progress.result, frames, progress.seconds, progress.walk[-1][0])
