"""The 2-D toy lab: data, the energy distance, training that works, samplers that agree, the CLI."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from playground.cli import main
from playground.data.images import ImageError
from playground.data.points import TOY_DATASETS, points_from_drawing, toy_points
from playground.services.toy_lab import compare_samplers, energy_distance, gaussian_baseline, sample_toy
from playground.services.toy_training import TOY_TRAINING, new_toy_state, train_toy


@pytest.mark.parametrize("name", list(TOY_DATASETS))
def test_datasets_are_normalised_and_seeded(name):
    points = toy_points(name, 3000, seed=5)
    assert points.shape == (3000, 2) and points.dtype == torch.float32
    torch.testing.assert_close(points.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(points.std(0), torch.ones(2), atol=1e-4, rtol=0)
    assert torch.equal(points, toy_points(name, 3000, seed=5))
    assert not torch.equal(points, toy_points(name, 3000, seed=6))


def test_points_from_a_drawing_follow_the_ink(tmp_path):
    path = tmp_path / "ring.png"
    image = Image.new("RGB", (200, 200), "white")
    ImageDraw.Draw(image).ellipse((20, 20, 180, 180), outline="black", width=12)
    image.save(path)
    points = points_from_drawing(path, 2000, seed=0)
    radius = points.norm(dim=1)
    assert points.shape == (2000, 2)
    assert radius.std() / radius.mean() < 0.1  # a ring: every point about the same distance from the centre
    blank = tmp_path / "blank.png"
    Image.new("RGB", (64, 64), "white").save(blank)
    with pytest.raises(ValueError, match="almost no dark pixels"):
        points_from_drawing(blank, 100)
    text = tmp_path / "drawing.png"
    text.write_text("not a picture")
    with pytest.raises(ImageError, match="not an image"):
        points_from_drawing(text, 100)


def test_energy_distance_separates_distributions():
    same = energy_distance(toy_points("moons", 1500, 0), toy_points("moons", 1500, 1))
    different = energy_distance(toy_points("moons", 1500, 0), toy_points("swiss_roll", 1500, 1))
    shifted = energy_distance(toy_points("moons", 1500, 0), toy_points("moons", 1500, 1) + 0.5)
    assert 0 <= same < 0.005 < shifted and 0.005 < different
    x, y = toy_points("gmm", 500, 0), toy_points("s_curve", 500, 1)
    assert energy_distance(x, y) == pytest.approx(energy_distance(y, x))


@pytest.fixture(scope="module")
def trained():
    data = toy_points("swiss_roll", 4000, seed=0)
    losses_before = []
    state = new_toy_state()
    untrained = sample_toy(state.ema.model, TOY_TRAINING, "dpmpp", 20, n=1500, seed=3).points
    state = train_toy(data, state, callback=lambda event, s: losses_before.append(event.loss))
    return data, state, untrained, losses_before


@pytest.mark.slow
def test_training_lowers_the_loss_and_the_distance(trained):
    data, state, untrained, losses = trained
    reference = toy_points("swiss_roll", 1500, seed=1)
    assert np.mean(losses[-300:]) < 0.6 * np.mean(losses[:50])
    before = energy_distance(untrained, reference)
    after = energy_distance(sample_toy(state.ema.model, TOY_TRAINING, "dpmpp", 20, n=1500, seed=3).points, reference)
    assert after < before / 10


@pytest.mark.slow
def test_trained_model_beats_a_fitted_gaussian_and_fast_samplers_match_ddpm(trained):
    data, state, _, _ = trained
    reference = toy_points("swiss_roll", 2000, seed=1)
    gaussian = energy_distance(gaussian_baseline(data, 2000, seed=2), reference)
    scores = {s.sampler: s for s in compare_samplers(state.ema.model, TOY_TRAINING, reference)}
    assert [(s.sampler, s.steps) for s in scores.values()] == [("ddpm", 1000), ("ddim", 50), ("dpmpp", 20)]
    ddpm = scores["ddpm"].energy_distance
    assert ddpm < gaussian / 5  # measured about 11x better
    for fast in ("ddim", "dpmpp"):
        assert scores[fast].energy_distance < gaussian / 4
        assert abs(scores[fast].energy_distance - ddpm) < 0.15 * gaussian  # close to DDPM on the problem's scale
        assert scores[fast].seconds < scores["ddpm"].seconds


@pytest.mark.slow
def test_sampling_keeps_frames_and_trajectories(trained):
    _, state, _, _ = trained
    result = sample_toy(state.ema.model, TOY_TRAINING, "ddim", 100, n=300, seed=0, max_frames=10, trajectories=5)
    assert result.points.shape == (300, 2)
    assert len(result.frames) == 11 and result.frames[0][0] == TOY_TRAINING.num_timesteps and result.frames[-1][0] == 0
    assert result.trajectories.shape == (101, 5, 2)
    torch.testing.assert_close(result.trajectories[-1], result.points[:5])


@pytest.mark.slow
def test_toy_cli_writes_generated_and_true_points(tmp_path, capsys):
    out, truth = tmp_path / "gen.csv", tmp_path / "true.csv"
    assert main(["toy", "--dataset", "moons", "--out", str(out), "--data-out", str(truth), "--train-steps", "600",
                 "--steps", "10", "--sampler", "ddim", "--n", "500"]) == 0
    generated, true = np.loadtxt(out, delimiter=","), np.loadtxt(truth, delimiter=",")
    assert generated.shape == true.shape == (500, 2)
    assert "energy distance" in capsys.readouterr().out
    assert main(["toy", "--out", str(out), "--steps", "0"]) == 2
