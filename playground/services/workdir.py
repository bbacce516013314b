"""Per-session work folders outside git, and their clean-up.

Everything a session writes (animations, uploaded photos, training runs, exports) lives under
``$PLAYGROUND_WORK_DIR`` (default: <system temp>/diffusion-playground/<session>) and is removed
``MAX_AGE_SECONDS`` after it was last touched.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

MAX_AGE_SECONDS = 6 * 3600  # a session's files are removed 6 hours after their last change


def root() -> Path:
    return Path(os.environ.get("PLAYGROUND_WORK_DIR", Path(tempfile.gettempdir()) / "diffusion-playground"))


def session_dir(session: str | None) -> Path:
    """The folder of one browser session (``gr.Request.session_hash``), or of the command line."""
    name = re.sub(r"[^A-Za-z0-9_-]", "", session or "") or "cli"
    path = root() / name[:64]
    path.mkdir(parents=True, exist_ok=True)
    return path


def photos_dir(session_dir: Path) -> Path:
    """Where a session's uploaded photos are kept (data.photos.keep_photos writes them as PNG files)."""
    return session_dir / "photos"


def exports_dir(session_dir: Path) -> Path:
    """Where a session's downloads (zips of its models) are written."""
    path = session_dir / "exports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def safe_name(text: str | None, default: str = "my-model") -> str:
    """A name that is safe as a folder's: lower-case letters, digits and dashes, at most 40 characters."""
    name = re.sub(r"[^a-z0-9]+", "-", (text or "").lower()).strip("-")[:40].strip("-")
    return name or default


def remove_stale(max_age_seconds: float = MAX_AGE_SECONDS, now: float | None = None) -> list[Path]:
    """Delete session folders untouched for ``max_age_seconds``; returns what was removed."""
    now = time.time() if now is None else now
    removed = []
    base = root()
    if not base.is_dir():
        return removed
    for folder in base.iterdir():
        if not folder.is_dir():
            continue
        newest = max((p.stat().st_mtime for p in folder.rglob("*")), default=folder.stat().st_mtime)
        if now - newest > max_age_seconds:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
