"""Checkpoints are diffusers DDPM pipeline folders: ``DDPMPipeline.from_pretrained(folder)`` loads them.

    folder/
      model_index.json                         # DDPMPipeline = unet + scheduler
      unet/config.json, unet/diffusion_pytorch_model.safetensors   # the weights to sample with (EMA)
      scheduler/scheduler_config.json          # DDPMScheduler: schedule, T, prediction type
      playground.json                          # what it was trained on and how (ours; diffusers ignores it)
      README.md                                # the model card
      prompt_encoder/bag_of_words.safetensors  # prompt models only: the words' embeddings (vocabulary in
                                               # playground.json "prompts"); diffusers ignores the folder
      vae/config.json, vae/diffusion_pytorch_model.safetensors     # latent models only: the AutoencoderTiny whose
                                               # latents (times its scaling_factor) the UNet denoises
      training/                                # optional, to resume: online weights, optimizer, RNG, step
      samples.png                              # optional: the card's sample grid

Also here: the model card (README.md) written from playground.json, and plain weight and training-state I/O.

Weights are .safetensors only; pickle files (.bin, .pt, .ckpt) are refused, because loading one can run code.
Any local diffusers DDPM folder in this layout loads as is. Writes are atomic (temp folder + rename).
Shipped models store their weights in half precision (:func:`store_half`: half the bytes, so every file stays under
the Hub's 10 MB limit); everything loads into float32, ours and diffusers' ``from_pretrained`` alike.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from playground import __version__
from playground.data.prompts import Vocabulary
from playground.diffusion.schedules import DIFFUSERS_NAMES, NoiseSchedule
from playground.models import Autoencoder, BagOfWords, GuidanceEmbedding, PromptedUNet

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
FROM_DIFFUSERS = {diffusers_name: ours for ours, (diffusers_name, _, _) in DIFFUSERS_NAMES.items()}
VAE = "vae"  # a latent model's autoencoder, and an autoencoder run's checkpoint: vae/config.json + weights


class CheckpointError(ValueError):
    """A checkpoint that can't be used; ``str(error)`` is one sentence for a person."""


@dataclass
class Checkpoint:
    """A model to sample: its network, noise schedule and prediction target, and for a latent model the autoencoder
    whose latents the network denoises."""

    path: Path
    unet: torch.nn.Module  # diffusers UNet2DModel (or a PromptedUNet around one), eval mode
    schedule: NoiseSchedule
    prediction_type: str
    info: dict = field(default_factory=dict)  # playground.json, or {} for a foreign diffusers folder
    autoencoder: Autoencoder | None = None  # a latent model's (vae/); None: the network works on pixels

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def is_latent(self) -> bool:
        return self.autoencoder is not None

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of what the network denoises: the picture, or a latent model's latent."""
        size = self.unet.config.sample_size
        height, width = (size, size) if isinstance(size, int) else size
        return int(self.unet.config.in_channels), int(height), int(width)

    @property
    def resolution(self) -> int:
        """The side of the pictures it draws (a latent model's: its latents' side times the autoencoder's factor)."""
        return self.sample_shape[1] * (self.autoencoder.factor if self.autoencoder is not None else 1)

    @property
    def channels(self) -> int:
        """3 for colour, 1 for greyscale pictures (the MNIST-style DDPM folders of many tutorials)."""
        return self.autoencoder.image_channels if self.autoencoder is not None else self.sample_shape[0]

    @property
    def vocabulary(self) -> Vocabulary | None:
        """The words a prompt model knows; None for an unconditional model (emoji32, any foreign folder)."""
        return getattr(self.unet, "vocabulary", None)

    def to_pictures(self, samples: torch.Tensor, batch: int = 16) -> torch.Tensor:
        """What the network made, as pictures in [-1, 1] (not clamped): a latent model's latents decoded in batches
        of ``batch``; a pixel model's samples as they are."""
        if self.autoencoder is None:
            return samples
        with torch.inference_mode():
            return torch.cat([self.autoencoder.decode(part) for part in samples.split(batch)])


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def save_checkpoint(
    folder: str | os.PathLike,
    unet: torch.nn.Module,
    schedule_name: str,
    num_timesteps: int,
    prediction_type: str,
    info: dict,
    model_card: str,
    training: dict[str, torch.Tensor] | None = None,
    training_meta: dict | None = None,
    autoencoder: Autoencoder | None = None,
) -> Path:
    """Write a complete checkpoint folder atomically; returns its path.

    unet: the weights to sample with (the EMA copy when there is one). info: playground.json's content (the
    code version and time are added). training: tensors to resume from (online weights, optimizer moments,
    RNG state), with their non-tensor part in training_meta. autoencoder: a latent model's, written to vae/.
    """
    from diffusers import DDPMScheduler
    from diffusers import __version__ as diffusers_version

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        if isinstance(unet, PromptedUNet):  # the UNet as a plain diffusers folder, the words beside it
            (tmp / ENCODER_WEIGHTS).parent.mkdir(parents=True)
            save_file({k: v.detach().cpu().contiguous() for k, v in unet.encoder.state_dict().items()},
                      str(tmp / ENCODER_WEIGHTS), metadata={"format": "pt"})
            info = {**info, "prompts": {"encoder": "bag_of_words", "dim": unet.encoder.embedding.embedding_dim,
                                        "vocabulary": list(unet.vocabulary.words)}}
            if unet.guidance is not None:  # a distilled student's guidance input, beside the words
                (tmp / GUIDANCE_WEIGHTS).parent.mkdir(parents=True, exist_ok=True)
                save_file({k: v.detach().cpu().contiguous() for k, v in unet.guidance.state_dict().items()},
                          str(tmp / GUIDANCE_WEIGHTS), metadata={"format": "pt"})
                info["prompts"]["guidance_input"] = unet.guidance.features
            unet = unet.unet
        unet.save_pretrained(tmp / "unet", safe_serialization=True)
        diffusers_name, beta_start, beta_end = DIFFUSERS_NAMES[schedule_name]
        DDPMScheduler(num_train_timesteps=num_timesteps, beta_schedule=diffusers_name, beta_start=beta_start,
                      beta_end=beta_end, prediction_type=prediction_type, clip_sample=True,
                      ).save_pretrained(tmp / "scheduler")
        components = {"scheduler": ["diffusers", "DDPMScheduler"], "unet": ["diffusers", "UNet2DModel"]}
        if autoencoder is not None:
            autoencoder.vae.save_pretrained(tmp / VAE, safe_serialization=True)
            components[VAE] = ["diffusers", "AutoencoderTiny"]
        (tmp / "model_index.json").write_text(json.dumps({
            "_class_name": "DDPMPipeline", "_diffusers_version": diffusers_version, **components}, indent=2))
        _write_info_card_and_state(tmp, info, model_card, training, training_meta)
        _replace_folder(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def save_autoencoder(folder: str | os.PathLike, vae: torch.nn.Module, info: dict, model_card: str,
                     training: dict[str, torch.Tensor] | None = None, training_meta: dict | None = None) -> Path:
    """Write an autoencoder checkpoint atomically: FOLDER/vae/ (diffusers' AutoencoderTiny folder, safetensors;
    ``AutoencoderTiny.from_pretrained(FOLDER, subfolder="vae")`` loads it), playground.json, README.md and, to resume,
    training/."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        vae.save_pretrained(tmp / VAE, safe_serialization=True)
        _write_info_card_and_state(tmp, info, model_card, training, training_meta)
        _replace_folder(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_autoencoder(folder: str | os.PathLike, device: torch.device | str = "cpu") -> Autoencoder:
    """The autoencoder in FOLDER/vae (a latent model, or an autoencoder run's checkpoint), in eval mode, float32."""
    from diffusers import AutoencoderTiny
    from diffusers.utils import logging as diffusers_logging

    folder = Path(folder)
    where = folder / VAE
    if not (where / "config.json").is_file():
        raise CheckpointError(f"{folder.name!r} has no autoencoder (it needs {VAE}/config.json and its weights).")
    if not any(where.glob("*.safetensors")):
        raise CheckpointError(f"{folder.name!r} has no {VAE}/*.safetensors weights; only safetensors are accepted.")
    # AutoencoderTiny writes block_out_channels into its own config (diffusers' pipelines read it) and then warns,
    # on every load, that its constructor doesn't take it: nothing for a person to act on, so only errors are shown.
    before = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    try:
        vae = AutoencoderTiny.from_pretrained(where, use_safetensors=True, low_cpu_mem_usage=False)
    except Exception as error:  # a broken folder is the person's problem to fix, in one sentence
        raise CheckpointError(f"Could not load the autoencoder in {folder.name!r}: {error}".split("\n")[0]) from None
    finally:
        diffusers_logging.set_verbosity(before)
    return Autoencoder(vae.float().to(device).eval())


def _write_info_card_and_state(tmp: Path, info: dict, model_card: str, training: dict[str, torch.Tensor] | None,
                               training_meta: dict | None) -> None:
    """What every checkpoint folder has beside its weights: playground.json (with the code version and time), the
    model card, and optionally training/ to resume from."""
    full_info = {"format": 1, "code_version": __version__, "git_commit": git_commit(),
                 "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **info}
    (tmp / "playground.json").write_text(json.dumps(full_info, indent=2))
    (tmp / "README.md").write_text(model_card)
    if training is not None:
        (tmp / "training").mkdir()
        save_file({k: v.contiguous() for k, v in training.items()}, str(tmp / "training" / "state.safetensors"))
        (tmp / "training" / "state.json").write_text(json.dumps(training_meta or {}, indent=2))


def _replace_folder(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``; an existing target is moved aside first and removed after."""
    if target.exists():
        old = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.old"
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


def _refuse_pickles(folder: Path) -> None:
    unet = folder / "unet"
    if any(unet.glob("*.safetensors")):
        return
    pickles = [p.name for p in unet.glob("*") if p.suffix in PICKLE_SUFFIXES] if unet.is_dir() else []
    if pickles:
        raise CheckpointError(
            f"{folder.name!r} stores its weights as a pickle file ({pickles[0]}), which can run code when loaded; "
            "only .safetensors weights are accepted. Re-save it with save_pretrained(safe_serialization=True).")
    raise CheckpointError(f"{folder.name!r} has no unet/*.safetensors weights; is it a diffusers DDPM folder?")


def load_checkpoint(folder: str | os.PathLike, device: torch.device | str = "cpu") -> Checkpoint:
    """Load a checkpoint folder (ours, or any diffusers DDPM folder with safetensors weights)."""
    from diffusers import UNet2DModel

    folder = Path(folder)
    if not ((folder / "unet" / "config.json").is_file() and (folder / "scheduler" / "scheduler_config.json").is_file()):
        raise CheckpointError(f"{folder.name!r} is not a diffusers DDPM folder (it needs unet/ and scheduler/).")
    _refuse_pickles(folder)
    scheduler_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    schedule = _schedule_from_diffusers(scheduler_config, folder.name)
    try:
        unet = UNet2DModel.from_pretrained(folder / "unet", use_safetensors=True, low_cpu_mem_usage=False)
        if next(unet.parameters()).dtype != torch.float32:  # half-precision files are computed with in float32
            unet = unet.float()
        unet = unet.to(device).eval()
    except Exception as error:  # a broken folder is the person's problem to fix, in one sentence
        raise CheckpointError(f"Could not load the weights in {folder.name!r}: {error}".split("\n")[0]) from None
    info = read_info(folder)
    if unet.config.class_embed_type == "identity":
        unet = _with_prompt_encoder(folder, unet, info, device)
    autoencoder = load_autoencoder(folder, device) if (folder / VAE).is_dir() else None
    if autoencoder is not None and autoencoder.latent_channels != unet.config.in_channels:
        raise CheckpointError(f"{folder.name!r} pairs a UNet on {unet.config.in_channels} channels with an "
                              f"autoencoder of {autoencoder.latent_channels}-channel latents; they don't fit.")
    return Checkpoint(folder, unet, schedule, scheduler_config.get("prediction_type", "epsilon"), info, autoencoder)


ENCODER_WEIGHTS = "prompt_encoder/bag_of_words.safetensors"
GUIDANCE_WEIGHTS = "prompt_encoder/guidance.safetensors"  # a distilled student's guidance input


def _with_prompt_encoder(folder: Path, unet: torch.nn.Module, info: dict, device) -> PromptedUNet:
    prompts = info.get("prompts") or {}
    if not (folder / ENCODER_WEIGHTS).is_file() or not prompts.get("vocabulary"):
        raise CheckpointError(f"{folder.name!r} is a conditional UNet without its prompt encoder "
                              f"({ENCODER_WEIGHTS} and the vocabulary in playground.json), so it can't be sampled.")
    vocabulary = Vocabulary(tuple(prompts["vocabulary"]))
    encoder = BagOfWords(len(vocabulary), int(prompts["dim"]))
    encoder.load_state_dict({k: v.float() for k, v in load_file(str(folder / ENCODER_WEIGHTS)).items()})
    guidance = None
    if prompts.get("guidance_input"):
        if not (folder / GUIDANCE_WEIGHTS).is_file():
            raise CheckpointError(f"{folder.name!r} is a distilled student without its guidance input "
                                  f"({GUIDANCE_WEIGHTS}), so it can't be sampled.")
        guidance = GuidanceEmbedding(int(prompts["dim"]), int(prompts["guidance_input"]))
        guidance.load_state_dict({k: v.float() for k, v in load_file(str(folder / GUIDANCE_WEIGHTS)).items()})
        guidance = guidance.to(device)
    return PromptedUNet(unet, encoder.to(device), vocabulary, guidance).eval()


def _schedule_from_diffusers(config: dict, name: str) -> NoiseSchedule:
    T = int(config.get("num_train_timesteps", 1000))
    zero_snr = bool(config.get("rescale_betas_zero_snr", False))
    if config.get("trained_betas") is not None:
        return NoiseSchedule.from_betas(torch.tensor(config["trained_betas"], dtype=torch.float64), "trained")
    beta_schedule = config.get("beta_schedule", "linear")
    ours = FROM_DIFFUSERS.get(beta_schedule)
    if ours is None:
        raise CheckpointError(f"{name!r} uses the schedule {beta_schedule!r}, which the playground does not know.")
    _, start, end = DIFFUSERS_NAMES[ours]
    if (config.get("beta_start", start), config.get("beta_end", end)) != (start, end) and ours != "cosine":
        from playground.diffusion.schedules import BETA_SCHEDULES, rescale_zero_terminal_snr

        betas = BETA_SCHEDULES[ours](T, config["beta_start"], config["beta_end"])
        return NoiseSchedule.from_betas(rescale_zero_terminal_snr(betas) if zero_snr else betas, ours)
    return NoiseSchedule.from_name(ours, T, zero_terminal_snr=zero_snr)


UNET_WEIGHTS = "unet/diffusion_pytorch_model.safetensors"  # where save_pretrained puts them


def read_info(folder: str | os.PathLike) -> dict:
    """A checkpoint's playground.json ({} for a foreign diffusers folder)."""
    path = Path(folder) / "playground.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def load_weights(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The UNet weights of a checkpoint folder (the EMA weights for ours), from safetensors only, in float32
    whatever precision the file stores."""
    return {name: value.float() if value.is_floating_point() else value
            for name, value in load_file(str(Path(folder) / UNET_WEIGHTS)).items()}


def load_weights_into(model: torch.nn.Module, folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A checkpoint's weights as a state_dict for ``model``: a :class:`PromptedUNet` takes an unconditional
    folder's UNet with its own (zero) encoder, or a prompt folder's UNet and the embeddings of the words both know
    (a new word, such as a DreamBooth subject, keeps the embedding ``model`` gave it)."""
    weights = load_weights(folder)
    if not isinstance(model, PromptedUNet):
        return weights
    state = {f"unet.{k}": v for k, v in weights.items()}
    embedding = model.encoder.embedding.weight.detach().cpu().clone()
    prompts = read_info(folder).get("prompts") or {}
    if (Path(folder) / ENCODER_WEIGHTS).is_file() and prompts.get("vocabulary"):
        theirs = load_file(str(Path(folder) / ENCODER_WEIGHTS))["embedding.weight"].float()
        for row, word in enumerate(prompts["vocabulary"], start=1):
            mine = model.vocabulary.index.get(word)
            if mine is not None:
                embedding[mine] = theirs[row]
    state["encoder.embedding.weight"] = embedding
    if model.guidance is not None:  # a student's guidance input: the folder's, or (from its teacher) the model's own
        guidance = Path(folder) / GUIDANCE_WEIGHTS
        own = {k: v.detach().cpu() for k, v in model.guidance.state_dict().items()}
        theirs = {k: v.float() for k, v in load_file(str(guidance)).items()} if guidance.is_file() else own
        state.update({f"guidance.{k}": v for k, v in theirs.items()})
    return state


HALF_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def store_half(folder: str | os.PathLike, dtype: str = "float16") -> tuple[int, int]:
    """Rewrite a checkpoint's UNet weights in half precision (atomically); returns (bytes before, bytes after).

    float16 keeps 11 significant bits, bfloat16 8: for weights of trained small UNets (all well inside float16's
    range) float16 is the closer copy. The file's header says ``stored_as``; loading gives float32 again.
    """
    if dtype not in HALF_DTYPES:
        raise ValueError(f"Half precision is one of {', '.join(HALF_DTYPES)}, not {dtype!r}.")
    path = Path(folder) / UNET_WEIGHTS
    before = path.stat().st_size
    weights = load_file(str(path))
    largest = max((v.abs().max().item() for v in weights.values() if v.is_floating_point()), default=0.0)
    if dtype == "float16" and largest > torch.finfo(torch.float16).max:
        raise ValueError(f"A weight of {largest:.3g} does not fit float16; store bfloat16 instead.")
    half = {k: v.to(HALF_DTYPES[dtype]).contiguous() if v.is_floating_point() else v for k, v in weights.items()}
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    save_file(half, str(tmp), metadata={"format": "pt", "stored_as": dtype})
    os.chmod(tmp, path.stat().st_mode & 0o777)
    os.replace(tmp, path)
    info_path = Path(folder) / "playground.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        info["weights_dtype"] = dtype
        info_path.write_text(json.dumps(info, indent=2))
    return before, path.stat().st_size


def _channels_words(channels: int) -> str:
    return {1: "greyscale", 3: "RGB"}.get(channels, f"{channels} latent channels")


def model_card(title: str, info: dict, grid_name: str | None = None) -> str:
    """A README.md for a checkpoint folder, from its playground.json content."""
    model, training, data = info.get("model", {}), info.get("training", {}), info.get("data", {})
    prompts = info.get("prompts")
    if prompts:
        about = (f"A small prompt-conditioned denoising diffusion model made with Diffusion Playground. Its UNet is a "
                 f"diffusers `UNet2DModel(class_embed_type=\"identity\")`: `DDPMPipeline.from_pretrained(folder)` and "
                 f"`UNet2DModel.from_pretrained(folder, subfolder=\"unet\")` load it. A prompt is words from its "
                 f"vocabulary ({len(prompts['vocabulary'])} words, in playground.json \"prompts\"); their embeddings "
                 f"(`{ENCODER_WEIGHTS}`, {prompts['dim']} numbers per word) are summed and passed as `class_labels`; "
                 "the empty prompt is a vector of zeros. Sample it with classifier-free guidance: "
                 "`python -m playground sample --checkpoint FOLDER --prompt \"red heart\" --guidance 5` (with a "
                 "prompt it samples with ancestral DDPM unless `--sampler` says otherwise: fresh noise at every step "
                 "lets guidance keep steering).")
    else:
        about = ("A small unconditional denoising diffusion model made with Diffusion Playground. It is a diffusers "
                 "DDPM pipeline folder: `DDPMPipeline.from_pretrained(folder)` loads it.")
    latent = info.get("latent")
    if latent:
        about += (f" It is a **latent model**: its UNet denoises {latent['channels']}x{latent['size']}x"
                  f"{latent['size']} latents of the autoencoder in `vae/` (diffusers' `AutoencoderTiny`, scaling "
                  f"factor {latent['scaling_factor']:.5f}), which draws them as {latent['resolution']} px pictures. "
                  "Its parts load with diffusers:\n\n```python\nfrom diffusers import AutoencoderTiny, "
                  "DDPMScheduler, UNet2DModel\n\nunet = UNet2DModel.from_pretrained(folder, subfolder=\"unet\")\n"
                  "vae = AutoencoderTiny.from_pretrained(folder, subfolder=\"vae\")\nscheduler = "
                  "DDPMScheduler.from_pretrained(folder, subfolder=\"scheduler\")\n# ...sample latents with the "
                  "scheduler and the UNet, then:\npictures = vae.decode(latents / vae.config.scaling_factor).sample"
                  "\n```")
    lines = [
        f"# {title}", "", about, "",
        f"- Network: diffusers `UNet2DModel`, {info.get('parameters', 0) / 1e6:.2f} M parameters, "
        f"{model.get('resolution')}x{model.get('resolution')}, {_channels_words(model.get('image_channels', 3))}, "
        f"channels {model.get('channels')}",
        f"- Trained on: {data.get('description', data.get('name'))} ({data.get('count')} images, "
        f"sha256 {str(data.get('sha256', ''))[:16]}…)",
        f"- Steps: {info.get('steps')} of batch {training.get('batch_size')}; schedule {training.get('schedule')}, "
        f"T = {training.get('num_timesteps')}; target {training.get('prediction_type')}, "
        f"Min-SNR-γ {training.get('min_snr_gamma')}; AdamW lr {training.get('lr')} (warm-up "
        f"{training.get('warmup_steps')}, cosine to ×{training.get('lr_min_ratio')}); "
        f"EMA up to {training.get('ema_max_decay')} with warm-up"
        + (f"; prompts dropped to empty {training.get('prompt_dropout'):.0%} of the time, each word of a caption left "
           f"out with probability {training.get('word_dropout')}, word embeddings at lr {training.get('encoder_lr')}"
           + (f"; {training['word_focus']:.0%} of each batch drawn word first (a word two or more names share, then "
              "one of its pictures, captioned by that word alone"
              + (f", at timesteps from {training['word_focus_min_t']} up" if training.get("word_focus_min_t") else "")
              + ")" if training.get("word_focus") else "")
           if prompts else ""),
        f"- Wall time: {info.get('wall_time_s', 0) / 3600:.2f} h on {info.get('hardware', 'unknown hardware')}",
        f"- Final loss (mean of last 100 steps): {info.get('final_loss', float('nan')):.4f}",
    ]
    if info.get("weights_dtype"):
        lines.append(f"- Weights stored in {info['weights_dtype']} (half the bytes); they load into float32")
    if info.get("command"):
        lines += ["", "Trained with exactly:", "", "```bash", info["command"], "```"]
    lines += _autoencoder_lines(info.get("autoencoder_run") or {})
    if grid_name:
        lines += ["", "Samples (DPM-Solver++, 25 steps, seed 1234):", "", f"![samples]({grid_name})"]
    if data.get("licence"):
        lines += ["", f"Training data licence: {data['licence']}"]
    return "\n".join(lines) + "\n"


def _autoencoder_lines(run: dict) -> list[str]:
    """A latent model card's paragraph on how its autoencoder was trained (``python -m playground autoencoder``)."""
    if not run:
        return []
    quality, side = run.get("quality") or {}, (run.get("autoencoder") or {}).get("resolution", "?")
    measured = (f"; held-out PSNR at {side} px: emoji {quality['emoji_psnr']:.1f} dB, photos "
                f"{quality['photo_psnr']:.1f} dB (step {quality['step']})" if "emoji_psnr" in quality else "")
    data = "; ".join(str(value) for value in (run.get("data") or {}).values())
    commands = run.get("commands") or [run.get("command", "")]
    return ["", f"The autoencoder in `vae/`: {run.get('parameters', 0) / 1e6:.2f} M parameters, {run.get('steps')} "
                f"steps on {data or 'unknown data'}{measured}. Trained with exactly"
                + (" these, in order (each resumes the one before):" if len(commands) > 1 else ":"),
            "", "```bash", *commands, "```"]


def load_training_state(folder: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict] | None:
    """The resume tensors and metadata of a checkpoint, or None when it has none."""
    folder = Path(folder)
    tensors, meta = folder / "training" / "state.safetensors", folder / "training" / "state.json"
    if not tensors.is_file() or not meta.is_file():
        return None
    return load_file(str(tensors)), json.loads(meta.read_text())


def list_checkpoints(*roots: str | os.PathLike) -> list[Path]:
    """Checkpoint folders directly inside ``roots``, sorted by name."""
    found = []
    for root in roots:
        root = Path(root)
        if root.is_dir():
            found += [p for p in root.iterdir() if (p / "model_index.json").is_file() and (p / "unet").is_dir()]
    return sorted(found, key=lambda p: p.name)


def export_zip(checkpoint_dir: str | os.PathLike, zip_path: str | os.PathLike) -> Path:
    """The diffusers folder (weights, configs, model card; no resume state) as a zip, written atomically."""
    checkpoint_dir, zip_path = Path(checkpoint_dir), Path(zip_path)
    tmp = zip_path.with_name(f".{zip_path.name}.{uuid.uuid4().hex[:6]}.tmp")
    root = zip_path.stem
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(checkpoint_dir.rglob("*")):
            relative = path.relative_to(checkpoint_dir)
            if path.is_file() and relative.parts[0] != "training":
                archive.write(path, f"{root}/{relative.as_posix()}")
    os.replace(tmp, zip_path)
    return zip_path


def copy_checkpoint(checkpoint_dir: str | os.PathLike, target: str | os.PathLike, overwrite: bool = False) -> Path:
    """Copy a checkpoint (without resume state) to ``target`` atomically; refuses to replace one unless asked."""
    checkpoint_dir, target = Path(checkpoint_dir), Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"A model called {target.name!r} already exists there; choose another name.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:6]}.tmp")
    shutil.copytree(checkpoint_dir, tmp, ignore=shutil.ignore_patterns("training"))
    _replace_folder(tmp, target)
    return target
