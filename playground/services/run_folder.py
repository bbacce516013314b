"""A training run's folder: the one place that knows its file names.

    RUN/checkpoint/      the diffusers folder (EMA weights) plus training/ to resume from
    RUN/samples/         a preview grid every so many steps (step_000500.png, ...)
    RUN/log.csv          step, loss, lr, images/s
    RUN/quality.csv      quality readings at every preview (what they are depends on the run's kind)
    RUN/progress.html    the loss and the quality readings, plotted (a page that works offline)
    RUN/settings.json    fine-tuning runs: what Resume continues with (services.finetuning.RunSettings)
    RUN/photos.npz       fine-tuning runs: the training crops, as the model sees them, (N, R, R, C) uint8
    RUN/prior.npz        fine-tuning runs: the base model's own samples for prior preservation, if any
    RUN/rounds/N-steps/  distillation runs: each round's run folder (its student takes N steps)
    RUN/rounds/N-steps-matched/  ...and the distribution-matching stage after them

A session's runs live in SESSION/runs/ (services.workdir gives the session's folder). Reading a run needs no
training code, so the model catalog can list a session's models without loading the training stack.
"""

from __future__ import annotations

import csv
import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from playground.checkpoints import read_info

RUNS = "runs"  # SESSION/runs/NAME-xxxxxx/


@dataclass(frozen=True)
class RunFolder:
    """The files of one training run, and what can be read from them."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def log(self) -> Path:
        return self.path / "log.csv"

    @property
    def quality(self) -> Path:
        return self.path / "quality.csv"

    @property
    def progress_page(self) -> Path:
        return self.path / "progress.html"

    @property
    def settings_file(self) -> Path:
        return self.path / "settings.json"

    @property
    def photos_file(self) -> Path:
        return self.path / "photos.npz"

    @property
    def prior_file(self) -> Path:
        return self.path / "prior.npz"

    def round(self, student_steps: int) -> RunFolder:
        """A distillation's round, a run folder of its own: RUN/rounds/008-steps/."""
        return RunFolder(self.path / "rounds" / f"{student_steps:03d}-steps")

    def matching(self, student_steps: int) -> RunFolder:
        """A distillation's distribution-matching stage, after its rounds: RUN/rounds/004-steps-matched/."""
        return RunFolder(self.path / "rounds" / f"{student_steps:03d}-steps-matched")

    def adversarial(self, student_steps: int) -> RunFolder:
        """A distillation's adversarial stage, after the others: RUN/rounds/004-steps-adversarial/."""
        return RunFolder(self.path / "rounds" / f"{student_steps:03d}-steps-adversarial")

    def has_model(self) -> bool:
        return (self.checkpoint / "model_index.json").is_file()

    def can_resume(self) -> bool:
        return (self.checkpoint / "training").is_dir()

    def checkpoint_step(self) -> int:
        """The step the saved checkpoint is at (0 when there is none)."""
        return int(read_info(self.checkpoint).get("steps", 0)) if self.has_model() else 0

    def preview_path(self, step: int) -> Path:
        return self.samples / f"step_{step:06d}.png"

    def latest_preview(self) -> Path | None:
        previews = sorted(self.samples.glob("step_*.png"))
        return previews[-1] if previews else None

    def open_log(self) -> RunLog:
        """log.csv, opened to add a row per step (with its header when new); close it when the run ends."""
        self.path.mkdir(parents=True, exist_ok=True)
        return RunLog(self.log)

    def losses(self) -> list[float]:
        """The logged loss of every step, so a resumed run shows its whole curve."""
        if not self.log.is_file():
            return []
        values = {}
        with open(self.log, newline="") as f:
            for row in csv.DictReader(f):
                values[int(row["step"])] = float(row["loss"])
        return [values[s] for s in sorted(values)]

    def quality_rows(self) -> list[dict[str, str]]:
        """Every quality reading so far, each a row of quality.csv by column name."""
        if not self.quality.is_file():
            return []
        with open(self.quality, newline="") as f:
            return list(csv.DictReader(f))

    def append_quality(self, row: dict[str, object]) -> None:
        """Add one reading to quality.csv (its header from the first row's keys)."""
        new = not self.quality.exists()
        with open(self.quality, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def read_settings(self) -> str:
        return self.settings_file.read_text()

    def write_settings(self, text: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.settings_file.with_name(f".{self.settings_file.name}.{uuid.uuid4().hex[:6]}.tmp")
        tmp.write_text(text)
        tmp.replace(self.settings_file)

    def name(self) -> str:
        """The name the person gave the run (its folder's name when it has none)."""
        try:
            return json.loads(self.read_settings()).get("name") or self.path.name
        except (OSError, ValueError, AttributeError):
            return self.path.name

    def write_pictures(self, which: str, images: np.ndarray) -> None:
        """Keep (N, R, R, C) uint8 pictures as "photos" or "prior"."""
        self.path.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(self._pictures(which), images=images)

    def read_pictures(self, which: str) -> np.ndarray | None:
        """The "photos" or "prior" pictures, or None when the run has none."""
        path = self._pictures(which)
        if not path.is_file():
            return None
        with np.load(path) as data:
            return data["images"]

    def _pictures(self, which: str) -> Path:
        if which not in ("photos", "prior"):
            raise ValueError(f"A run keeps photos or prior pictures, not {which!r}.")
        return self.photos_file if which == "photos" else self.prior_file

    def forget_training(self) -> None:
        """Start over: remove the checkpoint, previews, log, quality readings and prior samples (photos and settings
        stay)."""
        for path in (self.checkpoint, self.samples, self.log, self.quality, self.progress_page, self.prior_file):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


class RunLog:
    """log.csv open for appending: one row per optimizer step, flushed at once so `tail -f log.csv` follows."""

    HEADER = ("step", "loss", "lr", "images_per_s")

    def __init__(self, path: Path) -> None:
        new = not path.exists()
        self._file = open(path, "a", newline="")  # noqa: SIM115 - closed by close()
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(self.HEADER)

    def write(self, step: int, loss: float, lr: float, images_per_second: float) -> None:
        self._writer.writerow([step, f"{loss:.5f}", f"{lr:.6g}", f"{images_per_second:.1f}"])
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def session_runs(session_dir: Path | None) -> list[RunFolder]:
    """The runs a session has, newest first by their checkpoint (runs without a model last)."""
    runs = session_dir / RUNS if session_dir is not None else None
    if runs is None or not runs.is_dir():
        return []
    found = [RunFolder(p) for p in runs.iterdir() if p.is_dir()]
    return sorted(found, key=lambda r: r.checkpoint.stat().st_mtime if r.has_model() else 0.0, reverse=True)


def new_run(session_dir: Path, name: str) -> RunFolder:
    """A fresh run folder for ``name`` (a safe name) in the session's runs."""
    return RunFolder(session_dir / RUNS / f"{name}-{uuid.uuid4().hex[:6]}")
