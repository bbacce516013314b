#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine, then run the whole suite.
#   bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's Chromium for the browser tests, the emoji font and names for the base set: apt only when one is missing.
if ! dpkg -s chromium fonts-noto-color-emoji unicode-data >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q chromium fonts-noto-color-emoji unicode-data
fi

if [ ! -x .venv/bin/python ]; then
  # torch's CUDA build and its libraries take about 6.5 GB unpacked: say so first if the disk looks short of room,
  # so a "No space left on device" from pip below has its explanation beside it.
  free_gb=$(df -Pk . | awk 'NR == 2 {print int($4 / 1048576)}')
  if [ "$free_gb" -lt 7 ]; then
    echo "scripts/test.sh: the virtual environment needs about 7 GB; this disk has ${free_gb} GB free." >&2
  fi
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --no-cache-dir --disable-pip-version-check -r requirements-dev.txt

export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
