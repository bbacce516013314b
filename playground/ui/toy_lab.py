"""Toy tab: the whole diffusion story on a 2-D point cloud: forward, train in seconds, sample, measure."""

from __future__ import annotations

import time

import gradio as gr

from playground.data.images import ImageError
from playground.data.points import TOY_DATASETS, points_from_drawing, toy_points
from playground.diffusion import BETA_SCHEDULES, SAMPLERS
from playground.diffusion.schedules import get_schedule
from playground.plots import frame_of, loss_figure, outside_view, toy_forward_figure, toy_reverse_figure
from playground.services.toy_lab import compare_samplers, energy_distance, forward_frames, gaussian_baseline, sample_toy
from playground.services.toy_training import TOY_TRAINING, toy_config, train_toy_in_chunks
from playground.ui.common import bad_file, problem

DRAWING = "your drawing"
DATASET_LABELS = {"swiss_roll": "Swiss roll", "moons": "Two moons", "s_curve": "S-curve",
                  "gmm": "Ring of 8 Gaussians", DRAWING: "Your drawing"}
SAMPLER_LABELS = {"ddpm": "DDPM", "ddim": "DDIM", "dpmpp": "DPM-Solver++(2M)"}
NUM_POINTS, NUM_REFERENCE = 4000, 2000
NO_MODEL = "Train a model first: press Train (about 10 seconds)."

INTRO = """
Diffusion is easiest to see on points in the plane. Pick a cloud, watch it dissolve into a Gaussian
(**forward**), train a small MLP to predict the noise (**train**, seconds on a laptop), then run a sampler from
pure noise and watch the points flow back (**reverse**). The *energy distance* to fresh true points measures
quality (0 means the same distribution); a Gaussian fitted to the data is the bar to beat.
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
    yield loss_figure(state.losses), f"{status} · done: trained on {_describe(data['key'])}. Now press Sample.", model


def _check_model(model: dict | None, data: dict | None) -> dict:
    """The session's model, if it was trained on the data and schedule now chosen."""
    if not model:
        raise problem(NO_MODEL, title="One step first")
    if data and model.get("key") != data.get("key"):
        raise problem(f"The model was trained on {_describe(model['key'])}, not on {_describe(data['key'])}: press "
                      "Train first (about 10 s).", title="One step first")
    return model


def toy_sample(model: dict | None, data: dict | None, sampler: str, steps: int, seed: int):
    """Sample 2,000 points from pure noise; animate, draw a few paths, and score them."""
    model = _check_model(model, data)
    if sampler not in SAMPLERS:
        raise problem(f"Unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}.")
    config = model["config"]
    steps = int(steps)
    if not 1 <= steps <= config.num_timesteps:
        raise problem(f"Steps must be between 1 and {config.num_timesteps}.")
    result = sample_toy(model["state"].ema.model, config, sampler, steps, n=NUM_REFERENCE, seed=int(seed))
    distance = energy_distance(result.points, model["reference"])
    baseline = energy_distance(gaussian_baseline(model["points"], NUM_REFERENCE, seed=2), model["reference"])
    title = f"{SAMPLER_LABELS[sampler]} · {steps} steps · {result.seconds:.2f} s"
    view = frame_of(model["reference"])
    strays = outside_view(result.points, view) - outside_view(model["reference"], view)  # beyond what true data does
    verdict = (f"**Energy distance to fresh true points: {distance:.4f}** (a Gaussian fitted to the data: "
               f"{baseline:.4f}; lower is better, 0 is perfect) — {baseline / max(distance, 1e-9):.1f}× better than "
               f"the Gaussian by this measure. Sampling took {result.seconds:.2f} s.")
    if strays > 0:
        verdict += (f" **{strays} of {len(result.points):,} points landed outside the data's range** (counted in the "
                    "plot's corner): the energy distance hardly notices a few strays or a band drawn too thin, so "
                    "judge by the picture too.")
    return toy_reverse_figure(result.frames, result.trajectories, title, view=view), verdict


def toy_compare(model: dict | None, data: dict | None, seed: int):
    """DDPM 1000, DDIM 50 and DPM-Solver++ 20 from the same noise: distance and time, with the Gaussian bar."""
    model = _check_model(model, data)
    scores = compare_samplers(model["state"].ema.model, model["config"], model["reference"], n=NUM_REFERENCE,
                              seed=int(seed))
    baseline = energy_distance(gaussian_baseline(model["points"], NUM_REFERENCE, seed=2), model["reference"])
    rows = [[SAMPLER_LABELS[s.sampler], s.steps, round(s.energy_distance, 5), round(s.seconds, 3)] for s in scores]
    rows.append(["Gaussian fitted to the data", "-", round(baseline, 5), "-"])
    return rows


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
            sample_steps = gr.Slider(1, 1000, value=20, step=1, label="Sampling steps")
            seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
            sample_button = gr.Button("Sample", variant="primary", elem_id="toy-sample")
            compare_button = gr.Button("Compare DDPM 1000 · DDIM 50 · DPM-Solver++ 20", elem_id="toy-compare")
        with gr.Column(scale=3):
            reverse_plot = gr.Plot(label="Reverse: the result; press Play to watch it come out of noise",
                                   elem_id="toy-reverse")
            verdict = gr.Markdown(elem_id="toy-verdict")
            table = gr.Dataframe(headers=["sampler", "steps", "energy distance", "seconds"], interactive=False,
                                 label="Samplers compared (same noise)", elem_id="toy-table")
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
    sample_button.click(toy_sample, [model_state, data_state, sampler, sample_steps, seed], [reverse_plot, verdict],
                        api_name="toy_sample", concurrency_limit=2)
    compare_button.click(toy_compare, [model_state, data_state, seed], [table], api_name="toy_compare",
                         concurrency_limit=2)
