"""Sample tab: watch a model turn pure noise into images, step by step, with a choice of sampler."""

from __future__ import annotations

import random
import uuid

import gradio as gr

from playground.checkpoints import CheckpointError
from playground.services import workdir
from playground.services.image_sampling import (
    COMPARISON,
    DEFAULT_GUIDANCE,
    MAX_GUIDANCE,
    MAX_IMAGES,
    PLAIN_SAMPLING,
    PROMPT_SAMPLING,
    SAMPLER_LABELS,
    SWEEP_SCALES,
    SamplerRun,
    check_prompt,
    check_settings,
    compare_samplers,
    get_checkpoint,
    grid_picture,
    guidance_markdown,
    guidance_sweep,
    prompt_suggestions,
    save_animation,
    stream_sampling,
)
from playground.services.jobs import JobBusy, JobRegistry
from playground.ui.common import check_seed, model_folder, model_label_for, problem, session_key, shared_model_choices

COMPARE_IMAGES = 4
SWEEP_IMAGES = 4
SWEEP_NOTES = {0.0: "unconditional", 1.0: "plain conditional"}
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]

JOBS = JobRegistry("sampling")

INTRO = """
A trained model starts from pure Gaussian noise x_T and removes a little of it at each step. Watch both pictures
as it runs: **x_t**, the samples as the model sees them at step t, and **x̂₀**, the model's current guess of the
finished images from them.
**DDPM** adds fresh noise at every step and needs many; **DDIM** is deterministic and needs far fewer;
**DPM-Solver++** takes second-order steps and looks finished after about 20.
A **prompt model** also takes words from emoji names ("red heart", "cat") and follows them with
*classifier-free guidance*: it predicts the noise with and without the prompt and pushes further along the
difference, by the guidance scale s.
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


def prompt_controls(path: str | None, sampler: str | None = None, steps: int | None = None,
                    request: gr.Request = None):
    """The prompt box and guidance slider: usable for a prompt model; disabled, with the reason, for the others.
    A sampler and steps still at the other kind's defaults move to this kind's (a prompt model: PROMPT_SAMPLING,
    ancestral DDPM, which follows prompts better; any other: PLAIN_SAMPLING, DPM-Solver++); ones a person chose
    stay."""
    checkpoint = _checkpoint(path, request) if path else None
    prompted = checkpoint is not None and checkpoint.vocabulary is not None
    wanted, other = (PROMPT_SAMPLING, PLAIN_SAMPLING) if prompted else (PLAIN_SAMPLING, PROMPT_SAMPLING)
    sampler_update, steps_update = gr.Radio(), gr.Slider()
    if checkpoint is not None and steps is not None and (sampler, int(steps)) == other:
        sampler_update = gr.Radio(value=wanted[0])
        steps_update = gr.Slider(value=min(wanted[1], checkpoint.schedule.num_timesteps))
    if prompted:
        return (gr.Textbox(interactive=True, placeholder="e.g. red heart, cat, crescent moon"),
                gr.Slider(interactive=True),
                f"This model knows {len(checkpoint.vocabulary)} words. " + prompt_suggestions(checkpoint, "") +
                f"\n\n*Prompt models start on DDPM, {PROMPT_SAMPLING[1]} steps: its fresh noise at every step lets "
                "guidance keep steering, so more pictures follow the words than with a deterministic sampler.*",
                sampler_update, steps_update)
    name = model_label_for(path, request) if path else "This model"
    return (gr.Textbox(interactive=False, value="", placeholder="this model takes no prompt"),
            gr.Slider(interactive=False),
            f"*{name} was trained without prompts, so it draws from everything it learned and the prompt box is off. "
            "Choose a prompt model (such as emoji32-prompts) to steer it with words.*",
            sampler_update, steps_update)


def suggest(path: str | None, prompt: str, request: gr.Request) -> str:
    if not path:
        return ""
    return prompt_suggestions(_checkpoint(path, request), prompt)


def _prompt(checkpoint, prompt: str | None, guidance) -> tuple[str, float]:
    try:
        return check_prompt(checkpoint, prompt, guidance)
    except ValueError as error:
        raise problem(str(error)) from None


def steps_range(path: str | None, steps: int, request: gr.Request):
    """Keep the steps slider within 1..T of the chosen checkpoint."""
    if not path:
        return gr.Slider()
    T = _checkpoint(path, request).schedule.num_timesteps
    return gr.Slider(maximum=T, value=min(int(steps), T))


def sample(path: str | None, sampler: str, steps: int, count: int, seed: int, eta: float, prompt: str = "",
           guidance: float = DEFAULT_GUIDANCE, request: gr.Request = None, progress=gr.Progress()):
    """Stream the reverse process: x_t and predicted-x_0 grids and the status; at the end, the animation. With a
    prompt, the guidance equation with each step's numbers."""
    checkpoint = _checkpoint(path, request)
    try:
        steps, count, eta = check_settings(checkpoint, sampler, steps, count, eta)
    except ValueError as error:
        raise problem(str(error)) from None
    prompt, guidance = _prompt(checkpoint, prompt, guidance)
    seed = check_seed(seed)
    key = session_key(request)
    frames = []
    equation = ""
    try:
        with JOBS.run(key) as job:
            for update in stream_sampling(str(checkpoint.path), sampler, steps, count, seed, eta, job.should_stop,
                                          prompt, guidance):
                frames += update.new_frames
                step = update.step
                if update.guidance is not None:
                    equation = guidance_markdown(update.guidance, step.t)
                progress((step.index + 1, step.num_steps), desc=f"{SAMPLER_LABELS[sampler]} · t = {step.t}",
                         unit="steps")
                if not (update.done or update.stopped):
                    status = f"Step {step.index + 1} of {steps} · t = {step.t} · {update.seconds:.1f} s"
                    yield (grid_picture(step.x_t), grid_picture(step.pred_x0), status, gr.skip(), gr.skip(),
                           equation)
    except JobBusy as error:
        raise problem(str(error)) from None
    followed = f" for “{prompt}” at guidance {guidance:g}" if prompt else ""
    folder = workdir.session_dir(key)
    files = save_animation(frames, folder / f"sampling-{sampler}-{steps}-seed{seed}-{uuid.uuid4().hex[:6]}")
    label = SAMPLER_LABELS[sampler]
    if update.stopped:
        status = (f"Stopped at step {step.index + 1} of {steps} (t = {step.t}) after {update.seconds:.1f} s: the "
                  f"samples x_t as they were and the model's guess x̂₀ from them. The animation so far "
                  f"has {len(frames)} frames.")
        yield (grid_picture(step.x_t), grid_picture(step.pred_x0), status, str(files[0]), [str(f) for f in files],
               equation)
        return
    status = (f"Done: {count} images{followed}, {label} {steps} steps in {update.seconds:.1f} s "
              f"({count / update.seconds:.1f} images/s). The animation has {len(frames)} frames.")
    yield (grid_picture(update.result), grid_picture(step.pred_x0), status, str(files[0]), [str(f) for f in files],
           equation)


def sweep(path: str | None, prompt: str, sampler: str, steps: int, seed: int, request: gr.Request,
          progress=gr.Progress()):
    """The same seed at guidance 0, 1, 2, 4 and 7: a gallery of (grid, "s = ...") pairs."""
    checkpoint = _checkpoint(path, request)
    if checkpoint.vocabulary is None:
        raise problem(f"{model_label_for(path, request)} was trained without prompts, so there is no guidance to "
                      "sweep; choose a prompt model.")
    if not (prompt or "").strip():
        raise problem("Type a prompt first: the sweep shows how the guidance scale changes what it draws.")
    try:
        steps, _, _ = check_settings(checkpoint, sampler, steps, SWEEP_IMAGES)
    except ValueError as error:
        raise problem(str(error)) from None
    prompt, _ = _prompt(checkpoint, prompt, DEFAULT_GUIDANCE)
    seed = check_seed(seed)
    gallery = []
    progress(0, desc=f"s = {SWEEP_SCALES[0]:g}")
    for scale, images in guidance_sweep(str(checkpoint.path), prompt, sampler, steps, SWEEP_IMAGES, seed):
        note = SWEEP_NOTES.get(scale)
        gallery.append((grid_picture(images, display=256), f"s = {scale:g}" + (f" ({note})" if note else "")))
        progress(len(gallery) / len(SWEEP_SCALES), desc=f"s = {scale:g}")
    return gallery


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
            sampler = gr.Radio([(label, name) for name, label in SAMPLER_LABELS.items()], value=PLAIN_SAMPLING[0],
                               label="Sampler", elem_id="sample-sampler")
            steps = gr.Slider(1, 1000, value=PLAIN_SAMPLING[1], step=1, label="Steps", elem_id="sample-steps")
            eta = gr.Slider(0, 1, value=0, step=0.05, label="η (DDIM only: 0 deterministic, 1 like DDPM)")
            count = gr.Slider(1, MAX_IMAGES, value=16, step=1, label="Images", elem_id="sample-count")
            prompt = gr.Textbox("", label="Prompt (words from emoji names)", max_lines=1, elem_id="sample-prompt",
                                interactive=False)
            prompt_note = gr.Markdown(elem_id="sample-prompt-note")
            guidance = gr.Slider(0, MAX_GUIDANCE, value=DEFAULT_GUIDANCE, step=0.5, interactive=False,
                                 label="Guidance scale s (0: ignore the prompt, 1: follow it plainly, more: closer)",
                                 elem_id="sample-guidance")
            with gr.Row():
                seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", elem_id="sample-seed", scale=3)
                dice = gr.Button("🎲 Random seed", scale=2)
            with gr.Row():
                go_button = gr.Button("Generate", variant="primary", elem_id="sample-generate")
                stop_button = gr.Button("Stop", elem_id="sample-stop")
        with gr.Column(scale=3):
            status = gr.Markdown("Press Generate.", elem_id="sample-status")
            equation = gr.Markdown("", latex_delimiters=LATEX, elem_id="sample-equation")
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
    with gr.Accordion("Guidance sweep: the same seed at s = 0, 1, 2, 4 and 7 (prompt models)", open=False):
        gr.Markdown("At s = 0 the prompt is ignored (the unconditional model); at 1 the model follows it as trained; "
                    "higher scales push along ε(c) − ε(∅): the pictures match the prompt more closely and vary less, "
                    "and very high scales overshoot into harsh colours.")
        sweep_button = gr.Button(f"Sweep ({SWEEP_IMAGES} images at each scale)", elem_id="sample-sweep")
        sweep_gallery = gr.Gallery(label="Guidance sweep", columns=len(SWEEP_SCALES), height="auto",
                                   elem_id="sample-sweep-gallery", elem_classes=["pixelated"])

    gr.on([demo.load, checkpoint.change], checkpoint_info, [checkpoint], [info], api_name="sample_info")
    gr.on([demo.load, checkpoint.change], prompt_controls, [checkpoint, sampler, steps],
          [prompt, guidance, prompt_note, sampler, steps],
          api_name="sample_prompt_controls", api_visibility="undocumented")
    prompt.input(suggest, [checkpoint, prompt], [prompt_note], api_name="sample_prompt_words", queue=False,
                 trigger_mode="always_last",
                 show_progress="hidden")
    # Not queued: the slider's range is right before a person (or a test) moves it.
    checkpoint.change(steps_range, [checkpoint, steps], [steps], api_name="sample_steps_range",
                      api_visibility="undocumented", queue=False)
    dice.click(lambda: random.randint(0, 2**31 - 1), None, [seed], api_name="sample_random_seed", queue=False)
    # Prepare a fresh job (clearing an old Stop) before the work queues, so a Stop pressed while it waits counts.
    go_button.click(prepare, None, None, queue=False, api_name="sample_prepare", api_visibility="private").then(
        sample, [checkpoint, sampler, steps, count, seed, eta, prompt, guidance],
        [x_t, pred_x0, status, animation, gif, equation],
        api_name="sample", concurrency_limit=1, concurrency_id="heavy", show_progress_on=[status])
    stop_button.click(stop, None, [status], api_name="sample_stop", queue=False)
    compare_button.click(compare, [checkpoint, seed], [*pictures, table], api_name="sample_compare",
                         concurrency_limit=1, concurrency_id="heavy")
    sweep_button.click(sweep, [checkpoint, prompt, sampler, steps, seed], [sweep_gallery], api_name="sample_sweep",
                       concurrency_limit=1, concurrency_id="heavy")
    return checkpoint
