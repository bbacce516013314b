"""Shared by every test: offline settings, where artifacts go, a free port, and the app launched once per run."""

import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def wait_for(condition, timeout: float = 60.0, what: str = "the condition", poll: float = 0.05):
    """Poll ``condition()`` until it is true; fail the test after ``timeout`` seconds instead of hanging."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(poll)


def meter_copies(pairs_html: str, sentence: str) -> int:
    """How many of the meter's samples are copies, read from its captioned pairs; checked against its sentence."""
    import re

    captions = re.findall(r"<figcaption[^>]*>\d+: (copy|new) \(match (-?[\d.]+)\)</figcaption>", pairs_html)
    copies = sum(kind == "copy" for kind, _ in captions)
    total = len(captions)
    if copies * 2 > total:
        assert sentence.startswith(f"Copies: {copies} of {total} samples"), sentence
    else:
        assert sentence.startswith(f"New images: {total - copies} of {total} samples"), sentence
    assert all((kind == "copy") == (float(match) >= 0.6) for kind, match in captions), captions
    return copies


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class LaunchedApp:
    url: str
    base: str  # the folder of a tiny random model, listed beside the shipped ones...
    model: str  # ...under this name, which is what the page and the API use
    prompt_model: str  # a tiny random prompt model's name
    latent_model: str  # a tiny random latent model's name
    student_model: str  # a tiny random distilled student of prompt_model
    work: Path  # PLAYGROUND_WORK_DIR: the sessions' folders


@pytest.fixture(scope="session")
def app(tmp_path_factory) -> LaunchedApp:
    """The app, launched once for the whole run (the API, Train and browser tests share it; each test that needs
    its own session opens its own Client or page)."""
    from playground.ui import build_app, launch

    from tiny_checkpoint import (
        make_greyscale_diffusers_folder,
        make_tiny_checkpoint,
        make_tiny_latent_checkpoint,
        make_tiny_prompt_checkpoint,
        make_tiny_student_checkpoint,
    )

    with pytest.MonkeyPatch.context() as patch:
        work = tmp_path_factory.mktemp("work")
        patch.setenv("PLAYGROUND_WORK_DIR", str(work))
        checkpoints = tmp_path_factory.mktemp("checkpoints")
        base = make_tiny_checkpoint(checkpoints / "tiny-test")
        make_greyscale_diffusers_folder(checkpoints / "grey-28")  # a 1-channel 28 px folder diffusers wrote
        make_tiny_prompt_checkpoint(checkpoints / "tiny-prompts")
        make_tiny_latent_checkpoint(checkpoints / "tiny-latent")
        make_tiny_student_checkpoint(checkpoints / "tiny-student", teacher_name="tiny-prompts")
        patch.setenv("PLAYGROUND_CHECKPOINTS", str(checkpoints))
        demo = build_app()
        port = free_port()
        launch(demo, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
        yield LaunchedApp(f"http://127.0.0.1:{port}/", str(base), "tiny-test", "tiny-prompts", "tiny-latent",
                          "tiny-student", work)
        demo.close()
