"""A real browser (Debian's Chromium, driven by Playwright) on the real page: one flow per tab, with screenshots.

Screenshots are kept in tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import io
import os
import shutil
import time

import pytest
from PIL import Image, ImageStat

from playground.diffusion.guidance import DEFAULT_GUIDANCE
from playground.services.image_sampling import PROMPT_SAMPLING

from conftest import ARTIFACTS
from image_files import write_bad, write_good

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("PLAYGROUND_CHROMIUM", "/usr/bin/chromium")
# As root, on a machine with no network: no sandbox, and no background calls home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def app_url(app):
    return app.url


@pytest.fixture(scope="module")
def page(app_url):
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}; the test command installs Debian's 'chromium' package.")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(30_000)
        page.goto(app_url)
        yield page
        browser.close()


def image_src(page, elem_id: str) -> str | None:
    img = page.locator(f"#{elem_id} img")
    return img.first.get_attribute("src") if img.count() else None


def wait_for_new_src(page, elem_id: str, old: str | None, timeout_ms: int = 30_000) -> str:
    page.wait_for_function(
        """([id, old]) => { const img = document.querySelector('#' + id + ' img');
                            return img && img.src && img.src !== old; }""",
        arg=[elem_id, old], timeout=timeout_ms)
    return image_src(page, elem_id)


def grey_spread(canvas) -> float:
    """The grey-level standard deviation of what a canvas shows (its WebGL pixels cannot be read from the page)."""
    return ImageStat.Stat(Image.open(io.BytesIO(canvas.screenshot())).convert("L")).stddev[0]


def wait_for_picture_on(canvas, empty: float, timeout_s: float = 30.0) -> None:
    """Until the image editor's canvas shows a picture: its pixels vary well beyond the empty canvas's ``empty``
    spread (about 13 here; the test photo's is about 60)."""
    deadline = time.monotonic() + timeout_s
    while grey_spread(canvas) < 2 * empty + 5:
        assert time.monotonic() < deadline, "the picture never reached the canvas"
        time.sleep(0.2)


def choose_model(page, name: str) -> None:
    """Pick a model in the Sample tab and wait until the tab has caught up with it (its summary and prompt note)."""
    page.locator("#sample-checkpoint input").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.wait_for_function("(name) => document.querySelector('#sample-info').innerText.includes(name) && "
                           "document.querySelector('#sample-prompt-note').innerText.trim() !== ''", arg=name,
                           timeout=60_000)  # the first choice also loads the page's model list on a busy machine
    page.wait_for_timeout(300)  # the steps slider's range arrives with the same change


def set_slider(page, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def test_forward_tab_upload_move_t_and_see_x_t_change(page, tmp_path_factory):
    photos = write_good(tmp_path_factory.mktemp("good"))
    # On load the tab already shows the default example noised at t = 250.
    first = wait_for_new_src(page, "forward-xt", None)
    x0_before = image_src(page, "forward-x0")
    page.locator("#forward-photo input[type=file]").set_input_files(str(photos["phone_rotated.jpg"]))
    wait_for_new_src(page, "forward-x0", x0_before)
    after_upload = wait_for_new_src(page, "forward-xt", first)
    page.screenshot(path=str(ARTIFACTS / "forward_uploaded.png"), full_page=True)

    set_slider(page, "forward-t", 800)
    moved = wait_for_new_src(page, "forward-xt", after_upload)
    assert moved != after_upload
    page.wait_for_function("() => document.querySelector('#forward-formula').innerText.includes('800')")
    page.screenshot(path=str(ARTIFACTS / "forward_t800.png"), full_page=True)


def test_forward_tab_bad_upload_shows_a_sentence_and_keeps_working(page, tmp_path_factory):
    bad = write_bad(tmp_path_factory.mktemp("bad"))
    shown = image_src(page, "forward-xt")
    page.locator("#forward-photo button[aria-label=Clear]").click()  # back to the example landscape
    shown = wait_for_new_src(page, "forward-xt", shown)
    page.locator("#forward-photo input[type=file]").set_input_files(str(bad["notes.txt"]))
    toast = page.get_by_text("is not an image we can read", exact=False)
    toast.first.wait_for(state="visible")
    page.screenshot(path=str(ARTIFACTS / "forward_bad_upload.png"), full_page=True)
    assert page.get_by_text("Traceback").count() == 0
    # The last good pictures stay on screen, the box no longer names the refused file, and examples work again.
    assert image_src(page, "forward-xt") == shown
    page.wait_for_function("() => !document.querySelector('#forward-photo').innerText.includes('notes.txt')")
    before = shown
    page.get_by_text("dog.png", exact=False).first.click()
    wait_for_new_src(page, "forward-xt", before)


def test_schedule_tab_shows_the_plots(page):
    page.get_by_role("tab", name="Schedule").click()
    page.locator("#schedule-alpha-bar .js-plotly-plot").wait_for(state="visible")
    page.wait_for_function(
        "() => document.querySelectorAll('#schedule-alpha-bar .js-plotly-plot .scatterlayer .trace').length >= 2")
    page.get_by_label("sigmoid").check()
    page.wait_for_function(
        "() => document.querySelectorAll('#schedule-alpha-bar .js-plotly-plot .scatterlayer .trace').length >= 3")
    page.screenshot(path=str(ARTIFACTS / "schedule.png"), full_page=True)
    # Typing T and pressing Enter redraws, and a linear schedule that never reaches pure noise is explained.
    box = page.locator("#schedule-T input[type=number]")
    box.fill("100")
    box.press("Enter")
    page.wait_for_function("() => document.querySelector('#schedule-alpha-bar .js-plotly-plot').data[0].x.length"
                           " === 100")
    page.wait_for_function("() => document.querySelector('#schedule-notes').innerText.includes('ends at ᾱ = 0.364')")


def test_toy_lab_trains_samples_and_animates(page):
    page.get_by_role("tab", name="2-D toy lab").click()
    page.locator("#toy-forward .js-plotly-plot").wait_for(state="visible")
    page.locator("#toy-train").click()
    page.wait_for_function("() => document.querySelector('#toy-status').innerText.includes('done')", timeout=90_000)
    page.locator("#toy-loss .js-plotly-plot").wait_for(state="visible")
    page.locator("#toy-sample").click()
    page.locator("#toy-reverse .js-plotly-plot").wait_for(state="visible")
    page.wait_for_function("() => document.querySelector('#toy-verdict').innerText.includes('Energy distance')")
    # The axes frame the data (normalised to unit variance: within about +-2.5), not the noise it came from.
    x_range = page.evaluate("() => document.querySelector('#toy-reverse .js-plotly-plot')._fullLayout.xaxis.range")
    assert -4 < x_range[0] < -1 and 1 < x_range[1] < 4, x_range
    # Press Play: the animation restarts from pure noise and ends where it started, on the result.
    plot = "document.querySelector('#toy-reverse .js-plotly-plot')"
    final = page.evaluate(f"() => {plot}.data.at(-1).x[0]")
    # Frames are attached by the page's script shortly after the plot draws; Play works once they are.
    page.wait_for_function(f"() => {plot}.dataset.framesReady === String({plot}.layout.meta.token)")
    page.locator("#toy-reverse .updatemenu-button").first.click()
    page.wait_for_function(f"(final) => {plot}.data.at(-1).x[0] !== final", arg=final)
    page.wait_for_function(f"(final) => {plot}.data.at(-1).x[0] === final", arg=final, timeout=20_000)
    page.screenshot(path=str(ARTIFACTS / "toy.png"), full_page=True)
    # Another dataset: the model is marked stale and its results are cleared; Sample says to train first.
    page.locator("#toy-dataset input").click()
    page.get_by_role("option", name="Two moons").click()
    page.wait_for_function("() => document.querySelector('#toy-status').innerText.includes('Press Train')")
    assert "Swiss roll" in page.locator("#toy-status").inner_text()
    assert page.locator("#toy-verdict").inner_text().strip() == ""
    page.locator("#toy-sample").click()
    page.locator(".toast-body").filter(has_text="press Train first").first.wait_for(state="visible")
    page.screenshot(path=str(ARTIFACTS / "toy_stale.png"), full_page=True)


def visible_at_centre(page, elem_id: str) -> bool:
    """Is the picture itself what a person sees at its centre (not a progress box over it)?"""
    return page.evaluate("""(id) => { const img = document.querySelector('#' + id + ' img');
        if (!img) return false;
        const r = img.getBoundingClientRect();
        if (r.width < 20 || r.height < 20) return false;
        img.scrollIntoView({block: 'center'});
        const q = img.getBoundingClientRect();
        return document.elementFromPoint(q.left + q.width / 2, q.top + q.height / 2) === img; }""", elem_id)


def test_sample_tab_shows_the_denoising_while_it_runs_and_stop_keeps_the_animation(page):
    page.get_by_role("tab", name="Sample").click()
    choose_model(page, "emoji32")  # a real model: slow enough to watch mid-run
    page.get_by_text("DDPM (ancestral)").click()
    set_slider(page, "sample-steps", 1000)
    set_slider(page, "sample-count", 4)
    page.locator("#sample-generate").click()
    page.wait_for_function("() => /Step ([3-9][0-9]|[1-9][0-9]{2}) of 1000/.test("
                           "document.querySelector('#sample-status').innerText)", timeout=60_000)
    first = image_src(page, "sample-xt")
    assert visible_at_centre(page, "sample-xt") and visible_at_centre(page, "sample-x0")
    page.screenshot(path=str(ARTIFACTS / "sample_midrun.png"))
    wait_for_new_src(page, "sample-xt", first)  # the pictures change as it runs
    assert visible_at_centre(page, "sample-xt")
    page.locator("#sample-stop").click()
    page.wait_for_function("() => document.querySelector('#sample-status').innerText.includes('Stopped at step')",
                           timeout=30_000)
    page.locator("#sample-animation img").wait_for(state="visible")  # the animation so far, shown and downloadable
    assert page.locator("#sample-gif a").count() == 2


def test_sample_tab_generates_and_downloads_the_gif(page):
    page.get_by_role("tab", name="Sample").click()
    choose_model(page, "tiny-test")
    page.locator("#sample-sampler").get_by_text("DDIM", exact=True).click()
    set_slider(page, "sample-steps", 20)
    set_slider(page, "sample-count", 9)
    page.locator("#sample-generate").click()
    page.wait_for_function("() => document.querySelector('#sample-status').innerText.includes('Done')", timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "sample.png"), full_page=True)
    with page.expect_download() as download:
        page.locator("#sample-gif a").first.click()
    path = download.value.path()
    from PIL import Image

    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 21  # every step, then the result


def test_sample_tab_prompt_box_follows_the_model_and_shows_the_guidance_equation(page):
    page.get_by_role("tab", name="Sample").click()
    choose_model(page, "tiny-test")
    note = "document.querySelector('#sample-prompt-note').innerText"
    page.wait_for_function(f"() => {note}.includes('trained without prompts')")
    assert page.locator("#sample-prompt textarea, #sample-prompt input").first.is_disabled()
    sampler = page.locator("#sample-sampler")
    sampler.get_by_text("DPM-Solver++(2M)", exact=True).click()
    set_slider(page, "sample-steps", 25)
    choose_model(page, "tiny-prompts")
    box = page.locator("#sample-prompt textarea, #sample-prompt input").first
    page.wait_for_function(f"() => {note}.includes('knows 5 words')")
    assert box.is_enabled()
    # untouched plain defaults become the prompt defaults (ancestral DDPM), and the note says why
    page.wait_for_function("() => document.querySelector('#sample-steps input[type=number]').value === "
                           f"'{PROMPT_SAMPLING[1]}'")
    assert sampler.get_by_label("DDPM (ancestral)").is_checked() and "start on DDPM" in page.locator(
        "#sample-prompt-note").inner_text()
    box.press_sequentially("red he")
    page.wait_for_function(f"() => {note}.includes('heart')")  # words that complete the one being typed
    box.press_sequentially("art")
    sampler.get_by_text("DDIM", exact=True).click()
    set_slider(page, "sample-steps", 8)
    set_slider(page, "sample-count", 4)
    page.locator("#sample-generate").click()
    page.wait_for_function("() => document.querySelector('#sample-status').innerText.includes('Done: 4 images for')",
                           timeout=60_000)
    assert f"“red heart” at guidance {DEFAULT_GUIDANCE:g}" in page.locator("#sample-status").inner_text()
    equation = page.locator("#sample-equation")
    assert equation.locator(".katex").count() >= 2 and "RMS" in equation.inner_text()  # typeset, with the numbers
    page.screenshot(path=str(ARTIFACTS / "sample_prompt.png"), full_page=True)
    box.fill("kat")
    page.locator("#sample-generate").click()
    page.locator(".toast-body").filter(has_text="nearest known words: cat").first.wait_for(state="visible")
    box.fill("")


def test_forward_tab_too_large_upload_is_refused_with_a_sentence(page, tmp_path_factory):
    big = tmp_path_factory.mktemp("big") / "huge_photo.jpg"
    with open(big, "wb") as f:
        f.truncate(31 * 1024 * 1024)  # over the 30 MB limit
    page.get_by_role("tab", name="Forward").click()
    shown = image_src(page, "forward-xt")
    clear = page.locator("#forward-photo button[aria-label=Clear]")
    if clear.count():
        clear.first.click()
        shown = wait_for_new_src(page, "forward-xt", shown)
    page.locator("#forward-photo input[type=file]").set_input_files(str(big))
    toast = page.locator(".toast-body").filter(has_text="MB").first
    toast.wait_for(state="visible")
    text = toast.inner_text()
    assert "30" in text and "Traceback" not in text, text
    page.screenshot(path=str(ARTIFACTS / "forward_too_large.png"), full_page=True)
    assert image_src(page, "forward-xt") == shown  # the pictures on screen are kept


def test_train_tab_upload_six_train_see_loss_and_preview_then_sample(page, tmp_path_factory):
    from image_files import photo

    folder = tmp_path_factory.mktemp("six")
    paths = []
    for i in range(6):
        paths.append(str(folder / f"dog_{i}.jpg"))
        photo(120, 90, seed=i).save(paths[-1], quality=90)
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-base input").click()
    page.get_by_role("option", name="tiny-test").click()
    # DreamBooth's word boxes need a base that takes prompts: off for this one, with the reason
    page.wait_for_function("() => document.querySelector('#train-subject-note').innerText.includes('needs a base')")
    assert page.locator("#train-subject input, #train-subject textarea").first.is_disabled()
    page.locator("#train-upload input[type=file]").set_input_files(paths)
    page.wait_for_function("() => document.querySelectorAll('#train-gallery img').length === 6")
    assert "6 photos, trained on as 8×8" in page.locator("#train-photo-note").inner_text()
    page.get_by_text("Advanced").click()
    page.locator("#train-steps input").fill("40")
    page.locator("#train-name input, #train-name textarea").first.fill("Rex the dog")
    page.locator("#train-go").click()
    page.wait_for_function("() => document.querySelector('#train-status').innerText.includes('Done')",
                           timeout=120_000)
    assert page.locator("#train-loss .js-plotly-plot").count() == 1
    assert image_src(page, "train-preview")
    page.locator("#train-try").click()
    page.wait_for_function("() => document.querySelectorAll('#train-meter img').length === 16", timeout=60_000)
    page.wait_for_function("() => /^(Copies|New images)/.test(document.querySelector('#train-meter-note').innerText)")
    # all eight pairs at once, every caption whole and on screen
    captions = page.locator("#train-meter figcaption")
    assert captions.count() == 8
    assert page.evaluate("""() => [...document.querySelectorAll('#train-meter figcaption')].every(c =>
        c.scrollWidth <= c.clientWidth + 1 && c.getBoundingClientRect().height > 0)""")
    page.screenshot(path=str(ARTIFACTS / "train.png"), full_page=True)
    # the new model is offered, and chosen, in the Sample tab at once
    page.get_by_role("tab", name="Sample").click()
    assert "rex-the-dog (yours)" in page.locator("#sample-checkpoint input").input_value()
    # its description names it as listed, not by its folder ("checkpoint")
    page.wait_for_function("() => document.querySelector('#sample-info').innerText.includes('rex-the-dog (yours)')")
    page.locator("#sample-generate").click()
    page.wait_for_function("() => document.querySelector('#sample-status').innerText.includes('Done')", timeout=60_000)
    assert image_src(page, "sample-xt")


def test_edit_tab_paints_a_mask_and_repaints_it(page, tmp_path_factory):
    photos = write_good(tmp_path_factory.mktemp("edit"))
    page.get_by_role("tab", name="Edit").click()
    page.locator("#edit-checkpoint input").click()
    page.get_by_role("option", name="tiny-test", exact=True).click()
    canvas = page.locator("#edit-canvas canvas").first
    empty = grey_spread(canvas)
    page.locator("#edit-picture input[type=file]").set_input_files(str(photos["photo.png"]))
    wait_for_picture_on(canvas, empty)  # a stroke painted before the picture arrives is wiped when it does
    box = canvas.bounding_box()  # the canvas is as wide as the editor; the square picture sits in its middle
    page.mouse.move(box["x"] + box["width"] * 0.46, box["y"] + box["height"] * 0.35)
    page.mouse.down()
    for k in range(12):  # a thick stroke down the middle of the picture
        page.mouse.move(box["x"] + box["width"] * (0.46 + 0.005 * k), box["y"] + box["height"] * (0.35 + 0.025 * k))
    page.mouse.up()
    page.get_by_text("Fill in what I paint (RePaint)").click()
    set_slider(page, "edit-steps", 10)
    page.locator("#edit-go").click()
    page.wait_for_function("() => /Done|Error/.test(document.querySelector('#edit-status').innerText)", timeout=90_000)
    assert "Done" in page.locator("#edit-status").inner_text(), page.locator(".toast-body").all_inner_texts()
    assert "RePaint" in page.locator("#edit-status").inner_text()
    assert image_src(page, "edit-xt") and image_src(page, "edit-x0")
    assert page.locator("#edit-walk .js-plotly-plot").count() == 1
    page.screenshot(path=str(ARTIFACTS / "edit.png"), full_page=True)
    # with nothing painted, RePaint says so in a sentence
    page.get_by_text("Change it (SDEdit: strength)").click()
    page.locator("#edit-go").click()
    page.wait_for_function("() => document.querySelector('#edit-status').innerText.includes('SDEdit')",
                           timeout=60_000)


def test_on_a_phone_every_tab_is_reachable_and_the_pictures_stay_in_view(page, app_url):
    phone = page.context.browser.new_page(viewport={"width": 390, "height": 844})
    try:
        page = phone
        page.set_default_timeout(30_000)
        page.goto(app_url)
        page.locator("#forward-xt img").wait_for()
        tabs = page.get_by_role("tab")
        names = [tabs.nth(i).inner_text() for i in range(tabs.count())]
        assert names == ["Forward", "Schedule", "Sample", "Edit", "Train", "2-D toy lab"]  # none behind a menu
        assert all(tabs.nth(i).is_visible() for i in range(tabs.count()))
        # The formula fits the width, and the t slider sits right under x_t: both on screen together.
        assert page.evaluate("""() => [...document.querySelectorAll('#forward-formula .katex-display')].every(
            k => k.scrollWidth <= k.clientWidth + 1)""")
        page.locator("#forward-t").scroll_into_view_if_needed()
        x_t = page.locator("#forward-xt img").bounding_box()
        slider = page.locator("#forward-t").bounding_box()
        assert 0 <= x_t["y"] and slider["y"] + slider["height"] <= 844 and slider["y"] - x_t["y"] < 400
        page.screenshot(path=str(ARTIFACTS / "phone_forward.png"))
        for name in names[1:]:
            page.get_by_role("tab", name=name).click()
            page.wait_for_timeout(300)
            assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1"), name
    finally:
        phone.close()
