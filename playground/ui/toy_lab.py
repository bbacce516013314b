"""Toy tab: the whole diffusion story on a 2-D point cloud: forward, train in seconds, sample, measure."""

from __future__ import annotations

import time
from types import SimpleNamespace

import gradio as gr

from playground.data.points import TOY_DATASETS, gmm_parameters
from playground.diffusion import BETA_SCHEDULES
from playground.diffusion.schedules import get_schedule
from playground.plots import (
    frame_of,
    loss_figure,
    score_error_figure,
    score_field_figure,
    toy_forward_figure,
    toy_reverse_figure,
)
from playground.services import toy_lab
from playground.services.checks import check_seed, check_timestep
from playground.services.toy_lab import (
    DEFAULT_STEPS,
    DRAWING,
    MAX_CORRECTOR_STEPS,
    NUM_REFERENCE,
    ToyData,
    check_toy_settings,
    compare_toy_samplers,
    default_settings,
    forward_frames,
    gaussian_quality,
    quality,
    sample_toy,
    score_error_by_t,
    score_field,
)
from playground.services.toy_training import (
    MAX_STEPS,
    MIN_STEPS,
    TOY_TRAINING,
    ToyModel,
    toy_config,
    train_toy_in_chunks,
)
from playground.ui.common import problem, toasts

DATASET_LABELS = {"swiss_roll": "Swiss roll", "moons": "Two moons", "s_curve": "S-curve",
                  "gmm": "Ring of 8 Gaussians", DRAWING: "Your drawing"}
TOY_SAMPLER_LABELS = {"ddpm": "DDPM", "ddim": "DDIM", "dpmpp": "DPM-Solver++(2M)", "langevin": "Annealed Langevin",
                      "pc": "Predictor-corrector"}
SPACING_LABELS = {"logsnr": "even in log-SNR, the last at t = 0",
                  "linspace": "even in t, as image models do (the last at t = 50 for 20 steps)"}
NO_MODEL = "Train a model first: press Train (about 10 seconds)."

INTRO = """
Diffusion is easiest to see on points in the plane. Pick a cloud, watch it dissolve into a Gaussian
(**forward**), train a small MLP to predict v = √ᾱ·ε − √(1−ᾱ)·x₀ (**train**, about 10 s on a laptop), then run a
sampler from pure noise and watch the points flow back (**reverse**). Quality is the *narrow-kernel MMD* to fresh
true points, as a share of a Gaussian fitted to the data's (0 is a perfect copy, 1 no better than the Gaussian): it
sees a band drawn too thin and points off the data, which the energy distance beside it hardly does. The **score**
section shows what the network has learned as a field of arrows, and Langevin dynamics samples with it alone.
"""


def _describe(data: ToyData) -> str:
    return f"{DATASET_LABELS.get(data.key.dataset, data.key.dataset)} with the {data.key.schedule} schedule"


def show_data(dataset: str, drawing: str | None, schedule_name: str, model: ToyModel | None):
    """The cloud's forward process animated over t (t = 0 is the data); a model of other data is marked stale and
    its results are cleared."""
    with toasts():
        data = toy_lab.toy_data(dataset, drawing, schedule_name)
    schedule = get_schedule(schedule_name, TOY_TRAINING.num_timesteps)
    figure = toy_forward_figure(forward_frames(data.points[:1500], schedule), schedule)
    if model is None or model.data.key == data.key:
        return figure, data, gr.skip(), gr.skip(), gr.skip(), gr.skip()
    status = (f"The model was trained on {_describe(model.data)}; this is {_describe(data)}. "
              "Press **Train** to learn it (about 10 s).")
    return figure, data, status, None, "", None


def toy_train(data: ToyData | None, schedule_name: str, steps: int, progress=gr.Progress()):
    """Train a fresh model on the cloud; stream the loss curve. Stop keeps the latest weights."""
    if data is None:
        raise problem("Pick a dataset first.", title="One step first")
    with toasts():
        config = toy_config(steps, schedule_name)
    started = time.perf_counter()
    for state in train_toy_in_chunks(data.points, config):
        model = ToyModel(state, config, data)
        progress(state.step / config.steps, desc=f"step {state.step}/{config.steps}")
        recent = state.losses[-100:]
        status = (f"Step {state.step} of {config.steps} · loss {sum(recent) / len(recent):.3f} · "
                  f"{time.perf_counter() - started:.1f} s")
        yield loss_figure(state.losses), status, model
    yield (loss_figure(state.losses), f"{status} · done: trained on {_describe(data)}. Now press Sample. (The "
           "loss stays near 1 by nature: from pure noise no model can tell v ≈ −x₀, so only what lies below 1 is "
           "learned structure.)", model)


def _check_model(model: ToyModel | None, data: ToyData | None) -> ToyModel:
    """The session's model, if it was trained on the data and schedule now chosen."""
    if model is None:
        raise problem(NO_MODEL, title="One step first")
    if data is not None and model.data.key != data.key:
        raise problem(f"The model was trained on {_describe(model.data)}, not on {_describe(data)}: press Train "
                      "first (about 10 s).", title="One step first")
    return model


def _verdict(score, count: int, seconds: float, calls: int) -> str:
    text = (f"**Narrow-kernel MMD: {score.mmd_ratio:.3f} of a fitted Gaussian's** (MMD² {score.mmd:.5f} against "
            f"{score.gaussian_mmd:.5f}; Gaussian kernel of bandwidth {score.bandwidth:.2f}, a tenth of the data's "
            f"spread; 0 is a perfect copy). Energy distance {score.energy_distance:.4f}. "
            f"{calls:,} network calls per point, {seconds:.2f} s.")
    if score.strays:
        text += (f" **{score.strays} of {count:,} points are off the data** (farther than half its spread from every "
                 "true point): deterministic samplers leave a few where the flow splits, between two arms or modes; "
                 "the noise of DDPM, Langevin and predictor-corrector shakes them off.")
    else:
        text += " No point is off the data."
    return text


def toy_sample(model: ToyModel | None, data: ToyData | None, sampler: str, steps: int, seed: int,
               spacing: str = "logsnr", step_size: float = 0.1, corrector_steps: int = 5, predictor: str = "ddim",
               snr: float = 0.16):
    """Sample 2,000 points from pure noise; animate, draw a few paths (and the ODE's beside an SDE's), score them."""
    model = _check_model(model, data)
    config = model.config
    with toasts():
        steps, settings = check_toy_settings(sampler, steps, config.num_timesteps, spacing, step_size,
                                             corrector_steps, predictor, snr)
        seed = check_seed(seed)
    result = sample_toy(model.network, config, sampler, steps, n=NUM_REFERENCE, seed=seed, settings=settings)
    other, other_label = None, ""
    if sampler in ("ddpm", "langevin", "pc"):  # a stochastic sampler: the probability-flow ODE's paths beside it
        other = sample_toy(model.network, config, "ddim", 50, n=NUM_REFERENCE, seed=seed, max_frames=1).trajectories
        other_label = "the same points under the probability-flow ODE (DDIM 50)"
    score = quality(result.points, model.data.reference, model.data.points)
    title = f"{TOY_SAMPLER_LABELS[sampler]} · {steps} {'levels' if sampler == 'langevin' else 'steps'}"
    figure = toy_reverse_figure(result.frames, result.trajectories, title, view=frame_of(model.data.reference),
                                other_paths=other, other_label=other_label)
    return figure, _verdict(score, len(result.points), result.seconds, result.model_calls)


def _comparison_label(score) -> str:
    label = TOY_SAMPLER_LABELS[score.sampler].removesuffix("(2M)")
    settings = score.settings
    if score.sampler in ("ddim", "dpmpp"):
        return label + (" · t-spaced (image models')" if settings.spacing != "logsnr" else " · log-SNR")
    if score.sampler == "pc":
        return label + f" · {settings.predictor.upper()} + {settings.corrector_steps} Langevin"
    if score.sampler == "langevin":
        return label + f" · {settings.corrector_steps} per level"
    return label


def toy_compare(model: ToyModel | None, data: ToyData | None, seed: int):
    """Every sampler from the same noise, with quality, stray points, network calls and time, and the Gaussian bar."""
    model = _check_model(model, data)
    with toasts():
        seed = check_seed(seed)
    scores = compare_toy_samplers(model.network, model.config, model.data.reference, model.data.points,
                                  n=NUM_REFERENCE, seed=seed)
    rows = [[_comparison_label(s), s.steps, s.model_calls, round(s.quality.mmd_ratio, 3), round(s.energy_distance, 4),
             s.quality.strays, round(s.seconds, 2)] for s in scores]
    gaussian = gaussian_quality(model.data.reference, model.data.points)
    rows.append(["Gaussian fitted to the data", "-", "-", 1.0, round(gaussian.energy_distance, 4), gaussian.strays,
                 "-"])
    return rows


SCORE_INTRO = """The score s(x, t) = ∇ log p_t(x) points from any place towards where the noised data is denser.
A network that predicts the noise gives it as −ε̂(x, t)/σ_t (Song et al. 2021). Train, then slide t: near t = 999
the field is a gentle pull to the centre; as t falls it sharpens onto the data. Langevin dynamics samples with
nothing else."""
LANGEVIN_DEFAULT = default_settings("langevin")


def sampler_defaults(sampler: str):
    """A sampler's own number of steps and corrector steps, when it is chosen."""
    return DEFAULT_STEPS.get(sampler, 20), default_settings(sampler).corrector_steps


def toy_score(model: ToyModel | None, data: ToyData | None, t: int):
    """The learned score field at t over the data noised to t; for the Gaussian mixture, the true field beside it
    and the error between them at every t."""
    model = _check_model(model, data)
    with toasts():
        t = check_timestep(t, model.config.num_timesteps)
    mixture = gmm_parameters() if model.data.key.dataset == "gmm" else None
    field = score_field(model.network, model.config, t, mixture=mixture, points=model.data.reference[:1500])
    figure = score_field_figure(field.grid, field.learned, field.true, field.noised, t, field.sigma)
    if mixture is None:
        note = (f"At t = {t} the arrows point from every place towards where the noised data is denser; slide t down "
                "and the field sharpens onto the data. The Ring of 8 Gaussians also shows the true score beside it.")
        return figure, None, note
    points = model.data.points[:2000]
    errors = score_error_by_t(model.network, model.config, points, mixture)
    at_t = dict(score_error_by_t(model.network, model.config, points, mixture, timesteps=[t]))[t]
    note = (f"At t = {t} the learned field's squared error is {at_t:.1%} of the true field's size where the noised "
            "data lives. For the mixture, p_t is a mixture of Gaussians too (each mode shrunk by √ᾱ_t and widened by "
            "the noise), so ∇ log p_t has a closed form.")
    return figure, score_error_figure(errors, t), note


def _data_and_training(c: SimpleNamespace) -> None:
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            c.dataset = gr.Dropdown([(DATASET_LABELS[k], k) for k in [*TOY_DATASETS, DRAWING]], value="swiss_roll",
                                    label="Dataset", elem_id="toy-dataset")
            c.drawing = gr.File(label="Your drawing (black shapes on white), for 'your drawing'", type="filepath",
                                elem_id="toy-drawing")
            c.schedule = gr.Dropdown(list(BETA_SCHEDULES), value=TOY_TRAINING.schedule,
                                     label=f"Schedule (T = {TOY_TRAINING.num_timesteps})")
        with gr.Column(scale=3):
            c.forward = gr.Plot(label=f"Forward: ▶ Play noises it, t = 0 → {TOY_TRAINING.num_timesteps - 1}",
                                elem_id="toy-forward")
    gr.Markdown("### Train")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            c.train_steps = gr.Slider(MIN_STEPS, MAX_STEPS, value=TOY_TRAINING.steps, step=100,
                                      label="Training steps")
            with gr.Row():
                c.train = gr.Button("Train", variant="primary", elem_id="toy-train")
                c.stop = gr.Button("Stop", elem_id="toy-stop")
            c.status = gr.Markdown("Not trained yet.", elem_id="toy-status")
        with gr.Column(scale=3):
            c.loss = gr.Plot(label="Loss", elem_id="toy-loss")


def _sampler_settings(c: SimpleNamespace) -> None:
    with gr.Accordion("Sampler settings", open=False, elem_id="toy-settings"):
        c.spacing = gr.Radio([(label, key) for key, label in SPACING_LABELS.items()], value="logsnr",
                             label="DDIM, DPM-Solver++ and the predictor: where the steps go")
        c.step_size = gr.Slider(0.01, 0.5, value=LANGEVIN_DEFAULT.step_size, step=0.01,
                                label="Langevin step size ε (each step is ε·σ_t²)")
        c.corrector_steps = gr.Slider(0, min(20, MAX_CORRECTOR_STEPS), value=LANGEVIN_DEFAULT.corrector_steps, step=1,
                                      label="Langevin steps per level / corrector steps (predictor-corrector)",
                                      elem_id="toy-corrector-steps")
        c.predictor = gr.Radio([("DDIM (the ODE)", "ddim"), ("DDPM", "ddpm")], value="ddim",
                               label="Predictor-corrector: the predictor")
        c.snr = gr.Slider(0.01, 0.5, value=LANGEVIN_DEFAULT.snr, step=0.01,
                          label="Predictor-corrector: the corrector's SNR r")


def _reverse_and_score(c: SimpleNamespace) -> None:
    gr.Markdown("### Reverse: sample from pure noise")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            c.sampler = gr.Radio([(label, key) for key, label in TOY_SAMPLER_LABELS.items()], value="dpmpp",
                                 label="Sampler", elem_id="toy-sampler")
            c.sample_steps = gr.Slider(1, TOY_TRAINING.num_timesteps, value=DEFAULT_STEPS["dpmpp"], step=1,
                                       label="Sampling steps (Langevin: noise levels)", elem_id="toy-steps")
            c.seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
            _sampler_settings(c)
            c.sample = gr.Button("Sample", variant="primary", elem_id="toy-sample")
            c.compare = gr.Button("Compare every sampler (same noise)", elem_id="toy-compare")
        with gr.Column(scale=3):
            c.reverse = gr.Plot(label="Reverse: the result; press Play to watch it come out of noise",
                                elem_id="toy-reverse")
            c.verdict = gr.Markdown(elem_id="toy-verdict")
            c.table = gr.Dataframe(headers=["sampler", "steps", "calls", "MMD ÷ Gaussian's", "energy dist.",
                                            "off the data", "s"], interactive=False, wrap=True,
                                   column_widths=["170px", "64px", "64px", "90px", "90px", "70px", "56px"],
                                   label="Samplers compared (same noise; MMD: 0 is a perfect copy, 1 the Gaussian "
                                         "bar)", elem_id="toy-table")
    gr.Markdown("### The score: what the network learned, as arrows")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            c.score_t = gr.Slider(0, TOY_TRAINING.num_timesteps - 1, value=100, step=1, label="t",
                                  elem_id="toy-score-t")
            c.score = gr.Button("Show the score", elem_id="toy-score")
            c.score_note = gr.Markdown(SCORE_INTRO, elem_id="toy-score-note")
        with gr.Column(scale=3):
            c.score_plot = gr.Plot(label="Score field", elem_id="toy-score-field")
            c.score_errors = gr.Plot(label="Error per t (the Ring of 8 Gaussians only)", elem_id="toy-score-error")


def _wire(demo: gr.Blocks, c: SimpleNamespace) -> None:
    gr.on([demo.load, c.dataset.change, c.drawing.change, c.schedule.change], show_data,
          [c.dataset, c.drawing, c.schedule, c.model], [c.forward, c.data, c.status, c.reverse, c.verdict, c.table],
          api_name="toy_data", trigger_mode="always_last")
    # Dropping a drawing means "use it": switch the dataset to it.
    c.drawing.upload(lambda: DRAWING, None, [c.dataset], api_name="toy_use_drawing", api_visibility="undocumented",
                     queue=False)
    training = c.train.click(toy_train, [c.data, c.schedule, c.train_steps], [c.loss, c.status, c.model],
                             api_name="toy_train", concurrency_limit=2)
    c.stop.click(lambda: "Stopped: the model keeps the weights it had.", None, [c.status], cancels=[training],
                 api_name="toy_stop", queue=False)
    c.sampler.change(sampler_defaults, [c.sampler], [c.sample_steps, c.corrector_steps],
                     api_name="toy_sampler_defaults", api_visibility="private", queue=False)
    c.sample.click(toy_sample, [c.model, c.data, c.sampler, c.sample_steps, c.seed, c.spacing, c.step_size,
                                c.corrector_steps, c.predictor, c.snr], [c.reverse, c.verdict],
                   api_name="toy_sample", concurrency_limit=2)
    gr.on([c.score.click, c.score_t.release], toy_score, [c.model, c.data, c.score_t],
          [c.score_plot, c.score_errors, c.score_note], api_name="toy_score", concurrency_limit=2)
    c.compare.click(toy_compare, [c.model, c.data, c.seed], [c.table], api_name="toy_compare", concurrency_limit=2)


def build(demo: gr.Blocks) -> None:
    c = SimpleNamespace(data=gr.State(None), model=gr.State(None))
    gr.Markdown(INTRO)
    _data_and_training(c)
    _reverse_and_score(c)
    _wire(demo, c)
