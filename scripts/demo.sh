#!/usr/bin/env bash
# The main job: on a fresh Debian machine, install what is missing, generate a DC1 scene with known
# truth, run the DeepGU workflow model through qgis_process, score it against FCLS and draw a figure.
#   ./scripts/demo.sh [output folder, default out/demo]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-$here/out/demo}" && cd "${1:-$here/out/demo}" && pwd)"
bash "$here/scripts/setup_env.sh"

export QT_QPA_PLATFORM=offscreen
export QGIS_CUSTOM_CONFIG_PATH="$out/qgis-config"        # a private QGIS configuration
export PYTHONPATH="$("$here/.venv/bin/python" -c 'import site; print(site.getsitepackages()[0])')"
bash "$here/scripts/install_plugin.sh" >/dev/null
run() { echo "+ qgis_process.bin run $*" >&2; qgis_process.bin run "$@" >"$out/last.log" 2>&1 || { cat "$out/last.log"; exit 1; }; }

run deepgu:synthetic -- KIND=0 ROWS=70 COLS=70 SNR=30 SEED=1 OUTPUT="$out/scene.tif" \
    OUTPUT_ABUNDANCES="$out/truth.tif" OUTPUT_ENDMEMBERS="$out/truth_endmembers.tif" OUTPUT_LIBRARY="$out/library.csv"
run deepgu:workflow -- INPUT="$out/scene.tif" MATERIALS=3 SEED=1 \
    endmembers:ENDMEMBERS_CSV="$out/endmembers.csv" fcls:FCLS_ABUNDANCES="$out/fcls.tif" \
    bundles:BUNDLES_CSV="$out/bundles.csv" trainvae:MODEL_FILE="$out/model.pt" \
    unmix:DEEPGU_ABUNDANCES="$out/deepgu.tif" unmix:DEEPGU_ENDMEMBERS="$out/deepgu_endmembers.tif"
for method in fcls deepgu; do
  extra=()
  [ "$method" = deepgu ] && extra=(ESTIMATE_ENDMEMBERS="$out/deepgu_endmembers.tif" REFERENCE_ENDMEMBERS="$out/truth_endmembers.tif")
  run deepgu:metrics -- ESTIMATE="$out/$method.tif" REFERENCE="$out/truth.tif" "${extra[@]}" OUTPUT_REPORT="$out/metrics_$method.json"
done
"$here/.venv/bin/python" "$here/scripts/demo_figure.py" "$out"
