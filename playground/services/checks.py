"""Checks that several jobs share: a seed, a noise schedule and T. Each gives the value to use, or ValueError with one
sentence that the tabs show as a toast and the CLI prints."""

from __future__ import annotations

from playground.diffusion import BETA_SCHEDULES, NoiseSchedule
from playground.diffusion.schedules import MAX_TIMESTEPS, MIN_TIMESTEPS, get_schedule

MAX_SEED = 2**63 - 1


def check_seed(seed) -> int:
    try:
        value = int(seed)
    except (TypeError, ValueError):
        raise ValueError("The seed must be a whole number, such as 0 or 1234.") from None
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"The seed must be between 0 and {MAX_SEED}.")
    return value


def check_schedule(name: str, num_timesteps, zero_snr: bool = False) -> NoiseSchedule:
    """The schedule ``name`` with T = ``num_timesteps`` steps (cached: diffusion.schedules.get_schedule)."""
    if name not in BETA_SCHEDULES:
        raise ValueError(f"Unknown schedule {name!r}; choose from {', '.join(BETA_SCHEDULES)}.")
    try:
        T = int(num_timesteps)
    except (TypeError, ValueError):
        raise ValueError("T must be a whole number.") from None
    if not MIN_TIMESTEPS <= T <= MAX_TIMESTEPS:
        raise ValueError(f"T must be between {MIN_TIMESTEPS} and {MAX_TIMESTEPS}; you asked for {T}.")
    return get_schedule(name, T, bool(zero_snr))


def check_schedules(names: list[str], num_timesteps, also_zero_snr: bool = False) -> list[NoiseSchedule]:
    """The schedules to compare (the Schedule tab, ``python -m playground schedule``), each rescaled to zero terminal
    SNR too when asked, after the plain ones."""
    schedules = [check_schedule(name, num_timesteps) for name in names]
    return schedules + ([check_schedule(name, num_timesteps, True) for name in names] if also_zero_snr else [])


def check_timestep(t, num_timesteps: int) -> int:
    """A timestep of a schedule with T = ``num_timesteps``: 0 to T - 1."""
    try:
        value = int(t)
    except (TypeError, ValueError):
        raise ValueError("t must be a whole number.") from None
    if not 0 <= value < num_timesteps:
        raise ValueError(f"t must be between 0 and {num_timesteps - 1}; you asked for {value}.")
    return value
