"""The 2-D toy lab's quality, the old recipe against today's, on all four datasets.

    python bench/toy_quality.py [--datasets swiss_roll,moons,s_curve,gmm]

For each dataset it trains the toy MLP twice on the same 4,000 points: the old recipe (eps-prediction, 3,000 steps,
the deterministic samplers' steps spaced in t as image models space them) and today's (TOY_TRAINING: v-prediction,
6,000 steps; log-SNR spacing). Then it samples 2,000 points from the same noise with every sampler and prints the
narrow-kernel MMD as a share of a fitted Gaussian's (Gaussian kernel, bandwidth 0.1 x the data's spread; 0 is a
perfect copy), the points off the data (farther than half the spread from every true point), the points thrown
beyond 6 std, and the time. The network is today's ToyMLP in both (it now also sees the raw coordinates).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playground.data.points import toy_points  # noqa: E402
from playground.services.toy_lab import COMPARE, SamplerSettings, compare_toy_samplers  # noqa: E402
from playground.services.toy_training import TOY_TRAINING, train_toy  # noqa: E402

OLD = dataclasses.replace(TOY_TRAINING, prediction_type="epsilon", steps=3000)
T_SPACED = SamplerSettings(spacing="linspace")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="swiss_roll,moons,s_curve,gmm")
    args = parser.parse_args()
    print(f"{'dataset':11} {'recipe':6} {'sampler':32} {'MMD':>6} {'off':>4} {'>6std':>5} {'train s':>7} "
          f"{'sample s':>8}")
    for name in args.datasets.split(","):
        data, reference = toy_points(name, 4000, seed=0), toy_points(name, 2000, seed=2)
        for recipe, config, runs in (
            ("old", OLD, (("ddpm", 1000, T_SPACED), ("ddim", 50, T_SPACED), ("dpmpp", 20, T_SPACED))),
            ("today", TOY_TRAINING, COMPARE),
        ):
            started = time.perf_counter()
            state = train_toy(data, config=config)
            trained = time.perf_counter() - started
            for score in compare_toy_samplers(state.ema.model, config, reference, data, seed=1, runs=runs):
                from playground.services.toy_lab import sample_toy

                far = int((sample_toy(state.ema.model, config, score.sampler, score.steps, seed=1, trajectories=0,
                                      max_frames=1, settings=score.settings).points.abs() > 6).any(1).sum())
                spacing = "" if score.sampler in ("ddpm", "langevin") else f" {score.settings.spacing}"
                label = f"{score.sampler} {score.steps}{spacing}"
                print(f"{name:11} {recipe:6} {label:32} {score.quality.mmd_ratio:6.3f} {score.quality.strays:4d} "
                      f"{far:5d} {trained:7.1f} {score.seconds:8.2f}", flush=True)


if __name__ == "__main__":
    main()
