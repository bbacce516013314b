"""Train tab: fine-tune a model on a handful of your own photos, watch it learn, then sample from it.

Wiring only: photos, runs, the worker thread and the meter are services.finetuning's (and its recipes' and views'),
services.run_folder's and services.jobs'. Each browser session has its own folder (services.workdir); only its
requests can name its files.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from playground.checkpoints import CheckpointError, copy_checkpoint, export_zip
from playground.data.photos import CROP_MODES, check_photo_count, keep_photos, open_photos
from playground.plots import loss_figure
from playground.services import finetune_recipes as recipes
from playground.services import finetune_views as views
from playground.services import finetuning, model_catalog, workdir
from playground.services.gpu import hardware
from playground.services.jobs import JobBusy, JobRegistry
from playground.services.run_folder import RunFolder, new_run
from playground.ui.common import (
    is_local,
    model_choices,
    problem,
    session_folder,
    session_key,
    shared_model_choices,
    toasts,
)

SCRATCH_LABEL = "From scratch (random weights: needs far more steps)"
METER_SAMPLES = 8
JOBS = JobRegistry("training")
ADVANCED = ("steps", "lr", "batch_size", "hflip", "crop_scale", "color_jitter", "prior_fraction", "ema_max_decay")

INTRO = """
Teach a model your own pictures. Drop in 1 to 100 photos (six of your dog is plenty); the gallery shows the
exact squares the model will see, at its resolution. Pick a starting model and a preset, press **Train**, and
watch the loss fall and the preview samples (always from the same noise) turn into your photos. **Stop** keeps
the latest weights; **Resume** carries on from the same step. Your photos and models are visible to this browser
session only and are deleted 6 hours after you last used them.
"""


# --- photos ---

def _base(base: str | None, request: gr.Request | None):
    """The starting model the person chose from the list, loaded; None for scratch or one that can't be loaded."""
    folder = model_catalog.resolve(base, session_folder(request)) if base != recipes.SCRATCH else None
    try:
        return model_catalog.get_checkpoint(folder) if folder is not None else None
    except CheckpointError:
        return None


def _photo_summary(photos: list[dict], side: int, channels: int) -> str:
    if not photos:
        return "No photos yet."
    grey = " grey" if channels == 1 else ""
    return f"{len(photos)} photo{'s' * (len(photos) != 1)}, trained on as {side}×{side}{grey} squares."


def _photo_view(photos: list[dict], crop: str, base: str | None, request: gr.Request | None):
    """The gallery of the photos as the chosen base will see them (a latent base's: beside their reconstructions),
    and the line under it."""
    checkpoint = _base(base, request)
    side, channels = finetuning.base_shape(checkpoint)
    autoencoder = checkpoint.autoencoder if checkpoint is not None else None
    with toasts():
        return (views.gallery(photos, crop, side, grey=channels == 1, autoencoder=autoencoder),
                _photo_summary(photos, side, channels))


def add_photos(files, photos: list[dict], crop: str, base: str, request: gr.Request):
    """Validate and keep new uploads; bad files are named in one sentence each and the rest are kept."""
    photos = list(photos or [])
    paths = [getattr(f, "name", f) for f in (files or [])]
    with toasts():
        check_photo_count(len(photos), len(paths))
    kept, problems = keep_photos(paths, workdir.photos_dir(session_folder(request)))
    if not kept:
        raise problem(problems[0] if len(problems) == 1 else
                      f"None of the {len(paths)} files is a photo we can read. First problem: {problems[0]}",
                      title="That file can't be used")
    photos += kept
    for sentence in problems:
        gr.Warning(f"Skipped: {sentence}")
    gallery, note = _photo_view(photos, crop, base, request)
    if problems:
        note += f" Skipped {len(problems)} file{'s' * (len(problems) != 1)} that could not be read."
    return photos, gallery, note, None


def redraw_photos(photos: list[dict], crop: str, base: str, request: gr.Request):
    return _photo_view(photos or [], crop, base, request)


def remove_photo(photos: list[dict], selected: int | None, crop: str, base: str, request: gr.Request):
    photos = list(photos or [])
    if selected is None or not 0 <= selected < len(photos):
        raise problem("Click a photo in the gallery first, then Remove.")
    photos.pop(selected)
    return photos, *_photo_view(photos, crop, base, request), None


def clear_photos():
    return [], [], _photo_summary([], *finetuning.base_shape(None)), None


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
    if not base or base == recipes.SCRATCH:
        return None
    folder = model_catalog.resolve(base, session_folder(request))
    if folder is None:
        raise problem("That model is not available here; pick one from the list.")
    return str(folder)


def _session_run(run: dict | None, request: gr.Request, needs: str) -> RunFolder:
    """This session's latest run, if it has what is needed ("model" or "resume")."""
    folder = RunFolder(Path(run["run_dir"])) if run and run.get("run_dir") else None
    ready = folder is not None and (folder.has_model() if needs == "model" else folder.can_resume())
    if not ready:
        raise problem("Train a model first; its samples appear here." if needs == "model" else
                      "There is no stopped run to resume in this session; press Train first.", title="One step first")
    if session_folder(request) not in folder.path.parents:
        raise problem("That run belongs to another session.")
    return folder


def _follow(run: RunFolder, request: gr.Request, progress: gr.Progress, steps: int | None = None):
    """Train ``run`` in a worker thread and stream (status, loss figure, preview, result widgets)."""
    total = int(steps or finetuning.run_settings(run.path).config.steps)
    started = time.perf_counter()
    report = views.ProgressReport()
    history = run.losses()  # a resumed run shows its whole curve
    skip = gr.skip()

    def work(job) -> None:
        for event in finetuning.stream_finetune(run.path, job.stop_requested, steps=steps):
            job.events.append(event)

    try:
        for job in JOBS.run_in_thread(session_key(request), work):
            if not job.events:
                yield f"Preparing… {time.perf_counter() - started:.0f} s", skip, skip, skip, skip, skip
                continue
            event = job.events[-1]
            progress((event.step, event.total_steps), desc="Training", unit="steps")
            figure = loss_figure(history[:job.events[0].step - 1] + [e.loss for e in job.events])
            preview = run.latest_preview()
            yield (report.line(event, time.perf_counter()), figure, str(preview) if preview else None,
                   skip, skip, skip)
    except JobBusy as error:
        raise problem(str(error)) from None
    except Exception as error:  # a real failure: say it in one line, and keep the traceback in the log
        raise gr.Error(f"Training stopped with an error: {error}".split("\n")[0], title="Training failed") from None
    yield _finished(run, total, time.perf_counter() - started, request)


def _finished(run: RunFolder, total: int, seconds: float, request: gr.Request):
    """The last update of a run that ended or stopped: its status, curve, preview, download and model."""
    name = run.name()
    zip_path = export_zip(run.checkpoint, workdir.exports_dir(session_folder(request)) / f"{name}.zip")
    done = run.checkpoint_step()
    status = (f"Stopped at step {done} of {total}: the latest weights are saved. **Resume** carries on from here."
              if done < total else
              f"Done: {total} steps in {views.time_left(seconds)}. **{name}** is now in the Sample tab's list; try "
              "it below, download it, or train more with Resume and more steps.")
    preview = run.latest_preview()
    return (status, loss_figure(run.losses()), str(preview) if preview else None,
            gr.DownloadButton(value=str(zip_path), visible=True, label=f"Download {name}.zip"),
            gr.Dropdown(choices=model_choices(request), value=model_catalog.run_model_name(run)),
            {"run_dir": str(run.path), "name": name})


def subject_controls(base: str | None, request: gr.Request):
    """The subject word boxes: usable when the base is a prompt model, disabled with the reason otherwise."""
    checkpoint = _base(base, request)
    if checkpoint is None or checkpoint.vocabulary is None:
        note = ("*DreamBooth needs a base that takes prompts (such as emoji32-prompts); this one doesn't, so "
                "fine-tuning teaches it your photos without a word for them.*")
        return gr.Textbox(interactive=False, value=""), gr.Textbox(interactive=False, value=""), note
    note = ("Name your subject with a **new word** (such as *zork*) and say what it is with a word the model knows "
            "(*dog*, *cat*, *car*…). It trains on “zork dog”; the base's own “dog” pictures keep *dog* meaning dogs. "
            "Leave both empty to fine-tune without words.")
    return gr.Textbox(interactive=True), gr.Textbox(interactive=True), note


def train(photos: list[dict], crop: str, base: str, local_base: str, preset: str, steps, lr, batch_size, hflip: bool,
          crop_scale, color_jitter, prior_fraction, ema_max_decay, preview_every, seed, name: str,
          subject_word: str = "", class_word: str = "", request: gr.Request = None, progress=gr.Progress()):
    """Start a new fine-tuning run on the session's photos and stream it (the form's values become one
    TrainConfig, checked by services.finetune_recipes.train_config, as the CLI's are)."""
    if not photos:
        raise problem("Add at least one photo before training: drop them into the box on the left.",
                      title="One step first")
    base_path = _base_path(base, local_base, request)
    with toasts():
        checkpoint = finetuning.load_base(base_path)
        config = recipes.train_config(preset, checkpoint, steps=steps, lr=lr, batch_size=batch_size, hflip=hflip,
                                      crop_scale=crop_scale, color_jitter=color_jitter, prior_fraction=prior_fraction,
                                      ema_max_decay=ema_max_decay, seed=seed)
        subject = recipes.check_subject(checkpoint, subject_word, class_word)
        images = open_photos(photos)
    name = workdir.safe_name(name)
    workdir.remove_stale()  # other sessions' folders, 6 hours after their last change
    run = new_run(session_folder(request), name)
    drawing = (f" and drawing the base model's own “{subject.class_word}” pictures for prior preservation" if subject
               else " and drawing the base model's own samples for prior preservation"
               if config.prior_fraction > 0 and checkpoint else "")
    yield ("Preparing: cropping the photos" + drawing + "…",
           None, None, gr.DownloadButton(visible=False), gr.skip(), {"run_dir": str(run.path), "name": name})
    finetuning.start_run(run.path, images, base_path, config, crop, int(preview_every or 50), name=name,
                         subject=subject)
    yield from _follow(run, request, progress)


def resume(run: dict | None, steps, request: gr.Request, progress=gr.Progress()):
    """Continue this session's latest run from where it stopped up to ``steps`` in all (optimizer, EMA restored)."""
    folder = _session_run(run, request, needs="resume")
    with toasts():
        target = finetuning.check_more_steps(folder.path, steps)
    yield from _follow(folder, request, progress, steps=target)


def stop(request: gr.Request) -> str:
    if not JOBS.is_running(session_key(request)):
        return "Nothing is training in this session."
    JOBS.request_stop(session_key(request))
    return "Stopping after this step and saving the weights…"


# --- the result ---

def try_model(run: dict | None, request: gr.Request, progress=gr.Progress()):
    """Samples from the session's latest model, each beside its nearest training photo, and the meter's reading;
    for a subject run, also "<word> <class>" and "<class>" after training beside "<class>" before it."""
    folder = _session_run(run, request, needs="model")
    progress(0.1, desc="Sampling")
    seed = int(time.time()) % 100000
    meter, note = views.meter_view(folder.path, METER_SAMPLES, seed=seed)
    subject = finetuning.run_settings(folder.path).subject
    if subject is None:
        return meter, note, gr.Gallery(value=None, visible=False)
    progress(0.5, desc=f"“{subject.prompt}” and “{subject.class_word}”, before and after")
    return meter, note, gr.Gallery(value=views.subject_view(folder.path, METER_SAMPLES, seed=seed), visible=True)


def save_local(run: dict | None, name: str, request: gr.Request):
    """Copy the session's latest model into checkpoints/ (local runs only)."""
    if not is_local():
        raise problem("Saving into checkpoints/ works when the app runs on your own computer; use Download here.")
    folder = _session_run(run, request, needs="model")
    target_name = workdir.safe_name(name or run.get("name"))
    try:
        target = copy_checkpoint(folder.checkpoint, model_catalog.SHIPPED / target_name)
    except FileExistsError as error:
        raise problem(str(error)) from None
    saved = (f"Saved as `checkpoints/{target.name}`: it stays after this session ends and loads with "
             f"`DDPMPipeline.from_pretrained('checkpoints/{target.name}')`.")
    return saved, gr.Dropdown(choices=model_choices(request))


def refresh_choices(request: gr.Request):
    """The model lists of the Sample and Edit tabs and the Train tab's bases, with the session's own models."""
    choices = model_choices(request)
    bases = choices + [(SCRATCH_LABEL, recipes.SCRATCH)]
    return gr.Dropdown(choices=choices), gr.Dropdown(choices=choices), gr.Dropdown(choices=bases)


def apply_preset(key: str):
    """The Advanced values of a preset, when it is chosen."""
    preset = recipes.PRESETS.get(key, recipes.PRESETS["quick"])
    return (*(getattr(preset.config, field) for field in ADVANCED), preset.preview_every)


def _photos_column(c: SimpleNamespace) -> None:
    c.upload = gr.File(label="Your photos: drop 1 to 100 here (JPEG, PNG, WebP, ...)", file_count="multiple",
                       elem_id="train-upload")
    c.crop = gr.Radio([(label, key) for key, label in CROP_MODES.items()], value="center",
                      label="Make each photo square by", elem_id="train-crop")
    c.photo_note = gr.Markdown("No photos yet.", elem_id="train-photo-note")
    c.gallery = gr.Gallery(label="What the model trains on (click one to select it)", columns=5, height=300,
                           allow_preview=False, format="png", elem_classes=["pixelated"], elem_id="train-gallery")
    with gr.Row():
        c.remove = gr.Button("Remove selected", size="sm", elem_id="train-remove")
        c.clear = gr.Button("Remove all", size="sm")


def _settings_column(c: SimpleNamespace) -> None:
    shared = shared_model_choices()
    default_base = next((v for n, v in shared if n == "emoji32"), shared[0][1] if shared else recipes.SCRATCH)
    quick = recipes.PRESETS["quick"]
    c.base = gr.Dropdown(shared + [(SCRATCH_LABEL, recipes.SCRATCH)], value=default_base, label="Start from",
                         elem_id="train-base")
    with gr.Group(), gr.Row():
        c.subject_word = gr.Textbox("", label="Subject word (new)", placeholder="e.g. zork", max_lines=1,
                                    interactive=False, elem_id="train-subject", min_width=120)
        c.class_word = gr.Textbox("", label="Class word (known)", placeholder="e.g. dog", max_lines=1,
                                  interactive=False, elem_id="train-class", min_width=120)
    c.subject_note = gr.Markdown(elem_id="train-subject-note")
    c.local_base = gr.Textbox(label="…or a diffusers DDPM folder on this computer (path)", visible=is_local(),
                              placeholder="/path/to/folder with unet/ and scheduler/")
    c.preset = gr.Radio([(p.label(hardware()), key) for key, p in recipes.PRESETS.items()], value="quick",
                        label="Preset", elem_id="train-preset")
    with gr.Accordion("Advanced", open=False):
        q = quick.config
        c.advanced = [
            gr.Number(q.steps, precision=0, label="Steps", minimum=1, maximum=recipes.MAX_STEPS,
                      elem_id="train-steps"),
            gr.Number(q.lr, label="Learning rate (AdamW)", minimum=0, maximum=recipes.MAX_LR),
            gr.Number(q.batch_size, precision=0, label="Batch size", minimum=1, maximum=recipes.MAX_BATCH),
            gr.Checkbox(q.hflip, label="Augment: mirror left-right"),
            gr.Slider(0.5, 1.0, value=q.crop_scale, step=0.05,
                      label="Augment: random crop keeps at least this much of the side (1: off)"),
            gr.Slider(0, 0.3, value=q.color_jitter, step=0.01,
                      label="Augment: colour jitter (brightness, contrast, saturation ±)"),
            gr.Slider(0, 0.5, value=q.prior_fraction, step=0.05,
                      label="Prior preservation: share of each batch from the base's own samples (keeps variety; "
                            "DreamBooth's idea)"),
            gr.Slider(0.9, 0.9999, value=q.ema_max_decay, step=0.0005, label="EMA decay (with warm-up)"),
        ]
        c.preview_every = gr.Number(quick.preview_every, precision=0, minimum=1, label="Preview samples every N steps")
        c.seed = gr.Number(0, precision=0, minimum=0, label="Seed")
    c.name = gr.Textbox("my-model", label="Name your model", max_length=60, elem_id="train-name")
    with gr.Row():
        c.go = gr.Button("Train", variant="primary", elem_id="train-go")
        c.stop = gr.Button("Stop", elem_id="train-stop")
        c.resume = gr.Button("Resume", elem_id="train-resume")


def _results(c: SimpleNamespace) -> None:
    c.status = gr.Markdown("Add photos, then press Train.", elem_id="train-status")
    with gr.Row():
        c.loss_plot = gr.Plot(label="Loss", elem_id="train-loss")
        c.preview = gr.Image(label="Preview samples (same noise every time)", format="png", interactive=False,
                             elem_classes=["pixelated"], elem_id="train-preview")
    with gr.Row():
        c.download = gr.DownloadButton("Download", visible=False, elem_id="train-download")
        c.save = gr.Button("Save into checkpoints/", visible=is_local(), elem_id="train-save")
        c.try_it = gr.Button("Try it: 8 samples and their nearest photos", elem_id="train-try")
    c.meter_note = gr.Markdown(elem_id="train-meter-note")
    gr.Markdown("**Memorisation meter**: each sample (left of a pair) beside the photo it matches best (right). The "
                "match compares layouts, so blurred, paler or darker copies still count: 1 is the same picture, about "
                "0 unrelated, and 0.6 or more is a copy.")
    c.meter = gr.HTML(elem_id="train-meter")
    c.subject_gallery = gr.Gallery(label="Your word and the class word, from the same noise", columns=3,
                                   height="auto", visible=False, elem_id="train-subject-gallery",
                                   elem_classes=["pixelated"])


def _wire_photos(c: SimpleNamespace) -> None:
    photo_outputs = [c.photos, c.gallery, c.photo_note, c.upload]
    # The box empties after every upload, kept or refused: what was kept is in the gallery, never stale names.
    c.upload.upload(add_photos, [c.upload, c.photos, c.crop, c.base], photo_outputs, api_name="train_add_photos").then(
        lambda: None, None, [c.upload], api_name="train_clear_upload_box", api_visibility="private", queue=False)
    gr.on([c.crop.change, c.base.change], redraw_photos, [c.photos, c.crop, c.base], [c.gallery, c.photo_note],
          api_name="train_redraw_photos", api_visibility="private")
    c.gallery.select(select_photo, None, [c.selected], api_name="train_select_photo", api_visibility="private")
    c.remove.click(remove_photo, [c.photos, c.selected, c.crop, c.base], photo_outputs,
                   api_name="train_remove_photo")
    c.clear.click(clear_photos, None, photo_outputs, api_name="train_clear_photos")


def _wire_training(demo: gr.Blocks, c: SimpleNamespace, sample_checkpoint: gr.Dropdown,
                   edit_checkpoint: gr.Dropdown) -> None:
    c.preset.change(apply_preset, [c.preset], [*c.advanced, c.preview_every], api_name="train_apply_preset",
                    api_visibility="private")
    outputs = [c.status, c.loss_plot, c.preview, c.download, sample_checkpoint, c.run]
    training = c.go.click(
        train, [c.photos, c.crop, c.base, c.local_base, c.preset, *c.advanced, c.preview_every, c.seed, c.name,
                c.subject_word, c.class_word], outputs, api_name="train", concurrency_limit=1, concurrency_id="train")
    resuming = c.resume.click(resume, [c.run, c.advanced[0]], outputs, api_name="train_resume", concurrency_limit=1,
                              concurrency_id="train")
    model_lists = [sample_checkpoint, edit_checkpoint, c.base]
    for event, name in ((training, "train_refresh_models"), (resuming, "train_resume_refresh_models")):
        event.then(refresh_choices, None, model_lists, api_name=name, api_visibility="private")
    c.stop.click(stop, None, [c.status], api_name="train_stop", queue=False)
    c.try_it.click(try_model, [c.run], [c.meter, c.meter_note, c.subject_gallery], api_name="train_try",
                   concurrency_limit=1, concurrency_id="heavy")
    c.save.click(save_local, [c.run, c.name], [c.status, sample_checkpoint], api_name="train_save")
    demo.load(refresh_choices, None, model_lists, api_name="train_load_models", api_visibility="private")
    gr.on([demo.load, c.base.change], subject_controls, [c.base], [c.subject_word, c.class_word, c.subject_note],
          api_name="train_subject_controls", api_visibility="private")


def build(demo: gr.Blocks, sample_checkpoint: gr.Dropdown, edit_checkpoint: gr.Dropdown) -> None:
    c = SimpleNamespace(photos=gr.State([]), selected=gr.State(None), run=gr.State(None))
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            _photos_column(c)
        with gr.Column(scale=1, min_width=320):
            _settings_column(c)
    _results(c)
    _wire_photos(c)
    _wire_training(demo, c, sample_checkpoint, edit_checkpoint)
