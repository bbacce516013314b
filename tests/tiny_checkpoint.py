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
