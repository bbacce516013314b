"""A tiny random checkpoint (8x8 px) in our folder layout, for tests that need a model but not a good one."""

from pathlib import Path

import torch

from playground.checkpoints import save_checkpoint
from playground.models import PRESETS, build_unet, count_parameters


def make_tiny_checkpoint(folder: Path, prediction_type: str = "v_prediction", seed: int = 0) -> Path:
    torch.manual_seed(seed)
    config = PRESETS["tiny"]
    unet = build_unet(config).eval()
    info = {"model": config.to_dict(), "parameters": count_parameters(unet), "steps": 0,
            "data": {"name": "none", "count": 0, "sha256": ""}}
    return save_checkpoint(folder, unet, "cosine", 1000, prediction_type, info, "# tiny test model\n")


def make_greyscale_diffusers_folder(folder: Path, size: int = 28) -> Path:
    """A 1-channel DDPM folder written by diffusers itself (``DDPMPipeline.save_pretrained``), like the MNIST models
    of many tutorials: no playground.json, diffusers' default linear schedule, an odd size."""
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=size, in_channels=1, out_channels=1, block_out_channels=(16, 32), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=8)
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=1000)).save_pretrained(folder)
    return folder


def make_tiny_prompt_checkpoint(folder: Path, words: tuple[str, ...] = ("blue", "cat", "dog", "heart", "red"),
                                seed: int = 0) -> Path:
    """A tiny random prompt model: its words' embeddings are random too, so a prompt changes what it draws."""
    from playground.data.prompts import Vocabulary
    from playground.models import PromptedUNet

    torch.manual_seed(seed)
    config = PRESETS["tiny"]
    model = PromptedUNet.from_unconditional(build_unet(config), Vocabulary(tuple(sorted(words)))).eval()
    with torch.no_grad():
        model.encoder.embedding.weight[1:] = torch.randn_like(model.encoder.embedding.weight[1:])
    info = {"model": config.to_dict(), "parameters": count_parameters(model), "steps": 0,
            "data": {"name": "none", "count": 0, "sha256": ""}}
    return save_checkpoint(folder, model, "cosine", 1000, "v_prediction", info, "# tiny prompt test model\n")


def make_tiny_latent_checkpoint(folder: Path, seed: int = 0) -> Path:
    """A tiny random latent model: an 8 x 8 latent UNet on 4 channels and a small autoencoder for 32 px pictures."""
    import dataclasses

    from playground.models import Autoencoder, AutoencoderConfig, build_autoencoder

    torch.manual_seed(seed)
    network = AutoencoderConfig(resolution=32, channels=8, encoder_blocks=(1, 1, 1), decoder_blocks=(1, 1, 1))
    autoencoder = Autoencoder(build_autoencoder(network, seed=seed, scaling_factor=0.5).eval())
    config = dataclasses.replace(PRESETS["tiny"], image_channels=4)
    unet = build_unet(config).eval()
    info = {"model": config.to_dict(), "parameters": count_parameters(unet), "steps": 0,
            "data": {"name": "none", "count": 0, "sha256": ""}}
    return save_checkpoint(folder, unet, "cosine", 1000, "v_prediction", info, "# tiny latent test model\n",
                           autoencoder=autoencoder)


def make_tiny_student_checkpoint(folder: Path, teacher_name: str = "tiny-prompts", seed: int = 0) -> Path:
    """A tiny random 2-step student of a tiny prompt model, with a guidance input and measured fidelities."""
    from playground.data.prompts import Vocabulary
    from playground.models import PromptedUNet

    torch.manual_seed(seed)
    config = PRESETS["tiny"]
    words = ("blue", "cat", "dog", "heart", "red")
    model = PromptedUNet.from_unconditional(build_unet(config), Vocabulary(words)).with_guidance().eval()
    info = {"model": config.to_dict(), "parameters": count_parameters(model), "steps": 0,
            "data": {"name": "none", "count": 0, "sha256": ""},
            "distilled": {"teacher": teacher_name, "student_steps": 2, "rounds": [2], "guidance_range": [1, 8]},
            "measured": {"teacher": {"DDPM 200": 0.5, "DDIM 32": 0.4}, "student": {"1": 0.2, "2": 0.3, "4": 0.35}}}
    return save_checkpoint(folder, model, "cosine", 1000, "v_prediction", info, "# tiny student\n")
