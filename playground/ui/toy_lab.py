"""Toy tab: the whole diffusion story on a 2-D point cloud: forward, train in seconds, sample, measure."""

from __future__ import annotations

import time

import gradio as gr

from playground.data.images import ImageError
from playground.data.points import TOY_DATASETS, gmm_parameters, points_from_drawing, toy_points
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
from playground.services.toy_lab import (
    DEFAULT_STEPS,
    TOY_SAMPLERS,
    SamplerSettings,
    compare_samplers,
    default_settings,
    forward_frames,
    gaussian_quality,
    quality,
    sample_toy,
    score_error_by_t,
    score_field,
)
from playground.services.toy_training import TOY_TRAINING, toy_config, train_toy_in_chunks
from playground.ui.common import bad_file, problem

DRAWING = "your drawing"
DATASET_LABELS = {"swiss_roll": "Swiss roll", "moons": "Two moons", "s_curve": "S-curve",
                  "gmm": "Ring of 8 Gaussians", DRAWING: "Your drawing"}
SAMPLER_LABELS = {"ddpm": "DDPM", "ddim": "DDIM", "dpmpp": "DPM-Solver++(2M)", "langevin": "Annealed Langevin",
                  "pc": "Predictor-corrector"}
SPACING_LABELS = {"logsnr": "even in log-SNR, the last at t = 0",
                  "linspace": "even in t, as image models do (the last at t = 50 for 20 steps)"}
NUM_POINTS, NUM_REFERENCE = 4000, 2000
NO_MODEL = "Train a model first: press Train (about 10 seconds)."

INTRO = """
Diffusion is easiest to see on points in the plane. Pick a cloud, watch it dissolve into a Gaussian
(**forward**), train a small MLP to predict v = √ᾱ·ε − √(1−ᾱ)·x₀ (**train**, about 10 s on a laptop), then run a
sampler from pure noise and watch the points flow back (**reverse**). Quality is the *narrow-kernel MMD* to fresh
true points, as a share of a Gaussian fitted to the data's (0 is a perfect copy, 1 no better than the Gaussian): it
sees a band drawn too thin and points off the data, which the energy distance beside it hardly does. The **score**
section shows what the network has learned as a field of arrows, and Langevin dynamics samples with it alone.
"""


def _points(dataset: str, drawing: str | None, n: int, seed: int):
    if dataset == DRAWING:
        if not drawing:
            raise problem("Upload a black-on-white drawing or silhouette first, or pick a built-in dataset.")
        try:
            return points_from_drawing(drawing, n, seed=seed)
        except ImageError as error:
            raise bad_file(str(error)) from None
        except ValueError as error:
            raise problem(str(error)) from None
    if dataset not in TOY_DATASETS:
        raise problem(f"Unknown dataset {dataset!r}; choose one of {', '.join(TOY_DATASETS)} or {DRAWING!r}.")
    return toy_points(dataset, n, seed=seed)


def _data_key(dataset: str, drawing: str | None, schedule_name: str) -> str:
    """What a model is trained for: the data (a drawing is a new upload each time) and the schedule."""
    return f"{dataset}|{drawing if dataset == DRAWING else ''}|{schedule_name}"


def _describe(key: str) -> str:
    dataset, _, schedule_name = key.split("|")
    return f"{DATASET_LABELS.get(dataset, dataset)} with the {schedule_name} schedule"


def toy_data(dataset: str, drawing: str | None, schedule_name: str, model: dict | None):
    """The cloud's forward process animated over t (t = 0 is the data); a model of other data is marked stale and
    its results are cleared."""
    if schedule_name not in BETA_SCHEDULES:
        raise problem(f"Unknown schedule {schedule_name!r}.")
    points = _points(dataset, drawing, NUM_POINTS, seed=0)
    schedule = get_schedule(schedule_name, TOY_TRAINING.num_timesteps)
    key = _data_key(dataset, drawing, schedule_name)
    data = {"name": dataset, "key": key, "points": points,
            "reference": _points(dataset, drawing, NUM_REFERENCE, seed=1)}
    figure = toy_forward_figure(forward_frames(points[:1500], schedule), schedule)
    if model is None or model.get("key") == key:
        return figure, data, gr.skip(), gr.skip(), gr.skip(), gr.skip()
    status = (f"The model was trained on {_describe(model['key'])}; this is {_describe(key)}. "
              "Press **Train** to learn it (about 10 s).")
    return figure, data, status, None, "", None


def toy_train(data: dict | None, schedule_name: str, steps: int, progress=gr.Progress()):
    """Train a fresh model on the cloud; stream the loss curve. Stop keeps the latest weights."""
    if not data:
        raise problem("Pick a dataset first.", title="One step first")
    try:
        config = toy_config(steps, schedule_name)
    except ValueError as error:
        raise problem(str(error)) from None
    started = time.perf_counter()
    for state in train_toy_in_chunks(data["points"], config):
        model = {"state": state, "config": config, "key": data["key"], "reference": data["reference"],
                 "points": data["points"]}
        progress(state.step / config.steps, desc=f"step {state.step}/{config.steps}")
        recent = state.losses[-100:]
        status = (f"Step {state.step} of {config.steps} · loss {sum(recent) / len(recent):.3f} · "
                  f"{time.perf_counter() - started:.1f} s")
        yield loss_figure(state.losses), status, model
    yield (loss_figure(state.losses), f"{status} · done: trained on {_describe(data['key'])}. Now press Sample. (The "
           "loss stays near 1 by nature: from pure noise no model can tell v ≈ −x₀, so only what lies below 1 is "
           "learned structure.)", model)


def _check_model(model: dict | None, data: dict | None) -> dict:
    """The session's model, if it was trained on the data and schedule now chosen."""
    if not model:
        raise problem(NO_MODEL, title="One step first")
    if data and model.get("key") != data.get("key"):
        raise problem(f"The model was trained on {_describe(model['key'])}, not on {_describe(data['key'])}: press "
                      "Train first (about 10 s).", title="One step first")
    return model


def _settings(sampler: str, spacing: str, step_size, corrector_steps, predictor: str, snr) -> SamplerSettings:
    try:
        step_size, corrector_steps, snr = float(step_size), int(corrector_steps), float(snr)
    except (TypeError, ValueError):
        raise problem("The step size, corrector steps and SNR must be numbers.") from None
    if spacing not in SPACING_LABELS or predictor not in ("ddim", "ddpm"):
        raise problem("Pick a spacing and a predictor from the lists.")
    if not 0 < step_size <= 1 or not 0 < snr <= 1 or not 0 <= corrector_steps <= 50:
        raise problem("The step size and SNR must be above 0 and at most 1, corrector steps between 0 and 50.")
    if sampler == "langevin" and corrector_steps < 1:
        raise problem("Langevin needs at least one step per noise level.")
    return SamplerSettings(spacing=spacing, step_size=step_size, corrector_steps=corrector_steps, predictor=predictor,
                           snr=snr)


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


def toy_sample(model: dict | None, data: dict | None, sampler: str, steps: int, seed: int, spacing: str = "logsnr",
               step_size: float = 0.1, corrector_steps: int = 5, predictor: str = "ddim", snr: float = 0.16):
    """Sample 2,000 points from pure noise; animate, draw a few paths (and the ODE's beside an SDE's), score them."""
    model = _check_model(model, data)
    if sampler not in TOY_SAMPLERS:
        raise problem(f"Unknown sampler {sampler!r}; choose one of {', '.join(TOY_SAMPLERS)}.")
    config = model["config"]
    try:
        steps = int(steps)
    except (TypeError, ValueError):
        raise problem("Steps must be a whole number.") from None
    if not 1 <= steps <= config.num_timesteps:
        raise problem(f"Steps must be between 1 and {config.num_timesteps}.")
    settings = _settings(sampler, spacing, step_size, corrector_steps, predictor, snr)
    network = model["state"].ema.model
    result = sample_toy(network, config, sampler, steps, n=NUM_REFERENCE, seed=int(seed), settings=settings)
    other, other_label = None, ""
    if sampler in ("ddpm", "langevin", "pc"):  # a stochastic sampler: the probability-flow ODE's paths beside it
        other = sample_toy(network, config, "ddim", 50, n=NUM_REFERENCE, seed=int(seed), max_frames=1).trajectories
        other_label = "the same points under the probability-flow ODE (DDIM 50)"
    score = quality(result.points, model["reference"], model["points"])
    title = f"{SAMPLER_LABELS[sampler]} · {steps} {'levels' if sampler == 'langevin' else 'steps'}"
    view = frame_of(model["reference"])
    figure = toy_reverse_figure(result.frames, result.trajectories, title, view=view, other_paths=other,
                                other_label=other_label)
    return figure, _verdict(score, len(result.points), result.seconds, result.model_calls)


def toy_compare(model: dict | None, data: dict | None, seed: int):
    """Every sampler from the same noise, with quality, stray points, network calls and time, and the Gaussian bar."""
    model = _check_model(model, data)
    scores = compare_samplers(model["state"].ema.model, model["config"], model["reference"], model["points"],
                              n=NUM_REFERENCE, seed=int(seed))
    rows = []
    for s in scores:
        label = SAMPLER_LABELS[s.sampler].removesuffix("(2M)")
        if s.sampler in ("ddim", "dpmpp"):
            label += " · t-spaced (image models')" if s.settings.spacing != "logsnr" else " · log-SNR"
        elif s.sampler == "pc":
            label += f" · {s.settings.predictor.upper()} + {s.settings.corrector_steps} Langevin"
        elif s.sampler == "langevin":
            label += f" · {s.settings.corrector_steps} per level"
        rows.append([label, s.steps, s.model_calls, round(s.quality.mmd_ratio, 3), round(s.energy_distance, 4),
                     s.quality.strays, round(s.seconds, 2)])
    gaussian = gaussian_quality(model["reference"], model["points"])
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


def toy_score(model: dict | None, data: dict | None, t: int):
    """The learned score field at t over the data noised to t; for the Gaussian mixture, the true field beside it
    and the error between them at every t."""
    model = _check_model(model, data)
    config = model["config"]
    try:
        t = int(t)
    except (TypeError, ValueError):
        raise problem("t must be a whole number.") from None
    if not 0 <= t < config.num_timesteps:
        raise problem(f"t must be between 0 and {config.num_timesteps - 1}.")
    mixture = gmm_parameters() if model["key"].startswith("gmm|") else None
    network = model["state"].ema.model
    field = score_field(network, config, t, mixture=mixture, points=model["reference"][:1500])
    figure = score_field_figure(field.grid, field.learned, field.true, field.noised, t, field.sigma)
    if mixture is None:
        note = (f"At t = {t} the arrows point from every place towards where the noised data is denser; slide t down "
                "and the field sharpens onto the data. The Ring of 8 Gaussians also shows the true score beside it.")
        return figure, None, note
    errors = score_error_by_t(network, config, model["points"][:2000], mixture)
    at_t = dict(score_error_by_t(network, config, model["points"][:2000], mixture, timesteps=[t]))[t]
    note = (f"At t = {t} the learned field's squared error is {at_t:.1%} of the true field's size where the noised "
            "data lives. For the mixture, p_t is a mixture of Gaussians too (each mode shrunk by √ᾱ_t and widened by "
            "the noise), so ∇ log p_t has a closed form.")
    return figure, score_error_figure(errors, t), note


def build(demo: gr.Blocks) -> None:
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            dataset = gr.Dropdown([(DATASET_LABELS[k], k) for k in [*TOY_DATASETS, DRAWING]], value="swiss_roll",
                                  label="Dataset", elem_id="toy-dataset")
            drawing = gr.File(label="Your drawing (black shapes on white), for 'your drawing'", type="filepath",
                              elem_id="toy-drawing")
            schedule = gr.Dropdown(list(BETA_SCHEDULES), value=TOY_TRAINING.schedule, label="Schedule (T = 1000)")
        with gr.Column(scale=3):
            forward_plot = gr.Plot(label="Forward: ▶ Play noises it, t = 0 → 999",
                                   elem_id="toy-forward")
    gr.Markdown("### Train")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            train_steps = gr.Slider(100, 20000, value=TOY_TRAINING.steps, step=100, label="Training steps")
            with gr.Row():
                train_button = gr.Button("Train", variant="primary", elem_id="toy-train")
                stop_button = gr.Button("Stop", elem_id="toy-stop")
            status = gr.Markdown("Not trained yet.", elem_id="toy-status")
        with gr.Column(scale=3):
            loss_plot = gr.Plot(label="Loss", elem_id="toy-loss")
    gr.Markdown("### Reverse: sample from pure noise")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            sampler = gr.Radio([(label, key) for key, label in SAMPLER_LABELS.items()], value="dpmpp", label="Sampler",
                               elem_id="toy-sampler")
            sample_steps = gr.Slider(1, 1000, value=DEFAULT_STEPS["dpmpp"], step=1,
                                     label="Sampling steps (Langevin: noise levels)", elem_id="toy-steps")
            seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
            with gr.Accordion("Sampler settings", open=False, elem_id="toy-settings"):
                spacing = gr.Radio([(label, key) for key, label in SPACING_LABELS.items()], value="logsnr",
                                   label="DDIM, DPM-Solver++ and the predictor: where the steps go")
                step_size = gr.Slider(0.01, 0.5, value=LANGEVIN_DEFAULT.step_size, step=0.01,
                                      label="Langevin step size ε (each step is ε·σ_t²)")
                corrector_steps = gr.Slider(0, 20, value=LANGEVIN_DEFAULT.corrector_steps, step=1,
                                            label="Langevin steps per level / corrector steps (predictor-corrector)",
                                            elem_id="toy-corrector-steps")
                predictor = gr.Radio([("DDIM (the ODE)", "ddim"), ("DDPM", "ddpm")], value="ddim",
                                     label="Predictor-corrector: the predictor")
                snr = gr.Slider(0.01, 0.5, value=0.16, step=0.01, label="Predictor-corrector: the corrector's SNR r")
            sample_button = gr.Button("Sample", variant="primary", elem_id="toy-sample")
            compare_button = gr.Button("Compare every sampler (same noise)", elem_id="toy-compare")
        with gr.Column(scale=3):
            reverse_plot = gr.Plot(label="Reverse: the result; press Play to watch it come out of noise",
                                   elem_id="toy-reverse")
            verdict = gr.Markdown(elem_id="toy-verdict")
            table = gr.Dataframe(headers=["sampler", "steps", "calls", "MMD ÷ Gaussian's", "energy dist.",
                                          "off the data", "s"], interactive=False, wrap=True,
                                 column_widths=["170px", "64px", "64px", "90px", "90px", "70px", "56px"],
                                 label="Samplers compared (same noise; MMD: 0 is a perfect copy, 1 the Gaussian bar)",
                                 elem_id="toy-table")
    gr.Markdown("### The score: what the network learned, as arrows")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            score_t = gr.Slider(0, TOY_TRAINING.num_timesteps - 1, value=100, step=1, label="t",
                                elem_id="toy-score-t")
            score_button = gr.Button("Show the score", elem_id="toy-score")
            score_note = gr.Markdown(SCORE_INTRO, elem_id="toy-score-note")
        with gr.Column(scale=3):
            score_plot = gr.Plot(label="Score field", elem_id="toy-score-field")
            score_errors = gr.Plot(label="Error per t (the Ring of 8 Gaussians only)", elem_id="toy-score-error")
    data_state, model_state = gr.State(None), gr.State(None)

    gr.on([demo.load, dataset.change, drawing.change, schedule.change], toy_data,
          [dataset, drawing, schedule, model_state], [forward_plot, data_state, status, reverse_plot, verdict, table],
          api_name="toy_data", trigger_mode="always_last")
    # Dropping a drawing means "use it": switch the dataset to it.
    drawing.upload(lambda: DRAWING, None, [dataset], api_name="toy_use_drawing", api_visibility="undocumented",
                   queue=False)
    training = train_button.click(toy_train, [data_state, schedule, train_steps], [loss_plot, status, model_state],
                                  api_name="toy_train", concurrency_limit=2)
    stop_button.click(lambda: "Stopped: the model keeps the weights it had.", None, [status], cancels=[training],
                      api_name="toy_stop", queue=False)
    sampler.change(sampler_defaults, [sampler], [sample_steps, corrector_steps], api_visibility="private",
                   queue=False)
    sample_button.click(toy_sample, [model_state, data_state, sampler, sample_steps, seed, spacing, step_size,
                                     corrector_steps, predictor, snr], [reverse_plot, verdict],
                        api_name="toy_sample", concurrency_limit=2)
    gr.on([score_button.click, score_t.release], toy_score, [model_state, data_state, score_t],
          [score_plot, score_errors, score_note], api_name="toy_score", concurrency_limit=2)
    compare_button.click(toy_compare, [model_state, data_state, seed], [table], api_name="toy_compare",
                         concurrency_limit=2)
