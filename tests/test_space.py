"""The Hugging Face Space: the folder scripts/build_space.py assembles starts on its own with a Space's environment,
shows no server path, refuses local-only features, and runs its GPU work the way ZeroGPU does (in a forked process,
arguments and results pickled across: tests/fake_zerogpu), and every tracked file stays under the Hub's 10 MB."""

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from conftest import free_port, meter_copies, wait_for
from image_files import write_good
from tiny_checkpoint import make_tiny_checkpoint

ROOT = Path(__file__).resolve().parent.parent
FAKE_ZEROGPU = Path(__file__).resolve().parent / "fake_zerogpu"
# An absolute path on a Unix server: what no page config, API description or error sentence may contain.
SERVER_PATH = re.compile(r"(?<![\w.:/])/(?:tmp|home|root|work|usr|opt|var|srv|app|data|mnt)/[\w.-]")


def test_every_tracked_file_is_under_the_hubs_10_mb():
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode()
    files = [ROOT / n for n in names.split("\0") if n and (ROOT / n).is_file()]
    assert len(files) > 50
    sizes = {str(p.relative_to(ROOT)): p.stat().st_size for p in files}
    assert max(sizes.values()) < 10_000_000, max(sizes.items(), key=lambda kv: kv[1])


def test_gpu_work_is_the_plain_function_off_zerogpu(monkeypatch):
    from playground.services import gpu

    def work(n):
        return n + 1

    monkeypatch.syspath_prepend(str(FAKE_ZEROGPU))
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert gpu.on_gpu(10)(work) is work  # locally and on CPU Spaces, even with `spaces` installed
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setitem(sys.modules, "spaces", None)  # on ZeroGPU without the package: still runs, on the CPU
    assert gpu.on_gpu(10)(work) is work
    monkeypatch.delitem(sys.modules, "spaces")
    decorated = gpu.on_gpu(lambda n: 1000 * n)(work)  # with it: borrowed for the call, the duration capped
    assert decorated is not work and decorated(2) == 3


def test_the_built_folder_holds_what_the_space_needs(tmp_path):
    out = tmp_path / "space"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_space.py"), str(out)], check=True,
                   capture_output=True)
    names = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert {"app.py", "README.md", "requirements.txt", "LICENSE", "playground/ui/train.py",
            "playground/data/examples/dog.png", "checkpoints/emoji32/unet/diffusion_pytorch_model.safetensors"} <= names
    assert not any(n.startswith(("tests/", "bench/", ".venv", "scripts/")) for n in names)
    assert max(p.stat().st_size for p in out.rglob("*") if p.is_file()) < 10_000_000
    requirements = (out / "requirements.txt").read_text()
    assert "torch==2.14.1" in requirements and re.search(r"^spaces\b", requirements, re.M)
    front = (out / "README.md").read_text().split("---")[1]
    for key in ("sdk: gradio", "app_file: app.py", "python_version:", "short_description:", "sdk_version:"):
        assert key in front


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """The built Space folder, started alone (its own app.py and package; nothing from this checkout on the path)
    with a Space's environment, on ZeroGPU as the fake `spaces` package plays it."""
    out = tmp_path_factory.mktemp("build") / "space"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_space.py"), str(out)], check=True,
                   capture_output=True)
    checkpoints = tmp_path_factory.mktemp("checkpoints")
    make_tiny_checkpoint(checkpoints / "tiny-test")
    log = tmp_path_factory.mktemp("log") / "zerogpu.jsonl"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLAYGROUND_", "GRADIO_", "PYTHON"))}
    env.update(SPACE_ID="someone/diffusion-playground", SYSTEM="spaces", GRADIO_SERVER_NAME="0.0.0.0",
               GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1",
               SPACES_ZERO_GPU="true", PYTHONPATH=str(FAKE_ZEROGPU), FAKE_ZEROGPU_LOG=str(log),
               PLAYGROUND_CHECKPOINTS=str(checkpoints), PLAYGROUND_WORK_DIR=str(tmp_path_factory.mktemp("work")))
    where = subprocess.run([sys.executable, "-c", "import playground; print(playground.__file__)"], cwd=out, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(out)  # the app runs from the built folder alone
    server_log = open(tmp_path_factory.mktemp("server") / "log.txt", "w+")  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, "app.py"], cwd=out, env=env, stdout=server_log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                server_log.seek(0)
                pytest.fail(f"the Space did not start:\n{server_log.read()[-3000:]}")
            time.sleep(0.5)
    yield {"url": url, "log": log, "folder": out, "checkpoints": checkpoints}
    process.terminate()
    process.wait(timeout=30)
    server_log.close()


def zerogpu_calls(space) -> list[dict]:
    log = space["log"]
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


@pytest.mark.slow
def test_the_space_serves_every_tab_and_shows_no_server_path(space):
    config = fetch(space["url"] + "config")
    api = fetch(space["url"] + "gradio_api/info")
    labels = {c["props"].get("label") for c in json.loads(config)["components"]}
    assert {"Forward", "Schedule", "Sample", "Train", "2-D toy lab"} <= labels
    for text in (config, api):
        assert not SERVER_PATH.findall(text), SERVER_PATH.findall(text)[:5]
        assert str(space["folder"]) not in text and str(space["checkpoints"]) not in text
    components = {c["props"].get("elem_id"): c["props"] for c in json.loads(config)["components"]}
    assert components["train-save"]["visible"] is False  # local-only: hidden
    assert "of your daily ZeroGPU minutes" in config  # presets say what they cost here
    sample_models = [value for _, value in components["sample-checkpoint"]["choices"]]
    from playground.checkpoints import list_checkpoints
    from playground.services.model_catalog import SHIPPED

    assert sample_models == [folder.name for folder in list_checkpoints(SHIPPED)] + ["tiny-test"]  # names, no paths


@pytest.mark.slow
def test_the_space_refuses_local_only_features_with_a_sentence(space, tmp_path):
    client = Client(space["url"], verbose=False)
    with pytest.raises(AppError, match="works when the app runs on your own computer"):
        client.predict(api_name="/train_save")
    photos = write_good(tmp_path)
    client.predict([handle_file(str(photos["photo.png"]))], "center", "tiny-test", api_name="/train_add_photos")
    with pytest.raises(AppError, match="only be used when the app runs on your own computer") as refused:
        client.submit("center", "tiny-test", str(ROOT / "checkpoints" / "emoji32"), "quick", 2, 1e-3, 4, True, 0.85,
                      0.05, 0.0, 0.99, 3, 0, "x", api_name="/train").result()
    assert not SERVER_PATH.search(str(refused.value))
    # a folder is not a model name (Gradio's check of the dropdown, or ours, refuses it; neither loads it)
    with pytest.raises(AppError, match="not available here|not in the list of choices"):
        client.predict(str(space["folder"] / "checkpoints" / "emoji32"), "dpmpp", 5, 1, 0, 0.0, api_name="/sample")
    with pytest.raises(AppError, match="not in the list of choices") as unknown:
        client.predict("no-such-model", "dpmpp", 5, 1, 0, 0.0, api_name="/sample")
    assert not SERVER_PATH.search(str(unknown.value))


@pytest.mark.slow
def test_gpu_work_runs_as_zerogpu_runs_it(space, tmp_path):
    client = Client(space["url"], verbose=False)
    status, animation, files = client.submit("tiny-test", "ddim", 12, 4, 3, 0.0, api_name="/sample").result()[2:5]
    assert status.startswith("Done: 4 images") and len(files) >= 1
    *pictures, table = client.predict("tiny-test", 0, api_name="/sample_compare")
    assert [row[1] for row in table["data"]] == [1000, 50, 20]
    photos = write_good(tmp_path)
    client.predict([handle_file(str(p)) for p in list(photos.values())[:3]], "center", "tiny-test",
                   api_name="/train_add_photos")
    status = client.submit("center", "tiny-test", "", "quick", 6, 1e-3, 4, True, 0.85, 0.05, 0.0, 0.99, 3, 0,
                           "on-zero", api_name="/train").result()[0]
    assert status.startswith("Done: 6 steps"), status
    pairs, reading, _ = client.predict(api_name="/train_try")
    assert pairs.count("<img ") == 16
    meter_copies(pairs, reading)
    # Stop reaches the forked GPU process (a file, not a threading.Event)
    job = client.submit("tiny-test", "ddpm", 1000, 64, 3, 0.0, api_name="/sample")
    wait_for(job.outputs, what="the first sampling update")
    assert client.predict(api_name="/sample_stop").startswith("Stopping")
    assert job.result()[2].startswith("Stopped at step ")
    calls = {c["function"]: c["seconds"] for c in zerogpu_calls(space)}
    assert {"stream_sampling", "compare_samplers", "finetune_chunk", "meter_view"} <= set(calls)
    assert all(0 < s <= 120 for s in calls.values())  # each asks for what it needs, within one call's cap
