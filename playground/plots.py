"""plotly figures. Data in (schedules, curves), figures out; no gradio here."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence

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
        height=380,
        margin=dict(l=60, r=20, t=50, b=40),
        # under the x-axis title, so that even eight names (zero-SNR on) never cover the title
        legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0.0),
    )
    if log_y:
        figure.update_yaxes(type="log", exponentformat="power")
    return figure


def schedule_figures(schedules: Sequence[NoiseSchedule]) -> tuple[go.Figure, go.Figure, go.Figure]:
    """beta_t, alpha_bar_t and log-SNR of each schedule, overlaid, with hover values."""
    num_timesteps = max(s.num_timesteps for s in schedules) if schedules else 1000
    # Short titles: they must fit a phone's width (the text beside the plots explains each).
    beta = _figure("β_t: noise added at step t", "β_t (log scale)", num_timesteps, log_y=True)
    alpha_bar = _figure("ᾱ_t: signal left at step t", "ᾱ_t", num_timesteps)
    log_snr = _figure("λ_t = log(ᾱ_t / (1 − ᾱ_t))", "log-SNR λ_t", num_timesteps)
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


SUMMARY_HEADERS = ["schedule", "β first", "β last", "ᾱ at T/2", "ᾱ last", "SNR last (dB)", "noise wins from t",
                   "steps with ᾱ < 0.01"]


def schedule_summary(schedules: Sequence[NoiseSchedule]) -> list[list]:
    """One row of key numbers per schedule (see :data:`SUMMARY_HEADERS`); "noise wins from t" is the first t with
    SNR < 1 ("never" when the signal outweighs the noise to the end)."""
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
            int(below_one[0]) if len(below_one) else "never",
            f"{int((s.alphas_cumprod < 0.01).sum())} of {s.num_timesteps}",
        ])
    return rows


def schedule_warnings(schedules: Sequence[NoiseSchedule]) -> list[str]:
    """A sentence for each schedule that never reaches (nearly) pure noise: sampling would start from a level of
    noise the model never saw in training."""
    notes = []
    for s in schedules:
        last = float(s.alphas_cumprod[-1])
        if last > 0.01:
            notes.append(
                f"**{s.name}** ends at ᾱ = {last:.3g} with T = {s.num_timesteps}: x_T still carries "
                f"{math.sqrt(last):.0%} of the image's amplitude, yet sampling starts from pure noise. "
                + ("Its β run from a fixed start to a fixed end (made for T = 1000) whatever T is, so fewer steps add "
                   "up to less noise; " if s.name.split("+")[0] in ("linear", "scaled_linear", "sigmoid") else "")
                + "a larger T, the cosine schedule or the zero-terminal-SNR rescale fix it.")
    return notes


# --- the 2-D toy lab ---

POINT = dict(size=3, color="#3b5bdb", opacity=0.6)
# Keep the given ranges and shrink the plotting area instead: with equal units (scaleanchor) plotly would otherwise
# widen the x range to fill a wide panel, and a cloud within +-2 would fill a sixth of it.
SQUARE_X = dict(zeroline=False, constrain="domain")
SQUARE_Y = dict(zeroline=False, scaleanchor="x", scaleratio=1, constrain="domain")


def _attach_frames(figure: go.Figure, frames: list[go.Frame]) -> go.Figure:
    """Carry animation frames in layout.meta: Gradio's Plot hands Plotly only data and layout, so the page
    script in playground.ui (ANIMATION_JS) adds these with Plotly.addFrames. API users find them there too."""
    figure.update_layout(meta={"playground_frames": [frame.to_plotly_json() for frame in frames],
                               "token": uuid.uuid4().hex})
    return figure


def _xy(points) -> dict:
    """Coordinates rounded to 1e-3: plenty for a plot, and a third of the JSON."""
    return dict(x=[round(v, 3) for v in points[:, 0].tolist()], y=[round(v, 3) for v in points[:, 1].tolist()])


def frame_of(points, margin: float = 0.15, minimum: float = 1.0) -> tuple[float, float, float, float]:
    """A square view (x0, x1, y0, y1) holding all but the most extreme 0.1% of ``points`` (n, 2), with a margin."""
    import torch

    points = torch.as_tensor(points, dtype=torch.float64)
    low = torch.quantile(points, 0.001, dim=0)
    high = torch.quantile(points, 0.999, dim=0)
    centre = (low + high) / 2
    half = max(float((high - low).max()) / 2 * (1 + margin), minimum)
    return (float(centre[0]) - half, float(centre[0]) + half, float(centre[1]) - half, float(centre[1]) + half)


def outside_view(points, view: tuple[float, float, float, float]) -> int:
    """How many of ``points`` (n, 2) fall outside ``view`` (x0, x1, y0, y1)."""
    x0, x1, y0, y1 = view
    x, y = points[:, 0], points[:, 1]
    return int(((x < x0) | (x > x1) | (y < y0) | (y > y1)).sum())


def _play_controls(frame_names: list[str], duration_ms: int, active: int = 0) -> dict:
    """Play/Pause buttons on one line and the frame slider on its own line under them (no overlap at any width)."""
    return dict(
        updatemenus=[dict(type="buttons", direction="left", showactive=False, x=0.0, y=-0.07, xanchor="left",
                          yanchor="top", pad=dict(t=0, r=6),
                          buttons=[dict(label="▶ Play", method="animate",
                                        args=[None, dict(frame=dict(duration=duration_ms, redraw=False),
                                                         transition=dict(duration=0), fromcurrent=active == 0)]),
                                   dict(label="❚❚ Pause", method="animate",
                                        args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate")])])],
        sliders=[dict(active=active, x=0.0, y=-0.16, len=1.0, yanchor="top", pad=dict(t=0, b=0),
                      currentvalue=dict(prefix="", font=dict(size=13)),
                      steps=[dict(label=name, method="animate",
                                  args=[[name], dict(frame=dict(duration=0, redraw=False), mode="immediate")])
                             for name in frame_names])],
    )


def toy_forward_figure(frames: list, schedule: NoiseSchedule) -> go.Figure:
    """The cloud diffusing over t (left) beside alpha-bar with the current t marked (right), animated."""
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.12,
                           subplot_titles=("x_t", "ᾱ_t (● is t)"))
    t0, x0 = frames[0]
    alpha_bar = schedule.alphas_cumprod.tolist()
    figure.add_scatter(**_xy(x0), mode="markers", marker=POINT, row=1, col=1)
    figure.add_scatter(x=list(range(len(alpha_bar))), y=alpha_bar, mode="lines", line=dict(color="#2ca02c"),
                       row=1, col=2)
    figure.add_scatter(x=[t0], y=[alpha_bar[t0]], mode="markers", marker=dict(size=12, color="#d62728"), row=1, col=2)
    _attach_frames(figure, [go.Frame(name=f"t={t}", traces=[0, 2], data=[
        go.Scatter(**_xy(x)), go.Scatter(x=[t], y=[alpha_bar[t]])]) for t, x in frames])
    figure.update_layout(template="plotly_white", height=460, showlegend=False, margin=dict(l=40, r=20, t=70, b=110),
                         **_play_controls([f"t={t}" for t, _ in frames], 150))
    figure.update_annotations(font_size=14)
    figure.update_xaxes(range=[-4, 4], constrain="domain", row=1, col=1)
    figure.update_yaxes(range=[-4, 4], scaleanchor="x", scaleratio=1, constrain="domain", row=1, col=1)
    figure.update_xaxes(title_text="t", row=1, col=2)
    return figure


def _paths(figure: go.Figure, trajectories, label: str, colour: str, max_path_points: int) -> None:
    steps = trajectories.shape[0]
    keep = sorted({round(i * (steps - 1) / max(1, max_path_points - 1)) for i in range(min(steps, max_path_points))})
    for k in range(trajectories.shape[1]):
        path = trajectories[keep, k]
        figure.add_scatter(x=path[:, 0].tolist(), y=path[:, 1].tolist(), mode="lines",
                           line=dict(width=1, color=colour.replace("1.0)", "0.45)")), name=label,
                           legendgroup=label, showlegend=k == 0, hoverinfo="skip")
        figure.add_scatter(x=[float(path[-1, 0])], y=[float(path[-1, 1])], mode="markers",
                           marker=dict(size=6, color=colour), legendgroup=label, showlegend=False)


def toy_reverse_figure(frames: list, trajectories, title: str, view=None, max_path_points: int = 60,
                       other_paths=None, other_label: str = "") -> go.Figure:
    """Sampling from pure noise, animated, with the paths of a few points drawn faintly under the cloud.

    It opens on the result; Play runs it again from pure noise. ``view`` (x0, x1, y0, y1) frames the data (default:
    the result); paths are thinned to ``max_path_points`` positions so DDPM's 1,000 jittery steps stay readable.
    ``other_paths``: the same starting points under another sampler (the probability-flow ODE beside an SDE), in
    green.
    """
    figure = go.Figure()
    t0, result = frames[-1]
    view = view or frame_of(result)
    _paths(figure, trajectories, "paths of a few points", "rgba(214,39,40,1.0)", max_path_points)
    if other_paths is not None:
        _paths(figure, other_paths, other_label, "rgba(47,158,68,1.0)", max_path_points)
    figure.add_scatter(**_xy(result), mode="markers", marker=POINT, name="samples")
    samples_trace = len(figure.data) - 1
    _attach_frames(figure, [go.Frame(name=f"t={t}", traces=[samples_trace], data=[go.Scatter(**_xy(x))])
                            for t, x in frames])
    x0, x1, y0, y1 = view
    outside = outside_view(result, view)
    if outside:
        figure.add_annotation(text=f"{outside} point{'s' * (outside != 1)} outside this view", showarrow=False,
                              xref="paper", yref="paper", x=1, y=1, xanchor="right", yanchor="bottom",
                              font=dict(size=12, color="#c92a2a"))
    figure.update_layout(title=dict(text=title, font=dict(size=15)), template="plotly_white", height=480,
                         xaxis=dict(SQUARE_X, range=[x0, x1]), yaxis=dict(SQUARE_Y, range=[y0, y1]),
                         margin=dict(l=40, r=20, t=50, b=110),
                         legend=dict(x=0.01, y=0.99, bgcolor="rgba(255,255,255,0.7)"),
                         **_play_controls([f"t={t}" for t, _ in frames], 120, active=len(frames) - 1))
    return figure


def loss_figure(losses: list[float], smoothing: float = 0.98) -> go.Figure:
    """The training loss per step, raw and exponentially smoothed (debiased as Adam does)."""
    smoothed, average = [], 0.0
    for i, value in enumerate(losses):
        average = smoothing * average + (1 - smoothing) * value
        smoothed.append(average / (1 - smoothing ** (i + 1)))
    steps = list(range(1, len(losses) + 1))
    figure = go.Figure()
    figure.add_scatter(x=steps, y=losses, mode="lines", name="loss", line=dict(color="rgba(59,91,219,0.3)", width=1))
    figure.add_scatter(x=steps, y=smoothed, mode="lines", name="smoothed", line=dict(color="#3b5bdb", width=2.5))
    figure.update_layout(title="Training loss", xaxis_title="step", yaxis_title="MSE", template="plotly_white",
                         height=300, margin=dict(l=50, r=20, t=50, b=40), legend=dict(x=0.75, y=0.98))
    figure.update_yaxes(type="log", **log_ticks(losses))
    return figure


def walk_figure(walk: Sequence[tuple[int, int]], total: int | None = None, num_timesteps: int = 1000) -> go.Figure:
    """An edit's path through the noise: t after each move against the network calls so far. RePaint's climbs back up
    show as jumps up at one number of calls; SDEdit's as a plain descent from its starting t."""
    calls = [c for c, _ in walk]
    levels = [max(t, 0) for _, t in walk]
    figure = go.Figure()
    figure.add_scatter(x=calls, y=levels, mode="lines", name="t", line=dict(color="#3b5bdb", width=2),
                       line_shape="hv")
    figure.update_layout(title="Where in the noise: t after each move", xaxis_title="network calls",
                         yaxis_title="t", template="plotly_white", height=260, margin=dict(l=50, r=20, t=50, b=40),
                         showlegend=False)
    figure.update_xaxes(range=[0, max(total or 0, max(calls, default=1))])
    figure.update_yaxes(range=[0, num_timesteps])
    return figure


def fidelity_figure(measured: dict[str, dict[str, float]]) -> go.Figure:
    """Prompt fidelity against network calls per picture: the teacher's samplers as points (guided: two calls a
    step), the distilled student's step counts as a line (one call a step). ``measured``: {"teacher": {"DDPM 200":
    0.76, ...}, "student": {"4": 0.70, ...}} (shares; a teacher's label ends in its step count)."""
    figure = go.Figure()
    teacher = measured.get("teacher", {})
    figure.add_scatter(x=[2 * int(label.split()[-1]) for label in teacher], y=[100 * v for v in teacher.values()],
                       mode="markers+text", text=list(teacher), textposition="top center", name="teacher (guided)",
                       marker=dict(color="#868e96", size=10))
    student = sorted((int(steps), share) for steps, share in measured.get("student", {}).items())
    figure.add_scatter(x=[s for s, _ in student], y=[100 * v for _, v in student], mode="lines+markers+text",
                       text=[f"{s} step{'s' * (s > 1)}" for s, _ in student], textposition="bottom right",
                       name="distilled student", line=dict(color="#3b5bdb", width=2.5))
    figure.update_layout(title="How often samples follow the word, against network calls", template="plotly_white",
                         xaxis_title="network calls per picture (log)", yaxis_title="% that follow the word",
                         height=300, margin=dict(l=50, r=20, t=50, b=40),
                         legend=dict(x=0.01, y=0.98, yanchor="top"))  # top left: the student's few steps sit low
    calls = [2 * int(label.split()[-1]) for label in teacher] + [s for s, _ in student]
    figure.update_xaxes(type="log", **log_ticks(calls))
    figure.update_yaxes(range=[0, 100])
    return figure


def log_ticks(values: Sequence[float]) -> dict:
    """Ticks at 1, 2 and 5 times powers of ten across ``values``, written out in full (0.02, 0.05, 0.1):
    plotly's own labels a log axis spanning under a decade with bare digits ("9 8 7 ... 2"), which read as whole
    numbers."""
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    if not positive:
        return {}
    low, high = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
    steps = (1,) if high - low > 3 else (1, 2, 5)  # over many decades, powers of ten are enough to read
    ticks = [m * 10.0**e for e in range(low, high + 1) for m in steps]
    ticks = [v for v in ticks if min(positive) / 1.5 <= v <= max(positive) * 1.5] or [10.0**low]
    return dict(tickvals=ticks, ticktext=[f"{v:.4g}" if 1e-4 <= v < 1e5 else f"{v:.0e}" for v in ticks])


def _arrows(figure: go.Figure, grid, vectors, length: float, colour: str, name: str, row: int, col: int,
            show_legend: bool) -> None:
    """Arrows of at most ``length`` along ``vectors`` from ``grid`` (n, 2): segments and an arrow-head marker."""
    import torch

    magnitude = vectors.norm(dim=1)
    scale = length / float(torch.quantile(magnitude, 0.9).clamp_min(1e-12))
    arrows = vectors * scale  # the 90th-percentile arrow is ``length`` long; longer ones are cut to it
    arrows = arrows * (length / arrows.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
    tips = grid + arrows
    xs, ys = [], []
    for (x0, y0), (x1, y1) in zip(grid.tolist(), tips.tolist(), strict=True):
        xs += [round(x0, 3), round(x1, 3), None]
        ys += [round(y0, 3), round(y1, 3), None]
    figure.add_scatter(x=xs, y=ys, mode="lines", line=dict(width=1.2, color=colour), hoverinfo="skip", name=name,
                       legendgroup=name, showlegend=show_legend, row=row, col=col)
    delta = tips - grid
    angles = (90 - torch.rad2deg(torch.atan2(delta[:, 1], delta[:, 0]))).tolist()
    figure.add_scatter(**_xy(tips), mode="markers", marker=dict(symbol="arrow", size=7, angle=angles, color=colour),
                       customdata=[round(v, 2) for v in magnitude.tolist()], legendgroup=name, showlegend=False,
                       hovertemplate="|s| = %{customdata}<extra></extra>", row=row, col=col)


def score_field_figure(grid, learned, true, noised, t: int, sigma: float) -> go.Figure:
    """The score s(x, t) as arrows over the plane, with the noised data x_t faintly under them: the learned field,
    and beside it the true one when there is a closed form. Arrows are scaled per panel (their lengths show where
    the field is strong, not its absolute size, which grows like 1 / sigma_t)."""
    from plotly.subplots import make_subplots

    panels = [("learned: −ε̂(x, t) / σ_t", learned, "#3b5bdb")] + (
        [("true: ∇ log p_t(x)", true, "#2f9e44")] if true is not None else [])
    figure = make_subplots(rows=1, cols=len(panels), horizontal_spacing=0.08,
                           subplot_titles=[title for title, _, _ in panels])
    extent = float(grid.abs().max())
    cell = 2 * extent / (round(grid.shape[0] ** 0.5) - 1)
    for col, (title, vectors, colour) in enumerate(panels, start=1):
        figure.add_scatter(**_xy(noised), mode="markers", marker=dict(size=2, color="#868e96", opacity=0.35),
                           name="the data noised to t", showlegend=col == 1, hoverinfo="skip", row=1, col=col)
        _arrows(figure, grid, vectors, 0.9 * cell, colour, title.split(":")[0], 1, col, True)
        figure.update_xaxes(SQUARE_X, range=[-extent * 1.05, extent * 1.05], row=1, col=col)
        figure.update_yaxes(SQUARE_Y, range=[-extent * 1.05, extent * 1.05],
                            scaleanchor="x" if col == 1 else f"x{col}", row=1, col=col)
    figure.update_layout(title=dict(text=f"The score at t = {t} (σ_t = {sigma:.3f})", font=dict(size=14)),
                         template="plotly_white", height=460, margin=dict(l=40, r=20, t=80, b=40),
                         legend=dict(orientation="h", y=-0.08))
    figure.update_annotations(font_size=13)
    return figure


def score_error_figure(errors: list[tuple[int, float]], t: int | None = None) -> go.Figure:
    """The learned score's relative squared error against the true one, per t (log scale), with t marked."""
    figure = go.Figure()
    ts, values = [e[0] for e in errors], [e[1] for e in errors]
    figure.add_scatter(x=ts, y=values, mode="lines+markers", line=dict(color="#c92a2a"),
                       name="E‖s_θ − s‖² / E‖s‖²")
    if t is not None:
        figure.add_vline(x=t, line=dict(color="#868e96", dash="dot"))
    figure.update_layout(title="How far the learned score is from the true one, where the noised data lives",
                         xaxis_title="t", yaxis_title="relative squared error", template="plotly_white",
                         height=300, margin=dict(l=50, r=20, t=50, b=40))
    figure.update_yaxes(type="log", **log_ticks(values))
    return figure


def training_progress_figure(losses: list[float], readings: list[tuple[int, float, float, float]]) -> go.Figure:
    """A run's loss per step (top) and its sample quality at each check (bottom): density and coverage (Naeem et
    al. 2020; about 1 is good for both) and the share of samples that copy a training image."""
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                           subplot_titles=("loss", "sample quality against held-out images"))
    figure.add_scatter(x=list(range(1, len(losses) + 1)), y=losses, mode="lines", name="loss",
                       line=dict(color="rgba(59,91,219,0.5)", width=1), row=1, col=1)
    steps = [r[0] for r in readings]
    for index, (name, colour) in enumerate((("density", "#2f9e44"), ("coverage", "#e8590c"),
                                            ("near-copies", "#c92a2a")), start=1):
        figure.add_scatter(x=steps, y=[r[index] for r in readings], mode="lines+markers", name=name,
                           line=dict(color=colour), row=2, col=1)
    figure.update_yaxes(type="log", row=1, col=1, **log_ticks(losses))
    figure.update_xaxes(title_text="step", row=2, col=1)
    figure.update_layout(template="plotly_white", height=620, margin=dict(l=50, r=20, t=50, b=40))
    return figure
