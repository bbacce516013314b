"""Forward tab latency on this machine, and our add_noise against diffusers' on the same work.

    python bench/forward_latency.py [--startup]

Prints, for a 512 px photo at each working resolution:
  * cold:   the first update after an upload, event `noise` (decode + crop + resize + noise + x_0, x_t, eps and the
            strip PNG-encoded as Gradio does)
  * warm:   one update as the t slider moves, event `noise_step` (photo cached; x_t PNG-encoded), server side
  * client: the same update end to end through gradio_client (HTTP, queue, results), which also re-uploads the
            photo on every call (a browser does not); pictures are not downloaded, as a browser fetches them lazily
and the ratio of diffusers' DDPMScheduler.add_noise time to ours on the same tensors (>1: ours is faster).
With --startup, also the time from `python app.py` to the page answering.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402
from gradio import processing_utils  # noqa: E402

from playground.diffusion import add_noise  # noqa: E402
from playground.diffusion.schedules import get_schedule  # noqa: E402
from playground.services.photo_noising import _load_prepared  # noqa: E402
from playground.ui.forward import noise, noise_step  # noqa: E402

from image_files import photo  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def encode_outputs(outputs) -> None:
    """What Gradio does with our return values: PNG-encode each picture into its cache."""
    for value in outputs:
        if hasattr(value, "save"):
            processing_utils.encode_pil_to_bytes(value, "png")


def bench_handler(path: Path, repeats: int) -> None:
    print(f"Forward tab, 512x384 JPEG photo, torch threads={torch.get_num_threads()}")
    for resolution in (64, 128, 256):
        def cold(i, resolution=resolution):
            _load_prepared.cache_clear()
            encode_outputs(noise(str(path), "linear", 1000, 100 + i, 0, resolution, False))

        def warm(i, resolution=resolution):
            encode_outputs(noise_step(str(path), "linear", 1000, (37 * i) % 1000, 0, resolution, False))

        warm(0)
        print(f"  {resolution:>3} px: cold {median_ms(cold, max(3, repeats // 4)):6.1f} ms   "
              f"warm (slider) {median_ms(warm, repeats):6.1f} ms")


def bench_client(path: Path, repeats: int) -> None:
    from gradio_client import Client, handle_file

    from playground.ui import build_app, launch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_app()
    launch(demo, port=port, prevent_thread_lock=True, quiet=True)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
    uploaded = handle_file(str(path))
    for resolution in (64, 128, 256):
        client.predict(uploaded, "linear", 1000, 1, 0, resolution, False, api_name="/noise")
        ms = median_ms(lambda i, r=resolution: client.predict(uploaded, "linear", 1000, (37 * i) % 1000, 0, r, False,
                                                              api_name="/noise_step"), repeats)
        print(f"  {resolution:>3} px: end to end through gradio_client {ms:6.1f} ms per slider update")
    demo.close()


def bench_add_noise(repeats: int) -> None:
    from diffusers import DDPMScheduler

    schedule = get_schedule("linear", 1000)
    theirs = DDPMScheduler(num_train_timesteps=1000)
    generator = torch.Generator().manual_seed(0)
    for batch, size in ((1, 256), (64, 64)):
        x0 = torch.rand(batch, 3, size, size, generator=generator) * 2 - 1
        eps = torch.randn(batch, 3, size, size, generator=generator)
        t = torch.randint(0, 1000, (batch,), generator=generator)
        with torch.inference_mode():
            ours_ms = median_ms(lambda i, x0=x0, eps=eps, t=t: add_noise(schedule, x0, eps, t), repeats * 4)
            theirs_ms = median_ms(lambda i, x0=x0, eps=eps, t=t: theirs.add_noise(x0, eps, t), repeats * 4)
        print(f"  add_noise ({batch}, 3, {size}, {size}): ours {ours_ms:.3f} ms, diffusers {theirs_ms:.3f} ms, "
              f"ratio diffusers/ours = {theirs_ms / ours_ms:.2f}x")


def bench_startup() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < 120:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        print(f"  app start-up: `python app.py` to the page answering in {time.perf_counter() - started:.1f} s")
    finally:
        process.terminate()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--startup", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "photo512.jpg"
        photo(512, 384).save(path, quality=90)
        bench_handler(path, args.repeats)
        bench_client(path, args.repeats)
    bench_add_noise(args.repeats)
    if args.startup:
        bench_startup()


if __name__ == "__main__":
    main()
