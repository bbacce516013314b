"""The Train tab through gradio_client: upload, train, stop, resume, sample the result, and session isolation."""

from __future__ import annotations

import json
import zipfile

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from conftest import meter_copies, wait_for
from image_files import photo, write_bad


@pytest.fixture(scope="module")
def six(tmp_path_factory):
    folder = tmp_path_factory.mktemp("six")
    paths = []
    for i in range(6):
        paths.append(folder / f"dog_{i}.png")
        photo(90, 70, seed=i).save(paths[-1])
    return paths


def new_client(app) -> Client:
    return Client(app.url, verbose=False)


def add(client, paths, base=None):
    return client.predict([handle_file(str(p)) for p in paths], "center", base, api_name="/train_add_photos")


def train(client, app, steps=6, name="my dog", preview_every=3):
    """Submit /train with the Advanced values; the photos come from the session's state."""
    return client.submit("center", app.model, "", "quick", steps, 1e-3, 4, True, 0.85, 0.05, 0.0, 0.99,
                         preview_every, 0, name, api_name="/train")


@pytest.mark.slow
def test_upload_train_and_sample_the_result(app, six):
    client = new_client(app)
    gallery, note, _ = add(client, six, app.model)
    assert len(gallery) == 6 and note.startswith("6 photos, trained on as 8×8")
    job = train(client, app)
    status, figure, preview, download, model = job.result()[:5]
    download, model = download["value"], model["value"]  # component updates arrive as dicts
    assert status.startswith("Done: 6 steps"), status
    assert len(json.loads(figure["plot"])["data"][0]["y"]) == 6  # the loss curve, every step
    assert preview.endswith("step_000006.png")
    assert model.startswith("yours/my-dog-") and "/" not in model.removeprefix("yours/")  # a name, not a folder
    with zipfile.ZipFile(download) as z:
        assert "my-dog/unet/diffusion_pytorch_model.safetensors" in z.namelist()
    # offered in the Sample tab at once, and sampling it works in this session
    result = client.submit(model, "dpmpp", 5, 4, 0, 0.0, api_name="/sample").result()
    assert result[2].startswith("Done: 4 images")
    pairs, reading, _ = client.predict(api_name="/train_try")
    assert pairs.count("<img ") == 16 and pairs.count("<figcaption") == 8  # all eight pairs at once, captioned
    meter_copies(pairs, reading)  # the sentence counts what the captions say


@pytest.mark.slow
def test_other_sessions_cannot_reach_your_photos_or_models(app, six):
    owner = new_client(app)
    add(owner, six, app.model)
    model = train(owner, app, steps=2, name="secret").result()[4]["value"]
    stranger = new_client(app)
    refused = "not available here|not in the list of choices"  # ours, or Gradio's own check of the dropdown
    with pytest.raises(AppError, match=refused):
        stranger.submit(model, "dpmpp", 5, 1, 0, 0.0, api_name="/sample").result()
    with pytest.raises(AppError, match="Add at least one photo"):
        train(stranger, app).result()  # the owner's photos are not the stranger's
    with pytest.raises(AppError, match="Train a model first"):
        stranger.predict(api_name="/train_try")
    with pytest.raises(AppError, match=refused):
        stranger.submit("center", model, "", "quick", 2, 1e-3, 4, True, 0.85, 0.05, 0.0, 0.99, 3, 0, "x",
                        api_name="/train").result()
    with pytest.raises(AppError, match=refused):  # nor a server folder, even the right one
        owner.submit(str(next(app.work.glob("*/runs/secret-*/checkpoint"))), "dpmpp", 5, 1, 0, 0.0,
                     api_name="/sample").result()
    owner_runs = list((app.work / owner.session_hash / "runs").glob("secret-*"))
    assert len(owner_runs) == 1  # the owner's folder has the run...
    assert not (app.work / stranger.session_hash / "runs").exists()  # ...and the stranger's has none


@pytest.mark.slow
def test_bad_uploads_get_a_sentence_and_keep_the_photos(app, six, tmp_path):
    client = new_client(app)
    bad = write_bad(tmp_path)
    with pytest.raises(AppError) as error:
        add(client, [bad["corrupt.jpg"]])
    assert "Traceback" not in str(error.value)
    gallery, note, _ = add(client, [six[0], *bad.values()], app.model)
    assert len(gallery) == 1 and f"Skipped {len(bad)} files" in note
    with pytest.raises(AppError, match="Click a photo"):
        client.predict("center", None, api_name="/train_remove_photo")
    gallery, note, _ = add(client, six[1:3], app.model)
    assert len(gallery) == 3  # earlier photos kept


@pytest.mark.slow
def test_stop_keeps_the_weights_and_resume_continues(app, six):
    client = new_client(app)
    add(client, six, app.model)
    job = train(client, app, steps=3000, name="long", preview_every=1000)
    wait_for(lambda: any("Step" in str(o[0]) for o in job.outputs()), what="the first training step")
    assert client.predict(api_name="/train_stop").startswith("Stopping")
    status, *_ = job.result()
    assert status.startswith("Stopped at step"), status
    stopped_at = int(status.split()[3])
    assert 0 < stopped_at < 3000
    resumed = client.submit(stopped_at + 5, api_name="/train_resume")
    status, figure, *_ = resumed.result()
    assert status.startswith(f"Done: {stopped_at + 5} steps"), status
    # carried on from the step it stopped at, not from 0: the loss curve has every step once, the log too
    assert len(json.loads(figure["plot"])["data"][0]["y"]) == stopped_at + 5
    run_dir = next(p for p in app.work.rglob("runs/long-*"))
    steps = [int(line.split(",")[0]) for line in (run_dir / "log.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, stopped_at + 6))


@pytest.mark.slow
def test_dreambooth_teaches_a_subject_word_and_shows_it_beside_the_class_word(app, six):
    client = new_client(app)
    add(client, six, app.prompt_model)
    with pytest.raises(AppError, match="already means something"):
        client.submit("center", app.prompt_model, "", "quick", 3, 1e-3, 4, True, 0.85, 0.05, 0.0, 0.99, 3, 0, "rex",
                      "dog", "dog", api_name="/train").result()
    with pytest.raises(AppError, match="nearest known words: dog"):
        client.submit("center", app.prompt_model, "", "quick", 3, 1e-3, 4, True, 0.85, 0.05, 0.0, 0.99, 3, 0, "rex",
                      "zork", "dgo", api_name="/train").result()
    with pytest.raises(AppError, match="has no prompts"):
        client.submit("center", app.model, "", "quick", 3, 1e-3, 4, True, 0.85, 0.05, 0.0, 0.99, 3, 0, "rex",
                      "zork", "dog", api_name="/train").result()
    status = client.submit("center", app.prompt_model, "", "quick", 3, 1e-3, 4, True, 0.85, 0.05, 0.0, 0.99, 3, 0,
                           "rex", "zork", "dog", api_name="/train").result()[0]
    assert status.startswith("Done: 3 steps"), status
    pairs, reading, gallery = client.predict(api_name="/train_try")
    assert pairs.count("<img ") == 16
    meter_copies(pairs, reading)
    assert gallery["visible"]
    assert [item["caption"] for item in gallery["value"]] == ["“zork dog” after training", "“dog” after training",
                                                              "“dog” before (the base)"]
