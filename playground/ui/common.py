"""Checks shared by the tabs: turn bad values into one clear sentence for the person."""

from __future__ import annotations

import gradio as gr

from playground.diffusion import BETA_SCHEDULES, NoiseSchedule
from playground.diffusion.schedules import MAX_TIMESTEPS, MIN_TIMESTEPS
from playground.diffusion.schedules import get_schedule

MAX_SEED = 2**63 - 1


def check_timesteps(num_timesteps) -> int:
    try:
        value = int(num_timesteps)
    except (TypeError, ValueError):
        raise gr.Error(f"T must be a whole number between {MIN_TIMESTEPS} and {MAX_TIMESTEPS}.") from None
    if not MIN_TIMESTEPS <= value <= MAX_TIMESTEPS:
        raise gr.Error(f"T must be between {MIN_TIMESTEPS} and {MAX_TIMESTEPS}; you asked for {value}.")
    return value


def get_checked_schedule(name: str, num_timesteps, zero_snr: bool = False) -> NoiseSchedule:
    if name not in BETA_SCHEDULES:
        raise gr.Error(f"Unknown schedule {name!r}; choose one of {', '.join(BETA_SCHEDULES)}.")
    return get_schedule(name, check_timesteps(num_timesteps), bool(zero_snr))


def check_seed(seed) -> int:
    try:
        value = int(seed)
    except (TypeError, ValueError):
        raise gr.Error("The seed must be a whole number, such as 0 or 1234.") from None
    if not 0 <= value <= MAX_SEED:
        raise gr.Error(f"The seed must be between 0 and {MAX_SEED}.")
    return value
