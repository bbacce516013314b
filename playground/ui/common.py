"""What the tabs share: toasts for bad input (one sentence, our title), session keys and folders, and the models a
session may use (the shipped ones and its own)."""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr

from playground.diffusion import NoiseSchedule
from playground.diffusion.schedules import get_schedule
from playground.services import model_catalog, workdir

MAX_SEED = 2**63 - 1


def problem(message: str, title: str = "Please check this") -> gr.Error:
    """The browser's toast for bad input: our title, one sentence, and no traceback in the server log (it is
    expected, not a bug)."""
    return gr.Error(message, title=title, print_exception=False)


def bad_file(message: str) -> gr.Error:
    return problem(message, title="That file can't be used")


def is_local() -> bool:
    """Running on someone's own machine (not a Hugging Face Space): local folders may be read and written."""
    return not os.environ.get("SPACE_ID") and os.environ.get("PLAYGROUND_LOCAL_FILES", "1") != "0"


def session_key(request: gr.Request | None) -> str:
    """This browser session's key (the command line and bare API calls without one share "cli")."""
    return getattr(request, "session_hash", None) or "cli"


def get_checked_schedule(name: str, num_timesteps, zero_snr: bool = False) -> NoiseSchedule:
    """The schedule, or a toast with the core's sentence (Gradio's own checks usually refuse bad values first)."""
    try:
        return get_schedule(name, int(num_timesteps), bool(zero_snr))
    except (TypeError, ValueError) as error:
        raise problem(str(error) if isinstance(error, ValueError) else "T must be a whole number.") from None


def check_seed(seed) -> int:
    try:
        value = int(seed)
    except (TypeError, ValueError):
        raise problem("The seed must be a whole number, such as 0 or 1234.") from None
    if not 0 <= value <= MAX_SEED:
        raise problem(f"The seed must be between 0 and {MAX_SEED}.")
    return value


# --- what each session may load, by name (services.model_catalog): the shared models plus the ones it trained ---

def session_folder(request: gr.Request | None) -> Path:
    return workdir.session_dir(getattr(request, "session_hash", None))


def model_choices(request: gr.Request | None) -> list[tuple[str, str]]:
    """(label, name) of the models this session may use: its own, newest first, then the shared ones."""
    return model_catalog.choices(session_folder(request))


def shared_model_choices() -> list[tuple[str, str]]:
    """The models every session may use (what a page shows before it knows its session)."""
    return model_catalog.choices(None)


def model_label_for(name: str | None, request: gr.Request | None) -> str:
    """The name a model is listed under (a trained model's own name, not its folder's)."""
    return model_catalog.label(name, session_folder(request))


def model_folder(name: str | None, request: gr.Request | None) -> Path:
    """The folder behind a listed model name, or a toast: a request cannot name a path or another session's model."""
    folder = model_catalog.resolve(name, session_folder(request))
    if folder is None:
        raise problem("That model is not available here; pick one from the list.")
    return folder
