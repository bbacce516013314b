"""Train tab: fine-tune a model on a handful of your own photos, watch it learn, then sample from it.

Each browser session has its own folder (playground.workdir): its photos, runs and exports live there, and
only that session's requests can name them. Training runs in a worker thread; the event streams its progress.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from PIL import Image

from playground import finetune, media, workdir
from playground.checkpoints import CheckpointError
from playground.memorisation import COPY_RATIO, memorisation_meter
from playground.models import pick_device
from playground.plots import loss_figure
from playground.runs import dataset_from_uint8
from playground.sampling import SHIPPED, available_checkpoints, get_checkpoint
from playground.ui.common import allowed_model, model_choices, problem, session_folder

SCRATCH_LABEL = "From scratch (random weights: needs far more steps)"
METER_SAMPLES = 8

INTRO = """
Teach a model your own pictures. Drop in 1 to 100 photos (six of your dog is plenty); the gallery shows the
exact squares the model will see, at its resolution. Pick a starting model and a preset, press **Train**, and
watch the loss fall and the preview samples (always from the same noise) turn into your photos. **Stop** keeps
the latest weights; **Resume** carries on from the same step. Your photos and models are visible to this browser
session only and are deleted 6 hours after you last used them.
"""


def is_local() -> bool:
    """Running on someone's own machine (not a Hugging Face Space): local folders may be read and written."""
    return not os.environ.get("SPACE_ID") and os.environ.get("PLAYGROUND_LOCAL_FILES", "1") != "0"


# --- stop flags, one per session ---

@dataclass
class Job:
    stop: threading.Event = field(default_factory=threading.Event)
    running: bool = False


JOBS: dict[str, Job] = {}


def job_for(request: gr.Request | None) -> Job:
    return JOBS.setdefault(getattr(request, "session_hash", None) or "cli", Job())


# --- photos ---

def _gallery(photos: list[dict], crop: str, resolution: int) -> list[tuple[Image.Image, str]]:
    items = []
    for photo in photos:
        crop_image = finetune.training_crop(Image.open(photo["path"]).convert("RGB"), resolution, crop)
        items.append((media.zoom(crop_image, min_side=128), photo["name"]))
    return items


def _resolution(base: str | None, request: gr.Request | None) -> int:
    if base and base != finetune.SCRATCH and allowed_model(base, request):
        try:
            return get_checkpoint(base).resolution
        except CheckpointError:
            pass
    return finetune.base_resolution(None)


def _photo_summary(photos: list[dict], resolution: int) -> str:
    if not photos:
        return "No photos yet."
    return f"{len(photos)} photo{'s' * (len(photos) != 1)}, trained on as {resolution}×{resolution} squares."


def add_photos(files, photos: list[dict], crop: str, base: str, request: gr.Request):
    """Validate and keep new uploads; bad files are named in one sentence each and the rest are kept."""
    photos = list(photos or [])
    paths = [getattr(f, "name", f) for f in (files or [])]
    if not paths:
        raise problem("Drop one or more photos (JPEG, PNG, WebP...) into the box first.")
    room = finetune.MAX_PHOTOS - len(photos)
    if len(paths) > room:
        raise problem(f"That would make {len(photos) + len(paths)} photos; the limit is {finetune.MAX_PHOTOS}. "
                       f"You can add {max(room, 0)} more.")
    loaded, problems = finetune.load_photos(paths)
    if not loaded:
        raise problem(problems[0] if len(problems) == 1 else
                       f"None of the {len(paths)} files is a photo we can read. First problem: {problems[0]}")
    folder = session_folder(request) / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in loaded:
        path = folder / f"{uuid.uuid4().hex[:12]}.png"
        image.save(path)
        photos.append({"name": name, "path": str(path)})
    for sentence in problems:
        gr.Warning(f"Skipped: {sentence}")
    resolution = _resolution(base, request)
    note = _photo_summary(photos, resolution)
    if problems:
        note += f" Skipped {len(problems)} file{'s' * (len(problems) != 1)} that could not be read."
    return photos, _gallery(photos, crop, resolution), note, None


def redraw_photos(photos: list[dict], crop: str, base: str, request: gr.Request):
    resolution = _resolution(base, request)
    return _gallery(photos or [], crop, resolution), _photo_summary(photos or [], resolution)


def remove_photo(photos: list[dict], selected: int | None, crop: str, base: str, request: gr.Request):
    photos = list(photos or [])
    if selected is None or not 0 <= selected < len(photos):
        raise problem("Click a photo in the gallery first, then Remove.")
    photos.pop(selected)
    resolution = _resolution(base, request)
    return photos, _gallery(photos, crop, resolution), _photo_summary(photos, resolution), None


def clear_photos(request: gr.Request):
    return [], [], _photo_summary([], finetune.base_resolution(None)), None


def select_photo(event: gr.SelectData) -> int:
    return event.index


# --- training ---

def _base_path(base: str | None, local_base: str | None, request: gr.Request | None) -> str | None:
    """The base the person chose, checked: None for scratch."""
    if local_base and local_base.strip():
        if not is_local():
            raise problem("Local folders can only be used when the app runs on your own computer.")
        path = Path(local_base.strip()).expanduser()
        if not path.is_dir():
            raise problem(f"There is no folder {str(path)!r} on this computer.")
        return str(path)
    if not base or base == finetune.SCRATCH:
        return None
    if not allowed_model(base, request):
        raise problem("That starting model is not available here; pick one from the list.")
    return base


def _eta(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def _latest_preview(run_dir: Path) -> str | None:
    previews = sorted((run_dir / "samples").glob("step_*.png"))
    return str(previews[-1]) if previews else None


def _follow(run_dir: Path, request: gr.Request, progress: gr.Progress, steps: int | None = None):
    """Train ``run_dir`` in a worker thread and stream (status, loss figure, preview, result widgets)."""
    job = job_for(request)
    if job.running:
        raise problem("This session is already training; Stop it first.")
    job.stop.clear()
    job.running = True
    settings = finetune.run_settings(run_dir)
    total = int(steps or settings["config"]["steps"])
    events: list = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            finetune.train_run(run_dir, events.append, job.stop.is_set, device=pick_device(), steps=steps)
        except BaseException as error:  # reported to the person below
            failure.append(error)

    thread = threading.Thread(target=work, daemon=True, name=f"train-{run_dir.name}")
    started = time.perf_counter()
    first_step = None
    thread.start()
    no_change = gr.skip()
    try:
        while thread.is_alive():
            thread.join(timeout=1.0)
            if not events:
                yield (f"Preparing… {time.perf_counter() - started:.0f} s", no_change, no_change, no_change,
                       no_change, no_change)
                continue
            event = events[-1]
            if first_step is None:
                first_step, first_time = event.step, time.perf_counter()
            done = event.step - first_step
            rate = done / max(time.perf_counter() - first_time, 1e-6)
            # no estimate until a few steps give a rate: "about 0 s left" at step 1 would be false
            left = f"about {_eta((event.total_steps - event.step) / rate)} left" if done >= 3 else "estimating time left"
            progress((event.step, event.total_steps), desc="Training", unit="steps")
            status = (f"Step {event.step} of {event.total_steps} · loss {event.loss:.4f} · "
                      f"{event.images_per_second:.0f} images/s · {left}")
            losses = [e.loss for e in events]
            figure = loss_figure(_history(run_dir, first_step - 1) + losses)
            yield status, figure, _latest_preview(run_dir), no_change, no_change, no_change
    finally:
        job.stop.set()  # the person left or the event was cancelled: stop and save
        thread.join()
        job.running = False
    if failure:
        raise gr.Error(f"Training stopped with an error: {failure[0]}".split("\n")[0], title="Training failed")
    checkpoint = run_dir / "checkpoint"
    info = finetune.run_settings(run_dir)
    state_step = _checkpoint_step(checkpoint)
    stopped = state_step < total
    name = info.get("name") or run_dir.name
    exports = session_folder(request) / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    zip_path = finetune.export_zip(checkpoint, exports / f"{name}.zip")
    status = (f"Stopped at step {state_step} of {total}: the latest weights are saved. **Resume** carries on from "
              "here." if stopped else
              f"Done: {total} steps in {_eta(time.perf_counter() - started)}. **{name}** is now in the Sample tab's "
              "list; try it below, download it, or train more with Resume and more steps.")
    choices = model_choices(request)
    yield (status, loss_figure(_history(run_dir)), _latest_preview(run_dir),
           gr.DownloadButton(value=str(zip_path), visible=True, label=f"Download {name}.zip"),
           gr.Dropdown(choices=choices, value=str(checkpoint)),
           {"run_dir": str(run_dir), "name": name})


def _history(run_dir: Path, before_step: int | None = None) -> list[float]:
    """The losses logged up to ``before_step`` (all without it), so a resumed run shows its whole curve."""
    log = run_dir / "log.csv"
    if not log.is_file() or (before_step is not None and before_step <= 0):
        return []
    rows = log.read_text().splitlines()[1:]
    values = {}
    for row in rows:
        step, loss, *_ = row.split(",")
        values[int(step)] = float(loss)
    return [values[s] for s in sorted(values) if before_step is None or s <= before_step]


def _checkpoint_step(checkpoint: Path) -> int:
    info = checkpoint / "playground.json"
    return int(json.loads(info.read_text()).get("steps", 0)) if info.is_file() else 0


def train(photos: list[dict], crop: str, base: str, local_base: str, preset: str, steps, lr, batch_size, hflip: bool,
          crop_scale, color_jitter, prior_fraction, ema_max_decay, preview_every, seed, name: str,
          request: gr.Request, progress=gr.Progress()):
    """Start a new fine-tuning run on the session's photos and stream it."""
    if not photos:
        raise problem("Add at least one photo before training: drop them into the box on the left.")
    if preset not in finetune.PRESETS:
        raise problem(f"Unknown preset {preset!r}; choose one of {', '.join(finetune.PRESETS)}.")
    base_path = _base_path(base, local_base, request)
    try:
        checkpoint = finetune.load_base(base_path)
    except CheckpointError as error:
        raise problem(str(error)) from None
    try:
        config = finetune.train_config(preset, checkpoint, steps=int(steps), lr=float(lr), batch_size=int(batch_size),
                                       hflip=bool(hflip), crop_scale=float(crop_scale),
                                       color_jitter=float(color_jitter), prior_fraction=float(prior_fraction),
                                       ema_max_decay=float(ema_max_decay), seed=int(seed))
    except (TypeError, ValueError):
        raise problem("One of the Advanced settings is not a number; please check them.") from None
    if not 1 <= config.steps <= 100_000 or not 1 <= config.batch_size <= 512 or not 0 < config.lr <= 0.1:
        raise problem("Steps must be 1 to 100,000, batch 1 to 512 and the learning rate above 0 and at most 0.1.")
    images = []
    for photo in photos:
        try:
            images.append(Image.open(photo["path"]).convert("RGB"))
        except (OSError, KeyError):
            raise problem("Your photos have expired (sessions are cleaned after 6 hours); please add them again.") \
                from None
    resolution = finetune.base_resolution(checkpoint)
    array = finetune.photos_array(images, resolution, crop)
    name = finetune.sanitize_name(name)
    workdir.remove_stale()  # other sessions' folders, 6 hours after their last change
    run_dir = session_folder(request) / "runs" / f"{name}-{uuid.uuid4().hex[:6]}"
    yield ("Preparing: cropping the photos" + (" and drawing the base model's own samples for prior preservation"
                                               if config.prior_fraction > 0 and checkpoint else "") + "…",
           None, None, gr.DownloadButton(visible=False), gr.skip(), {"run_dir": str(run_dir), "name": name})
    finetune.prepare_run(run_dir, array, base_path, config, crop, int(preview_every), name=name)
    yield from _follow(run_dir, request, progress)


def resume(run: dict | None, steps, request: gr.Request, progress=gr.Progress()):
    """Continue this session's latest run from the step it stopped at up to ``steps`` in all (optimizer, EMA restored)."""
    run_dir = Path(run["run_dir"]) if run and run.get("run_dir") else None
    if run_dir is None or not (run_dir / "checkpoint" / "training").is_dir():
        raise problem("There is no stopped run to resume in this session; press Train first.")
    if session_folder(request) not in run_dir.parents:
        raise problem("That run belongs to another session.")
    done = _checkpoint_step(run_dir / "checkpoint")
    try:
        target = int(steps)
    except (TypeError, ValueError):
        raise problem("Steps (under Advanced) must be a whole number.") from None
    if target <= done:
        raise problem(f"This run is at step {done}; set Steps (under Advanced) above that to train more.")
    yield from _follow(run_dir, request, progress, steps=target)


def stop(request: gr.Request) -> str:
    job = job_for(request)
    if not job.running:
        return "Nothing is training in this session."
    job.stop.set()
    return "Stopping after this step and saving the weights…"


# --- the result ---

def try_model(run: dict | None, request: gr.Request, progress=gr.Progress()):
    """Samples from the session's latest model, each beside its nearest training photo, and the meter's reading."""
    run_dir = Path(run["run_dir"]) if run and run.get("run_dir") else None
    if run_dir is None or not (run_dir / "checkpoint" / "model_index.json").is_file():
        raise problem("Train a model first; its samples appear here.")
    if session_folder(request) not in run_dir.parents:
        raise problem("That run belongs to another session.")
    progress(0.1, desc="Sampling")
    checkpoint = get_checkpoint(run_dir / "checkpoint")
    samples = finetune.prior_images(checkpoint, count=METER_SAMPLES, seed=int(time.time()) % 100000, steps=25)
    photos = dataset_from_uint8("photos", finetune.run_photos(run_dir)).images
    reading = memorisation_meter(samples, photos)
    pairs = []
    for i, (sample, j, relative) in enumerate(zip(samples, reading.nearest.tolist(), reading.relative.tolist())):
        copy = relative < COPY_RATIO
        pairs.append((media.tensor_to_pil(sample), media.tensor_to_pil(photos[j]),
                      f"{i + 1}: {'copy' if copy else 'new'} ({relative:.2f})", "#c92a2a" if copy else "#2b8a3e"))
    return media.pairs_html(pairs), reading.sentence()


def save_local(run: dict | None, name: str, request: gr.Request):
    """Copy the session's latest model into checkpoints/ (local runs only)."""
    if not is_local():
        raise problem("Saving into checkpoints/ works when the app runs on your own computer; use Download here.")
    run_dir = Path(run["run_dir"]) if run and run.get("run_dir") else None
    if run_dir is None or not (run_dir / "checkpoint" / "model_index.json").is_file():
        raise problem("Train a model first, then save it.")
    if session_folder(request) not in run_dir.parents:
        raise problem("That run belongs to another session.")
    target_name = finetune.sanitize_name(name or run.get("name"))
    try:
        target = finetune.copy_checkpoint(run_dir / "checkpoint", SHIPPED / target_name)
    except FileExistsError as error:
        raise problem(str(error)) from None
    return (f"Saved as `checkpoints/{target.name}`: it stays after this session ends and loads with "
            f"`DDPMPipeline.from_pretrained('checkpoints/{target.name}')`."), gr.Dropdown(choices=model_choices(request))


def refresh_choices(request: gr.Request):
    choices = model_choices(request)
    bases = choices + [(SCRATCH_LABEL, finetune.SCRATCH)]
    return gr.Dropdown(choices=choices), gr.Dropdown(choices=bases)


def build(demo: gr.Blocks, sample_checkpoint: gr.Dropdown) -> None:
    shared = [(p.name, str(p)) for p in available_checkpoints()]
    default_base = next((v for n, v in shared if n == "emoji32"), shared[0][1] if shared else finetune.SCRATCH)
    quick = finetune.PRESETS["quick"]
    photos = gr.State([])
    selected = gr.State(None)
    run = gr.State(None)
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            upload = gr.File(label="Your photos: drop 1 to 100 here (JPEG, PNG, WebP, ...)", file_count="multiple",
                             elem_id="train-upload")
            crop = gr.Radio([(label, key) for key, label in finetune.CROP_MODES.items()], value="center",
                            label="Make each photo square by", elem_id="train-crop")
            photo_note = gr.Markdown("No photos yet.", elem_id="train-photo-note")
            gallery = gr.Gallery(label="What the model trains on (click one to select it)", columns=5, height=300,
                                 allow_preview=False, format="png", elem_classes=["pixelated"], elem_id="train-gallery")
            with gr.Row():
                remove_button = gr.Button("Remove selected", size="sm", elem_id="train-remove")
                clear_button = gr.Button("Remove all", size="sm")
        with gr.Column(scale=1, min_width=320):
            base = gr.Dropdown(shared + [(SCRATCH_LABEL, finetune.SCRATCH)], value=default_base,
                               label="Start from", elem_id="train-base")
            local_base = gr.Textbox(label="…or a diffusers DDPM folder on this computer (path)", visible=is_local(),
                                    placeholder="/path/to/folder with unet/ and scheduler/")
            preset = gr.Radio([(p.label, key) for key, p in finetune.PRESETS.items()], value="quick",
                              label="Preset", elem_id="train-preset")
            with gr.Accordion("Advanced", open=False):
                steps = gr.Number(quick.steps, precision=0, label="Steps", minimum=1, maximum=100_000,
                                  elem_id="train-steps")
                lr = gr.Number(quick.lr, label="Learning rate (AdamW)", minimum=0)
                batch_size = gr.Number(quick.batch_size, precision=0, label="Batch size", minimum=1, maximum=512)
                hflip = gr.Checkbox(quick.hflip, label="Augment: mirror left-right")
                crop_scale = gr.Slider(0.5, 1.0, value=quick.crop_scale, step=0.05,
                                       label="Augment: random crop keeps at least this much of the side (1: off)")
                color_jitter = gr.Slider(0, 0.3, value=quick.color_jitter, step=0.01,
                                         label="Augment: colour jitter (brightness, contrast, saturation ±)")
                prior_fraction = gr.Slider(0, 0.5, value=quick.prior_fraction, step=0.05,
                                           label="Prior preservation: share of each batch from the base's own "
                                                 "samples (keeps variety; DreamBooth's idea)")
                ema_max_decay = gr.Slider(0.9, 0.9999, value=quick.ema_max_decay, step=0.0005,
                                          label="EMA decay (with warm-up)")
                preview_every = gr.Number(quick.preview_every, precision=0, minimum=1,
                                          label="Preview samples every N steps")
                seed = gr.Number(0, precision=0, minimum=0, label="Seed")
            name = gr.Textbox("my-model", label="Name your model", max_length=60, elem_id="train-name")
            with gr.Row():
                train_button = gr.Button("Train", variant="primary", elem_id="train-go")
                stop_button = gr.Button("Stop", elem_id="train-stop")
                resume_button = gr.Button("Resume", elem_id="train-resume")
    status = gr.Markdown("Add photos, then press Train.", elem_id="train-status")
    with gr.Row():
        loss_plot = gr.Plot(label="Loss", elem_id="train-loss")
        preview = gr.Image(label="Preview samples (same noise every time)", format="png", interactive=False,
                           elem_classes=["pixelated"], elem_id="train-preview")
    with gr.Row():
        download = gr.DownloadButton("Download", visible=False, elem_id="train-download")
        save_button = gr.Button("Save into checkpoints/", visible=is_local(), elem_id="train-save")
        try_button = gr.Button("Try it: 8 samples and their nearest photos", elem_id="train-try")
    meter_note = gr.Markdown(elem_id="train-meter-note")
    gr.Markdown("**Memorisation meter**: each sample (left of a pair) beside its nearest photo (right). The number "
                "is how near it is, compared with how near that photo is to your next most similar one: 0 is "
                "identical; under 0.5 counts as a copy, even a blurred one.")
    meter = gr.HTML(elem_id="train-meter")

    photo_outputs = [photos, gallery, photo_note, upload]
    # The box empties after every upload, kept or refused: what was kept is in the gallery, never stale names.
    upload.upload(add_photos, [upload, photos, crop, base], photo_outputs, api_name="train_add_photos").then(
        lambda: None, None, [upload], api_name="train_clear_upload_box", api_visibility="private", queue=False)
    gr.on([crop.change, base.change], redraw_photos, [photos, crop, base], [gallery, photo_note],
          api_visibility="private")
    gallery.select(select_photo, None, [selected], api_visibility="private")
    remove_button.click(remove_photo, [photos, selected, crop, base], photo_outputs, api_name="train_remove_photo")
    clear_button.click(clear_photos, None, photo_outputs, api_name="train_clear_photos")

    def apply_preset(key: str):
        p = finetune.PRESETS.get(key, quick)
        return p.steps, p.lr, p.batch_size, p.hflip, p.crop_scale, p.color_jitter, p.prior_fraction, \
            p.ema_max_decay, p.preview_every

    preset.change(apply_preset, [preset], [steps, lr, batch_size, hflip, crop_scale, color_jitter, prior_fraction,
                                           ema_max_decay, preview_every], api_visibility="private")
    outputs = [status, loss_plot, preview, download, sample_checkpoint, run]
    training = train_button.click(
        train, [photos, crop, base, local_base, preset, steps, lr, batch_size, hflip, crop_scale, color_jitter,
                prior_fraction, ema_max_decay, preview_every, seed, name], outputs,
        api_name="train", concurrency_limit=1, concurrency_id="train")
    resuming = resume_button.click(resume, [run, steps], outputs, api_name="train_resume", concurrency_limit=1,
                                   concurrency_id="train")
    for event in (training, resuming):
        event.then(refresh_choices, None, [sample_checkpoint, base], api_visibility="private")
    stop_button.click(stop, None, [status], api_name="train_stop", queue=False)
    try_button.click(try_model, [run], [meter, meter_note], api_name="train_try", concurrency_limit=1,
                     concurrency_id="heavy")
    save_button.click(save_local, [run, name], [status, sample_checkpoint], api_name="train_save")
    demo.load(refresh_choices, None, [sample_checkpoint, base], api_visibility="private")
