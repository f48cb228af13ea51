#!/usr/bin/env bash
# Install what is missing (QGIS, the venv) and run the whole test suite: core tests and the
# integration tests that drive the real QGIS (qgis.core and qgis_process.bin).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bash "$here/scripts/setup_env.sh"
export DEEPGU_REQUIRE_QGIS=1
cd "$here"
venv="${DEEPGU_VENV:-$here/.venv}"
[ "${DEEPGU_LINT:-1}" = 0 ] || "$venv/bin/ruff" check .        # lint (ruff.toml) before the tests
"$venv/bin/python" scripts/stack_versions.py                    # what this run tests: QGIS, GDAL, numpy, torch
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
