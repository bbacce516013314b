"""Forward tab: noise a photo at any timestep and see the numbers that did it."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from playground import media
from playground.data.images import FORMATS, MAX_FILE_BYTES, MAX_PIXELS, ImageError
from playground.diffusion import BETA_SCHEDULES
from playground.diffusion.schedules import MAX_TIMESTEPS, MIN_TIMESTEPS
from playground.services import workdir
from playground.services.latent_view import latent_models, latent_view
from playground.services.photo_noising import (
    FORWARD_GIF_STEPS,
    RESOLUTIONS,
    formula_markdown,
    forward_gif,
    forward_strip,
    level_numbers,
    load_x0,
    noise_request,
)
from playground.ui.common import checkpoint_for, problem, session_folder, toasts

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "data" / "examples"
EXAMPLES = sorted(str(p) for p in EXAMPLES_DIR.glob("*.png"))
DEFAULT_EXAMPLE = str(EXAMPLES_DIR / "landscape.png")
SHOWING_EXAMPLE = "*Showing the example landscape: drop your own photo into \"Your photo\", or pick another example.*"

INTRO = """
The **forward process** blends a photo with Gaussian noise. At timestep *t* it has a closed form,
so any *t* can be reached in one step: $x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\epsilon$,
with $\\epsilon \\sim \\mathcal N(0, I)$ and $\\bar\\alpha_t$ from the schedule.
A diffusion model learns to run this backwards. *t* counts from 0, as in diffusers: t = 0 already adds $\\beta_1$
of noise.
"""


def _noised(photo, schedule_name, num_timesteps, t, seed, resolution, zero_snr):
    """Check the values and noise the photo (the bundled landscape when there is none)."""
    with toasts():
        noised, schedule = noise_request(photo or DEFAULT_EXAMPLE, schedule_name, num_timesteps, t, seed, resolution,
                                         zero_snr)
    caption = formula_markdown(noised.level) + ("" if photo else "\n\n" + SHOWING_EXAMPLE)
    return noised, schedule, caption, level_numbers(schedule, noised.level)


def noise(
    photo: str | None, schedule_name: str, num_timesteps: int, t: int, seed: int, resolution: int, zero_snr: bool
):
    """x_0, x_t, eps, the formula with numbers, a strip over t, and the numbers as a dict.

    With no photo, the bundled landscape example is used.
    """
    noised, schedule, caption, numbers = _noised(photo, schedule_name, num_timesteps, t, seed, resolution, zero_snr)
    return (
        media.zoom(media.tensor_to_pil(noised.x0)),
        media.zoom(media.tensor_to_pil(noised.x_t)),
        media.zoom(media.noise_to_pil(noised.noise)),
        caption,
        forward_strip(noised.x0, noised.noise, schedule, cell=128),
        numbers,
    )


def noise_step(
    photo: str | None, schedule_name: str, num_timesteps: int, t: int, seed: int, resolution: int, zero_snr: bool
):
    """What changes as the t slider moves: x_t, the formula and the numbers (x_0, eps and the strip do not)."""
    noised, _, caption, numbers = _noised(photo, schedule_name, num_timesteps, t, seed, resolution, zero_snr)
    return media.zoom(media.tensor_to_pil(noised.x_t)), caption, numbers


def noise_gif(
    photo: str | None, schedule_name: str, num_timesteps: int, seed: int, resolution: int, zero_snr: bool,
    request: gr.Request,
):
    """A GIF of x_0 -> x_T for this photo, schedule and seed; returned twice (to show and to download)."""
    noised, schedule, _, _ = _noised(photo, schedule_name, num_timesteps, 0, seed, resolution, zero_snr)
    workdir.remove_stale()
    path = session_folder(request) / f"forward-{schedule.name}-T{schedule.num_timesteps}-{uuid.uuid4().hex[:8]}.gif"
    started = time.perf_counter()
    forward_gif(noised.x0, noised.noise, schedule, path)
    gr.Info(f"GIF ready: {FORWARD_GIF_STEPS + 1} frames in {time.perf_counter() - started:.1f} s.")
    return str(path), str(path)


LATENT_INTRO = """A **latent model** (Stable Diffusion's idea) does not denoise pixels: an autoencoder squeezes the
picture into a few small channels, the diffusion model works on those, and the decoder draws the result. Here your
photo goes through a latent model's autoencoder, and the same *t* noises the latents (then decoded) beside the
pixels: latent noise decodes to blotches and smears, not speckle, because the decoder can only draw pictures."""


def show_latent(photo: str | None, name: str | None, schedule_name: str, num_timesteps: int, t: int, seed: int,
                zero_snr: bool, request: gr.Request):
    """The photo through a latent model's autoencoder: its latent channels, the reconstruction with its PSNR, and
    the same t in latent and in pixel space."""
    if not name:
        raise problem("No latent model is installed: checkpoints/ has none with an autoencoder (vae/).")
    checkpoint = checkpoint_for(name, request)
    with toasts():
        noised, schedule = noise_request(photo or DEFAULT_EXAMPLE, schedule_name, num_timesteps, t, seed, 64,
                                         zero_snr)
        view = latent_view(photo or DEFAULT_EXAMPLE, checkpoint, schedule, noised.level.t, seed)
    channels = [(media.zoom(media.noise_to_pil(view.latents[0, c:c + 1]), 128), f"channel {c + 1}")
                for c in range(view.latents.shape[1])]
    _, c, h, w = view.latents.shape
    side = view.picture.shape[-1]
    note = (f"{side}×{side}×3 = {view.picture.numel():,} numbers become {c}×{h}×{w} = {view.latents.numel():,}: "
            f"**{view.compression:.0f}× fewer**. The reconstruction's PSNR is **{view.psnr:.1f} dB** (30 dB is an "
            f"RMS error of 8 of 255 levels). At t = {noised.level.t}, both spaces get √ᾱ = "
            f"{noised.level.sqrt_alpha_bar:.3f} of the signal and √(1−ᾱ) = {noised.level.sqrt_one_minus_alpha_bar:.3f} "
            "of fresh noise.")
    pictures = [media.zoom(media.tensor_to_pil(x), 256) for x in (view.picture, view.reconstruction,
                                                                 view.noised_decoded, view.noised_pixels)]
    return (*pictures, channels, note)


def t_range(num_timesteps: int, t: int, previous_T: int | None):
    """When T changes, keep t at the same fraction of the way (t = 250 of 1000 becomes 12 of 50), inside 0..T-1."""
    try:
        last, t = int(num_timesteps) - 1, int(t)
    except (TypeError, ValueError):
        return gr.Slider(), gr.skip()
    previous_last = int(previous_T or 1000) - 1
    scaled = round(t / max(previous_last, 1) * last)
    return gr.Slider(maximum=max(last, 1), value=min(max(scaled, 0), last)), int(num_timesteps)


def keep_good_photo(photo: str | None, last_good: str | None, resolution: int):
    """After a refused upload, put the last good photo back in the box, so the box and the pictures agree."""
    if not photo:
        return gr.skip(), None
    try:
        load_x0(photo, int(resolution))
    except (ImageError, ValueError, OSError):
        return last_good, gr.skip()
    return gr.skip(), photo


def build(demo: gr.Blocks) -> None:
    """Lay out the Forward tab inside ``demo`` and wire its events (it shows an example on page load)."""
    gr.Markdown(INTRO, latex_delimiters=[{"left": "$$", "right": "$$", "display": True},
                                         {"left": "$", "right": "$", "display": False}])
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            photo = gr.File(
                label="Your photo",
                file_count="single",
                type="filepath",
                elem_id="forward-photo",
            )
            gr.Markdown(f"{FORMATS}; up to {MAX_FILE_BYTES // 2**20} MB and {MAX_PIXELS // 1_000_000} megapixels. "
                        "Phone photos are turned upright; transparency becomes white.")
            gr.Examples(examples=[[p] for p in EXAMPLES], inputs=[photo],
                        label="Examples (drawn by our code; the dog is Noto Color Emoji, OFL 1.1)")
            schedule = gr.Dropdown(list(BETA_SCHEDULES), value="linear", label="Schedule", elem_id="forward-schedule")
            num_timesteps = gr.Slider(MIN_TIMESTEPS, MAX_TIMESTEPS, value=1000, step=10, label="T (number of steps)",
                                      elem_id="forward-T")
            with gr.Row():
                seed = gr.Number(value=0, precision=0, label="Seed for eps", minimum=0)
                resolution = gr.Radio(list(RESOLUTIONS), value=128, label="Working resolution (px)")
            zero_snr = gr.Checkbox(False, label="Rescale to zero terminal SNR (Lin et al. 2024)")
        with gr.Column(scale=2):
            with gr.Row(elem_classes=["side-by-side"]):
                x0 = gr.Image(label="x₀", format="png", interactive=False,
                              elem_classes=["pixelated"], elem_id="forward-x0", min_width=90)
                x_t = gr.Image(label="x_t", format="png", interactive=False,
                               elem_classes=["pixelated"], elem_id="forward-xt", min_width=90)
                eps = gr.Image(label="ε", format="png", interactive=False,
                               elem_classes=["pixelated"], elem_id="forward-eps", min_width=90)
            # right under the pictures, so moving t never scrolls x_t out of view (on a phone too)
            t = gr.Slider(0, 999, value=250, step=1, label="t (timestep): slide it and watch x_t", elem_id="forward-t")
            formula = gr.Markdown("", latex_delimiters=[{"left": "$$", "right": "$$", "display": True},
                                                              {"left": "$", "right": "$", "display": False}],
                                  elem_id="forward-formula")
            gr.Markdown("x₀ is your photo, centre-cropped; ε is the noise, shown from −3σ (black) to +3σ (white); "
                        "x_t is clipped to the picture's range. "
                        "Below: the same photo and noise at evenly spaced t, from x₀ to the last step.")
            strip = gr.Image(show_label=False, format="png", interactive=False, height=180,
                             elem_classes=["pixelated"], elem_id="forward-strip", buttons=["download", "fullscreen"])
            with gr.Accordion("The numbers (JSON)", open=False):
                numbers = gr.JSON(label="Noise level at t")
            with gr.Accordion("The whole forward process as a GIF", open=False):
                gif_button = gr.Button(f"Make the GIF ({FORWARD_GIF_STEPS + 1} frames)", variant="secondary")
                with gr.Row():
                    gif = gr.Image(label="Forward process", interactive=False, elem_id="forward-gif", height=300)
                    gif_file = gr.File(label="Download the GIF", interactive=False)

    latent = _latent_section()
    inputs = [photo, schedule, num_timesteps, t, seed, resolution, zero_snr]
    outputs = [x0, x_t, eps, formula, strip, numbers]
    previous_T, last_good = gr.State(1000), gr.State(None)
    num_timesteps.change(t_range, [num_timesteps, t, previous_T], [t, previous_T], api_name="noise_t_range",
                         api_visibility="undocumented", queue=False).then(
        noise, inputs, outputs, show_progress="hidden", concurrency_limit=4, api_name="noise_after_T",
        api_visibility="private")
    gr.on(
        triggers=[demo.load, photo.change, schedule.change, seed.change, resolution.change, zero_snr.change],
        fn=noise, inputs=inputs, outputs=outputs, api_name="noise",
        trigger_mode="always_last", show_progress="hidden", concurrency_limit=4,
    ).then(keep_good_photo, [photo, last_good, resolution], [photo, last_good], api_name="noise_keep_good_photo",
           api_visibility="private", queue=False)
    t.change(noise_step, inputs, [x_t, formula, numbers], api_name="noise_step",
             trigger_mode="always_last", show_progress="hidden", concurrency_limit=4)
    gif_button.click(noise_gif, [photo, schedule, num_timesteps, seed, resolution, zero_snr], [gif, gif_file],
                     api_name="noise_gif", concurrency_limit=2)
    gr.on([latent.button.click, t.release], show_latent,
          [photo, latent.model, schedule, num_timesteps, t, seed, zero_snr],
          [latent.picture, latent.reconstruction, latent.noised, latent.pixels, latent.channels, latent.note],
          api_name="noise_latent", concurrency_limit=2, show_progress="hidden")


def _latent_section() -> SimpleNamespace:
    """The accordion that shows a photo in a latent model's latent space."""
    names = list(latent_models())
    c = SimpleNamespace()
    with gr.Accordion("The latent space: your photo through a latent model's autoencoder", open=False,
                      elem_id="forward-latent"):
        gr.Markdown(LATENT_INTRO)
        with gr.Row():
            c.model = gr.Dropdown(names, value=names[0] if names else None, label="Latent model", scale=3)
            c.button = gr.Button("Show the latent (and follow t)", scale=2, elem_id="forward-latent-show")
        c.channels = gr.Gallery(label="The latent's channels (−3σ black, +3σ white)", columns=4, height="auto",
                                elem_classes=["pixelated"], elem_id="forward-latent-channels")
        with gr.Row(elem_classes=["side-by-side"]):
            c.picture = gr.Image(label="x₀ (64 px)", format="png", interactive=False, elem_classes=["pixelated"],
                                 min_width=90)
            c.reconstruction = gr.Image(label="decoded again", format="png", interactive=False,
                                        elem_classes=["pixelated"], min_width=90, elem_id="forward-latent-decoded")
        with gr.Row(elem_classes=["side-by-side"]):
            c.noised = gr.Image(label="latents at t, decoded", format="png", interactive=False,
                                elem_classes=["pixelated"], min_width=90, elem_id="forward-latent-noised")
            c.pixels = gr.Image(label="pixels at t", format="png", interactive=False, elem_classes=["pixelated"],
                                min_width=90)
        c.note = gr.Markdown(elem_id="forward-latent-note")
    return c
