"""Build the photo folder the shipped autoencoder was trained on, from Debian's wallpaper packages (offline-safe:
only Debian's package registry is reached).

    python scripts/photo_set.py --out data_cache/photos

Downloads (does not install) the packages below with ``apt-get download``, unpacks them into a temporary folder,
and copies one file of every picture (the largest, where a package ships one picture at several sizes; none smaller
than 512 px on its shorter side) into OUT, with each package's copyright file in OUT/.licenses/ (hidden, so
training skips it). About 80 pictures, mostly photographs (landscapes, animals, flowers, cities) and some abstract
art; CC-BY, CC-BY-SA, CC0, GPL and MIT licensed. The pictures are training data only: nothing of them is committed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

PACKAGES = ("mate-backgrounds", "ukui-wallpapers", "lomiri-wallpapers", "lomiri-wallpapers-16.04",
            "lomiri-wallpapers-20.04", "plasma-workspace-wallpapers", "gnome-backgrounds")
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
SIZED = re.compile(r"^(?P<stem>.*?)_?(?P<w>\d{3,5})x(?P<h>\d{3,5})$")
MIN_SIDE = 512


def unpack(packages: tuple[str, ...], where: Path) -> None:
    downloads = where / "debs"
    downloads.mkdir(parents=True)
    subprocess.run(["apt-get", "download", *packages], cwd=downloads, check=True)
    for deb in sorted(downloads.glob("*.deb")):
        (where / "files").mkdir(exist_ok=True)
        subprocess.run(["dpkg", "-x", str(deb), str(where / "files" / deb.name.split("_")[0])], check=True)


def pictures(root: Path) -> list[Path]:
    """One file per picture: within a folder, files named NAME_WxH (or WxH) are one picture at several sizes."""
    chosen: dict[tuple[Path, str], tuple[int, Path]] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in SUFFIXES or path.name == "screenshot.png" or not path.is_file():
            continue
        try:
            with Image.open(path) as image:
                width, height = image.size
        except OSError:
            continue
        if min(width, height) < MIN_SIDE:
            continue
        match = SIZED.match(path.stem)
        key = (path.parent, match.group("stem") if match else path.stem)
        if key not in chosen or width * height > chosen[key][0]:
            chosen[key] = (width * height, path)
    return [path for _, path in chosen.values()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    (out / ".licenses").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        unpack(PACKAGES, Path(tmp))
        for package in sorted((Path(tmp) / "files").iterdir()):
            copyright_file = package / "usr" / "share" / "doc" / package.name / "copyright"
            if copyright_file.is_file():
                shutil.copy(copyright_file, out / ".licenses" / f"{package.name}.txt")
            for path in pictures(package):
                where = "_".join(path.relative_to(package).parts[2:])  # under usr/share/
                name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{package.name}-{where}")
                shutil.copy(path, out / name)
    count = sum(1 for p in out.iterdir() if p.is_file())
    print(f"wrote {count} pictures to {out} (licences in {out / '.licenses'})")


if __name__ == "__main__":
    main()
