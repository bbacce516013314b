"""Training on several processes, proven on this CPU with `torchrun --nproc_per_node 2` (gloo): the averaged
gradient is one process's on the same images, the loss falls, one checkpoint is written that diffusers loads, and
stopping and re-running continues at the same step, bit for bit."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = Path(sys.executable).with_name("torchrun")
pytestmark = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is installed with torch")


def torchrun(args: list[str], env: dict | None = None, processes: int = 2) -> subprocess.CompletedProcess:
    command = [str(TORCHRUN), "--nproc_per_node", str(processes), "--master_port", str(free_port()), *args]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def free_port() -> int:
    from conftest import free_port as port

    return port()


@pytest.mark.slow
def test_two_processes_of_four_average_to_one_process_of_eight(tmp_path):
    alone, pair = tmp_path / "alone.pt", tmp_path / "pair.pt"
    subprocess.run([sys.executable, "tests/ddp_gradients.py", str(alone)], cwd=ROOT, check=True, timeout=300)
    torchrun(["tests/ddp_gradients.py", str(pair)])
    a, b = torch.load(alone, weights_only=True), torch.load(pair, weights_only=True)
    assert a.abs().sum() > 0
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)


@pytest.fixture(scope="module")
def squares(tmp_path_factory):
    folder = tmp_path_factory.mktemp("squares")
    rng = np.random.RandomState(0)
    for i in range(24):
        pixels = np.full((32, 32, 3), 255, np.uint8)
        x, y = rng.randint(4, 20, 2)
        pixels[y:y + 10, x:x + 10] = rng.randint(0, 255, 3)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return folder


@pytest.mark.slow
def test_torchrun_trains_saves_once_and_resumes_exactly(squares, tmp_path):
    env = {"PLAYGROUND_DATA_CACHE": str(tmp_path / "cache")}

    def train(out: Path, steps: int) -> subprocess.CompletedProcess:
        return torchrun(["-m", "playground", "train", "--data", str(squares), "--resolution", "32", "--model", "tiny",
                         "--steps", str(steps), "--batch-size", "4", "--lr", "2e-3", "--warmup-steps", "5",
                         "--preview-every", "1000", "--out", str(out), "--threads", "1"], env)

    straight = train(tmp_path / "straight", 300)
    assert "training on 2 processes (cpu): batch 4 per process, global batch 8" in straight.stdout
    assert straight.stdout.count("wrote ") == 1  # the main process alone reports (and writes)
    log = np.loadtxt(tmp_path / "straight" / "log.csv", delimiter=",", skiprows=1)
    assert log.shape == (300, 4) and log[-50:, 1].mean() < 0.7 * log[:10, 1].mean()  # the averaged loss falls
    checkpoint = tmp_path / "straight" / "checkpoint"
    pipeline = DDPMPipeline.from_pretrained(checkpoint, use_safetensors=True)
    assert pipeline.unet.config.sample_size == 32
    info = json.loads((checkpoint / "playground.json").read_text())
    assert (info["processes"], info["global_batch"], info["steps"]) == (2, 8, 300)
    assert sorted(p.name for p in (tmp_path / "straight").iterdir()) == ["checkpoint", "log.csv", "samples"]
    # Ctrl-C mid-run (torchrun passes it to every process; they agree on the step, save and exit), then the same
    # command again: it continues at that step, every process's random stream restored, and ends where the
    # uninterrupted run ended, bit for bit
    command = [str(TORCHRUN), "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "playground", "train",
               "--data", str(squares), "--resolution", "32", "--model", "tiny", "--steps", "300", "--batch-size", "4",
               "--lr", "2e-3", "--warmup-steps", "5", "--preview-every", "1000", "--out", str(tmp_path / "resumed"),
               "--threads", "1"]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", **env},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log_file = tmp_path / "resumed" / "log.csv"
    deadline = time.monotonic() + 300
    while not (log_file.is_file() and len(log_file.read_text().splitlines()) > 40):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-2000:]
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    stopped_at = json.loads((tmp_path / "resumed" / "checkpoint" / "playground.json").read_text())["steps"]
    assert 40 <= stopped_at < 300
    state = json.loads((tmp_path / "resumed" / "checkpoint" / "training" / "state.json").read_text())
    assert state["world_size"] == 2
    again = torchrun(command[5:], env)
    assert f"at step {stopped_at}" in again.stdout
    ours = DDPMPipeline.from_pretrained(tmp_path / "resumed" / "checkpoint", use_safetensors=True).unet.state_dict()
    theirs = pipeline.unet.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


@pytest.mark.slow
def test_the_same_command_runs_under_accelerate_launch(squares, tmp_path):
    accelerate = Path(sys.executable).with_name("accelerate")
    if not accelerate.exists():
        pytest.skip("accelerate is in requirements-dev.txt")
    # accelerate's multi-process launcher is torchrun underneath; on a CPU it runs gloo like torchrun does
    result = subprocess.run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                             "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
                             str(free_port()), "-m", "playground", "train", "--data", str(squares), "--resolution",
                             "32", "--model", "tiny", "--steps", "20", "--batch-size", "4", "--preview-every", "1000",
                             "--out", str(tmp_path / "run"), "--threads", "1"], cwd=ROOT, capture_output=True,
                            text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1",
                                                         "PLAYGROUND_DATA_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training on 2 processes (cpu): batch 4 per process, global batch 8" in result.stdout
    info = json.loads((tmp_path / "run" / "checkpoint" / "playground.json").read_text())
    assert (info["processes"], info["steps"]) == (2, 20)
