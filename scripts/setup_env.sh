#!/usr/bin/env bash
# Install what the plugin, its tests and its demo need on a Debian machine:
#   QGIS 3.22+ from apt (when qgis_process.bin is absent) and a venv at .venv
#   (system site-packages, so it sees qgis and osgeo) with torch, pytest, matplotlib, ruff, dask[distributed].
# Idempotent: a second run installs nothing new. DEEPGU_SYSTEM_PACKAGES=1: use the system's Python packages
# as they are (Debian's python3-torch etc.), install nothing with pip.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${DEEPGU_VENV:-$here/.venv}"

packages=()
command -v qgis_process.bin >/dev/null 2>&1 || packages+=(qgis python3-qgis qgis-providers)
command -v xvfb-run >/dev/null 2>&1 || packages+=(xvfb xauth)     # the desktop test runs QGIS on a virtual screen
if [ ${#packages[@]} -gt 0 ]; then
  echo "[setup] installing from apt: ${packages[*]} (QGIS: about 80 s)"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating venv $venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
if [ -n "${DEEPGU_SYSTEM_PACKAGES:-}" ]; then      # Debian's own packages only (scripts/run_tests_stack.sh): no pip
  "$venv/bin/python" -c "import torch, pytest, matplotlib, distributed" || {
    echo "[setup] DEEPGU_SYSTEM_PACKAGES: install python3-torch python3-pytest python3-matplotlib python3-distributed"
    exit 1; }
elif ! "$venv/bin/python" -c "import torch, pytest, matplotlib, distributed" >/dev/null 2>&1 || [ ! -x "$venv/bin/ruff" ]; then
  echo "[setup] installing Python packages into $venv"
  "$venv/bin/pip" install -q torch==2.13.0
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
fi
echo "[setup] ready: $venv"
