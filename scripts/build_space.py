"""Assemble exactly what the Hugging Face Space needs into one folder, ready for `hf upload`.

    python scripts/build_space.py [OUT]          # default: dist/space
    hf upload YOUR-NAME/diffusion-playground dist/space . --repo-type space

The folder holds the app (app.py, the playground package with its example pictures), the shipped models (the
tracked files under checkpoints/), requirements.txt plus `spaces` (ZeroGPU's package; it does nothing elsewhere),
the README with the Space's front matter and the screenshots it shows, and LICENSE. No tests, benches, venv or run
outputs. `hf upload` sends files, not git history, so the float32 weights in this repository's history do not
travel; it would put a file over 10 MB into LFS itself, but every file here is checked to be under 10 MB anyway,
so a `git push` of this folder as a fresh repository would be accepted too.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_FILE_BYTES = 10 * 1000 * 1000  # the Hub refuses larger files outside LFS
FRONT_MATTER_KEYS = ("title", "sdk", "sdk_version", "python_version", "app_file", "short_description", "license")


def tracked(folder: str) -> list[Path]:
    """The files git tracks under ``folder`` (everything there when this is not a git checkout)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", folder], cwd=ROOT, capture_output=True, check=True)
        names = [n for n in out.stdout.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = []
    if names:
        return [ROOT / n for n in names if (ROOT / n).is_file()]
    return [p for p in (ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts]


def front_matter(readme: str) -> dict[str, str]:
    match = re.match(r"---\n(.*?)\n---\n", readme, re.S)
    if not match:
        return {}
    return dict(line.split(":", 1) for line in match.group(1).splitlines() if ":" in line)


def build(out: Path) -> list[Path]:
    """Write the Space folder at ``out`` (replacing it); returns its files."""
    readme = (ROOT / "README.md").read_text()
    keys = {k.strip() for k in front_matter(readme)}
    missing = [k for k in FRONT_MATTER_KEYS if k not in keys]
    if missing:
        raise SystemExit(f"README.md's front matter lacks {', '.join(missing)}.")
    pictures = sorted(set(re.findall(r"\]\((docs/[^)\s]+\.(?:jpg|png|gif))\)", readme)))
    files = [ROOT / "app.py", ROOT / "LICENSE", ROOT / "README.md", *map(ROOT.joinpath, pictures)]
    files += tracked("playground")  # the package, with its example pictures
    files += tracked("checkpoints")
    if out.exists():
        shutil.rmtree(out)
    for source in files:
        target = out / source.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    requirements = (ROOT / "requirements.txt").read_text().rstrip("\n")
    (out / "requirements.txt").write_text(
        requirements + "\nspaces  # ZeroGPU's @spaces.GPU (preinstalled there; inert on CPU hardware)\n")
    written = sorted(p for p in out.rglob("*") if p.is_file())
    too_big = [p for p in written if p.stat().st_size >= MAX_FILE_BYTES]
    if too_big:
        raise SystemExit("Over the Hub's 10 MB limit: " + ", ".join(
            f"{p.relative_to(out)} ({p.stat().st_size / 1e6:.1f} MB)" for p in too_big))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default=str(ROOT / "dist" / "space"))
    args = parser.parse_args()
    out = Path(args.out).resolve()
    files = build(out)
    size = sum(p.stat().st_size for p in files)
    largest = max(files, key=lambda p: p.stat().st_size)
    print(f"wrote {len(files)} files, {size / 1e6:.1f} MB, to {out} (largest: {largest.relative_to(out)}, "
          f"{largest.stat().st_size / 1e6:.1f} MB)")
    print("publish it with:\n"
          f"  hf upload YOUR-NAME/diffusion-playground {out} . --repo-type space")


if __name__ == "__main__":
    sys.exit(main())
