#!/usr/bin/env bash
# Install what the plugin, its tests and its demo need on a Debian machine:
#   QGIS 3.22+ from apt (when qgis_process.bin is absent) and a venv at .venv
#   (system site-packages, so it sees qgis and osgeo) with torch, pytest, matplotlib, ruff, dask[distributed].
# torch: the CPU build the machine offers, never PyPI's multi-GB CUDA build by accident (see choose_torch).
# Idempotent: a second run installs nothing new. DEEPGU_SYSTEM_PACKAGES=1: use the system's Python packages
# as they are (Debian's python3-torch etc.), install nothing with pip.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${DEEPGU_VENV:-$here/.venv}"
torch_spec="$(grep -E '^torch([=<>!~ ]|$)' "$here/requirements.txt" | head -1)"     # torch==2.13.0
cpu_index="https://download.pytorch.org/whl/cpu"
sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"

packages=()
command -v qgis_process.bin >/dev/null 2>&1 || packages+=(qgis python3-qgis qgis-providers)
command -v xvfb-run >/dev/null 2>&1 || packages+=(xvfb xauth)     # the desktop test runs QGIS on a virtual screen
if [ ${#packages[@]} -gt 0 ]; then
  echo "[setup] installing from apt: ${packages[*]} (QGIS: about 80 s)"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating venv $venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi

# Where torch comes from, first that applies:
#   local-wheel  pip resolves $torch_spec to a CPU wheel on this machine's disk (pip's find-links);
#   debian       Debian's python3-torch (2.0 or newer; the venv sees the system's packages);
#   cpu-index    PyTorch's CPU index, where it is reachable;
#   pypi         pip's default (may be a CUDA build: a warning says so).
choose_torch() {
  local url
  url="$("$venv/bin/pip" install --dry-run --ignore-installed --no-deps --quiet --report - "$torch_spec" 2>/dev/null \
         | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["install"][0]["download_info"]["url"])' \
         2>/dev/null || true)"
  if [[ "$url" == file://* && "$url" == *cpu* ]]; then echo local-wheel; return; fi
  local candidate
  candidate="$(apt-cache policy python3-torch 2>/dev/null | sed -n 's/^ *Candidate: *\([0-9][0-9]*\)\..*/\1/p')"
  if [ -n "$candidate" ] && [ "$candidate" -ge 2 ] \
     && [ "$("$venv/bin/python" -c 'import sys; print(sys.base_prefix)')" = /usr ]; then echo debian; return; fi
  if command -v curl >/dev/null 2>&1 && curl -sfI --max-time 10 "$cpu_index/" >/dev/null; then echo cpu-index; return; fi
  echo pypi
}

if [ -n "${DEEPGU_SYSTEM_PACKAGES:-}" ]; then      # Debian's own packages only (scripts/run_tests_stack.sh): no pip
  "$venv/bin/python" -c "import torch, pytest, matplotlib, distributed" || {
    echo "[setup] DEEPGU_SYSTEM_PACKAGES: install python3-torch python3-pytest python3-matplotlib python3-distributed"
    exit 1; }
elif ! "$venv/bin/python" -c "import torch" >/dev/null 2>&1; then
  source="$(choose_torch)"
  echo "[setup] torch from: $source"
  case "$source" in
    local-wheel) "$venv/bin/pip" install -q "$torch_spec" ;;
    debian) DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends python3-torch \
              >/dev/null ;;
    cpu-index) "$venv/bin/pip" install -q --index-url "$cpu_index" "$torch_spec" ;;
    pypi) echo "[setup] warning: no local CPU wheel, no Debian torch >= 2 and no PyTorch CPU index: pip's default" \
               "$torch_spec may be a large CUDA build" >&2
          "$venv/bin/pip" install -q "$torch_spec" ;;
  esac
fi
if [ -z "${DEEPGU_SYSTEM_PACKAGES:-}" ] && { ! "$venv/bin/python" -c "import torch, pytest, matplotlib, distributed" >/dev/null 2>&1 || [ ! -x "$venv/bin/ruff" ]; }; then
  echo "[setup] installing Python packages into $venv"
  # torch is installed above: the rest of requirements.txt only (a Debian torch must not be replaced)
  grep -vE '^torch([=<>!~ ]|$)' "$here/requirements.txt" > "$venv/requirements-no-torch.txt"
  "$venv/bin/pip" install -q -r "$venv/requirements-no-torch.txt"
fi
echo "[setup] ready: $venv (torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)'))"
