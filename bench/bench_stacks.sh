#!/usr/bin/env bash
# What a Debian stack costs CI: runs scripts/run_tests_stack.sh SUITE (a fresh root: debootstrap, apt, the
# suite; it prints each stage's time) under `time` (wall and CPU: CPU time depends little on a shared machine's
# load), between two runs of a fixed reference workload that show how loaded the machine was (docs/stacks.md).
#   bench/bench_stacks.sh trixie            (as root)
set -uo pipefail
suite="${1:?usage: $0 SUITE}"
here="$(cd "$(dirname "$0")/.." && pwd)"
reference() {     # one thread: 5 x (600 x 600 float64 product + sort of 2e6 numbers)
  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python3 -c "
import time, numpy as np
t = time.perf_counter(); rng = np.random.default_rng(0); a = rng.random((600, 600))
for _ in range(5): a = a @ a / 600.0; np.sort(rng.random(2_000_000))
print('[bench] reference workload: %.2f s' % (time.perf_counter() - t))"
}
echo "[bench] $(date -u '+%Y-%m-%d %H:%M UTC'), $(hostname), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), load: $(cut -d' ' -f1-3 /proc/loadavg)"
reference
time "$here/scripts/run_tests_stack.sh" "$suite"
status=$?
reference
echo "[bench] load: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
