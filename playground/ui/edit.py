"""Edit tab: start the reverse process from your own picture (SDEdit) or fill in what you paint over (RePaint)."""

from __future__ import annotations

import random
import uuid
from types import SimpleNamespace

import gradio as gr

from playground import media
from playground.plots import walk_figure
from playground.services import editing
from playground.services.image_sampling import MAX_IMAGES, SAMPLER_LABELS
from playground.services.jobs import JobBusy, JobRegistry
from playground.services.prompting import MAX_GUIDANCE
from playground.ui.common import (
    checkpoint_for,
    model_label_for,
    problem,
    prompt_widgets,
    session_folder,
    session_key,
    shared_model_choices,
    toasts,
)
from playground.ui.forward import EXAMPLES

JOBS = JobRegistry("editing")

INTRO = """
A trained model can edit a picture of yours with no training at all, because the reverse process can start from
anything that looks like a noisy picture. **Change it** (SDEdit, Meng et al. 2022) noises your picture to a level
set by the **strength** and runs the reverse process from there: a low strength keeps your picture and changes
details; 1 keeps nothing, and the model draws from its own world. **Fill in what I paint** (RePaint, Lugmayr et al.
2022) keeps what you leave unpainted, noised to each step, and lets the model draw the painted part; now and then it
climbs back up in t and comes down again (*resampling*), so the two parts have time to agree. Paint white = repaint,
as in Stable Diffusion's inpainting (diffusers' `RePaintPipeline` takes the opposite: white = keep).
"""


def show_canvas(picture: str | None, request: gr.Request):
    """A new picture: checked, made square as the models see it, and put on the canvas to paint on."""
    if not picture:
        return None, None
    with toasts():
        canvas = editing.prepare_canvas(picture, session_folder(request))
    return str(canvas), {"background": str(canvas), "layers": [], "composite": str(canvas)}


def model_controls(name: str | None, request: gr.Request):
    """The prompt box and guidance: on for a prompt model, off with the reason for the others."""
    checkpoint = checkpoint_for(name, request) if name else None
    return prompt_widgets(checkpoint, model_label_for(name, request) if name else "This model")


def _request(name, canvas, editor, mode, sampler, steps, strength, jump, resample, count, seed, prompt, guidance,
             request: gr.Request) -> editing.EditRequest:
    folder = session_folder(request)
    layers = (editor or {}).get("layers") if isinstance(editor, dict) else None
    with toasts():
        mask = editing.save_painted_mask(layers, folder) if mode == "repaint" else None
        return editing.edit_request(name, folder, canvas, None if mask is None else str(mask), sampler, steps, count,
                                    seed, strength, jump, resample, 0.0, prompt, guidance, mode=mode)


def _status(update: editing.EditProgress, order: editing.EditRequest, frames: list) -> str:
    calls = update.walk[-1][0]
    how = (f"RePaint, {SAMPLER_LABELS[order.sampler]} {order.steps} steps, climbing {order.jump_length} and "
           f"walking each stretch {order.resample}×" if order.repaint else
           f"SDEdit at strength {order.strength:g}, {SAMPLER_LABELS[order.sampler]}")
    if update.stopped:
        return (f"Stopped after {calls} network calls (t = {max(update.t, 0)}); the animation so far has "
                f"{len(frames)} frames.")
    if update.done:
        return (f"Done: {order.count} edits ({how}) in {update.seconds:.1f} s, {calls} network calls. The animation "
                f"has {len(frames)} frames.")
    return f"{how} · move {update.index + 1} of {update.length} · t = {max(update.t, 0)} · {calls} network calls"


def edit(name, canvas, editor, mode, sampler, steps, strength, jump, resample, count, seed, prompt="",
         guidance=editing.DEFAULT_GUIDANCE, request: gr.Request = None, progress=gr.Progress()):
    """Stream the edit: x_t and x̂₀ (the kept region outlined), the status and the walk through t; at the end the
    edited pictures and the animation."""
    order = _request(name, canvas, editor, mode, sampler, steps, strength, jump, resample, count, seed, prompt,
                     guidance, request)
    frames, update = [], None
    try:
        with JOBS.run(session_key(request)) as job:
            for update in editing.stream_editing(order, job.stop_requested):
                frames += update.new_frames
                progress((update.index + 1, update.length), desc="Editing", unit="moves")
                if not (update.done or update.stopped):
                    yield (media.grid_picture(update.x_t), media.grid_picture(_outlined(update)),
                           _status(update, order, frames), walk_figure(update.walk), gr.skip(), gr.skip())
    except JobBusy as error:
        raise problem(str(error)) from None
    stem = session_folder(request) / f"edit-{uuid.uuid4().hex[:6]}"
    files = [str(f) for f in media.save_animation(frames, stem.with_suffix(".gif"), stem.with_suffix(".mp4"))]
    shown = update.result if update.done else update.x_t
    yield (media.grid_picture(shown), media.grid_picture(_outlined(update)), _status(update, order, frames),
           walk_figure(update.walk), files[0], files)


def _outlined(update: editing.EditProgress):
    pictures = update.pred_x0.clamp(-1, 1)
    return media.outline(pictures, update.repaint_mask) if update.repaint_mask is not None else pictures


def sweep(name, canvas, sampler, steps, seed, prompt="", guidance=editing.DEFAULT_GUIDANCE,
          request: gr.Request = None, progress=gr.Progress()):
    """The same seed at strength 0.2, 0.4, 0.6, 0.8 and 1.0: faithful to the picture, then more and more the model's."""
    order = _request(name, canvas, None, "sdedit", sampler, steps, 0.6, 1, 1, 4, seed, prompt, guidance, request)
    gallery = []
    for strength, images in editing.strength_sweep(order):
        gallery.append((media.grid_picture(images, display=256), f"strength {strength:g}"))
        progress(len(gallery) / len(editing.STRENGTHS), desc=f"strength {strength:g}")
    return gallery


def prepare(request: gr.Request) -> None:
    JOBS.prepare(session_key(request))


def stop(request: gr.Request) -> str:
    return "Stopping after this move…" if JOBS.request_stop(session_key(request)) else "Nothing is editing here."


def _controls(c: SimpleNamespace) -> None:
    choices = shared_model_choices()
    c.picture = gr.File(label="Your picture (JPEG, PNG, WebP, ...)", type="filepath", elem_id="edit-picture")
    gr.Examples(examples=[[p] for p in EXAMPLES], inputs=[c.picture], label="Examples")
    c.checkpoint = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="Model",
                               elem_id="edit-checkpoint")
    c.mode = gr.Radio([(label, key) for key, label in editing.MODES.items()], value="sdedit", label="Edit by",
                      elem_id="edit-mode")
    c.strength = gr.Slider(0.05, 1.0, value=editing.SDEDIT_DEFAULTS["strength"], step=0.05,
                           label="Strength (SDEdit): how far into the noise to start", elem_id="edit-strength")
    c.sampler = gr.Radio([(label, name) for name, label in SAMPLER_LABELS.items()],
                         value=editing.SDEDIT_DEFAULTS["sampler"], label="Sampler (RePaint: DDPM or DDIM)",
                         elem_id="edit-sampler")
    c.steps = gr.Slider(1, 1000, value=editing.SDEDIT_DEFAULTS["steps"], step=1, label="Steps over the whole of T",
                        elem_id="edit-steps")
    with gr.Accordion("RePaint's resampling", open=False):
        c.jump = gr.Slider(1, editing.MAX_JUMP, value=editing.REPAINT_DEFAULTS["jump_length"], step=1,
                           label="Jump length j: steps each climb back up")
        c.resample = gr.Slider(1, editing.MAX_RESAMPLE, value=editing.REPAINT_DEFAULTS["resample"], step=1,
                               label="Resamplings r: times each stretch is walked down (1: plain replacement)")
    c.count = gr.Slider(1, MAX_IMAGES, value=4, step=1, label="Edits (each from its own noise)", elem_id="edit-count")
    c.prompt = gr.Textbox("", label="Prompt (prompt models)", max_lines=1, interactive=False, elem_id="edit-prompt")
    c.prompt_note = gr.Markdown(elem_id="edit-prompt-note")
    c.guidance = gr.Slider(0, MAX_GUIDANCE, value=editing.DEFAULT_GUIDANCE, step=0.5, interactive=False,
                           label="Guidance scale s", elem_id="edit-guidance")
    with gr.Row():
        c.seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", scale=3, elem_id="edit-seed")
        c.dice = gr.Button("🎲 Random seed", scale=2)


def _canvas_and_results(c: SimpleNamespace) -> None:
    c.editor = gr.ImageEditor(label="Paint over what the model should draw anew (RePaint)", type="pil",
                              image_mode="RGBA", sources=(), transforms=(), layers=False, height=320,
                              brush=gr.Brush(colors=["#ffffff"], color_mode="fixed", default_size=24),
                              elem_id="edit-canvas")
    with gr.Row():
        c.go = gr.Button("Edit", variant="primary", elem_id="edit-go")
        c.stop = gr.Button("Stop", elem_id="edit-stop")
        c.sweep = gr.Button("Strength sweep: 0.2 to 1.0, same seed", elem_id="edit-sweep")
    c.status = gr.Markdown("Pick a picture (or an example), then press Edit.", elem_id="edit-status")
    with gr.Row(elem_classes=["side-by-side"]):
        c.x_t = gr.Image(label="x_t", format="png", interactive=False, elem_classes=["pixelated"], elem_id="edit-xt",
                         min_width=140)
        c.x0 = gr.Image(label="x̂₀ (the kept region outlined)", format="png", interactive=False,
                        elem_classes=["pixelated"], elem_id="edit-x0", min_width=140)
    c.walk = gr.Plot(label="t against network calls", elem_id="edit-walk")
    with gr.Accordion("The animation (when it ends or you stop it)", open=False), gr.Row():
        c.animation = gr.Image(label="Animation: x_t | x̂₀", interactive=False, height=220, elem_id="edit-animation")
        c.files = gr.File(label="Download: GIF and MP4", file_count="multiple", interactive=False,
                          elem_id="edit-files")
    c.gallery = gr.Gallery(label="Strength sweep", columns=len(editing.STRENGTHS), height="auto",
                           elem_classes=["pixelated"], elem_id="edit-sweep-gallery")


def _wire(demo: gr.Blocks, c: SimpleNamespace) -> None:
    c.picture.change(show_canvas, [c.picture], [c.canvas, c.editor], api_name="edit_picture")
    gr.on([demo.load, c.checkpoint.change], model_controls, [c.checkpoint], [c.prompt, c.guidance, c.prompt_note],
          api_name="edit_model_controls", api_visibility="undocumented")
    c.dice.click(lambda: random.randint(0, 2**31 - 1), None, [c.seed], api_name="edit_random_seed", queue=False)
    c.go.click(prepare, None, None, queue=False, api_name="edit_prepare", api_visibility="private").then(
        edit, [c.checkpoint, c.canvas, c.editor, c.mode, c.sampler, c.steps, c.strength, c.jump, c.resample, c.count,
               c.seed, c.prompt, c.guidance], [c.x_t, c.x0, c.status, c.walk, c.animation, c.files],
        api_name="edit", concurrency_limit=1, concurrency_id="heavy", show_progress_on=[c.status])
    c.stop.click(stop, None, [c.status], api_name="edit_stop", queue=False)
    c.sweep.click(sweep, [c.checkpoint, c.canvas, c.sampler, c.steps, c.seed, c.prompt, c.guidance], [c.gallery],
                  api_name="edit_sweep", concurrency_limit=1, concurrency_id="heavy")


def build(demo: gr.Blocks) -> gr.Dropdown:
    """The tab; returns its model dropdown, which the Train tab updates with the session's own models."""
    c = SimpleNamespace(canvas=gr.State(None))
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            _controls(c)
        with gr.Column(scale=2):
            _canvas_and_results(c)
    _wire(demo, c)
    return c.checkpoint
