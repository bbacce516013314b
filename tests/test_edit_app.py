"""The Edit tab through gradio_client: a picture onto the canvas, SDEdit and RePaint streamed, the strength sweep,
Stop, and bad input refused with a sentence."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from conftest import wait_for
from image_files import photo, write_bad


@pytest.fixture()
def session(app):
    return Client(app.url, verbose=False)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edit")
    photo(90, 60).save(folder / "wide.png")
    layer = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    layer.paste((255, 255, 255, 255), (0, 0, 128, 256))  # the left half painted
    layer.save(folder / "left.png")
    Image.new("RGBA", (256, 256), (0, 0, 0, 0)).save(folder / "nothing.png")
    return folder


def load(session, picture) -> str:
    """Put a picture on the session's canvas; the canvas (the square the models see) as a file."""
    shown = session.predict(handle_file(str(picture)), api_name="/edit_picture")
    return shown["background"]


def editor(canvas: str, layer) -> dict:
    return {"background": handle_file(canvas), "layers": [handle_file(str(layer))], "composite": handle_file(canvas)}


def edit(session, model, canvas_editor, mode, steps=6, count=2, strength=0.5, sampler="ddpm"):
    return session.submit(model, canvas_editor, mode, sampler, steps, strength, 2, 2, count, 0, "", 5.0,
                          api_name="/edit")


@pytest.mark.slow
def test_sdedit_and_repaint_stream_and_end_with_the_animation(session, app, pictures):
    canvas = load(session, pictures / "wide.png")
    assert Image.open(canvas).size == (256, 256)  # the square the models see, to paint on
    outputs = list(edit(session, app.model, None, "sdedit", steps=10, strength=0.5))
    status = outputs[-1][2]
    assert status.startswith("Done: 2 edits (SDEdit at strength 0.5") and "5 network calls" in status
    walk = json.loads(outputs[-1][3]["plot"])["data"][0]
    assert walk["x"] == [1, 2, 3, 4, 5] and walk["y"][-1] == 0  # one call a step, down to the picture
    gif, mp4 = outputs[-1][5]
    assert outputs[-1][4] == gif
    outputs = list(edit(session, app.model, editor(canvas, pictures / "left.png"), "repaint", steps=10))
    status, plot = outputs[-1][2], json.loads(outputs[-1][3]["plot"])["data"][0]
    assert status.startswith("Done: 2 edits (RePaint")
    assert any(later > earlier for earlier, later in zip(plot["y"], plot["y"][1:], strict=False))  # it climbs back up
    result = np.asarray(Image.open(outputs[-1][0]).convert("RGB"))
    assert result.shape[0] > 0


@pytest.mark.slow
def test_bad_edits_get_a_sentence(session, app, pictures, tmp_path):
    with pytest.raises(AppError, match="Upload a picture to edit first"):
        edit(session, app.model, None, "sdedit").result()
    bad = write_bad(tmp_path)
    with pytest.raises(AppError, match="not an image"):
        session.predict(handle_file(str(bad["notes.txt"])), api_name="/edit_picture")
    canvas = load(session, pictures / "wide.png")
    with pytest.raises(AppError, match="Paint over the part"):
        edit(session, app.model, editor(canvas, pictures / "nothing.png"), "repaint").result()
    with pytest.raises(AppError, match="runs ddpm or ddim"):
        edit(session, app.model, editor(canvas, pictures / "left.png"), "repaint", sampler="dpmpp").result()
    with pytest.raises(AppError, match="not available here|not in the list of choices"):
        edit(session, "/etc", None, "sdedit").result()


@pytest.mark.slow
def test_strength_sweep_and_stop(session, app, pictures):
    load(session, pictures / "wide.png")
    gallery = session.predict(app.model, "ddim", 10, 0, "", 5.0, api_name="/edit_sweep")
    assert [item["caption"] for item in gallery] == ["strength 0.2", "strength 0.4", "strength 0.6",
                                                     "strength 0.8", "strength 1"]
    assert session.predict(api_name="/edit_stop") == "Nothing is editing here."
    job = edit(session, app.model, None, "sdedit", steps=1000, count=16, strength=1.0)
    wait_for(job.outputs, what="the first edit update")
    assert session.predict(api_name="/edit_stop").startswith("Stopping")
    assert job.result()[2].startswith("Stopped after")
