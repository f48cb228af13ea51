#!/usr/bin/env bash
# The GPU check in one go (< 4 min on a GPU machine): the CUDA parity test (tests/test_gpu.py), then the
# Cuprite-size DeepGU step (bench/bench_cuprite_size.py) on cuda and on cpu in the same process, printing
# both times, ms/pixel and the largest abundance difference between the devices.
# Without a CUDA GPU it says so and exits with status 2, having run nothing.
# Run:  bench/gpu_check.sh            (uses .venv/bin/python, or $PYTHON)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
cd "$here"

if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: no CUDA GPU visible to torch ($("$python" -c 'import torch; print("torch", torch.__version__)' 2>&1 | tail -1)); nothing checked, the GPU path stays untested" >&2
  exit 2
fi
"$python" -c "import torch; print('# GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| CUDA', torch.version.cuda)"
echo "== tests/test_gpu.py"
timeout 120 "$python" -m pytest -q -p no:cacheprovider tests/test_gpu.py
echo "== bench/bench_cuprite_size.py on cuda and cpu"
timeout 200 "$python" bench/bench_cuprite_size.py --device cuda cpu
