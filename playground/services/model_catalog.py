"""The models a session may use: found on disk, loaded once, and known to the page and the API by name only.

    choices(session)        [("emoji32", "emoji32"), ("my-dog (yours)", "yours/my-dog-3fa9c1"), ...]
    resolve(name, session)  the folder behind a listed name, or None: nothing else can be named
    get_checkpoint(folder)  the loaded model (cached by folder and modification time)

Shared models are the checkpoint folders in the shipped checkpoints/ and $PLAYGROUND_CHECKPOINTS, named by their
folder; when two roots hold the same name, the first keeps it and the next is "name (2)". A session's own models are
the runs it trained (services.run_folder), named "yours/RUN" and labelled with the name the person gave them.
Inference only: nothing here loads training code.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch

from playground.checkpoints import UNET_WEIGHTS, Checkpoint, list_checkpoints, load_checkpoint
from playground.services.run_folder import RunFolder, session_runs

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints"  # the repository's checkpoints/
YOURS = "yours/"


def checkpoint_roots() -> list[Path]:
    """Where shared checkpoints are found: the shipped ones, then any in $PLAYGROUND_CHECKPOINTS (os.pathsep-separated
    folders)."""
    extra = [Path(p) for p in os.environ.get("PLAYGROUND_CHECKPOINTS", "").split(os.pathsep) if p]
    return [SHIPPED, *extra]


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> Checkpoint:
    checkpoint = load_checkpoint(path)
    checkpoint.unet.to(memory_format=torch.channels_last)
    return checkpoint


def get_checkpoint(folder: str | os.PathLike) -> Checkpoint:
    """Load (cached by folder and the weights' modification time) a checkpoint, in eval mode, channels-last."""
    folder = Path(folder)
    weights = folder / UNET_WEIGHTS
    return _load(str(folder), weights.stat().st_mtime_ns if weights.is_file() else 0)


def shared_models() -> dict[str, Path]:
    """Name -> folder of every shared checkpoint, in listing order."""
    named: dict[str, Path] = {}
    for path in list_checkpoints(*checkpoint_roots()):
        name, n = path.name, 1
        while name in named:
            n += 1
            name = f"{path.name} ({n})"
        named[name] = path
    return named


def session_models(session_dir: Path | None) -> list[RunFolder]:
    """The runs of a session that have a model (stopped ones included), newest first."""
    return [run for run in session_runs(session_dir) if run.has_model()]


def run_model_name(run: RunFolder) -> str:
    """The name a session's run is chosen by."""
    return YOURS + run.path.name


def choices(session_dir: Path | None) -> list[tuple[str, str]]:
    """(label, name) of every model the session may use: its own, newest first, then the shared ones."""
    return [(f"{run.name()} (yours)", run_model_name(run)) for run in session_models(session_dir)] + [
        (name, name) for name in shared_models()]


def resolve(name: str | None, session_dir: Path | None) -> Path | None:
    """The folder of a listed model, or None (another session's model, a path, a name that isn't listed)."""
    if not name:
        return None
    if name.startswith(YOURS):
        return next((run.checkpoint for run in session_models(session_dir) if run_model_name(run) == name), None)
    return shared_models().get(name)


def resolve_checkpoint(name: str | None, session_dir: Path | None) -> Checkpoint:
    """The loaded model behind a listed name, or ValueError (CheckpointError) with one sentence."""
    if not name:
        raise ValueError("No model is installed yet: checkpoints/ has none. Train one in the Train tab or with "
                         "`python -m playground train`.")
    folder = resolve(name, session_dir)
    if folder is None:
        raise ValueError("That model is not available here; pick one from the list.")
    return get_checkpoint(folder)


def label(name: str | None, session_dir: Path | None) -> str:
    """What a model is listed as (a trained model's own name)."""
    return next((shown for shown, value in choices(session_dir) if value == name), str(name or ""))
