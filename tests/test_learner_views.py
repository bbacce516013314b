"""What a learner is shown must agree with the pictures: the meter, the sampling stream, the plots' framing."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from playground import media
from playground.services.jobs import JobBusy, JobRegistry
from playground.services.memorisation import COPY_SIMILARITY, memorisation_meter


def scene(seed: int, size: int = 96) -> Image.Image:
    """A photo-like picture: a smooth random colour field with a disc, different for every seed."""
    rng = np.random.default_rng(seed)
    field = Image.fromarray(rng.integers(0, 256, (3, 3, 3), dtype=np.uint8), "RGB").resize((size, size),
                                                                                          Image.BICUBIC)
    array = np.asarray(field).copy()
    y, x = np.mgrid[0:size, 0:size]
    cx, cy = rng.uniform(0.25, 0.75, 2) * size
    r = rng.uniform(0.12, 0.3) * size
    array[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.integers(0, 256, 3)
    return Image.fromarray(array)


def to_tensor(pictures: list[Image.Image], side: int = 32) -> torch.Tensor:
    return torch.cat([media.pil_to_tensor(p.resize((side, side), Image.LANCZOS)) for p in pictures])


def soft(pictures: list[Image.Image], radius: float, contrast: float = 1.0) -> list[Image.Image]:
    """What a fine-tuned model's soft copies look like: the photo blurred (radius in 32 px pixels) and, with
    ``contrast`` < 1, washed out towards a paler grey, as samples of a half-trained model are."""
    out = []
    for p in pictures:
        array = np.asarray(p.filter(ImageFilter.GaussianBlur(radius * p.width / 32))).astype(np.float32)
        out.append(Image.fromarray(np.clip(array.mean() + (array - array.mean()) * contrast + 30 * (1 - contrast),
                                           0, 255).astype(np.uint8)))
    return out


DIVERSE = [scene(seed) for seed in range(6)]
# Six overlapping crops of one big scene: near-duplicate photos, like six shots of the same cows.
BIG = scene(100, size=160)
NEAR_DUPLICATES = [BIG.crop((dx, dy, dx + 120, dy + 120)) for dx, dy in
                   [(0, 0), (10, 0), (20, 5), (30, 10), (40, 20), (25, 35)]]
UNRELATED = [scene(seed) for seed in range(200, 208)]


@pytest.mark.parametrize("photos", [DIVERSE, NEAR_DUPLICATES], ids=["diverse", "near-duplicates"])
def test_meter_agrees_with_labelled_copies_and_new_images(photos):
    training = to_tensor(photos)
    exact = memorisation_meter(training, training)
    assert exact.is_copy.all() and exact.nearest.tolist() == list(range(6))
    for radius, contrast in ((0.7, 1.0), (1.5, 1.0), (1.0, 0.5)):  # soft copies: what a pixel distance got wrong
        blurred = memorisation_meter(to_tensor(soft(photos, radius, contrast)), training)
        assert blurred.is_copy.all(), (radius, contrast, blurred.similarity)
        assert blurred.nearest.tolist() == list(range(6))
        assert blurred.sentence().startswith("Copies: 6 of 6")
    unrelated = memorisation_meter(to_tensor(UNRELATED), training)
    assert not unrelated.is_copy.any(), unrelated.similarity
    assert unrelated.sentence().startswith("New images: 8 of 8")


def test_meter_threshold_is_the_documented_ratio():
    training = to_tensor(DIVERSE)
    reading = memorisation_meter(to_tensor(soft(DIVERSE, 1.0) + UNRELATED[:2]), training)
    assert torch.equal(reading.is_copy, reading.similarity >= COPY_SIMILARITY)
    assert (reading.similarity <= 1 + 1e-5).all() and (reading.similarity >= -1 - 1e-5).all()
    single = memorisation_meter(training[:1], training[:1])  # one photo is enough
    assert single.is_copy.all() and float(single.similarity[0]) == pytest.approx(1.0, abs=1e-5)
    flat = memorisation_meter(torch.zeros(1, 3, 32, 32), training)  # a blank picture matches nothing
    assert not flat.is_copy.any()


def test_job_registry_stops_forgets_and_refuses_a_second_run():
    jobs = JobRegistry("sampling")
    jobs.prepare("a")
    assert jobs.request_stop("a")  # pressed while the work still queues: kept
    with jobs.run("a") as job:
        assert job.stop_requested() and jobs.is_running("a")
        with pytest.raises(JobBusy, match="already sampling"), jobs.run("a"):
            pass
    assert not job.stop_requested()  # its flag is cleared when it ends
    assert len(jobs) == 0 and not jobs.request_stop("a")  # forgotten once finished
    jobs.prepare("b")
    with jobs.run("b") as job:
        assert not job.stop_requested()


def test_a_stop_reaches_work_in_a_forked_process():
    """The flag is a file: a process forked before Stop (as ZeroGPU runs GPU work) still sees it."""
    import multiprocessing

    jobs = JobRegistry("sampling")
    with jobs.run("a") as job:
        context = multiprocessing.get_context("fork")
        seen = context.Queue()
        started = context.Event()

        def work(flag, started, seen):
            started.set()
            for _ in range(500):
                if flag():
                    seen.put(True)
                    return
                time.sleep(0.01)
            seen.put(False)

        worker = context.Process(target=work, args=(job.stop_requested, started, seen))
        worker.start()
        assert started.wait(10)
        jobs.request_stop("a")
        assert seen.get(timeout=10) is True
        worker.join(10)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from playground.services.model_catalog import get_checkpoint

    from tiny_checkpoint import make_tiny_checkpoint

    return get_checkpoint(make_tiny_checkpoint(tmp_path_factory.mktemp("ck") / "tiny"))


@pytest.mark.slow
def test_sampling_stream_shows_the_first_step_at_once_and_stops_with_its_animation(tiny):
    from playground.services.image_sampling import iter_sampling

    updates = list(iter_sampling(tiny, "ddim", 30, 4, seed=1, show_every_s=1e9))
    assert [u.step.index for u in updates] == [0, 29] and updates[-1].done and not updates[-1].stopped
    assert [len(u.new_frames) for u in updates] == [1, 30]  # every step, and the result, each frame once
    calls = iter(range(100))
    stopped = list(iter_sampling(tiny, "ddim", 30, 4, seed=1, should_stop=lambda: next(calls) >= 9, show_every_s=0))
    last = stopped[-1]
    assert last.stopped and not last.done and last.step.index == 9 and len(stopped) == 10
    assert sum(len(u.new_frames) for u in stopped) == 10  # the animation so far, its last frame where it stopped
    # the stream's steps are the plain sampler's: stopping changes nothing that was drawn
    plain = next(u for u in iter_sampling(tiny, "ddim", 30, 4, seed=1, show_every_s=0) if u.step.index == 9)
    assert torch.equal(last.step.x_t, plain.step.x_t)


@pytest.mark.parametrize("args, message", [
    (("euler", 10, 4), "Unknown sampler"), (("ddim", 0, 4), "between 1 and T"), (("ddim", 10, 65), "between 1 and 64"),
    (("ddim", "ten", 4), "whole numbers"), (("ddim", 10, 4, 1.5), "between 0 and 1")])
def test_sampling_settings_are_checked_in_one_place_with_a_sentence(tiny, args, message):
    from playground.services.image_sampling import check_settings

    with pytest.raises(ValueError, match=message):
        check_settings(tiny, *args)
    assert check_settings(tiny, "ddpm", "12", 3.0) == (12, 3, 0.0)


def test_log_axis_ticks_are_written_in_full():
    from playground.plots import log_ticks, loss_figure

    ticks = log_ticks([0.093, 0.05, 0.021])
    assert ticks["tickvals"] == [0.02, 0.05, 0.1] and ticks["ticktext"] == ["0.02", "0.05", "0.1"]
    figure = loss_figure([1.0, 0.3, 0.021])
    assert list(figure.layout.yaxis.ticktext) == ["0.02", "0.05", "0.1", "0.2", "0.5", "1"]


@pytest.mark.slow
def test_toy_reverse_plot_frames_the_data_not_the_noise():
    from playground.plots import frame_of, toy_reverse_figure

    data = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0)) * 0.8
    noise = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1)) * 3
    paths = torch.stack([noise[:8] * (1 - s / 1000) + data[:8] * s / 1000 for s in range(1001)])
    figure = toy_reverse_figure([(999, noise), (0, data)], paths, "test", view=frame_of(data))
    x0, x1 = figure.layout.xaxis.range
    spread = float(data.abs().max())
    assert -1.3 * spread < x0 < -0.8 * spread and 0.8 * spread < x1 < 1.3 * spread
    assert figure.layout.xaxis.constrain == "domain" and figure.layout.yaxis.scaleanchor == "x"
    assert all(len(trace.x) <= 60 for trace in figure.data if trace.mode == "lines")  # DDPM's 1,000 steps, thinned
    def outside(points) -> int:
        notes = toy_reverse_figure([(0, points)], paths, "test", view=frame_of(data)).layout.annotations
        return int(notes[0].text.split()[0]) if notes else 0

    assert outside(data) <= 4  # the view leaves out at most the most extreme 0.1% per side
    assert outside(torch.cat([data, torch.tensor([[40.0, 0.0]])])) == outside(data) + 1  # a stray is counted


def test_short_linear_schedule_is_explained_and_no_cell_is_blank():
    from playground.diffusion.schedules import get_schedule
    from playground.plots import schedule_summary, schedule_warnings

    short = [get_schedule("linear", 100), get_schedule("cosine", 100), get_schedule("linear", 10)]
    notes = schedule_warnings(short)
    assert len(notes) == 2 and "ends at ᾱ = 0.364" in notes[0] and "fixed start to a fixed end" in notes[0]
    rows = schedule_summary(short)
    assert all(cell not in (None, "") for row in rows for cell in row)
    assert rows[2][6] == "never"  # linear with T = 10 never gets noisier than it is clean
    assert schedule_warnings([get_schedule("linear", 1000)]) == []


def test_changing_T_keeps_t_at_the_same_fraction():
    from playground.ui.forward import t_range

    slider, new_T = t_range(50, 250, 1000)
    assert slider.value == 12 and slider.maximum == 49 and new_T == 50
    slider, _ = t_range(1000, 12, 50)
    assert slider.value == 245
    slider, _ = t_range(4000, 999, 1000)
    assert slider.value == 3999


def test_animation_frames_carry_t():
    x = torch.zeros(4, 3, 8, 8)
    frame = media.animation_frame(x, x, "t = 873 · step 3 of 25")
    plain = media.strip([media.grid_picture(x, 256)] * 2, gap=12)
    assert frame.width == plain.width and frame.height > plain.height  # a caption band under the pictures
    pictures, band = np.asarray(frame)[:plain.height], np.asarray(frame)[plain.height:]
    assert np.array_equal(pictures, np.asarray(plain))  # the pictures themselves untouched
    other = np.asarray(media.animation_frame(x, x, "t = 12 · step 24 of 25"))[plain.height:]
    assert not np.array_equal(band, other)  # the band says which step it is
    columns = np.nonzero((band < 128).any(axis=(0, 2)))[0]
    assert len(columns) > 50 and abs(columns.mean() - frame.width / 2) < frame.width / 10  # a line of centred text
