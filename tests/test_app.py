"""The launched app, driven through gradio_client: every api_name, good and bad uploads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from playground import media
from playground.diffusion.schedules import get_schedule
from playground.services.photo_noising import load_x0, noise_photo

from conftest import wait_for
from image_files import BAD, GOOD, write_bad, write_good


@pytest.fixture(scope="module")
def client(app):
    return Client(app.url, verbose=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return {**write_good(tmp_path_factory.mktemp("good")), **write_bad(tmp_path_factory.mktemp("bad"))}


def noise(client, path, schedule="cosine", T=1000, t=250, seed=0, resolution=64, zero_snr=False):
    return client.predict(handle_file(str(path)), schedule, T, t, seed, resolution, zero_snr, api_name="/noise")


def test_every_endpoint_is_named(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/noise", "/noise_step", "/noise_gif", "/schedule", "/sample", "/sample_compare", "/toy_data",
            "/toy_train", "/toy_sample", "/toy_compare"} <= names


def test_served_x_t_is_the_core_x_t_pixel_for_pixel(client, files):
    x0_path, xt_path, eps_path, formula, strip, numbers = noise(client, files["photo.jpg"], t=400, seed=7,
                                                                resolution=64)
    schedule = get_schedule("cosine", 1000)
    expected = noise_photo(load_x0(files["photo.jpg"], 64), schedule, 400, 7)
    served = Image.open(xt_path).convert("RGB")
    assert served.size == (256, 256)  # 64 px zoomed x4, nearest-neighbour
    unzoomed = served.resize((64, 64), Image.NEAREST)
    assert np.array_equal(np.asarray(unzoomed), np.asarray(media.tensor_to_pil(expected.x_t)))
    assert numbers["t"] == 400 and numbers["schedule"] == "cosine"
    assert numbers["sqrt_alpha_bar"] == pytest.approx(float(schedule.sqrt_alphas_cumprod[400]))
    assert f"{numbers['sqrt_alpha_bar']:.4f}" in formula and "dB" in formula


@pytest.mark.slow
def test_noise_step_is_the_slider_part_of_noise(client, files):
    full = noise(client, files["photo.png"], t=321, seed=3)
    step = client.predict(handle_file(str(files["photo.png"])), "cosine", 1000, 321, 3, 64, False,
                          api_name="/noise_step")
    assert np.array_equal(np.asarray(Image.open(full[1])), np.asarray(Image.open(step[0])))
    assert step[1] == full[3] and step[2] == full[5]


@pytest.mark.slow
def test_moving_t_changes_x_t_and_the_seed_fixes_the_noise(client, files):
    a = np.asarray(Image.open(noise(client, files["photo.png"], t=100)[1]), dtype=int)
    b = np.asarray(Image.open(noise(client, files["photo.png"], t=900)[1]), dtype=int)
    again = np.asarray(Image.open(noise(client, files["photo.png"], t=100)[1]), dtype=int)
    other_seed = np.asarray(Image.open(noise(client, files["photo.png"], t=100, seed=1)[1]), dtype=int)
    assert np.abs(a - b).mean() > 10
    assert np.array_equal(a, again)
    assert np.abs(a - other_seed).mean() > 1


@pytest.mark.parametrize("name", GOOD)
@pytest.mark.slow
def test_good_uploads_work_through_the_app(client, files, name):
    x0_path, xt_path, *_ = noise(client, files[name])
    assert Image.open(x0_path).size == (256, 256)


@pytest.mark.slow
def test_bad_uploads_get_a_sentence_and_the_app_stays_up(client, files, capfd):
    capfd.readouterr()  # what came before is not this test's
    for name, message in BAD.items():
        with pytest.raises(AppError) as caught:
            noise(client, files[name])
        text = str(caught.value)
        assert name in text and "Traceback" not in text, text
        assert any(part in text for part in message.split("|")), text
        # still serving, and still answering correctly
        assert noise(client, files["photo.png"], t=10)[5]["t"] == 10
    # expected refusals are the person's to read, not the server log's: no traceback for any of them
    assert "Traceback" not in capfd.readouterr().err


def test_a_seed_past_gradios_checks_gets_our_sentence(client, files):
    with pytest.raises(AppError, match="The seed must be between 0 and 9223372036854775807"):
        noise(client, files["photo.png"], seed=2**63)


def test_t_beyond_T_is_clamped_to_the_last_step(client, files):
    assert noise(client, files["photo.png"], T=100, t=500)[5]["t"] == 99


def test_zero_terminal_snr_last_step_is_pure_noise_and_valid_json(client, files):
    x0_path, xt_path, eps_path, formula, _, numbers = noise(client, files["photo.png"], T=100, t=99, zero_snr=True)
    assert numbers["alpha_bar"] == 0 and numbers["snr_db"] == "-inf" and "-\\infty" in formula
    x_t, eps = np.asarray(Image.open(xt_path), dtype=int), np.asarray(Image.open(eps_path), dtype=int)
    # x_T is eps itself: the same picture up to the display ranges ([-1, 1] vs [-3, 3] sigma)
    assert np.corrcoef(x_t.ravel(), eps.ravel())[0, 1] > 0.9


@pytest.mark.slow
def test_schedule_endpoint_plots_every_chosen_schedule(client):
    beta, alpha_bar, log_snr, summary, notes = client.predict(["linear", "cosine", "sigmoid"], 500, True,
                                                              api_name="/schedule")
    assert notes == ""  # every schedule reaches (nearly) pure noise at T = 500
    for figure in (beta, alpha_bar, log_snr):
        traces = json.loads(figure["plot"])["data"]
        assert [t["name"] for t in traces] == ["linear", "cosine", "sigmoid",
                                               "linear+zero_snr", "cosine+zero_snr", "sigmoid+zero_snr"]
        assert all(len(t["x"]) == 500 for t in traces)
    alpha = json.loads(alpha_bar["plot"])["data"]
    assert alpha[1]["y"][0] == pytest.approx(float(get_schedule("cosine", 500).alphas_cumprod[0]))
    assert [row[0] for row in summary["data"]][:3] == ["linear", "cosine", "sigmoid"]
    with pytest.raises(AppError, match="'nope'.*not in the list of choices"):
        client.predict(["linear", "nope"], 500, False, api_name="/schedule")
    *_, summary, notes = client.predict(["linear"], 100, False, api_name="/schedule")
    assert "linear** ends at ᾱ = 0.364 with T = 100" in notes


@pytest.mark.slow
def test_gif_of_the_forward_process(client, files):
    shown, download = client.predict(handle_file(str(files["photo.png"])), "linear", 1000, 0, 64, False,
                                     api_name="/noise_gif")
    with Image.open(download) as gif:
        assert gif.format == "GIF" and gif.n_frames == 61
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(files["notes.txt"])), "linear", 1000, 0, 64, False, api_name="/noise_gif")


@pytest.mark.slow
def test_toy_lab_through_the_api(client, files):
    forward, *_ = client.predict("moons", None, "linear", api_name="/toy_data")
    frames = json.loads(forward["plot"])["layout"]["meta"]["playground_frames"]
    assert len(frames) == 25 and frames[0]["name"] == "t=0" and frames[-1]["name"] == "t=999"
    loss, status = client.predict("linear", 600, api_name="/toy_train")
    assert "Step 600 of 600" in status and "done" in status
    losses = json.loads(loss["plot"])["data"][0]["y"]
    assert len(losses) == 600 and np.mean(losses[-100:]) < np.mean(losses[:20])
    reverse, verdict = client.predict("ddim", 25, 0, api_name="/toy_sample")
    assert "Narrow-kernel MMD" in verdict and "Energy distance" in verdict
    assert len(json.loads(reverse["plot"])["layout"]["meta"]["playground_frames"]) == 26
    # Langevin with its settings (spacing, step size, steps per level, predictor, SNR): its paths beside the ODE's
    reverse, verdict = client.predict("langevin", 30, 0, "logsnr", 0.2, 2, "ddim", 0.16, api_name="/toy_sample")
    names = {trace.get("name") for trace in json.loads(reverse["plot"])["data"]}
    assert "the same points under the probability-flow ODE (DDIM 50)" in names and "61 network calls" in verdict
    with pytest.raises(AppError, match="at least one step per noise level"):
        client.predict("langevin", 30, 0, "logsnr", 0.2, 0, "ddim", 0.16, api_name="/toy_sample")
    table = client.predict(0, api_name="/toy_compare")
    assert [row[0] for row in table["data"]] == [
        "DDPM", "DDIM · log-SNR", "DPM-Solver++ · log-SNR", "DPM-Solver++ · t-spaced (image models')",
        "Annealed Langevin · 5 per level", "Predictor-corrector · DDIM + 1 Langevin", "Gaussian fitted to the data"]
    assert table["data"][-1][3] == 1.0  # the bar, by definition
    field, errors, note = client.predict(100, api_name="/toy_score")
    titles = [a["text"] for a in json.loads(field["plot"])["layout"]["annotations"]]
    assert titles == ["learned: −ε̂(x, t) / σ_t"] and errors is None  # moons: no closed form to set beside it
    with pytest.raises(AppError, match="not an image"):
        client.predict("your drawing", handle_file(str(files["notes.txt"])), "linear", api_name="/toy_data")


def test_toy_sample_before_training_says_what_to_do(client):
    fresh = Client(client.src, verbose=False)  # a new session: no model yet
    with pytest.raises(AppError, match="Train a model first"):
        fresh.predict("dpmpp", 20, 0, api_name="/toy_sample")


@pytest.mark.slow
def test_sample_streams_the_steps_then_the_animation(client, app):
    path = app.model
    job = client.submit(path, "ddim", 12, 4, 3, 0.0, api_name="/sample")
    outputs = list(job)  # every streamed update: the first step at once, then at most a few a second, then the end
    statuses = [out[2] for out in outputs]
    assert statuses[0].startswith("Step 1 of 12 · t = ") and statuses[-1].startswith("Done: 4 images")
    first, last = (np.asarray(Image.open(out[0])) for out in (outputs[0], outputs[-1]))
    assert not np.array_equal(first, last)  # noise then the result
    shown, files = outputs[-1][3], outputs[-1][4]
    gif, mp4 = files
    assert shown == gif
    with Image.open(gif) as picture:
        assert picture.n_frames == 13  # every step, then the result
    import av

    with av.open(mp4) as video:
        assert video.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in video.decode(video=0)) >= 13


@pytest.mark.slow
def test_sample_stop_keeps_the_animation_so_far(client, app):
    session = Client(client.src, verbose=False)
    path = app.model
    assert session.predict(api_name="/sample_stop") == "Nothing is sampling in this session."
    job = session.submit(path, "ddpm", 1000, 64, 3, 0.0, api_name="/sample")
    wait_for(job.outputs, what="the first sampling update")
    assert session.predict(api_name="/sample_stop").startswith("Stopping")
    status, shown, files = job.result()[2:5]
    assert status.startswith("Stopped at step ") and "The animation so far has" in status
    with Image.open(shown) as picture:
        assert 1 <= picture.n_frames < 60


def test_sample_refuses_a_path_or_an_unlisted_model_with_a_sentence(client, app):
    for name in ("/etc", "../checkpoints/emoji32", "yours/someone-else"):
        with pytest.raises(AppError, match="not in the list of choices|not available here") as caught:
            client.predict(name, "ddim", 10, 4, 3, 0.0, api_name="/sample")
        assert "Traceback" not in str(caught.value)


@pytest.mark.slow
def test_a_prompt_model_follows_a_prompt_and_shows_the_guidance_equation(client, app):
    job = client.submit(app.prompt_model, "dpmpp", 6, 2, 3, 0.0, "red heart", 4.0, api_name="/sample")
    outputs = list(job)
    status, equation = outputs[-1][2], outputs[-1][5]
    assert status.startswith("Done: 2 images for “red heart” at guidance 4"), status
    assert "\\tilde\\epsilon" in equation and "s = 4" in equation and "RMS" in equation
    words = client.predict(app.prompt_model, "red he", api_name="/sample_prompt_words")
    assert "heart" in words
    gallery = client.predict(app.prompt_model, "cat", "ddim", 5, 0, api_name="/sample_sweep")
    assert [item["caption"] for item in gallery] == ["s = 0 (unconditional)", "s = 1 (plain conditional)", "s = 2",
                                                     "s = 4", "s = 7"]
    first, last = (np.asarray(Image.open(item["image"])) for item in (gallery[0], gallery[-1]))
    assert not np.array_equal(first, last)  # the same seed, drawn differently as guidance grows


def test_prompts_that_cant_be_followed_get_a_sentence(client, app):
    with pytest.raises(AppError, match="trained without prompts"):
        client.predict(app.model, "ddim", 5, 2, 0, 0.0, "cat", 3.0, api_name="/sample")
    with pytest.raises(AppError, match="nearest known words: heart"):
        client.predict(app.prompt_model, "ddim", 5, 2, 0, 0.0, "hart", 3.0, api_name="/sample")
    with pytest.raises(AppError, match="Type a prompt first"):
        client.predict(app.prompt_model, "", "ddim", 5, 0, api_name="/sample_sweep")
    with pytest.raises(AppError, match="greater than maximum value 15"):
        client.predict(app.prompt_model, "ddim", 5, 2, 0, 0.0, "cat", 40.0, api_name="/sample")


@pytest.mark.slow
def test_toy_stop_keeps_the_weights_trained_so_far(client):
    session = Client(client.src, verbose=False)
    session.predict("gmm", None, "linear", api_name="/toy_data")
    job = session.submit("linear", 20000, api_name="/toy_train")
    wait_for(lambda: len(job.outputs()) >= 2, what="two chunks of toy training")  # a couple of chunks streamed
    job.cancel()
    wait_for(job.done, timeout=30, what="the cancelled training to end")
    _, verdict = session.predict("dpmpp", 20, 0, api_name="/toy_sample")
    assert "Energy distance" in verdict  # the stopped model samples; it was not thrown away


@pytest.mark.slow
def test_a_greyscale_model_samples_in_the_tab_and_fine_tunes_in_the_train_tab(client, files):
    session = Client(client.src, verbose=False)
    info = session.predict("grey-28", api_name="/sample_info")
    assert "28×28 px greyscale" in info
    status = session.submit("grey-28", "ddim", 6, 4, 0, 0.0, api_name="/sample").result()[2]
    assert status.startswith("Done: 4 images")
    gallery, note, _ = session.predict([handle_file(str(files["photo.png"]))], "center", "grey-28",
                                       api_name="/train_add_photos")
    assert note.startswith("1 photo, trained on as 28×28 grey squares")
    picture = np.asarray(Image.open(gallery[0]["image"]).convert("RGB"), dtype=int)  # {"image": file, "caption"}
    assert (picture[..., 0] == picture[..., 1]).all()  # shown in grey, as the model sees it
    status = session.submit("center", "grey-28", "", "quick", 3, 1e-3, 2, True, 0.85, 0.05, 0.0, 0.99, 3, 0, "grey",
                            api_name="/train").result()[0]
    assert status.startswith("Done: 3 steps"), status


@pytest.mark.slow
def test_a_latent_model_samples_decoded_or_as_its_channels_and_shows_its_latent(client, app, files):
    info = client.predict(app.latent_model, api_name="/sample_info")
    assert "A **latent model**: it denoises 4×8×8 latents" in info
    outputs = list(client.submit(app.latent_model, "ddim", 5, 4, 0, 0.0, "", 5.0, True, api_name="/sample"))
    status = outputs[-1][2]
    assert status.startswith("Done: 4 images") and "The decoder took" in status
    channels = Image.open(outputs[0][0])
    decoded = Image.open(outputs[-1][0])
    assert channels.size != decoded.size  # channels while it ran (4 grey tiles a row), pictures at the end
    picture, decoded, noised, pixels, gallery, note = client.predict(
        handle_file(str(files["photo.png"])), app.latent_model, "cosine", 1000, 500, 0, False,
        api_name="/noise_latent")
    assert len(gallery) == 4 and "12× fewer" in note and "PSNR" in note
    assert Image.open(picture).size == Image.open(pixels).size


@pytest.mark.slow
def test_a_latent_base_shows_reconstructions_and_fine_tunes(client, app, files):
    session = Client(client.src, verbose=False)
    gallery, note, _ = session.predict([handle_file(str(files["photo.png"]))], "center", app.latent_model,
                                       api_name="/train_add_photos")
    assert note.startswith("1 photo, trained on as 32×32 squares")
    assert "decoded again:" in gallery[0]["caption"] and gallery[0]["caption"].endswith("dB")
    status = session.submit("center", app.latent_model, "", "quick", 3, 1e-3, 2, True, 0.85, 0.05, 0.0, 0.99, 3, 0,
                            "latent-dog", api_name="/train").result()[0]
    assert status.startswith("Done: 3 steps"), status


@pytest.mark.slow
def test_a_distilled_student_samples_in_its_steps_and_shows_its_halving(client, app):
    controls = client.predict(app.student_model, "dpmpp", 25, api_name="/sample_prompt_controls")
    note, sampler, steps, student_steps = controls[2], controls[3], controls[4], controls[5]
    assert "A distilled student" in note and sampler["value"] == "ddpm" and steps["value"] == 2
    assert student_steps["visible"] and student_steps["value"] == 2
    assert controls[6]["value"] == 2  # the halving view starts on the student's last step, where pictures show
    status = client.submit(app.student_model, "ddim", 2, 2, 0, 0.0, "red heart", 4.0,
                           api_name="/sample").result()[2]
    assert status.startswith("Done: 2 images for “red heart” at guidance 4")
    gallery, note, figure = client.predict(app.student_model, "cat", 4.0, 0, 1, api_name="/sample_halving")
    assert [item["caption"].split(":")[0] for item in gallery] == ["x_t at t = 999", "teacher, 1 step",
                                                                   "teacher, 2 steps", "student, 1 step"]
    assert "apart (RMS)" in note and "pure noise" in note
    gallery, note, _ = client.predict(app.student_model, "cat", 4.0, 0, 2, api_name="/sample_halving")
    assert [item["caption"] for item in gallery][2:] == ["teacher, 2 steps: the finished pictures",
                                                         "student, 1 step: the finished pictures"]
    with pytest.raises(AppError, match="maximum value 2|choose a step from 1 to 2"):  # the slider's, or ours
        client.predict(app.student_model, "cat", 4.0, 0, 3, api_name="/sample_halving")
    traces = json.loads(figure["plot"])["data"]
    assert traces[0]["x"] == [400, 64] and traces[1]["x"] == [1, 2, 4]  # network calls: guided teacher, student
    with pytest.raises(AppError, match="Choose a distilled model"):
        client.predict(app.model, "", 4.0, 0, 1, api_name="/sample_halving")
