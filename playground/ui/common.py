"""What the tabs share: toasts for bad input (one sentence, our title), session keys and folders, and the models a
session may use (the shipped ones and its own)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import gradio as gr

from playground.checkpoints import CheckpointError
from playground.data.images import ImageError
from playground.services import model_catalog, workdir


def problem(message: str, title: str = "Please check this") -> gr.Error:
    """The browser's toast for bad input: our title, one sentence, and no traceback in the server log (it is
    expected, not a bug)."""
    return gr.Error(message, title=title, print_exception=False)


@contextlib.contextmanager
def toasts() -> Iterator[None]:
    """Turn a service's one-sentence refusal (ValueError and its kinds) into the browser's toast, titled by kind."""
    try:
        yield
    except ImageError as error:
        raise problem(str(error), title="That file can't be used") from None
    except CheckpointError as error:
        raise problem(str(error), title="That model can't be used") from None
    except ValueError as error:
        raise problem(str(error)) from None


def is_local() -> bool:
    """Running on someone's own machine (not a Hugging Face Space): local folders may be read and written."""
    return not os.environ.get("SPACE_ID") and os.environ.get("PLAYGROUND_LOCAL_FILES", "1") != "0"


def session_key(request: gr.Request | None) -> str:
    """This browser session's key (the command line and bare API calls without one share "cli")."""
    return getattr(request, "session_hash", None) or "cli"


def session_folder(request: gr.Request | None) -> Path:
    return workdir.session_dir(getattr(request, "session_hash", None))


# --- what each session may load, by name (services.model_catalog): the shared models plus the ones it trained ---

def model_choices(request: gr.Request | None) -> list[tuple[str, str]]:
    """(label, name) of the models this session may use: its own, newest first, then the shared ones."""
    return model_catalog.choices(session_folder(request))


def shared_model_choices() -> list[tuple[str, str]]:
    """The models every session may use (what a page shows before it knows its session)."""
    return model_catalog.choices(None)


def model_label_for(name: str | None, request: gr.Request | None) -> str:
    """The name a model is listed under (a trained model's own name, not its folder's)."""
    return model_catalog.label(name, session_folder(request))


def checkpoint_for(name: str | None, request: gr.Request | None):
    """The loaded model behind a listed name, or a toast: a request cannot name a path or another session's model."""
    with toasts():
        return model_catalog.resolve_checkpoint(name, session_folder(request))


def prompt_widgets(checkpoint, label: str):
    """The prompt box, the guidance slider and the note under them for a model: usable for a prompt model, off with
    the reason for any other (None: no model)."""
    from playground.services.prompting import prompt_suggestions

    if checkpoint is not None and checkpoint.vocabulary is not None:
        return (gr.Textbox(interactive=True, placeholder="e.g. red heart, cat, crescent moon"),
                gr.Slider(interactive=True),
                f"This model knows {len(checkpoint.vocabulary)} words. " + prompt_suggestions(checkpoint, ""))
    return (gr.Textbox(interactive=False, value="", placeholder="this model takes no prompt"),
            gr.Slider(interactive=False),
            f"*{label} was trained without prompts, so the prompt box is off. Choose a prompt model (such as "
            "emoji32-prompts) to steer it with words.*")
