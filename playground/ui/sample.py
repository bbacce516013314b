"""Sample tab: watch a model turn pure noise into images, step by step, with a choice of sampler."""

from __future__ import annotations

import random
import uuid
from types import SimpleNamespace

import gradio as gr

from playground import media
from playground.plots import fidelity_figure
from playground.services import image_sampling as sampling
from playground.services.checks import check_seed
from playground.services.distillation_views import STUDENT_STEPS, distilled, halving, measured_fidelity, teacher_of
from playground.services.jobs import JobBusy, JobRegistry
from playground.services.prompting import MAX_GUIDANCE, check_prompt, prompt_suggestions
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

COMPARE_IMAGES = 4
SWEEP_NOTES = {0.0: "unconditional", 1.0: "plain conditional"}
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
SAMPLER_CHOICES = [(label, name) for name, label in sampling.SAMPLER_LABELS.items()]

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


def guidance_markdown(parts: sampling.GuidanceParts, t: int) -> str:
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


def checkpoint_info(name: str | None, request: gr.Request) -> str:
    """A one-paragraph summary of the model."""
    if not name:
        return "No model found."
    return sampling.describe(checkpoint_for(name, request), model_label_for(name, request))


def prompt_controls(name: str | None, sampler: str | None = None, steps: int | None = None,
                    request: gr.Request = None):
    """The prompt box and guidance slider: usable for a prompt model; disabled, with the reason, for the others.
    A sampler and steps still at the other kind's defaults move to this kind's (a prompt model: PROMPT_SAMPLING,
    ancestral DDPM, which follows prompts better; any other: PLAIN_SAMPLING, DPM-Solver++); ones a person chose
    stay. A distilled student moves to its own default for a prompt (image_sampling.default_sampling: DDPM on the steps
    it was distilled for), and offers 1, 2, 4 and 8."""
    checkpoint = checkpoint_for(name, request) if name else None
    prompted = checkpoint is not None and checkpoint.vocabulary is not None
    wanted, other = ((sampling.PROMPT_SAMPLING, sampling.PLAIN_SAMPLING) if prompted else
                     (sampling.PLAIN_SAMPLING, sampling.PROMPT_SAMPLING))
    sampler_update, steps_update = gr.Radio(), gr.Slider()
    student = distilled(checkpoint) if checkpoint is not None else None
    if student:
        student_sampler, student_steps = sampling.default_sampling("a prompt", checkpoint)
        sampler_update, steps_update = gr.Radio(value=student_sampler), gr.Slider(value=student_steps)
    elif checkpoint is not None and steps is not None and (sampler, int(steps)) == other:
        sampler_update = gr.Radio(value=wanted[0])
        steps_update = gr.Slider(value=min(wanted[1], checkpoint.schedule.num_timesteps))
    label = model_label_for(name, request) if name else "This model"
    box, slider, note = prompt_widgets(checkpoint, label)
    if student:
        matched = (" Then distribution matching trained it on its own pictures to draw what its guided teacher "
                   "draws, not only to follow its path." if student.get("matched") else "")
        matched += (" Last, against a critic that learned the emoji from its pictures, it learned to draw sharper "
                    "ones without a prompt (a GAN)." if student.get("adversarial") else "")
        note += (f"\n\n*A distilled student: it takes in one DDIM step what its teacher took in two, and the guidance "
                 f"scale is an input, so each step is one network call.{matched} It was distilled for "
                 f"{student['student_steps']} steps; try 1, 2, 4 or 8. It starts on DDPM, whose fresh noise at every "
                 "step lets guidance steer again; without a prompt, DDIM's pictures cover more of the emoji.*")
    elif prompted:
        note += (f"\n\n*Prompt models start on DDPM, {sampling.PROMPT_SAMPLING[1]} steps: its fresh noise at every "
                 "step lets guidance keep steering, so more pictures follow the words than with a deterministic "
                 "sampler.*")
    own_steps = int(student["student_steps"]) if student else None
    return (box, slider, note, sampler_update, steps_update, gr.Radio(visible=bool(student), value=own_steps),
            gr.Slider(maximum=max(own_steps, 2), value=own_steps) if student else gr.Slider())


def halving_view(name: str | None, prompt: str, guidance: float, seed: int, step, request: gr.Request):
    """One of a distilled student's steps beside its teacher's two, from the same x_t, and the measured fidelity."""
    checkpoint = checkpoint_for(name, request)
    if distilled(checkpoint) is None:
        raise problem("Choose a distilled model (such as emoji32-prompts-distilled) to see a student's step beside "
                      "its teacher's two.")
    teacher = teacher_of(checkpoint)
    if teacher is None:
        raise problem(f"The teacher this student was distilled from ({distilled(checkpoint)['teacher']}) is not "
                      "installed here.")
    with toasts():
        prompt, guidance = check_prompt(checkpoint, prompt, guidance)
        seed = check_seed(seed)
        view = halving(checkpoint, teacher, prompt, guidance, seed, step=step)
    end = "the finished pictures" if view.t_next < 0 else f"t = {view.t_next}"
    gallery = [(media.grid_picture(view.x_t, 256), f"x_t at t = {view.t}"),
               (media.grid_picture(view.teacher_mid, 256), f"teacher, 1 step: t = {view.t_mid}"),
               (media.grid_picture(view.teacher_next, 256), f"teacher, 2 steps: {end}"),
               (media.grid_picture(view.student_next, 256), f"student, 1 step: {end}")]
    start = "pure noise" if view.step == 1 else "where the teacher's own DDIM steps from pure noise reached"
    note = (f"From the same x_t (t = {view.t}: {start}), the teacher (classifier-free guidance: two network calls "
            f"a step) takes two DDIM steps to {end} and the student one (one call). They land {view.distance:.3f} "
            f"apart (RMS), where the two steps moved {view.start_distance:.3f}. Distillation trained the student "
            f"round by round to make that gap small; its model card says what the training cost.")
    if distilled(checkpoint).get("matched"):
        note += (" Distribution matching then trained it to draw what its guided teacher draws rather than to land "
                 "where its steps land, which follows the prompt more often and widens this gap.")
    measured = measured_fidelity(checkpoint)
    return gallery, note, fidelity_figure(measured) if measured else None


def suggest(name: str | None, prompt: str, request: gr.Request) -> str:
    return prompt_suggestions(checkpoint_for(name, request), prompt) if name else ""


def steps_range(name: str | None, steps: int, request: gr.Request):
    """Keep the steps slider within 1..T of the chosen model."""
    if not name:
        return gr.Slider()
    T = checkpoint_for(name, request).schedule.num_timesteps
    return gr.Slider(maximum=T, value=min(int(steps), T))


def _ended(update: sampling.SamplingProgress, request: sampling.SampleRequest, frames: list, files: list) -> str:
    step = update.step
    if update.stopped:
        return (f"Stopped at step {step.index + 1} of {request.steps} (t = {step.t}) after {update.seconds:.1f} s: "
                f"the samples x_t as they were and the model's guess x̂₀ from them. The animation so far has "
                f"{len(frames)} frames.")
    followed = f" for “{request.prompt}” at guidance {request.guidance:g}" if request.prompt else ""
    decoder = (f" The decoder took {update.decode_seconds:.1f} s of it (the result and the {len(frames)} frames "
               "shown or kept)." if update.decode_seconds else "")
    return (f"Done: {request.count} images{followed}, {sampling.SAMPLER_LABELS[request.sampler]} {request.steps} "
            f"steps in {update.seconds:.1f} s ({request.count / update.seconds:.1f} images/s). The animation has "
            f"{len(frames)} frames.{decoder}")


def _x_t(update: sampling.SamplingProgress, show_latents: bool):
    """x_t as shown: the pictures, or for a latent model on request its latents' channels."""
    if show_latents and update.step.x_t.shape[1] != update.x_t.shape[1]:
        return media.channel_grid(update.step.x_t)
    return media.grid_picture(update.x_t)


def sample(name: str | None, sampler: str, steps: int, count: int, seed: int, eta: float, prompt: str = "",
           guidance: float = sampling.DEFAULT_GUIDANCE, show_latents: bool = False, request: gr.Request = None,
           progress=gr.Progress()):
    """Stream the reverse process: x_t and predicted-x_0 grids and the status; at the end, the animation. With a
    prompt, the guidance equation with each step's numbers. A latent model's x_t is decoded, or with
    ``show_latents`` shown as its channels."""
    with toasts():
        order = sampling.sample_request(name, session_folder(request), sampler, steps, count, seed, eta, prompt,
                                        guidance)
    frames, equation, update = [], "", None
    try:
        with JOBS.run(session_key(request)) as job:
            for update in sampling.stream_sampling(order, job.stop_requested):
                frames += update.new_frames
                step = update.step
                if update.guidance is not None:
                    equation = guidance_markdown(update.guidance, step.t)
                progress((step.index + 1, step.num_steps), desc=f"{sampling.SAMPLER_LABELS[sampler]} · t = {step.t}",
                         unit="steps")
                if not (update.done or update.stopped):
                    status = f"Step {step.index + 1} of {order.steps} · t = {step.t} · {update.seconds:.1f} s"
                    yield (_x_t(update, show_latents), media.grid_picture(update.pred_x0), status, gr.skip(),
                           gr.skip(), equation)
    except JobBusy as error:
        raise problem(str(error)) from None
    stem = session_folder(request) / f"sampling-{sampler}-{order.steps}-seed{order.seed}-{uuid.uuid4().hex[:6]}"
    files = [str(f) for f in media.save_animation(frames, stem.with_suffix(".gif"), stem.with_suffix(".mp4"))]
    shown = _x_t(update, show_latents) if update.stopped else media.grid_picture(update.result)
    yield (shown, media.grid_picture(update.pred_x0), _ended(update, order, frames, files), files[0], files, equation)


def sweep(name: str | None, prompt: str, sampler: str, steps: int, seed: int, request: gr.Request,
          progress=gr.Progress()):
    """The same seed at guidance 0, 1, 2, 4 and 7: a gallery of (grid, "s = ...") pairs."""
    with toasts():
        order = sampling.sweep_request(name, session_folder(request), prompt, sampler, steps, seed)
    gallery = []
    progress(0, desc=f"s = {sampling.SWEEP_SCALES[0]:g}")
    for scale, images in sampling.guidance_sweep(order):
        note = SWEEP_NOTES.get(scale)
        gallery.append((media.grid_picture(images, display=256), f"s = {scale:g}" + (f" ({note})" if note else "")))
        progress(len(gallery) / len(sampling.SWEEP_SCALES), desc=f"s = {scale:g}")
    return gallery


def prepare(request: gr.Request) -> None:
    JOBS.prepare(session_key(request))


def stop(request: gr.Request) -> str:
    if JOBS.request_stop(session_key(request)):
        return "Stopping after this step…"
    return "Nothing is sampling in this session."


def compare(name: str | None, seed: int, request: gr.Request, progress=gr.Progress()):
    """The same seed and starting noise through DDPM 1000, DDIM 50 and DPM-Solver++ 20, with their times."""
    folder = str(checkpoint_for(name, request).path)
    with toasts():
        seed = check_seed(seed)
    pictures, rows = [], []
    for item in sampling.compare_samplers(folder, seed, COMPARE_IMAGES):
        if isinstance(item, sampling.SamplerRun):
            pictures.append(media.grid_picture(item.images, display=256))
            rows.append([sampling.SAMPLER_LABELS[item.sampler], item.steps, round(item.seconds, 2),
                         round(item.steps / item.seconds, 1)])
        else:
            progress(item, desc="DDPM, DDIM, DPM-Solver++")
    return pictures[0], pictures[1], pictures[2], rows


def _controls() -> SimpleNamespace:
    """The left column: the model, the sampler and its settings, the prompt, the seed and the buttons."""
    choices = shared_model_choices()
    c = SimpleNamespace()
    c.checkpoint = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="Model",
                               elem_id="sample-checkpoint")
    c.info = gr.Markdown(elem_id="sample-info")
    c.sampler = gr.Radio(SAMPLER_CHOICES, value=sampling.PLAIN_SAMPLING[0], label="Sampler", elem_id="sample-sampler")
    c.steps = gr.Slider(1, 1000, value=sampling.PLAIN_SAMPLING[1], step=1, label="Steps", elem_id="sample-steps")
    c.student_steps = gr.Radio(list(STUDENT_STEPS), label="A distilled student's steps", visible=False,
                               elem_id="sample-student-steps")
    c.eta = gr.Slider(0, 1, value=0, step=0.05, label="η (DDIM only: 0 deterministic, 1 like DDPM)")
    c.count = gr.Slider(1, sampling.MAX_IMAGES, value=16, step=1, label="Images", elem_id="sample-count")
    c.prompt = gr.Textbox("", label="Prompt (words from emoji names)", max_lines=1, elem_id="sample-prompt",
                          interactive=False)
    c.prompt_note = gr.Markdown(elem_id="sample-prompt-note")
    c.guidance = gr.Slider(0, MAX_GUIDANCE, value=sampling.DEFAULT_GUIDANCE, step=0.5, interactive=False,
                           label="Guidance scale s (0: ignore the prompt, 1: follow it plainly, more: closer)",
                           elem_id="sample-guidance")
    c.show_latents = gr.Checkbox(False, label="Latent models: show x_t as its latent channels, not decoded",
                                 elem_id="sample-show-latents")
    with gr.Row():
        c.seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", elem_id="sample-seed", scale=3)
        c.dice = gr.Button("🎲 Random seed", scale=2)
    with gr.Row():
        c.go = gr.Button("Generate", variant="primary", elem_id="sample-generate")
        c.stop = gr.Button("Stop", elem_id="sample-stop")
    return c


def _pictures(c: SimpleNamespace) -> None:
    """The right column: the status, the guidance equation, x_t and x̂₀, and the animation."""
    c.status = gr.Markdown("Press Generate.", elem_id="sample-status")
    c.equation = gr.Markdown("", latex_delimiters=LATEX, elem_id="sample-equation")
    with gr.Row(elem_classes=["side-by-side"]):
        c.x_t = gr.Image(label="x_t", format="png", interactive=False, elem_classes=["pixelated"],
                         elem_id="sample-xt", min_width=140)
        c.pred_x0 = gr.Image(label="x̂₀ (predicted)", format="png", interactive=False, elem_classes=["pixelated"],
                             elem_id="sample-x0", min_width=140)
    with gr.Accordion("The animation (when it ends or you stop it)", open=True), gr.Row():
        c.animation = gr.Image(label="Animation: x_t | x̂₀", interactive=False, elem_id="sample-animation",
                               height=220, min_width=200)
        c.gif = gr.File(label="Download: GIF and MP4 (about 60 frames)", file_count="multiple", interactive=False,
                        elem_id="sample-gif", min_width=200)


def _comparisons(c: SimpleNamespace) -> None:
    """The two accordions below: the sampler comparison and the guidance sweep."""
    with gr.Accordion("Compare samplers: the same noise through DDPM 1000, DDIM 50 and DPM-Solver++ 20", open=False):
        c.compare = gr.Button(f"Compare ({COMPARE_IMAGES} images; DDPM 1000 takes a while on a CPU)",
                              elem_id="sample-compare")
        with gr.Row():
            c.compared = [gr.Image(label=f"{sampling.SAMPLER_LABELS[name]} {n} steps", format="png",
                                   interactive=False, elem_classes=["pixelated"]) for name, n in sampling.COMPARISON]
        c.table = gr.Dataframe(headers=["sampler", "steps", "seconds", "steps/s"], interactive=False)
    with gr.Accordion("Guidance sweep: the same seed at s = 0, 1, 2, 4 and 7 (prompt models)", open=False):
        gr.Markdown("At s = 0 the prompt is ignored (the unconditional model); at 1 the model follows it as trained; "
                    "higher scales push along ε(c) − ε(∅): the pictures match the prompt more closely and vary less, "
                    "and very high scales overshoot into harsh colours.")
        c.sweep = gr.Button(f"Sweep ({sampling.SWEEP_IMAGES} images at each scale)", elem_id="sample-sweep")
        c.sweep_gallery = gr.Gallery(label="Guidance sweep", columns=len(sampling.SWEEP_SCALES), height="auto",
                                     elem_id="sample-sweep-gallery", elem_classes=["pixelated"])
    with gr.Accordion("Distillation: a student's one step beside its teacher's two (distilled models)", open=False):
        c.halving_step = gr.Slider(1, 4, value=4, step=1, elem_id="sample-halving-step",
                                   label="Which of the student's steps (1: from pure noise; the last: to the "
                                         "finished pictures)")
        c.halving = gr.Button("Show one step of the student and two of its teacher", elem_id="sample-halving")
        c.halving_gallery = gr.Gallery(label="The same x_t, one student step and two teacher steps", columns=4,
                                       height="auto", elem_id="sample-halving-gallery", elem_classes=["pixelated"])
        c.halving_note = gr.Markdown(elem_id="sample-halving-note")
        c.fidelity = gr.Plot(label="Steps against prompt fidelity", elem_id="sample-fidelity")


def _wire(demo: gr.Blocks, c: SimpleNamespace) -> None:
    gr.on([demo.load, c.checkpoint.change], checkpoint_info, [c.checkpoint], [c.info], api_name="sample_info")
    gr.on([demo.load, c.checkpoint.change], prompt_controls, [c.checkpoint, c.sampler, c.steps],
          [c.prompt, c.guidance, c.prompt_note, c.sampler, c.steps, c.student_steps, c.halving_step],
          api_name="sample_prompt_controls", api_visibility="undocumented")
    c.student_steps.input(lambda n: gr.Slider(value=n), [c.student_steps], [c.steps], api_name="sample_student_steps",
                          api_visibility="private", queue=False)
    c.halving.click(halving_view, [c.checkpoint, c.prompt, c.guidance, c.seed, c.halving_step],
                    [c.halving_gallery, c.halving_note, c.fidelity], api_name="sample_halving", concurrency_limit=1,
                    concurrency_id="heavy")
    c.prompt.input(suggest, [c.checkpoint, c.prompt], [c.prompt_note], api_name="sample_prompt_words", queue=False,
                   trigger_mode="always_last", show_progress="hidden")
    # Not queued: the slider's range is right before a person (or a test) moves it.
    c.checkpoint.change(steps_range, [c.checkpoint, c.steps], [c.steps], api_name="sample_steps_range",
                        api_visibility="undocumented", queue=False)
    c.dice.click(lambda: random.randint(0, 2**31 - 1), None, [c.seed], api_name="sample_random_seed", queue=False)
    # Prepare a fresh job (clearing an old Stop) before the work queues, so a Stop pressed while it waits counts.
    c.go.click(prepare, None, None, queue=False, api_name="sample_prepare", api_visibility="private").then(
        sample, [c.checkpoint, c.sampler, c.steps, c.count, c.seed, c.eta, c.prompt, c.guidance, c.show_latents],
        [c.x_t, c.pred_x0, c.status, c.animation, c.gif, c.equation],
        api_name="sample", concurrency_limit=1, concurrency_id="heavy", show_progress_on=[c.status])
    c.stop.click(stop, None, [c.status], api_name="sample_stop", queue=False)
    c.compare.click(compare, [c.checkpoint, c.seed], [*c.compared, c.table], api_name="sample_compare",
                    concurrency_limit=1, concurrency_id="heavy")
    c.sweep.click(sweep, [c.checkpoint, c.prompt, c.sampler, c.steps, c.seed], [c.sweep_gallery],
                  api_name="sample_sweep", concurrency_limit=1, concurrency_id="heavy")


def build(demo: gr.Blocks) -> gr.Dropdown:
    """The tab; returns its model dropdown, which the Train tab updates with the session's own models."""
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            c = _controls()
        with gr.Column(scale=3):
            _pictures(c)
    _comparisons(c)
    _wire(demo, c)
    return c.checkpoint
