"""Progressive distillation with guidance (Salimans & Ho 2022, "Progressive Distillation for Fast Sampling of
Diffusion Models"; Meng et al. 2023, "On Distillation of Guided Diffusion Models"): a student learns to take in one
DDIM step what its teacher takes in two, round after round, and to do it for the guided teacher with the guidance
scale as an input, so each step is one network call instead of two.

The target (Salimans & Ho, Algorithm 2): from x_t, the teacher takes two DDIM steps, t -> t' -> t''; the student's
x_0 must be the one from which a single DDIM step t -> t'' lands on the same x_t''. With alpha = sqrt(abar) and
sigma = sqrt(1 - abar):

    x~ = (x_t'' - (sigma_t'' / sigma_t) x_t) / (alpha_t'' - (sigma_t'' / sigma_t) alpha_t)

(for t'' past the last step, the clean picture: x~ = x_t''). The student's grid is every other point of its
teacher's, both DDIM's trailing spacing, so the rounds nest: 8 -> 4 uses the 8-step grid's points 0, 2, 4, 6. The
same inversion holds for any number of teacher steps across one of the student's (:func:`multi_step_target`).

A student so made inherits DDIM's hold on the prompt, weaker than many-step DDPM's. Distribution matching (Yin et al.
2024, "One-step Diffusion with Distribution Matching Distillation", and DMD2's backward simulation) then refines it
against the guided teacher's distribution rather than its path: :func:`match`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import torch

from playground.diffusion.forward import add_noise, randn
from playground.diffusion.samplers import PredictionType, make_sampler, spaced_timesteps
from playground.diffusion.schedules import NoiseSchedule
from playground.diffusion.training import TrainState, diffusion_loss, optimizer_step, scheduled_lr

# (x_t (B, ...), t (B,)) -> the network's output (eps, v or x_0), the prompt and guidance scale already bound
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def alpha_sigma(schedule: NoiseSchedule, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sqrt(abar_t) and sqrt(1 - abar_t) for each example's level t (B,), shaped to broadcast against ``like``
    (B, ...); t = -1 is the clean picture (1, 0)."""
    cumprod = schedule.alphas_cumprod.to(t.device)
    abar = torch.where(t >= 0, cumprod[t.clamp(min=0)], torch.ones_like(cumprod[0]))
    abar = abar.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))
    return abar.sqrt(), (1 - abar).sqrt()


def ddim_jump(schedule: NoiseSchedule, x_t: torch.Tensor, pred_x0: torch.Tensor, t: torch.Tensor,
              s: torch.Tensor) -> torch.Tensor:
    """A deterministic DDIM step (Song et al. 2021, eq. 12 with eta = 0) from level t to level s (each (B,)) given
    x_0's prediction: x_s = alpha_s x_0 + sigma_s eps, eps = (x_t - alpha_t x_0) / sigma_t."""
    alpha_t, sigma_t = alpha_sigma(schedule, t, x_t)
    alpha_s, sigma_s = alpha_sigma(schedule, s, x_t)
    eps = (x_t - alpha_t * pred_x0) / sigma_t
    return alpha_s * pred_x0 + sigma_s * eps


def predicted_x0(schedule: NoiseSchedule, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                 prediction_type: PredictionType, clip: float | None = None) -> torch.Tensor:
    """The x_0 a network's output implies at each example's level t (clamped to [-clip, clip] when given)."""
    alpha, sigma = alpha_sigma(schedule, t, x_t)
    if prediction_type == "epsilon":
        x0 = (x_t - sigma * output) / alpha
    elif prediction_type == "v_prediction":
        x0 = alpha * x_t - sigma * output
    else:
        x0 = output
    return x0.clamp(-clip, clip) if clip is not None else x0


def multi_step_target(schedule: NoiseSchedule, teacher: Denoiser, x_t: torch.Tensor,
                      path: Sequence[torch.Tensor], prediction_type: PredictionType,
                      clip: float | None = None) -> torch.Tensor:
    """The student's x_0 target at (x_t, path[0]): the teacher's DDIM steps along ``path`` (levels, each (B,), from
    the student's t through the teacher's intermediate levels to the student's next level t_n), inverted to the x_0
    whose one DDIM step t -> t_n lands where the teacher did (Salimans & Ho 2022, Algorithm 2, for any number of
    teacher steps): x_0 = (x_n - (sigma_n / sigma_t) x_t) / (alpha_n - (sigma_n / sigma_t) alpha_t). ``clip``: clamp
    the teacher's x_0 as the app's DDIM does (pixels live in [-1, 1]; None for latents)."""
    x = x_t
    for level, following in pairwise(path):
        x0 = predicted_x0(schedule, teacher(x, level), x, level, prediction_type, clip)
        x = ddim_jump(schedule, x, x0, level, following)
    alpha_t, sigma_t = alpha_sigma(schedule, path[0], x_t)
    alpha_n, sigma_n = alpha_sigma(schedule, path[-1], x_t)
    ratio = sigma_n / sigma_t  # 0 for the last step, where the target is the teacher's last x itself
    return (x - ratio * x_t) / (alpha_n - ratio * alpha_t)


def two_step_target(schedule: NoiseSchedule, teacher: Denoiser, x_t: torch.Tensor, t: torch.Tensor,
                    t_mid: torch.Tensor, t_next: torch.Tensor, prediction_type: PredictionType,
                    clip: float | None = None) -> torch.Tensor:
    """Progressive distillation's target: :func:`multi_step_target` of the teacher's two DDIM steps
    t -> t_mid -> t_next (each (B,))."""
    return multi_step_target(schedule, teacher, x_t, (t, t_mid, t_next), prediction_type, clip)


def teacher_paths(num_train_timesteps: int, student_steps: int, substeps: int = 2) -> list[list[int]]:
    """For each of the student's steps (trailing spacing, noisiest first), the teacher's levels across it when the
    teacher walks ``substeps`` times as many trailing-spaced steps: from the student's level to its next (-1 after
    the last: the clean picture). The grids nest, so path[0] is the student's own level."""
    teacher = spaced_timesteps(num_train_timesteps, substeps * student_steps, "trailing") + [-1]
    return [teacher[i * substeps:(i + 1) * substeps + 1] for i in range(student_steps)]


def student_grid(num_train_timesteps: int, student_steps: int) -> tuple[list[int], list[int]]:
    """The student's timesteps (trailing spacing, noisiest first) and, for each, the teacher's midpoint: the
    teacher walks 2N trailing-spaced steps, the student every other one of them."""
    teacher = spaced_timesteps(num_train_timesteps, 2 * student_steps, "trailing")
    return teacher[::2], teacher[1::2]


@dataclass(frozen=True)
class DistillConfig:
    """One round of distillation (a student of ``student_steps`` learning from a teacher of twice as many)."""

    student_steps: int = 4
    steps: int = 1500  # optimizer steps in this round
    batch_size: int = 16
    lr: float = 5e-5
    warmup_steps: int = 50
    lr_min_ratio: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_max_decay: float = 0.995
    guidance_min: float = 1.0  # the guidance scales the student learns, drawn uniformly per example
    guidance_max: float = 10.0
    prompt_dropout: float = 0.15  # share of examples distilled with the empty prompt
    word_dropout: float = 0.5
    word_focus: float = 0.5  # share of each batch drawn word first (training.draw_word_first): one-word prompts
    seed: int = 0
    fake_lr: float = 1e-4  # distribution matching only: the fake network's (constant) learning rate
    fake_warmup: int = 0  # distribution matching only: steps the fake network learns alone before the student moves
    empty_substeps: int = 2  # distribution matching only: teacher DDIM steps per student step in the empty prompt's
    # target (2: progressive distillation's; more follow the teacher's finer, wider-covering path)
    empty_weight: float = 1.0  # distribution matching only: the empty prompt's regression loss, times its share
    fake_updates: int = 1  # distribution matching only: the fake network's steps per student step (DMD2's TTUR)
    empty_on_policy: float = 0.0  # distribution matching only: share of the empty prompt's examples that regress at
    # the x_t the student's own DDIM sampling reached (:func:`on_policy_loss`) rather than at a noised picture
    empty_first: int = 0  # distribution matching only: extra empty-prompt examples in each batch that regress at the
    # student's first step, from pure noise: the step that lays a picture out (bench/distill_fit.py --swap)
    empty_match: float = 0.0  # distribution matching only: the weight of distribution matching on the batch's
    # empty-prompt examples too, beside their regression (which alone leaves them paler than the data)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


StudentFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # x, t, words, w
TeacherFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # the same, guided


def bind(network: StudentFn, words: torch.Tensor, guidance: torch.Tensor) -> Denoiser:
    """``network`` with each example's prompt and guidance scale bound: a :data:`Denoiser` of (x_t, t)."""
    return lambda x_t, t: network(x_t, t, words, guidance)


def draw_guidance(config: DistillConfig, count: int, generator: torch.Generator) -> torch.Tensor:
    """Each example's guidance scale, uniform in [guidance_min, guidance_max] (count,)."""
    return config.guidance_min + (config.guidance_max - config.guidance_min) * torch.rand(count, generator=generator)


def distillation_loss(student: StudentFn, teacher: TeacherFn, schedule: NoiseSchedule, x0: torch.Tensor,
                      words: torch.Tensor, guidance: torch.Tensor, config: DistillConfig, generator: torch.Generator,
                      prediction_type: PredictionType, clip: float | None, substeps: int = 2) -> torch.Tensor:
    """One batch: each example noised to a random step of the student's grid, the teacher's target there (its
    ``substeps`` DDIM steps across the student's one: 2 in progressive distillation), and the student's output
    against it in its own prediction type (for v: the v that target implies, which weighs the x_0 error by SNR + 1,
    Salimans & Ho's choice)."""
    paths = torch.tensor(teacher_paths(schedule.num_timesteps, config.student_steps, substeps), device=x0.device)
    index = torch.randint(0, len(paths), (x0.shape[0],), generator=generator)
    path = paths[index.to(x0.device)].T  # (substeps + 1, B): each example's levels, its own t first
    x_t = add_noise(schedule, x0, randn(x0.shape, generator, x0), path[0])
    return _regression_loss(student, teacher, schedule, x_t, path, words, guidance, prediction_type, clip)


def on_policy_loss(student: StudentFn, teacher: TeacherFn, schedule: NoiseSchedule, x_T: torch.Tensor,
                   words: torch.Tensor, guidance: torch.Tensor, stop: int, config: DistillConfig,
                   prediction_type: PredictionType, clip: float | None, substeps: int = 2) -> torch.Tensor:
    """:func:`distillation_loss` where the student's sampling goes, not where the forward process puts a picture:
    the student's own deterministic DDIM sampling from ``x_T`` to its ``stop``-th level (:func:`student_rollout`),
    then the teacher's ``substeps`` DDIM steps from there as the target. Regression on noised pictures alone
    teaches each step on x_t the student's earlier steps never quite reach; here it also learns the teacher's way
    back from where they did (DAgger's on-policy states, Ross et al. 2011)."""
    x_t = student_rollout(bind(student, words, guidance), schedule, x_T, config.student_steps, stop,
                          prediction_type, None, clip, "ddim")
    path = torch.tensor(teacher_paths(schedule.num_timesteps, config.student_steps, substeps)[stop], device=x_T.device)
    path = path[:, None].expand(-1, x_T.shape[0])  # (substeps + 1, B)
    return _regression_loss(student, teacher, schedule, x_t, path, words, guidance, prediction_type, clip)


def _regression_loss(student: StudentFn, teacher: TeacherFn, schedule: NoiseSchedule, x_t: torch.Tensor,
                     path: torch.Tensor, words: torch.Tensor, guidance: torch.Tensor,
                     prediction_type: PredictionType, clip: float | None) -> torch.Tensor:
    """The student's output at (x_t, path[0]) against the teacher's steps along ``path`` ((substeps + 1, B)),
    inverted (:func:`multi_step_target`) and put in the student's own prediction type (:func:`_target_output`)."""
    with torch.no_grad():
        target_x0 = multi_step_target(schedule, bind(teacher, words, guidance), x_t, list(path), prediction_type, clip)
    target = _target_output(schedule, target_x0, x_t, path[0], prediction_type)
    return (student(x_t, path[0], words, guidance).float() - target.float()).pow(2).flatten(1).mean(1).mean()


def _target_output(schedule: NoiseSchedule, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                   prediction_type: PredictionType) -> torch.Tensor:
    """What a network of ``prediction_type`` should output at (x_t, t) for its x_0 to be ``x0``."""
    alpha, sigma = alpha_sigma(schedule, t, x_t)
    eps = (x_t - alpha * x0) / sigma
    if prediction_type == "epsilon":
        return eps
    if prediction_type == "v_prediction":
        return alpha * eps - sigma * x0
    return x0


def distill(state: TrainState, student: StudentFn, teacher: TeacherFn, schedule: NoiseSchedule,
            draw: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]], config: DistillConfig,
            prediction_type: PredictionType, clip: float | None = None,
            callback: Callable | None = None, should_stop: Callable[[], bool] = lambda: False) -> TrainState:
    """One round: train ``state.model`` (called through ``student``) until config.steps or ``should_stop()``.
    ``draw(generator)`` gives a batch of (x_0, word ids); each example's guidance scale is drawn uniformly from
    [guidance_min, guidance_max]. EMA, lr schedule and resuming are diffusion.training's."""
    model = state.model.train()
    device = next(model.parameters()).device
    while state.step < config.steps and not should_stop():
        started = time.perf_counter()
        lr = scheduled_lr(state, config)
        x0, words = draw(state.generator)
        x0, words = x0.to(device), words.to(device)
        guidance = draw_guidance(config, len(x0), state.generator).to(device)
        loss = distillation_loss(student, teacher, schedule, x0, words, guidance, config, state.generator,
                                 prediction_type, clip)
        optimizer_step(state, loss, config, lr, started, callback)
    model.eval()
    return state


def distribution_matching_loss(x0: torch.Tensor, real: Denoiser, fake: Denoiser, schedule: NoiseSchedule,
                               prediction_type: PredictionType, generator: torch.Generator,
                               clip: float | None = None, t_range: tuple[float, float] = (0.02, 0.98)
                               ) -> torch.Tensor:
    """Distribution matching (Yin et al. 2024, "One-step Diffusion with Distribution Matching Distillation", eq. 7
    and their normaliser): the generator's pictures ``x0`` (with grad) are noised to a random level t, and each
    moves along the difference of two x_0 guesses there, the ``fake`` network's (trained on the generator's own
    pictures, so its score is theirs) minus the ``real`` one's (the guided teacher: the distribution to match):

        grad = (x0_fake - x0_real) / mean|x0 - x0_real|,   loss = 0.5 || x0 - sg(x0 - grad) ||^2 (its mean)

    so d loss / d x0 is grad over the number of elements: the KL gradient of eq. 7, each example's step scaled to
    its own distance from the real guess. Nothing flows into either network."""
    batch = x0.shape[0]
    low, high = (int(share * schedule.num_timesteps) for share in t_range)
    t = torch.randint(low, high, (batch,), generator=generator).to(x0.device)
    with torch.no_grad():
        x_t = add_noise(schedule, x0.detach(), randn(x0.shape, generator, x0), t)
        real_x0 = predicted_x0(schedule, real(x_t, t), x_t, t, prediction_type, clip)
        fake_x0 = predicted_x0(schedule, fake(x_t, t), x_t, t, prediction_type, clip)
        scale = (x0.detach() - real_x0).abs().flatten(1).mean(1).clamp(min=1e-5)
        grad = (fake_x0 - real_x0) / scale.view(-1, *([1] * (x0.ndim - 1)))
    return 0.5 * (x0.float() - (x0.detach() - grad).float()).pow(2).mean()


def student_rollout(student: Denoiser, schedule: NoiseSchedule, x_T: torch.Tensor, steps: int, stop: int,
                    prediction_type: PredictionType, generator: torch.Generator | None, clip: float | None = None,
                    sampler_name: str = "ddpm") -> torch.Tensor:
    """The student's own sampling (ancestral DDPM unless ``sampler_name`` says otherwise) on its ``steps``
    trailing-spaced levels, from pure noise ``x_T`` up to (not through) the ``stop``-th step, without gradients: the
    x_t where distribution matching trains a multistep student (DMD2's backward simulation, Yin et al. 2024b), so it
    learns each step on what its own sampling feeds it. ``stop`` = 0 is x_T itself; ``stop`` = ``steps`` is a
    finished sample."""
    sampler = make_sampler(sampler_name, schedule, steps, prediction_type=prediction_type, clip_sample=clip)
    x = x_T
    with torch.no_grad():
        for t in sampler.timesteps[:stop]:
            x = sampler.step(student(x, torch.full((x.shape[0],), t, device=x.device)), t, x, generator).prev_sample
    return x


def match(state: TrainState, fake_state: TrainState, student: StudentFn, fake: StudentFn, teacher: TeacherFn,
          schedule: NoiseSchedule, draw: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]],
          config: DistillConfig, prediction_type: PredictionType, clip: float | None = None,
          callback: Callable | None = None, should_stop: Callable[[], bool] = lambda: False) -> TrainState:
    """Distribution matching for a multistep student (DMD, Yin et al. 2024, with DMD2's backward simulation): until
    config.steps or ``should_stop()``, each step draws a batch (``draw(generator)``: pictures and their (B, L) word
    ids) and guidance scales, runs the student's own DDPM sampling (:func:`student_rollout`) to a random one of its
    ``config.student_steps`` steps, and moves its x_0 guesses there for the prompted examples by
    :func:`distribution_matching_loss` against the guided ``teacher``. First the ``fake`` network
    (``fake_state.model``, same inputs) learns those guesses as data with the plain diffusion loss at
    ``config.fake_lr``, so its score keeps following the student's pictures.

    A fresh fake network (it starts as the teacher) first learns alone for ``config.fake_warmup`` of its steps, and
    it takes ``config.fake_updates`` steps for each of the student's (DMD2's two time-scale rule).

    The empty prompt's examples keep a regression target instead (:func:`distillation_loss`, the teacher's
    ``config.empty_substeps`` DDIM steps across each of the student's, weighed by ``config.empty_weight``; a
    ``config.empty_on_policy`` share of them from the student's own DDIM states, :func:`on_policy_loss`; and
    ``config.empty_first`` more at its first step, from pure noise, each weighed as one of the batch's; and, at
    ``config.empty_match`` times its share, distribution matching beside the regression):
    matching is mode-seeking, and without a prompt to follow it narrowed the pictures (bench/prompt_fidelity.py's
    coverage); the teacher's DDIM on twice the student's steps covers less of the data than on four times as many
    (the same bench). The student's lr schedule and EMA are diffusion.training's."""
    model = state.model.train()
    fake_state.model.train()
    device = next(model.parameters()).device
    levels = spaced_timesteps(schedule.num_timesteps, config.student_steps, "trailing")
    for group in fake_state.optimizer.param_groups:  # constant, whatever a resumed optimizer last had
        group["lr"] = config.fake_lr
    while state.step < config.steps and not should_stop():
        started = time.perf_counter()
        lr = scheduled_lr(state, config)
        data, words = (tensor.to(device) for tensor in draw(state.generator))
        guidance = draw_guidance(config, len(words), state.generator).to(device)
        stop = int(torch.randint(0, config.student_steps, (1,), generator=state.generator))
        x_T = randn(data.shape, state.generator, data)
        x_t = student_rollout(bind(student, words, guidance), schedule, x_T, config.student_steps, stop,
                              prediction_type, state.generator, clip)
        t = torch.full((len(words),), levels[stop], device=device)
        x0 = predicted_x0(schedule, student(x_t, t, words, guidance), x_t, t, prediction_type)
        pictures = x0.detach() if clip is None else x0.detach().clamp(-clip, clip)
        for _ in range(config.fake_updates):  # each on fresh noise and levels
            fake_loss = diffusion_loss(bind(fake, words, guidance), schedule, pictures, state.generator,
                                       prediction_type)
            optimizer_step(fake_state, fake_loss, config, config.fake_lr, started, None)
        if fake_state.step <= config.fake_warmup:  # a fresh fake follows the student's pictures before it steers them
            continue
        prompted = words.ne(0).any(dim=1)
        loss = torch.zeros((), device=device)
        for group, weight in ((prompted, 1.0), (~prompted, config.empty_match)):  # the empty prompt's only if asked
            if weight and group.any():
                chosen = (words[group], guidance[group])
                loss = loss + weight * group.float().mean() * distribution_matching_loss(
                    x0[group], bind(teacher, *chosen), bind(fake, *chosen), schedule, prediction_type,
                    state.generator, clip)
        loss = loss + _empty_prompt_regression(student, teacher, schedule, data, words, guidance, x_T, stop,
                                               ~prompted, config, state.generator, prediction_type, clip)
        optimizer_step(state, loss, config, lr, started, callback)
    model.eval()
    fake_state.model.eval()
    return state


def _empty_prompt_regression(student: StudentFn, teacher: TeacherFn, schedule: NoiseSchedule, data: torch.Tensor,
                             words: torch.Tensor, guidance: torch.Tensor, x_T: torch.Tensor, stop: int,
                             empty: torch.Tensor, config: DistillConfig, generator: torch.Generator,
                             prediction_type: PredictionType, clip: float | None) -> torch.Tensor:
    """:func:`match`'s regression for the batch's ``empty`` ((B,) bool) examples, each weighed as one of the
    batch's times ``config.empty_weight``: on noised pictures (:func:`distillation_loss`), a ``config.empty_on_policy``
    share of them where the student's own sampling from ``x_T`` reached its ``stop`` (:func:`on_policy_loss`), and
    ``config.empty_first`` more examples at its first step, from fresh pure noise."""
    loss = torch.zeros((), device=data.device)
    chosen = empty.nonzero().squeeze(1)
    own = round(config.empty_on_policy * len(chosen))  # the first ``own`` regress where the student went
    on, off = chosen[:own], chosen[own:]
    share = config.empty_weight / len(words)
    if len(off):
        loss = loss + share * len(off) * distillation_loss(student, teacher, schedule, data[off], words[off],
                                                           guidance[off], config, generator, prediction_type, clip,
                                                           config.empty_substeps)
    if len(on):
        loss = loss + share * len(on) * on_policy_loss(student, teacher, schedule, x_T[on], words[on], guidance[on],
                                                       stop, config, prediction_type, clip, config.empty_substeps)
    if config.empty_first:
        count = config.empty_first
        noise = randn((count, *data.shape[1:]), generator, data)
        nothing = words.new_zeros(count, words.shape[1])  # the empty prompt's word ids
        scales = draw_guidance(config, count, generator).to(data.device)
        loss = loss + share * count * on_policy_loss(student, teacher, schedule, noise, nothing, scales, 0, config,
                                                     prediction_type, clip, config.empty_substeps)
    return loss
