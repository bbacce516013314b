"""The networks: diffusers' UNet2DModel and AutoencoderTiny from small typed configs, the toy MLP, the one way to call
a model, and the one place the device is chosen."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from diffusers import AutoencoderTiny, UNet2DModel


@dataclass(frozen=True)
class ModelConfig:
    """What the UNet looks like. Saved in every checkpoint (diffusers' config.json carries it too)."""

    resolution: int = 32  # images are resolution x resolution
    channels: tuple[int, ...] = (32, 64, 128, 128)  # width at each level; each level after the first halves the size
    layers_per_block: int = 1  # ResNet blocks per level
    # Self-attention at 8x8 only: at 16x16 it costs several times the step time on a CPU (bench/training.py).
    attention_levels: tuple[bool, ...] = (False, False, True, False)
    attention_head_dim: int = 32
    dropout: float = 0.0
    norm_num_groups: int = 32
    image_channels: int = 3  # 3 for colour, 1 for greyscale

    def __post_init__(self) -> None:
        if len(self.channels) != len(self.attention_levels):
            raise ValueError("channels and attention_levels need one entry per level.")
        if self.resolution % 2 ** (len(self.channels) - 1):
            raise ValueError(f"resolution {self.resolution} must halve {len(self.channels) - 1} times evenly.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        clean = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known}
        return cls(**clean)


PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(resolution=8, channels=(16, 32), attention_levels=(False, False), norm_num_groups=8),
    "emoji32": ModelConfig(),
    "emoji64": ModelConfig(resolution=64, channels=(64, 128, 128, 256), attention_levels=(False, False, True, False)),
    # For your own folders (train --data): attention only at 8x8, where it is cheap.
    "unet64": ModelConfig(resolution=64, channels=(64, 128, 256, 256), attention_levels=(False, False, False, True)),
    "unet128": ModelConfig(resolution=128, channels=(64, 128, 128, 256, 256),
                           attention_levels=(False, False, False, False, True)),
    # A latent model's, on an autoencoder's 4 x 16 x 16 latents of 64 px pictures: emoji32's network (so an emoji32
    # checkpoint warm-starts all but its first and last convolutions), with 4 channels in and out.
    "latent16": ModelConfig(resolution=16, image_channels=4),
}
FOLDER_PRESETS = {32: "emoji32", 64: "unet64", 128: "unet128"}  # train --data's default network per resolution


def build_unet(config: ModelConfig, seed: int | None = None) -> UNet2DModel:
    """A fresh UNet2DModel for ``config``; with ``seed``, its initial weights come from that seed (diffusers draws
    them from torch's global generator, so it is forked: the caller's random state is left as it was)."""
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_unet(config)
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in config.attention_levels)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(config.attention_levels))
    return UNet2DModel(
        sample_size=config.resolution,
        in_channels=config.image_channels,
        out_channels=config.image_channels,
        block_out_channels=config.channels,
        layers_per_block=config.layers_per_block,
        down_block_types=down,
        up_block_types=up,
        attention_head_dim=config.attention_head_dim,
        dropout=config.dropout,
        norm_num_groups=config.norm_num_groups,
    )


@dataclass(frozen=True)
class AutoencoderConfig:
    """The autoencoder of a latent model: TAESD's design (diffusers' AutoencoderTiny: 3x3 convolutions with ReLU and
    skip connections, no normalisation, no attention). Each level after the first halves the size, so three levels
    turn a 64 px picture into a 16 x 16 latent. Saved in the model's vae/config.json."""

    resolution: int = 64  # pictures are resolution x resolution
    channels: int = 48  # the width of every level (AutoencoderTiny has one width throughout)
    encoder_blocks: tuple[int, ...] = (1, 2, 2)  # residual blocks per level, full size first
    decoder_blocks: tuple[int, ...] = (2, 2, 1)  # residual blocks per level, smallest first
    latent_channels: int = 4
    image_channels: int = 3

    def __post_init__(self) -> None:
        if len(self.encoder_blocks) != len(self.decoder_blocks):
            raise ValueError("The encoder and the decoder need one entry per level each.")
        if self.resolution % self.factor:
            raise ValueError(f"resolution {self.resolution} must halve {len(self.encoder_blocks) - 1} times evenly.")

    @property
    def factor(self) -> int:
        """How many pixels one latent pixel stands for, along each side."""
        return 2 ** (len(self.encoder_blocks) - 1)

    @property
    def latent_resolution(self) -> int:
        return self.resolution // self.factor

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def build_autoencoder(config: AutoencoderConfig, seed: int | None = None,
                      scaling_factor: float = 1.0) -> AutoencoderTiny:
    """A fresh AutoencoderTiny for ``config`` (weights from ``seed`` without touching the caller's random state)."""
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_autoencoder(config, scaling_factor=scaling_factor)
    levels = len(config.encoder_blocks)
    return AutoencoderTiny(
        in_channels=config.image_channels, out_channels=config.image_channels,
        encoder_block_out_channels=(config.channels,) * levels, decoder_block_out_channels=(config.channels,) * levels,
        num_encoder_blocks=config.encoder_blocks, num_decoder_blocks=config.decoder_blocks,
        latent_channels=config.latent_channels, scaling_factor=scaling_factor,
    )


class Autoencoder(torch.nn.Module):
    """Pictures to latents and back (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion
    Models"): a diffusers ``AutoencoderTiny`` whose latents are multiplied by its config's ``scaling_factor`` so they
    have unit variance over the training pictures (Stable Diffusion's 0.18215), as a diffusion model expects.

    encode: (B, C, R, R) in [-1, 1] -> (B, 4, R/f, R/f); decode: the reverse (not clamped). Diffusers code does the
    same with ``vae.encode(x).latents * vae.config.scaling_factor`` and ``vae.decode(z / scaling_factor).sample``.
    """

    def __init__(self, vae: AutoencoderTiny) -> None:
        super().__init__()
        self.vae = vae

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def factor(self) -> int:
        return 2 ** (len(self.vae.config.num_encoder_blocks) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def image_channels(self) -> int:
        return int(self.vae.config.in_channels)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(images).latents * self.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents / self.scaling_factor).sample

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """decode(encode(images)) without rounding the latents (AutoencoderTiny's own forward stores them as bytes)."""
        return self.vae.decode(self.vae.encode(images).latents).sample


def call_model(model: torch.nn.Module, x_t: torch.Tensor, t: torch.Tensor,
               condition: torch.Tensor | None = None) -> torch.Tensor:
    """model(x_t, t) as a tensor, whether the model returns one (ToyMLP) or diffusers' output with ``.sample``;
    ``condition`` (a prompt's word ids) goes to a :class:`PromptedUNet` as its third argument."""
    out = model(x_t, t) if condition is None else model(x_t, t, condition)
    return out.sample if hasattr(out, "sample") else out


def model_fn(model: torch.nn.Module):
    """``(x_t, t[, condition]) -> output`` for the samplers and the training loop."""
    return lambda x_t, t, condition=None: call_model(model, x_t, t, condition)


# A CPU evaluates a UNet fastest this many image pixels at a time: past it the activations overflow its caches, and
# one forward of twice the images costs more than two of half as many (bench/sampling.py prints both).
CPU_CHUNK_PIXELS = 16 * 32 * 32


def in_chunks(fn, rows: int):
    """``fn(x_t, t, condition=None)`` evaluated ``rows`` images at a time, the outputs concatenated: the same numbers
    (each image's output depends on it alone) with less memory at once and, on a CPU, in less time."""
    def chunked(x_t: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        if x_t.shape[0] <= rows:
            return fn(x_t, t, condition)
        pieces = []
        for start in range(0, x_t.shape[0], rows):
            part = slice(start, start + rows)
            pieces.append(fn(x_t[part], t[part] if t.ndim else t, None if condition is None else condition[part]))
        return torch.cat(pieces)

    return chunked


def cpu_rows(sample_size: int | tuple[int, int] | list[int]) -> int:
    """How many images of ``sample_size`` (a UNet config's: a side, or height and width) a CPU forward takes at once
    (:data:`CPU_CHUNK_PIXELS`)."""
    height, width = (sample_size, sample_size) if isinstance(sample_size, int) else sample_size
    return max(1, CPU_CHUNK_PIXELS // (int(height) * int(width)))


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def pick_device(prefer: str | None = None) -> torch.device:
    """The one place a device is chosen: ``prefer`` if given, else CUDA when present, else the CPU."""
    if prefer:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of the timestep (Vaswani et al. 2017; DDPM uses the same): (B,) -> (B, dim)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


@dataclass(frozen=True)
class ToyConfig:
    """The 2-D denoiser: an MLP on Fourier features of (x, y) and a sinusoidal embedding of t."""

    hidden: int = 128  # width of each hidden layer
    layers: int = 3  # hidden layers
    time_dim: int = 32  # size of the sinusoidal embedding of t
    coordinate_dim: int = 32  # sinusoidal features per coordinate (Tancik et al. 2020's Fourier features)
    coordinate_scale: float = 25.0  # x is multiplied by this first, so the features resolve fine structure


class BagOfWords(torch.nn.Module):
    """A prompt's conditioning vector: the sum of its words' embeddings, for UNet2DModel(class_embed_type="identity"),
    which adds it to the time embedding. Zero-initialised: a model warm-started from an unconditional one draws
    exactly what that one drew until training moves the embeddings. Word id 0 pads a batch and stays zero."""

    def __init__(self, vocabulary_size: int, dim: int) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(vocabulary_size + 1, dim, padding_idx=0)
        torch.nn.init.zeros_(self.embedding.weight)

    def forward(self, word_ids: torch.Tensor) -> torch.Tensor:  # (B, L) -> (B, dim)
        return self.embedding(word_ids).sum(dim=1)


class GuidanceEmbedding(torch.nn.Module):
    """A distilled student's guidance scale as a vector added to its prompt's (Meng et al. 2023): sinusoidal features
    of w, then a small MLP whose last layer starts at zero, so a student made from its teacher first ignores w."""

    def __init__(self, dim: int, features: int = 64) -> None:
        super().__init__()
        self.features = features
        self.mlp = torch.nn.Sequential(torch.nn.Linear(features, dim), torch.nn.SiLU(), torch.nn.Linear(dim, dim))
        torch.nn.init.zeros_(self.mlp[2].weight)
        torch.nn.init.zeros_(self.mlp[2].bias)

    def forward(self, scale: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, dim)
        return self.mlp(sinusoidal_embedding(scale.float() * 100.0, self.features))


class PromptedUNet(torch.nn.Module):
    """A prompt-conditioned denoiser: a UNet2DModel(class_embed_type="identity") and the :class:`BagOfWords` that
    turns a prompt's word ids into the vector it adds to the time embedding. ``model(x_t, t)`` without word ids is the
    empty prompt (the unconditional model of classifier-free guidance), so every sampler and preview that calls a
    network with (x_t, t) works unchanged. ``vocabulary`` (playground.data.prompts.Vocabulary) travels with it.

    The UNet is saved as a plain diffusers folder; the encoder's weights and the vocabulary sit beside it
    (playground.checkpoints)."""

    def __init__(self, unet: UNet2DModel, encoder: BagOfWords, vocabulary,
                 guidance: GuidanceEmbedding | None = None) -> None:
        super().__init__()
        if unet.config.class_embed_type != "identity":
            raise ValueError("A PromptedUNet needs a UNet2DModel with class_embed_type='identity'.")
        self.unet, self.encoder, self.vocabulary = unet, encoder, vocabulary
        self.guidance = guidance  # a distilled student's: the guidance scale is an input, one call a step

    @property
    def config(self):  # the UNet's diffusers config: sample_size, in_channels, ...
        return self.unet.config

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, word_ids: torch.Tensor | None = None,
                scale: torch.Tensor | None = None) -> torch.Tensor:
        """The output for the prompt's word ids (none: the empty prompt); a student with a guidance input also takes
        each example's guidance scale ``scale`` (B,) (none: 1, the plain conditional model)."""
        if word_ids is None:
            word_ids = torch.zeros(x_t.shape[0], 1, dtype=torch.long, device=x_t.device)
        condition = self.encoder(word_ids.to(x_t.device))
        if self.guidance is not None:
            scale = torch.ones(x_t.shape[0], device=x_t.device) if scale is None else scale.to(x_t.device)
            condition = condition + self.guidance(scale.expand(x_t.shape[0]))
        return self.unet(x_t, t, class_labels=condition).sample

    def with_guidance(self) -> PromptedUNet:
        """A copy that takes the guidance scale as an input, its embedding at zero: it computes what this model does
        until distillation teaches it the scale."""
        import copy

        student = copy.deepcopy(self)
        student.guidance = GuidanceEmbedding(time_embedding_dim(self.unet)).to(self.encoder.embedding.weight.device)
        return student

    @classmethod
    def from_unconditional(cls, unet: UNet2DModel, vocabulary) -> PromptedUNet:
        """The same network taught to listen: ``unet``'s weights in a class_embed_type="identity" UNet (which adds
        no parameters) and a zero encoder, so it draws exactly what ``unet`` drew until training moves them."""
        settings = {k: v for k, v in unet.config.items() if not k.startswith("_")}  # _use_default_values would win
        prompted = UNet2DModel.from_config({**settings, "class_embed_type": "identity"})
        prompted.load_state_dict(unet.state_dict())
        encoder = BagOfWords(len(vocabulary), time_embedding_dim(unet))
        return cls(prompted.to(next(unet.parameters()).device), encoder.to(next(unet.parameters()).device),
                   vocabulary)

    def with_vocabulary(self, vocabulary) -> PromptedUNet:
        """A copy that knows ``vocabulary``'s words: a word it knew keeps its embedding, a new one (a DreamBooth
        subject word) starts at zero, so it first means nothing beside the words around it."""
        import copy

        grown = BagOfWords(len(vocabulary), self.encoder.embedding.embedding_dim).to(
            self.encoder.embedding.weight.device)
        with torch.no_grad():
            for word, row in vocabulary.index.items():
                old = self.vocabulary.index.get(word)
                if old is not None:
                    grown.embedding.weight[row] = self.encoder.embedding.weight[old]
        return PromptedUNet(copy.deepcopy(self.unet), grown, vocabulary)


def time_embedding_dim(unet: UNet2DModel) -> int:
    """The size of UNet2DModel's time embedding, which class_embed_type="identity" adds the condition to."""
    return int(unet.config.block_out_channels[0]) * 4


class ToyMLP(torch.nn.Module):
    """The toy denoiser for points: [x, y, emb(x), emb(y), emb(t)] -> MLP with SiLU -> 2 numbers (eps or v).

    Without the Fourier features of the coordinates a 3x128 MLP smears the Swiss roll's inner turn in the same training
    time; the raw coordinates beside them let it extrapolate smoothly to the far tails of x_T, which training rarely
    visits, so fewer points land off the data (bench/toy_quality.py measures both).
    """

    def __init__(self, config: ToyConfig = ToyConfig()) -> None:
        super().__init__()
        self.config = config
        width = config.hidden
        inputs = 2 + 2 * config.coordinate_dim + config.time_dim
        layers: list[torch.nn.Module] = [torch.nn.Linear(inputs, width), torch.nn.SiLU()]
        for _ in range(config.layers - 1):
            layers += [torch.nn.Linear(width, width), torch.nn.SiLU()]
        layers.append(torch.nn.Linear(width, 2))
        self.net = torch.nn.Sequential(*layers)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # (B, 2), (B,) -> (B, 2)
        c = self.config
        features = [sinusoidal_embedding(x_t[:, i] * c.coordinate_scale, c.coordinate_dim) for i in range(2)]
        return self.net(torch.cat([x_t, *features, sinusoidal_embedding(t, c.time_dim)], dim=1))
