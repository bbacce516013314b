"""Screenshots of every tab on a laptop (1280x900) and a phone (390x844), for docs/ and for looking at by eye.

    python scripts/screenshots.py [--url http://127.0.0.1:7860/] [--out docs] [--only forward,sample]

Starts the app itself unless --url is given. Drives Debian's Chromium (Playwright): Forward after moving t,
Schedule with zero-SNR versions, Sample *while it runs* (mid-run) and when done, the prompt model with its guidance
equation and sweep (sample_prompt), Edit with a painted half repainted, Train after a short run with the
memorisation meter, the toy lab after training and sampling, the Forward tab's latent section (latent) and the
distilled student in the Sample tab (sample_distilled). Writes OUT/<tab>.jpg and OUT/<tab>_phone.jpg.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playground.services.image_sampling import PROMPT_SAMPLING  # noqa: E402

CHROMIUM = os.environ.get("PLAYGROUND_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-dev-shm-usage"]
SIZES = {"": (1280, 900), "_phone": (390, 844)}


def shoot(page, path: Path, full_page: bool = True) -> None:
    page.wait_for_timeout(600)  # let plots and images settle
    png = path.with_suffix(".png")
    page.screenshot(path=str(png), full_page=full_page)
    from PIL import Image

    with Image.open(png) as image:
        image.convert("RGB").save(path, quality=82, optimize=True)
    png.unlink()
    print(f"wrote {path}")


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    page.wait_for_timeout(500)


def set_number(page, elem_id: str, value: int) -> None:
    """Type into a slider's number box and press Enter, as a person would."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def forward(page, out: Path, suffix: str) -> None:
    open_tab(page, "Forward")
    page.locator("#forward-xt img").wait_for()
    set_number(page, "forward-t", 400)
    page.wait_for_function("() => document.querySelector('#forward-formula').innerText.includes('400')")
    shoot(page, out / f"forward{suffix}.jpg")


def schedule(page, out: Path, suffix: str) -> None:
    open_tab(page, "Schedule")
    page.locator("#schedule-alpha-bar .js-plotly-plot").wait_for()
    shoot(page, out / f"schedule{suffix}.jpg")


def sample(page, out: Path, suffix: str) -> None:
    open_tab(page, "Sample")
    page.get_by_text("DDPM (ancestral)").click()
    set_number(page, "sample-steps", 1000)
    page.locator("#sample-generate").click()
    page.wait_for_function("() => /Step (1[0-9]{2}|[2-9][0-9]{2}) of/.test(document.querySelector('#sample-status')"
                           ".innerText)", timeout=120_000)
    page.locator("#sample-status").scroll_into_view_if_needed()
    shoot(page, out / f"sample_midrun{suffix}.jpg", full_page=False)
    page.locator("#sample-stop").click()
    page.wait_for_function("() => document.querySelector('#sample-status').innerText.includes('Stopped')",
                           timeout=60_000)
    page.get_by_text("DPM-Solver++(2M)").first.click()
    set_number(page, "sample-steps", 25)
    page.locator("#sample-generate").click()
    page.wait_for_function("() => document.querySelector('#sample-status').innerText.includes('Done')",
                           timeout=120_000)
    shoot(page, out / f"sample{suffix}.jpg")


def generate_prompt(page, words: str) -> None:
    """Type ``words`` into the Sample tab's prompt box, press Generate and wait until it is done."""
    box = page.locator("#sample-prompt input, #sample-prompt textarea").first
    box.fill("")
    box.press_sequentially(words)
    page.locator("#sample-generate").click()
    page.wait_for_function("() => document.querySelector('#sample-status').innerText.includes('Done: ')",
                           timeout=120_000)


def run_section(page, title: str, button: str, pictures: int, timeout: int) -> None:
    """Open the accordion titled ``title``, press #``button`` and wait for ``pictures`` in #``button``-gallery."""
    page.get_by_text(title).click()
    page.locator(f"#{button}").click()
    page.wait_for_function(f"() => document.querySelectorAll('#{button}-gallery img').length >= {pictures}",
                           timeout=timeout)


def prompt(page, out: Path, suffix: str) -> None:
    """The prompt model following "cat" at the default guidance and sampler, with the guidance equation, then the
    guidance sweep."""
    open_tab(page, "Sample")
    page.locator("#sample-checkpoint input").click()
    page.get_by_role("option", name="emoji32", exact=True).click()
    page.wait_for_function("() => document.querySelector('#sample-prompt-note').innerText.includes('without')")
    page.get_by_text("DPM-Solver++(2M)").first.click()  # from the tab's plain defaults, as a visitor finds them...
    set_number(page, "sample-steps", 25)
    page.locator("#sample-checkpoint input").click()
    page.get_by_role("option", name="emoji32-prompts").click()  # ...to a prompt model's: ancestral DDPM
    page.wait_for_function("() => document.querySelector('#sample-steps input[type=number]').value === "
                           f"'{PROMPT_SAMPLING[1]}'")
    generate_prompt(page, "cat")
    run_section(page, "Guidance sweep: the same seed", "sample-sweep", 5, timeout=300_000)
    shoot(page, out / f"sample_prompt{suffix}.jpg")


def train(page, out: Path, suffix: str, photos: list[str]) -> None:
    open_tab(page, "Train")
    page.locator("#train-upload input[type=file]").set_input_files(photos)
    page.wait_for_function(f"() => document.querySelectorAll('#train-gallery img').length === {len(photos)}")
    page.get_by_text("Advanced").click()
    page.locator("#train-steps input").fill("120")
    page.locator("#train-steps input").press("Tab")  # commit the value before pressing Train
    page.locator("#train-go").click()
    page.wait_for_function("() => /Step ([4-9][0-9]|1[0-9]{2}) of/.test(document.querySelector('#train-status')"
                           ".innerText)", timeout=300_000)
    page.locator("#train-status").scroll_into_view_if_needed()
    shoot(page, out / f"train_midrun{suffix}.jpg", full_page=False)
    page.wait_for_function("() => document.querySelector('#train-status').innerText.includes('Done')",
                           timeout=600_000)
    page.locator("#train-try").click()
    page.wait_for_function("() => document.querySelectorAll('#train-meter img').length === 16", timeout=120_000)
    shoot(page, out / f"train{suffix}.jpg")


def toy(page, out: Path, suffix: str) -> None:
    """The Ring of 8 Gaussians: trained, sampled with annealed Langevin (the ODE's paths beside), every sampler
    compared, and the score field at t = 300 beside the true one."""
    open_tab(page, "2-D toy lab")
    page.locator("#toy-forward .js-plotly-plot").wait_for()
    page.locator("#toy-dataset input").click()
    page.get_by_role("option", name="Ring of 8 Gaussians").click()
    page.wait_for_timeout(1500)
    page.locator("#toy-train").click()
    page.wait_for_function("() => document.querySelector('#toy-status').innerText.includes('done')", timeout=120_000)
    page.locator("#toy-sampler").get_by_text("Annealed Langevin").click()
    page.locator("#toy-sample").click()
    page.wait_for_function("() => document.querySelector('#toy-verdict').innerText.includes('MMD')", timeout=60_000)
    page.locator("#toy-compare").click()
    page.wait_for_function("() => document.querySelector('#toy-table').innerText.includes('Predictor')",
                           timeout=120_000)
    page.locator("#toy-score").click()
    page.wait_for_function("() => document.querySelector('#toy-score-note').innerText.includes('squared error')",
                           timeout=60_000)
    shoot(page, out / f"toy{suffix}.jpg")


def edit(page, out: Path, suffix: str) -> None:
    """The Edit tab: the example dog with its right half painted over, repainted by emoji32 (RePaint, the defaults)."""
    open_tab(page, "Edit")
    page.locator("#edit-checkpoint input").click()
    page.get_by_role("option", name="emoji32", exact=True).click()
    page.locator("#edit-picture input[type=file]").set_input_files(str(ROOT / "playground" / "data" / "examples" /
                                                                       "dog.png"))
    canvas = page.locator("#edit-canvas canvas").first
    canvas.wait_for()
    page.wait_for_timeout(1500)
    box = canvas.bounding_box()  # as wide as the editor: the square picture sits in its middle
    side = min(box["width"], box["height"])
    left, top = box["x"] + (box["width"] - side) / 2, box["y"] + (box["height"] - side) / 2
    for row in range(8):  # brush strokes over the right half
        y = top + side * (0.08 + 0.12 * row)
        page.mouse.move(left + side * 0.55, y)
        page.mouse.down()
        page.mouse.move(left + side * 0.95, y, steps=8)
        page.mouse.up()
    page.get_by_text("Fill in what I paint (RePaint)").click()
    page.locator("#edit-go").click()
    page.wait_for_function("() => document.querySelector('#edit-status').innerText.includes('Done')", timeout=300_000)
    shoot(page, out / f"edit{suffix}.jpg")


def latent(page, out: Path, suffix: str) -> None:
    """The Forward tab's latent section: the landscape through the latent model's autoencoder, t = 400."""
    open_tab(page, "Forward")
    set_number(page, "forward-t", 400)
    page.get_by_text("The latent space: your photo through a latent model's autoencoder").click()
    page.locator("#forward-latent-show").click()
    page.wait_for_function("() => document.querySelector('#forward-latent-note').innerText.includes('PSNR')",
                           timeout=60_000)
    page.locator("#forward-latent").scroll_into_view_if_needed()
    shoot(page, out / f"latent{suffix}.jpg", full_page=False)


def distilled(page, out: Path, suffix: str) -> None:
    """The Sample tab with the distilled student: "cat" in its 4 steps, then one of its steps beside two of the
    teacher's."""
    open_tab(page, "Sample")
    page.locator("#sample-checkpoint input").click()
    page.get_by_role("option", name="emoji32-prompts-distilled").click()
    page.wait_for_function("() => document.querySelector('#sample-prompt-note').innerText.includes('distilled')")
    generate_prompt(page, "cat")
    run_section(page, "Distillation: a student's one step", "sample-halving", 4, timeout=120_000)
    shoot(page, out / f"sample_distilled{suffix}.jpg")


def example_photos(folder: Path) -> list[str]:
    """Six photos for the Train tab: crops of the bundled example pictures (no downloads)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    examples = sorted((ROOT / "playground" / "data" / "examples").glob("*.png"))
    paths = []
    for i in range(6):
        with Image.open(examples[i % len(examples)]) as image:
            w, h = image.size
            crop = image.convert("RGB").crop((i * w // 12, 0, w - (5 - i) * w // 12, h))
            path = folder / f"photo_{i}.png"
            crop.save(path)
            paths.append(str(path))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running app (default: start one)")
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument("--only", default="forward,schedule,sample,prompt,edit,train,toy,latent,distilled")
    parser.add_argument("--sizes", default="laptop,phone")
    args = parser.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    url, demo = args.url, None
    if url is None:
        from playground.ui import build_app, launch

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        demo = build_app()
        launch(demo, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
        url = f"http://127.0.0.1:{port}/"
    from playwright.sync_api import sync_playwright

    wanted = args.only.split(",")
    photos = example_photos(Path(tempfile.mkdtemp()) / "photos")
    sizes = {k: v for k, v in SIZES.items() if ("phone" if k else "laptop") in args.sizes.split(",")}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        for suffix, (width, height) in sizes.items():
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(60_000)
            page.goto(url)
            page.locator("#forward-xt img").wait_for()
            for name in wanted:
                if name == "train":
                    train(page, out, suffix, photos)
                else:
                    globals()[name](page, out, suffix)
            page.close()
        browser.close()
    if demo is not None:
        demo.close()


if __name__ == "__main__":
    main()
