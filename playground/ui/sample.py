"""Sample tab: watch a model turn pure noise into images, step by step, with a choice of sampler."""

from __future__ import annotations

import random
import uuid

import gradio as gr

from playground.checkpoints import CheckpointError
from playground.services import workdir
from playground.services.image_sampling import (
    COMPARISON,
    MAX_IMAGES,
    SamplerRun,
    check_settings,
    compare_samplers,
    get_checkpoint,
    grid_picture,
    save_animation,
    stream_sampling,
)
from playground.services.jobs import JobBusy, JobRegistry
from playground.ui.common import check_seed, model_folder, model_label_for, problem, session_key, shared_model_choices

SAMPLER_LABELS = {"ddpm": "DDPM (ancestral)", "ddim": "DDIM", "dpmpp": "DPM-Solver++(2M)"}
COMPARE_IMAGES = 4

JOBS = JobRegistry("sampling")

INTRO = """
A trained model starts from pure Gaussian noise x_T and removes a little of it at each step. Watch both pictures
as it runs: **x_t**, the samples as the model sees them at step t, and **x̂₀**, the model's current guess of the
finished images from them.
**DDPM** adds fresh noise at every step and needs many; **DDIM** is deterministic and needs far fewer;
**DPM-Solver++** takes second-order steps and looks finished after about 20.
"""


def _folder(name: str | None, request: gr.Request | None = None):
    """The folder behind a listed model name (names only: the page never sees a server folder)."""
    if not name:
        raise problem("No model is installed yet: checkpoints/ has none. Train one in the Train tab or with "
                      "`python -m playground train`.")
    return model_folder(name, request)


def _checkpoint(name: str | None, request: gr.Request | None = None):
    try:
        return get_checkpoint(_folder(name, request))
    except CheckpointError as error:
        raise problem(str(error), title="That model can't be used") from None


def checkpoint_info(path: str | None, request: gr.Request) -> str:
    """A one-paragraph summary of the checkpoint from its playground.json."""
    if not path:
        return "No checkpoint found."
    checkpoint = _checkpoint(path, request)
    info = checkpoint.info
    data = info.get("data", {})
    colour = "greyscale" if checkpoint.channels == 1 else "colour"
    parts = [f"**{model_label_for(path, request)}**: {checkpoint.resolution}×{checkpoint.resolution} px {colour}, "
             f"{sum(p.numel() for p in checkpoint.unet.parameters()) / 1e6:.1f} M parameters, "
             f"{checkpoint.schedule.name} schedule (T = {checkpoint.schedule.num_timesteps}), "
             f"predicts {checkpoint.prediction_type}."]
    if info:
        parts.append(f"Trained {info.get('steps')} steps on {data.get('count')} images ({data.get('name')}).")
    return " ".join(parts)


def steps_range(path: str | None, steps: int, request: gr.Request):
    """Keep the steps slider within 1..T of the chosen checkpoint."""
    if not path:
        return gr.Slider()
    T = _checkpoint(path, request).schedule.num_timesteps
    return gr.Slider(maximum=T, value=min(int(steps), T))


def sample(path: str | None, sampler: str, steps: int, count: int, seed: int, eta: float,
           request: gr.Request, progress=gr.Progress()):
    """Stream the reverse process: x_t and predicted-x_0 grids and the status; at the end, the animation."""
    checkpoint = _checkpoint(path, request)
    try:
        steps, count, eta = check_settings(checkpoint, sampler, steps, count, eta)
    except ValueError as error:
        raise problem(str(error)) from None
    seed = check_seed(seed)
    key = session_key(request)
    frames = []
    try:
        with JOBS.run(key) as job:
            for update in stream_sampling(str(checkpoint.path), sampler, steps, count, seed, eta, job.should_stop):
                frames += update.new_frames
                step = update.step
                progress((step.index + 1, step.num_steps), desc=f"{SAMPLER_LABELS[sampler]} · t = {step.t}",
                         unit="steps")
                if not (update.done or update.stopped):
                    status = f"Step {step.index + 1} of {steps} · t = {step.t} · {update.seconds:.1f} s"
                    yield grid_picture(step.x_t), grid_picture(step.pred_x0), status, gr.skip(), gr.skip()
    except JobBusy as error:
        raise problem(str(error)) from None
    folder = workdir.session_dir(key)
    files = save_animation(frames, folder / f"sampling-{sampler}-{steps}-seed{seed}-{uuid.uuid4().hex[:6]}")
    label = SAMPLER_LABELS[sampler]
    if update.stopped:
        status = (f"Stopped at step {step.index + 1} of {steps} (t = {step.t}) after {update.seconds:.1f} s: the "
                  f"samples x_t as they were and the model's guess x̂₀ from them. The animation so far "
                  f"has {len(frames)} frames.")
        yield grid_picture(step.x_t), grid_picture(step.pred_x0), status, str(files[0]), [str(f) for f in files]
        return
    status = (f"Done: {count} images, {label} {steps} steps in {update.seconds:.1f} s "
              f"({count / update.seconds:.1f} images/s). The animation has {len(frames)} frames.")
    yield grid_picture(update.result), grid_picture(step.pred_x0), status, str(files[0]), [str(f) for f in files]


def prepare(request: gr.Request) -> None:
    JOBS.prepare(session_key(request))


def stop(request: gr.Request) -> str:
    if JOBS.stop(session_key(request)):
        return "Stopping after this step…"
    return "Nothing is sampling in this session."


def compare(path: str | None, seed: int, request: gr.Request, progress=gr.Progress()):
    """The same seed and starting noise through DDPM 1000, DDIM 50 and DPM-Solver++ 20, with their times."""
    folder = str(_checkpoint(path, request).path)
    seed = check_seed(seed)
    pictures, rows = [], []
    for item in compare_samplers(folder, seed, COMPARE_IMAGES):
        if isinstance(item, SamplerRun):
            pictures.append(grid_picture(item.images, display=256))
            rows.append([SAMPLER_LABELS[item.sampler], item.steps, round(item.seconds, 2),
                         round(item.steps / item.seconds, 1)])
        else:
            progress(item, desc="DDPM, DDIM, DPM-Solver++")
    return pictures[0], pictures[1], pictures[2], rows


def build(demo: gr.Blocks) -> gr.Dropdown:
    """The tab; returns its model dropdown, which the Train tab updates with the session's own models."""
    choices = shared_model_choices()
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            checkpoint = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="Model",
                                     elem_id="sample-checkpoint")
            info = gr.Markdown(elem_id="sample-info")
            sampler = gr.Radio([(label, name) for name, label in SAMPLER_LABELS.items()], value="dpmpp",
                               label="Sampler", elem_id="sample-sampler")
            steps = gr.Slider(1, 1000, value=25, step=1, label="Steps", elem_id="sample-steps")
            eta = gr.Slider(0, 1, value=0, step=0.05, label="η (DDIM only: 0 deterministic, 1 like DDPM)")
            count = gr.Slider(1, MAX_IMAGES, value=16, step=1, label="Images", elem_id="sample-count")
            with gr.Row():
                seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", elem_id="sample-seed", scale=3)
                dice = gr.Button("🎲 Random seed", scale=2)
            with gr.Row():
                go_button = gr.Button("Generate", variant="primary", elem_id="sample-generate")
                stop_button = gr.Button("Stop", elem_id="sample-stop")
        with gr.Column(scale=3):
            status = gr.Markdown("Press Generate.", elem_id="sample-status")
            with gr.Row(elem_classes=["side-by-side"]):
                x_t = gr.Image(label="x_t", format="png", interactive=False,
                               elem_classes=["pixelated"], elem_id="sample-xt", min_width=140)
                pred_x0 = gr.Image(label="x̂₀ (predicted)", format="png", interactive=False,
                                   elem_classes=["pixelated"], elem_id="sample-x0", min_width=140)
            with gr.Accordion("The animation (when it ends or you stop it)", open=True):
                with gr.Row():
                    animation = gr.Image(label="Animation: x_t | x̂₀",
                                         interactive=False, elem_id="sample-animation", height=220, min_width=200)
                    gif = gr.File(label="Download: GIF and MP4 (about 60 frames)", file_count="multiple",
                                  interactive=False, elem_id="sample-gif", min_width=200)
    with gr.Accordion("Compare samplers: the same noise through DDPM 1000, DDIM 50 and DPM-Solver++ 20", open=False):
        compare_button = gr.Button(f"Compare ({COMPARE_IMAGES} images; DDPM 1000 takes a while on a CPU)",
                                   elem_id="sample-compare")
        with gr.Row():
            pictures = [gr.Image(label=f"{SAMPLER_LABELS[name]} {n} steps", format="png", interactive=False,
                                 elem_classes=["pixelated"]) for name, n in COMPARISON]
        table = gr.Dataframe(headers=["sampler", "steps", "seconds", "steps/s"], interactive=False)

    gr.on([demo.load, checkpoint.change], checkpoint_info, [checkpoint], [info], api_name="sample_info")
    checkpoint.change(steps_range, [checkpoint, steps], [steps], api_name="sample_steps_range",
                      api_visibility="undocumented")
    dice.click(lambda: random.randint(0, 2**31 - 1), None, [seed], api_name="sample_random_seed", queue=False)
    # Prepare a fresh job (clearing an old Stop) before the work queues, so a Stop pressed while it waits counts.
    go_button.click(prepare, None, None, queue=False, api_name="sample_prepare", api_visibility="private").then(
        sample, [checkpoint, sampler, steps, count, seed, eta], [x_t, pred_x0, status, animation, gif],
        api_name="sample", concurrency_limit=1, concurrency_id="heavy", show_progress_on=[status])
    stop_button.click(stop, None, [status], api_name="sample_stop", queue=False)
    compare_button.click(compare, [checkpoint, seed], [*pictures, table], api_name="sample_compare",
                         concurrency_limit=1, concurrency_id="heavy")
    return checkpoint
