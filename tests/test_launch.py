"""`python app.py` itself: it serves the page where Hugging Face Spaces' variables (or --host/--port) say."""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def wait_for_page(url: str, process: subprocess.Popen, timeout: float = 90) -> str:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            pytest.fail(f"app.py exited with {process.returncode}: {process.stdout.read()}")
        try:
            return urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"{url} did not answer within {timeout} s")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["environment", "arguments"])
def test_app_serves_on_the_requested_port(how):
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    args = [sys.executable, str(ROOT / "app.py")]
    if how == "environment":
        env.update(GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1")
    else:
        args += ["--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        page = wait_for_page(f"http://127.0.0.1:{port}/", process)
        assert "Diffusion Playground" in page
    finally:
        process.terminate()
        process.wait(timeout=30)
