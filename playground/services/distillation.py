"""Distil a prompt model into a few-step student: ``python -m playground distill``.

    RUN/rounds/016-steps/   a run folder per round (checkpoint/, samples/, log.csv), the student of that many steps
    RUN/rounds/008-steps/   ...each round's student starts from the one before, and is its teacher's half
    RUN/rounds/004-steps-matched/   with --match-steps: the last student refined by distribution matching
    RUN/rounds/004-steps-adversarial/   with --gan-steps: then its empty prompt's pictures against a discriminator
    RUN/checkpoint -> the last round's checkpoint folder, as every other run has it (copied when it finishes)

The first round's teacher is the prompt model itself with classifier-free guidance (two network calls a step), at
twice the first round's steps; the student it teaches takes the guidance scale as an input (one call a step). Every
later round's teacher is the round before's student. Each round resumes where it stopped; a finished round is
skipped. Data: the emoji set the teacher learned, with its names as captions (word and prompt dropout).

Progressive rounds teach the student the teacher's deterministic DDIM path, and with it DDIM's weaker hold on the
prompt. The distribution-matching stage (diffusion.distillation.match) then trains the student on its own ancestral
samples against the guided teacher's score, with a "fake" network (starting as the prompt model) that follows the
student's pictures; ``from_student`` starts that stage from a finished student instead of running the rounds.
The adversarial stage (diffusion.adversarial.refine) last sharpens the empty prompt's pictures against a
discriminator of the data, the rest of what the student knows held to where it was.
"""

from __future__ import annotations

import copy
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from playground import media
from playground.checkpoints import (
    Checkpoint,
    load_checkpoint,
    load_training_state,
    load_weights_into,
    read_info,
    save_checkpoint,
)
from playground.data.augment import augmenter
from playground.data.dataset import Dataset
from playground.diffusion.adversarial import AdversarialConfig, Discriminator, refine
from playground.diffusion.distillation import DistillConfig, distill, match
from playground.diffusion.guidance import classifier_free_guidance
from playground.diffusion.training import TrainConfig, TrainEvent, TrainState, draw_examples, new_train_state
from playground.models import PromptedUNet, count_parameters
from playground.services.image_sampling import final_images
from playground.services.run_folder import RunFolder, RunLog
from playground.services.training_runs import CheckpointClock

PREVIEW_PROMPTS = ("", "cat", "red heart", "tree")


def check_rounds(rounds: list[int], num_timesteps: int) -> list[int]:
    """Student step counts, each half the one before (16, 8, 4): ValueError with one sentence otherwise."""
    if not rounds:
        raise ValueError("Give at least one round: the student's steps, such as 4.")
    for before, after in zip(rounds, rounds[1:], strict=False):
        if after * 2 != before:
            raise ValueError(f"Each round halves the steps of the one before ({before} is followed by {before // 2}, "
                             f"not {after}).")
    if rounds[-1] < 1 or 2 * rounds[0] > num_timesteps:
        raise ValueError(f"The first round's teacher takes {2 * rounds[0]} steps, at most T = {num_timesteps}; the "
                         "last student takes 1 step or more.")
    return rounds


def guided_teacher(model: PromptedUNet) -> Callable:
    """The prompt model with classifier-free guidance at each example's scale, both halves in one batch: the first
    round's teacher. An all-empty batch is one plain call: guidance moves nothing where both halves are the same."""
    def teacher(x_t: torch.Tensor, t: torch.Tensor, words: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        if not words.any():
            return model(x_t, t, words)
        out = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([words, torch.zeros_like(words)]))
        cond, uncond = out.chunk(2)
        return classifier_free_guidance(uncond, cond, scale.view(-1, *([1] * (x_t.ndim - 1))))
    return teacher


def student_call(model: PromptedUNet) -> Callable:
    return lambda x_t, t, words, scale: model(x_t, t, words, scale)


@dataclass
class DistillSpec:
    """A whole distillation: the teacher, the rounds, and each round's recipe."""

    teacher: Path
    rounds: list[int]  # the students' steps, halving: [16, 8, 4]
    config: DistillConfig  # every round's recipe (its student_steps set per round)
    preview_every: int = 250
    checkpoint_every_s: float = 600.0
    info: dict = field(default_factory=dict)
    match_steps: int = 0  # distribution matching after the rounds (0: none), at match_lr
    match_lr: float = 4e-5
    from_student: Path | None = None  # a finished student: skip the rounds, only refine it
    gan_steps: int = 0  # the adversarial stage after the others (0: none), by this recipe
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)


@dataclass
class _Round:
    """One round while it trains: what the step callback and the saves share."""

    run: RunFolder
    spec: DistillSpec
    config: DistillConfig
    teacher: Checkpoint
    state: TrainState
    dataset: Dataset
    log: RunLog
    clock: CheckpointClock
    wall_before: float = 0.0
    on_event: Callable[[TrainEvent], None] | None = None
    fake: TrainState | None = None  # distribution matching's fake network, saved beside the student to resume
    discriminator: TrainState | None = None  # the adversarial stage's, likewise
    start_info: dict = field(default_factory=dict)  # the adversarial stage: the info of the student it refines
    started: float = field(default_factory=time.perf_counter)

    def on_step(self, event: TrainEvent, state: TrainState) -> None:
        self.log.write(event.step, event.loss, event.lr, event.images_per_second)
        if self.on_event is not None:
            self.on_event(event)
        if event.step % self.spec.preview_every == 0 or event.step == event.total_steps:
            self.preview(event.step)
        if self.clock.due():
            self.save()
            self.clock.saved()

    def student(self) -> Checkpoint:
        teacher = self.teacher
        return Checkpoint(self.run.checkpoint, self.state.ema.model, teacher.schedule, teacher.prediction_type,
                          autoencoder=teacher.autoencoder)

    def preview(self, step: int) -> None:
        """A row of 8 pictures per preview prompt the model knows, from the same noise, in the round's steps (on DDPM,
        as the app samples a prompt with a student: image_sampling.default_sampling)."""
        known = self.teacher.vocabulary.index
        prompts = [p for p in PREVIEW_PROMPTS if all(word in known for word in p.split())]
        rows = [media.image_grid(final_images(self.student(), "ddpm", self.config.student_steps, 8, 1234,
                                              prompt=prompt), columns=8) for prompt in prompts]
        grid = media.grid(rows, columns=1, gap=2)
        grid.resize((grid.width * 2, grid.height * 2), Image.NEAREST).save(self.run.preview_path(step))

    def save(self) -> None:
        state, config, teacher = self.state, self.config, self.teacher
        tensors, meta = state.to_tensors()
        for prefix, companion in (("fake", self.fake), ("disc", self.discriminator)):
            if companion is not None:
                companion_tensors, meta[prefix] = companion.to_tensors()
                tensors.update({f"{prefix}/{key}": value for key, value in companion_tensors.items()})
        losses = state.losses
        info = {**{k: v for k, v in read_info(self.spec.teacher).items() if k in ("model", "data")},
                "training": (self.spec.adversarial if self.discriminator is not None else config).to_dict(),
                "parameters": count_parameters(state.model), "steps": state.step,
                "distilled": self._distilled(),
                "wall_time_s": self.wall_before + time.perf_counter() - self.started,
                "final_loss": float(np.mean(losses[-100:])) if losses else float("nan"),
                "loss_history_full": losses, **self.spec.info}
        save_checkpoint(self.run.checkpoint, state.ema.model, teacher.schedule.name, teacher.schedule.num_timesteps,
                        teacher.prediction_type, info, distilled_card(self.run.path.name, info), tensors, meta,
                        autoencoder=teacher.autoencoder)

    def _distilled(self) -> dict:
        """The card's account of the distillation: the rounds and matching from this stage's config, or for the
        adversarial stage the student's own account with the stage added."""
        config = self.config
        if self.discriminator is not None:
            return {**self.start_info.get("distilled", {}),
                    "adversarial": {**self.spec.adversarial.to_dict(), "steps": self.state.step,
                                    "planned": self.spec.gan_steps,
                                    "student_steps_before": self.start_info.get("steps"),
                                    "student_wall_time_s_before": self.start_info.get("wall_time_s")}}
        return {"teacher": self.spec.teacher.name, "student_steps": config.student_steps,
                              "rounds": self.spec.rounds, "guidance_range": [config.guidance_min,
                                                                             config.guidance_max],
                              **({"matched": {"steps": config.steps, "lr": config.lr, "fake_lr": config.fake_lr,
                                              "fake_warmup": config.fake_warmup,
                                              "empty_substeps": config.empty_substeps,
                                              "empty_weight": config.empty_weight,
                                              "fake_updates": config.fake_updates,
                                              "empty_on_policy": config.empty_on_policy,
                                              "empty_first": config.empty_first,
                                              "empty_match": config.empty_match}}
                                 if self.fake is not None else {})}


def _round_state(run: RunFolder, teacher: Checkpoint, config: DistillConfig) -> tuple[TrainState, float]:
    """The round's student: resumed from its own checkpoint, or a copy of its teacher (with a guidance input at zero
    when the teacher is the prompt model itself)."""
    student = teacher.unet.with_guidance() if teacher.unet.guidance is None else copy.deepcopy(teacher.unet)
    state = new_train_state(student.train(), config)
    saved = load_training_state(run.checkpoint)
    if saved is None:
        return state, 0.0
    tensors, meta = saved
    info = read_info(run.checkpoint)
    state.load_tensors(tensors, meta, load_weights_into(student, run.checkpoint), info.get("loss_history_full", []))
    return state, float(info.get("wall_time_s", 0.0))


def _examples(teacher: Checkpoint, dataset: Dataset, config: DistillConfig) -> Callable:
    """draw(generator) -> a batch of (pictures, word ids): the names' words the teacher knows, with the recipe's
    word and prompt dropout and word focus (a pixel model's pictures also flipped at random)."""
    words = teacher.unet.vocabulary.batch(list(dataset.captions), drop_unknown=True)
    draw_config = TrainConfig(batch_size=config.batch_size, word_dropout=config.word_dropout,
                              prompt_dropout=config.prompt_dropout, word_focus=config.word_focus,
                              hflip=not teacher.is_latent)
    augment = augmenter(draw_config)

    def draw(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return draw_examples(dataset.images, generator, draw_config, augment=augment, words=words)
    return draw


def distill_round(run: RunFolder, spec: DistillSpec, student_steps: int, start_from: Path, dataset: Dataset,
                  on_event=None, should_stop: Callable[[], bool] = lambda: False, device="cpu") -> bool:
    """Train (or continue) one round; True when it finished its steps (False: stopped)."""
    config = replace(spec.config, student_steps=student_steps)
    teacher = load_checkpoint(start_from, device)
    if teacher.vocabulary is None:
        raise ValueError(f"{teacher.name!r} takes no prompts; distillation here bakes classifier-free guidance into a "
                         "prompt model's student, so start from a prompt model such as emoji32-prompts.")
    teacher_fn = guided_teacher(teacher.unet) if teacher.unet.guidance is None else student_call(teacher.unet)
    state, wall_before = _round_state(run, teacher, config)
    if state.step >= config.steps:
        return True
    run.samples.mkdir(parents=True, exist_ok=True)
    progress = _Round(run, spec, config, teacher, state, dataset, run.open_log(),
                      CheckpointClock(spec.checkpoint_every_s), wall_before, on_event)
    clip = None if teacher.is_latent else 1.0
    try:
        distill(state, student_call(state.model), teacher_fn, teacher.schedule, _examples(teacher, dataset, config),
                config, teacher.prediction_type, clip, progress.on_step, should_stop)
    finally:
        progress.log.close()
        progress.save()
    return state.step >= config.steps


def _resume_companion(run: RunFolder, companion: TrainState, prefix: str) -> TrainState:
    """``companion`` (a fake network or a discriminator, trained beside the student and saved with its tensors under
    ``prefix``/) loaded from the stage's checkpoint when the stage resumes; as it is otherwise."""
    saved = load_training_state(run.checkpoint)
    if saved is not None:
        tensors, meta = saved
        own = {key[len(prefix) + 1:]: value for key, value in tensors.items() if key.startswith(f"{prefix}/")}
        companion.load_tensors(own, meta[prefix], companion.model.state_dict(), [])
    return companion


def match_round(run: RunFolder, spec: DistillSpec, start_from: Path, dataset: Dataset, on_event=None,
                should_stop: Callable[[], bool] = lambda: False, device="cpu") -> bool:
    """Train (or continue) the distribution-matching stage: the student in ``start_from`` against the guided prompt
    model ``spec.teacher``, the fake network starting as that prompt model. True when it finished its steps."""
    start = read_info(start_from).get("distilled", {})
    config = replace(spec.config, steps=spec.match_steps, lr=spec.match_lr, student_steps=start["student_steps"])
    spec = replace(spec, rounds=start.get("rounds", spec.rounds))
    teacher = load_checkpoint(spec.teacher, device)
    student = load_checkpoint(start_from, device)
    state, wall_before = _round_state(run, student, config)
    fake = _resume_companion(run, new_train_state(teacher.unet.with_guidance().train(), config), "fake")
    if state.step >= config.steps:
        return True
    run.samples.mkdir(parents=True, exist_ok=True)
    progress = _Round(run, spec, config, teacher, state, dataset, run.open_log(),
                      CheckpointClock(spec.checkpoint_every_s), wall_before, on_event, fake)
    clip = None if teacher.is_latent else 1.0
    try:
        match(state, fake, student_call(state.model), student_call(fake.model), guided_teacher(teacher.unet),
              teacher.schedule, _examples(teacher, dataset, config), config, teacher.prediction_type, clip,
              progress.on_step, should_stop)
    finally:
        progress.log.close()
        progress.save()
    return state.step >= config.steps


def adversarial_round(run: RunFolder, spec: DistillSpec, start_from: Path, dataset: Dataset, on_event=None,
                      should_stop: Callable[[], bool] = lambda: False, device="cpu") -> bool:
    """Train (or continue) the adversarial stage: the student in ``start_from`` against a fresh discriminator, its
    prompted outputs and its pictures' layout held to that student's (diffusion.adversarial.refine). True when it
    finished its steps."""
    start_info = read_info(start_from)
    config = replace(spec.adversarial, steps=spec.gan_steps)
    student_steps = start_info["distilled"]["student_steps"]
    round_config = replace(spec.config, student_steps=student_steps)  # what the previews and the card read
    spec = replace(spec, rounds=start_info["distilled"].get("rounds", spec.rounds), adversarial=config)
    start = load_checkpoint(start_from, device)
    state, wall_before = _round_state(run, start, config)  # the student: a copy of start's network
    reference = start.unet.eval().requires_grad_(False)
    critic = Discriminator(start.unet.config.in_channels, start.resolution).to(device).train()
    discriminator = _resume_companion(run, new_train_state(critic, config), "disc")
    if state.step >= config.steps:
        return True
    run.samples.mkdir(parents=True, exist_ok=True)
    progress = _Round(run, spec, round_config, start, state, dataset, run.open_log(),
                      CheckpointClock(spec.checkpoint_every_s), wall_before, on_event,
                      discriminator=discriminator, start_info=start_info)
    real = replace(round_config, batch_size=config.batch_size, prompt_dropout=0.0, word_focus=0.0)  # as the data is
    try:
        refine(state, discriminator, student_call(state.model), student_call(reference), start.schedule,
               _examples(start, dataset, real), config, student_steps, start.prediction_type,
               None if start.is_latent else 1.0, progress.on_step, should_stop)
    finally:
        progress.log.close()
        progress.save()
    return state.step >= config.steps


def distill_run(run_dir: str | Path, spec: DistillSpec, dataset: Dataset, on_round=None, on_event=None,
                should_stop: Callable[[], bool] = lambda: False, device="cpu") -> Path:
    """Every round in turn (a finished one skipped, a stopped one resumed), then distribution matching when
    ``spec.match_steps`` and the adversarial stage when ``spec.gan_steps``; the last student's checkpoint is copied
    to RUN/checkpoint. Returns that folder (or the stopped stage's). ``on_round(student_steps, run, stage)`` hears
    of each stage ("round", "matching" or "adversarial") as it starts."""
    run = RunFolder(Path(run_dir))
    start_from = spec.teacher
    for student_steps in ([] if spec.from_student else spec.rounds):
        round_run = run.round(student_steps)
        if on_round is not None:
            on_round(student_steps, round_run, "round")
        if not distill_round(round_run, spec, student_steps, start_from, dataset, on_event, should_stop, device):
            return round_run.checkpoint
        start_from = round_run.checkpoint
    if spec.from_student:
        start_from = spec.from_student
    if spec.match_steps:
        student_steps = read_info(start_from)["distilled"]["student_steps"]
        stage = run.matching(student_steps)
        if on_round is not None:
            on_round(student_steps, stage, "matching")
        if not match_round(stage, spec, start_from, dataset, on_event, should_stop, device):
            return stage.checkpoint
        start_from = stage.checkpoint
    if spec.gan_steps:
        student_steps = read_info(start_from)["distilled"]["student_steps"]
        stage = run.adversarial(student_steps)
        if on_round is not None:
            on_round(student_steps, stage, "adversarial")
        if not adversarial_round(stage, spec, start_from, dataset, on_event, should_stop, device):
            return stage.checkpoint
        start_from = stage.checkpoint
    if run.checkpoint.exists():
        shutil.rmtree(run.checkpoint)
    shutil.copytree(start_from, run.checkpoint, ignore=shutil.ignore_patterns("training"))
    return run.checkpoint


def _empty_prompt_extras(matched: dict) -> str:
    share = matched.get("empty_on_policy", 0)
    first, matching = matched.get("empty_first", 0), matched.get("empty_match", 0)
    return ((f", {share:.0%} of them from where its own DDIM sampling went" if share else "")
            + (f", and {first} more in each batch at its first step, from pure noise" if first else "")
            + (f"; beside it, matched too at weight {matching:g}" if matching else ""))


def _warmup(matched: dict) -> str:
    return f" (alone for its first {matched['fake_warmup']} steps)" if matched.get("fake_warmup") else ""


def distilled_card(title: str, info: dict) -> str:
    """The model card of a distilled student."""
    distilled, training = info.get("distilled", {}), info.get("training", {})
    adversarial = distilled.get("adversarial", {})
    lines = [
        f"# {title}", "",
        f"A {distilled.get('student_steps')}-step student of `{distilled.get('teacher')}`, made with Diffusion "
        "Playground by progressive distillation (Salimans & Ho 2022) with guidance distilled in (Meng et al. 2023): "
        "each round a student learns to take in one DDIM step what its teacher takes in two, and it takes the "
        "guidance scale as an input, so every step is one network call. Its UNet is a diffusers "
        "`UNet2DModel(class_embed_type=\"identity\")` (`UNet2DModel.from_pretrained(folder, subfolder=\"unet\")`); "
        "the prompt's vector (`prompt_encoder/bag_of_words.safetensors`) plus the guidance scale's "
        "(`prompt_encoder/guidance.safetensors`: sinusoidal features of 100·w through a two-layer MLP) go in as "
        "`class_labels`. Sample it on its trailing-spaced steps: a prompt with ancestral DDPM, whose fresh noise "
        "at every step lets guidance steer again where DDIM commits early, "
        f"`python -m playground sample --checkpoint FOLDER --prompt cat --sampler ddpm --steps "
        f"{distilled.get('student_steps')}` (the default), and the empty prompt with DDIM (η = 0), whose pictures "
        "cover more of the data.", "",
        f"- Rounds (the students' steps): {distilled.get('rounds')}; the last stage's {info.get('steps')} steps of "
        f"batch {training.get('batch_size')}, AdamW lr {training.get('lr')}, EMA up to {training.get('ema_max_decay')}",
        f"- Guidance scales learned: {distilled.get('guidance_range')} (drawn uniformly per example)",
        *([f"- Then distribution matching (Yin et al. 2024, DMD, with DMD2's backward simulation): "
           f"{adversarial.get('student_steps_before', info.get('steps'))} steps (of {matched['steps']} planned) at "
           f"lr {matched['lr']} against the guided "
           f"teacher, its fake network at lr "
           f"{matched['fake_lr']}{_warmup(matched)}; the student learned on its own DDPM samples, the empty prompt "
           f"by regression on the teacher's {matched.get('empty_substeps', 2)} DDIM steps across each of its own"
           + _empty_prompt_extras(matched)]
          if (matched := distilled.get("matched")) else []),
        *([f"- Then its empty prompt's pictures sharpened against a discriminator of the emoji set (DMD2's GAN term, "
           f"Yin et al. 2024b; `diffusion.adversarial`): {adversarial['steps']} steps (of {adversarial['planned']} "
           f"planned) of batch {adversarial['batch_size']}, lr {adversarial['lr']}, the discriminator's "
           f"{adversarial['disc_lr']} (alone for its first {adversarial['disc_warmup']}), GAN weight "
           f"{adversarial['gan_weight']}, the pictures' {adversarial['layout_pool']}-pixel block averages held to "
           f"the student's before at weight {adversarial['layout_weight']} and its prompted outputs at "
           f"{adversarial['anchor_weight']}"
           + (f" ({adversarial['anchor_on_policy']:.0%} of them where its own DDPM sampling of them went)"
              if adversarial.get("anchor_on_policy") else "")] if adversarial else []),
        f"- Wall time: {info.get('wall_time_s', 0) / 3600:.2f} h on {info.get('hardware', 'unknown hardware')}"
        + (" (the adversarial stage's; the student's before: "
           f"{(adversarial.get('student_wall_time_s_before') or 0) / 3600:.2f} h)" if adversarial else ""),
    ]
    if info.get("command"):
        lines += ["", "Distilled with exactly:", "", "```bash", info["command"], "```"]
    return "\n".join(lines) + "\n"
