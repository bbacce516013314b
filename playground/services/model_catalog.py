"""The models a session may use, under names: the page and the API see names, never a server folder.

    choices(session)        [("emoji32", "emoji32"), ("my-dog (yours)", "yours/my-dog-3fa9c1"), ...]
    resolve(name, session)  the folder behind a listed name, or None: nothing else can be named

Shared models are the checkpoint folders in the shipped checkpoints/ and $PLAYGROUND_CHECKPOINTS (services
.image_sampling.available_checkpoints), named by their folder; when two roots hold the same name, the first keeps
it and the next is "name (2)". A session's own models are the runs it trained (services.training_runs'
RUN/checkpoint), named "yours/RUN" and labelled with the name the person gave them.
"""

from __future__ import annotations

from pathlib import Path

from playground.services.finetuning import run_settings
from playground.services.image_sampling import available_checkpoints

YOURS = "yours/"


def shared_models() -> dict[str, Path]:
    """Name -> folder of every shared checkpoint, in listing order."""
    named: dict[str, Path] = {}
    for path in available_checkpoints():
        name, n = path.name, 1
        while name in named:
            n += 1
            name = f"{path.name} ({n})"
        named[name] = path
    return named


def session_models(session_dir: Path | None) -> list[Path]:
    """The checkpoints a session has trained (stopped ones included), newest first."""
    runs = session_dir / "runs" if session_dir is not None else None
    if runs is None or not runs.is_dir():
        return []
    found = [p / "checkpoint" for p in runs.iterdir() if (p / "checkpoint" / "model_index.json").is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def run_model_name(run_dir: Path) -> str:
    """The name a session's run is chosen by."""
    return YOURS + Path(run_dir).name


def _label(checkpoint: Path) -> str:
    try:
        name = run_settings(checkpoint.parent).name
    except (OSError, ValueError, KeyError, TypeError):
        name = None
    return f"{name or checkpoint.parent.name} (yours)"


def choices(session_dir: Path | None) -> list[tuple[str, str]]:
    """(label, name) of every model the session may use: its own, newest first, then the shared ones."""
    return [(_label(p), run_model_name(p.parent)) for p in session_models(session_dir)] + [
        (name, name) for name in shared_models()]


def resolve(name: str | None, session_dir: Path | None) -> Path | None:
    """The folder of a listed model, or None (another session's model, a path, a name that isn't listed)."""
    if not name:
        return None
    if name.startswith(YOURS):
        return next((p for p in session_models(session_dir) if run_model_name(p.parent) == name), None)
    return shared_models().get(name)


def label(name: str | None, session_dir: Path | None) -> str:
    """What a model is listed as (a trained model's own name)."""
    return next((shown for shown, value in choices(session_dir) if value == name), str(name or ""))
