"""plotly figures. Data in (schedules, curves), figures out; no gradio here."""

from __future__ import annotations

import math
from typing import Sequence

import plotly.graph_objects as go

from playground.diffusion import NoiseSchedule

# One colour per schedule name, the same in every figure.
COLOURS = {"linear": "#1f77b4", "scaled_linear": "#ff7f0e", "cosine": "#2ca02c", "sigmoid": "#d62728"}


def _colour(name: str) -> str:
    return COLOURS.get(name.split("+")[0], "#7f7f7f")


def _figure(title: str, y_title: str, num_timesteps: int, log_y: bool = False) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(
        title=title,
        xaxis_title=f"timestep t (0 .. {num_timesteps - 1})",
        yaxis_title=y_title,
        hovermode="x unified",
        template="plotly_white",
        height=330,
        margin=dict(l=60, r=20, t=50, b=50),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
    )
    if log_y:
        figure.update_yaxes(type="log", exponentformat="power")
    return figure


def schedule_figures(schedules: Sequence[NoiseSchedule]) -> tuple[go.Figure, go.Figure, go.Figure]:
    """beta_t, alpha_bar_t and log-SNR of each schedule, overlaid, with hover values."""
    num_timesteps = max(s.num_timesteps for s in schedules) if schedules else 1000
    beta = _figure("β_t: the share of variance replaced by noise at step t", "β_t (log scale)", num_timesteps, log_y=True)
    alpha_bar = _figure("ᾱ_t: how much of the image's signal is left at step t", "ᾱ_t", num_timesteps)
    log_snr = _figure("log-SNR λ_t = log(ᾱ_t / (1 − ᾱ_t))", "λ_t (natural log)", num_timesteps)
    for schedule in schedules:
        t = list(range(schedule.num_timesteps))
        line = dict(color=_colour(schedule.name), width=2, dash="dash" if "zero_snr" in schedule.name else "solid")
        beta.add_scatter(x=t, y=schedule.betas.tolist(), name=schedule.name, line=line,
                         hovertemplate="%{y:.3g}")
        alpha_bar.add_scatter(x=t, y=schedule.alphas_cumprod.tolist(), name=schedule.name, line=line,
                              hovertemplate="%{y:.4f}")
        # SNR = 0 at the last step of a zero-terminal-SNR schedule: log is -inf, leave a gap there.
        lam = [v if math.isfinite(v) else None for v in schedule.log_snr().tolist()]
        db = [10 * v / math.log(10) if v is not None else None for v in lam]
        log_snr.add_scatter(x=t, y=lam, customdata=db, name=schedule.name, line=line,
                            hovertemplate="%{y:.2f} (%{customdata:.1f} dB)")
    log_snr.add_hline(y=0, line=dict(color="#999", width=1, dash="dot"),
                      annotation_text="SNR = 1: as much noise as signal", annotation_position="bottom left")
    return beta, alpha_bar, log_snr


SUMMARY_HEADERS = ["schedule", "β first", "β last", "ᾱ at T/2", "ᾱ last", "SNR last (dB)", "SNR = 1 at t", "steps with ᾱ < 0.01"]


def schedule_summary(schedules: Sequence[NoiseSchedule]) -> list[list]:
    """One row of key numbers per schedule (see :data:`SUMMARY_HEADERS`)."""
    rows = []
    for s in schedules:
        snr_last = float(s.snr[-1])
        below_one = (s.snr < 1).nonzero()
        rows.append([
            s.name,
            round(float(s.betas[0]), 6),
            round(float(s.betas[-1]), 6),
            round(float(s.alphas_cumprod[s.num_timesteps // 2]), 4),
            float(f"{float(s.alphas_cumprod[-1]):.3g}"),
            "-inf" if snr_last == 0 else round(10 * math.log10(snr_last), 1),
            int(below_one[0]) if len(below_one) else None,
            f"{int((s.alphas_cumprod < 0.01).sum())} of {s.num_timesteps}",
        ])
    return rows
