"""Where heavy work runs: on a ZeroGPU Space, :func:`on_gpu` borrows a GPU for one call; elsewhere nothing changes.

A ZeroGPU Space (Hugging Face) has no GPU of its own: a function decorated with ``spaces.GPU(duration=...)`` gets
one for a single call, which runs in a forked process. Its arguments and its result (or each item a generator
yields) are pickled across; nothing else comes back. So the functions decorated here take plain values (folder
names, numbers, a :class:`~playground.services.jobs.StopFile`), put their tensors on the CPU before returning
them, and report through what they return or yield. The duration is a callable of the same arguments: a visitor's
daily GPU quota is a few minutes, and shorter requests queue first, so each call asks for what it needs.

The ``spaces`` package is imported only on ZeroGPU (``SPACES_ZERO_GPU`` set, as the Hub sets it), before torch
initialises CUDA (app.py imports this module first). Locally, on CPU Spaces and without ``spaces`` installed, the
decorator returns the function itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

MAX_CALL_SECONDS = 120  # one call never asks for more: long training runs in chunks that resume


def on_zerogpu() -> bool:
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in {"1", "t", "true"}


def on_space() -> bool:
    """Running as a Hugging Face Space (the Hub sets SPACE_ID)."""
    return bool(os.environ.get("SPACE_ID"))


def hardware() -> str:
    """Where the app runs, for cost estimates: "zerogpu", "space-cpu" (a CPU Space) or "local"."""
    if on_zerogpu():
        return "zerogpu"
    return "space-cpu" if on_space() else "local"


def _spaces():
    if not on_zerogpu():
        return None
    try:
        import spaces  # preinstalled on ZeroGPU Spaces; the Space's requirements.txt (scripts/build_space.py) adds it
    except ImportError:
        return None
    return spaces


def on_gpu(duration: int | Callable[..., float]) -> Callable[[F], F]:
    """Decorate a function (or generator function) that does GPU work: ``spaces.GPU(duration=...)`` on ZeroGPU,
    nothing anywhere else. ``duration``: seconds, or a callable of the function's own arguments."""

    def capped(*args, **kwargs) -> int:
        seconds = duration(*args, **kwargs) if callable(duration) else duration
        return int(min(MAX_CALL_SECONDS, max(5, round(seconds))))

    def decorate(function: F) -> F:
        spaces = _spaces()
        if spaces is None:
            return function
        return spaces.GPU(duration=capped)(function)

    return decorate


if on_zerogpu():
    _spaces()  # before anything imports torch and touches CUDA


# Estimates for ZeroGPU's durations (a visitor's daily quota is a few minutes, and shorter requests queue first): no
# ZeroGPU was at hand to measure them, so they are generous guesses from a GPU slice's rough speed.
SAMPLE_S_PER_IMAGE_STEP = 4e-4  # one network evaluation of one 32 px image
TRAIN_S_PER_STEP, TRAIN_S_PER_IMAGE = 0.02, 0.001  # one optimizer step, plus this per 32 px image in the batch


def sampling_seconds(resolution: int, steps: int, count: int, guided: bool = False) -> float:
    """One sampling call: start-up, the network's evaluations (twice with guidance: with and without the prompt),
    by area above 32 px, then the animation frames."""
    evaluations = int(steps) * int(count) * (2 if guided else 1)
    return 8 + evaluations * SAMPLE_S_PER_IMAGE_STEP * (resolution / 32) ** 2 + 0.02 * min(int(steps), 60)


def training_seconds(steps: int, batch_size: int, resolution: int = 32) -> float:
    """``steps`` optimizer steps of ``batch_size`` images at ``resolution``."""
    return steps * (TRAIN_S_PER_STEP + TRAIN_S_PER_IMAGE * batch_size * (resolution / 32) ** 2)
