"""What storing a model's weights in half precision changes in its samples.

    python bench/half_precision.py [--checkpoint checkpoints/emoji32] [--fp32 FILE | --fp32-rev REV]
                                   [--count 64] [--steps 25]

The reference is the float32 weights file (``--fp32``), or the one git holds at ``--fp32-rev`` (the shipped
emoji32 was float32 until it was halved). The same noise goes through DPM-Solver++ with both weight sets, and the
script prints the largest and mean absolute difference of the samples in [-1, 1] and in 8-bit levels, and the
PSNR of the half-precision samples against the float32 ones. For a checkpoint that is still float32 it compares
float32 with float16 and bfloat16 copies of it.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from safetensors.torch import load, load_file  # noqa: E402

from playground.checkpoints import UNET_WEIGHTS, load_checkpoint  # noqa: E402
from playground.services.image_sampling import preview  # noqa: E402


def samples_with(checkpoint, weights: dict[str, torch.Tensor], count: int, steps: int) -> torch.Tensor:
    checkpoint.unet.load_state_dict({k: v.float() for k, v in weights.items()})
    return preview(checkpoint.unet, checkpoint.schedule, checkpoint.prediction_type, count, seed=1234, steps=steps)


def report(name: str, reference: torch.Tensor, other: torch.Tensor) -> None:
    diff = (reference - other).abs()
    mse = (((reference - other) / 2) ** 2).mean().item()  # in [0, 1] units
    psnr = 10 * torch.log10(torch.tensor(1 / max(mse, 1e-20))).item()
    print(f"{name:>9}: max |Δ| {diff.max():.4f} ({diff.max() * 127.5:.1f} of 255 levels), mean |Δ| {diff.mean():.5f} "
          f"({diff.mean() * 127.5:.2f} levels), PSNR {psnr:.1f} dB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "emoji32"))
    parser.add_argument("--fp32", help="a float32 diffusion_pytorch_model.safetensors to compare against")
    parser.add_argument("--fp32-rev", help="take the float32 weights file from this git revision")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--steps", type=int, default=25)
    args = parser.parse_args()

    folder = Path(args.checkpoint)
    checkpoint = load_checkpoint(folder)
    stored = load_file(str(folder / UNET_WEIGHTS))
    if args.fp32_rev:
        relative = (folder / UNET_WEIGHTS).resolve().relative_to(ROOT)
        blob = subprocess.run(["git", "show", f"{args.fp32_rev}:{relative}"], cwd=ROOT, capture_output=True,
                              check=True).stdout
        reference = load(io.BytesIO(blob).getvalue())
    elif args.fp32:
        reference = load_file(args.fp32)
    else:
        reference = stored
    if any(v.dtype != torch.float32 for v in reference.values() if v.is_floating_point()):
        sys.exit("The reference weights are not float32; pass --fp32 FILE or --fp32-rev REV.")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    base = samples_with(checkpoint, reference, args.count, args.steps)
    print(f"{folder.name}: {args.count} samples, DPM-Solver++ {args.steps} steps, seed 1234, against float32 weights")
    stored_dtype = next(v.dtype for v in stored.values() if v.is_floating_point())
    if stored is not reference and stored_dtype != torch.float32:
        report(f"shipped {str(stored_dtype).removeprefix('torch.')}", base,
               samples_with(checkpoint, stored, args.count, args.steps))
        return
    for dtype in (torch.float16, torch.bfloat16):
        halved = {k: v.to(dtype) if v.is_floating_point() else v for k, v in reference.items()}
        report(str(dtype).removeprefix("torch."), base, samples_with(checkpoint, halved, args.count, args.steps))


if __name__ == "__main__":
    main()
