"""Schedule tab: beta_t, alpha-bar_t and log-SNR of several schedules, side by side."""

from __future__ import annotations

import gradio as gr

from playground.diffusion import BETA_SCHEDULES
from playground.diffusion.schedules import MAX_TIMESTEPS, MIN_TIMESTEPS
from playground.plots import SUMMARY_HEADERS, schedule_figures, schedule_summary, schedule_warnings
from playground.services.checks import check_schedules
from playground.ui.common import toasts

EXPLAIN = """
**β_t** is the share of the variance replaced by fresh noise at step *t*.
**ᾱ_t** (alpha-bar, the running product of 1 − β) is how much of the original image's signal power is left at *t*:
x_t = √ᾱ_t · x₀ + √(1 − ᾱ_t) · ε. **log-SNR** λ_t = log(ᾱ_t / (1 − ᾱ_t)) compares signal to noise; at 0 they are equal.

**Why cosine?** With the linear schedule ᾱ_t is nearly 0 long before the last step, so at low resolution
(64×64) the final quarter of the steps sees almost pure noise and teaches the model little. Nichol & Dhariwal (2021)
proposed the cosine schedule so that ᾱ_t falls slowly at both ends and information is destroyed evenly
(compare "steps with ᾱ < 0.01" below). *scaled_linear* is Stable Diffusion's schedule for latents.

**sigmoid** here is diffusers' (GeoDiff, Xu et al. 2022): the sigmoid shapes **β_t**. lucidrains' sigmoid schedule
(Jabri et al. 2022) shapes ᾱ_t instead and is a different curve.
**Zero terminal SNR** (Lin et al. 2024) shifts √ᾱ so the last step is pure noise (log-SNR −∞: the dashed
line stops), matching what sampling starts from.
"""


def schedule(names: list[str], num_timesteps: int, zero_snr: bool):
    """Three overlaid figures and a table of key numbers for the chosen schedules."""
    if not names:
        gr.Warning("Pick at least one schedule to plot.")
    with toasts():
        schedules = check_schedules(list(names or []), num_timesteps, zero_snr)
    beta, alpha_bar, log_snr = schedule_figures(schedules)
    notes = "\n\n".join(f"⚠️ {note}" for note in schedule_warnings(schedules))
    return beta, alpha_bar, log_snr, schedule_summary(schedules), notes


def build(demo: gr.Blocks) -> None:
    """Lay out the Schedule tab inside ``demo`` and wire its events."""
    with gr.Row():
        names = gr.CheckboxGroup(list(BETA_SCHEDULES), value=["linear", "cosine"], label="Schedules",
                                 elem_id="schedule-names", scale=2)
        num_timesteps = gr.Slider(MIN_TIMESTEPS, MAX_TIMESTEPS, value=1000, step=10, label="T (number of steps)",
                                  scale=2, elem_id="schedule-T")
        zero_snr = gr.Checkbox(False, label="Also show each rescaled to zero terminal SNR (dashed)", scale=1)
    with gr.Row():
        alpha_bar = gr.Plot(label="alpha-bar", elem_id="schedule-alpha-bar")
        log_snr = gr.Plot(label="log-SNR", elem_id="schedule-log-snr")
    with gr.Row():
        beta = gr.Plot(label="beta", elem_id="schedule-beta")
        with gr.Column():
            gr.Markdown(EXPLAIN)
    summary = gr.Dataframe(headers=SUMMARY_HEADERS, label="At a glance", interactive=False, wrap=True,
                           elem_id="schedule-summary")
    gr.Markdown("*Noise wins from t*: the first step where the noise outweighs the signal (SNR < 1); *never* means "
                "the image is never mostly noise.")
    notes = gr.Markdown(elem_id="schedule-notes")
    # .change covers a drag, a typed value + Enter and a click on the track; always_last keeps a drag light.
    gr.on(
        triggers=[demo.load, names.change, num_timesteps.change, zero_snr.change],
        fn=schedule, inputs=[names, num_timesteps, zero_snr], outputs=[beta, alpha_bar, log_snr, summary, notes],
        api_name="schedule", trigger_mode="always_last",
    )
