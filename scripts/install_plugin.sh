#!/usr/bin/env bash
# Install the plugin into a QGIS profile (by a symbolic link to this folder) and enable it.
#   scripts/install_plugin.sh            -> the default profile of the current user
#   QGIS_CUSTOM_CONFIG_PATH=/some/dir scripts/install_plugin.sh   -> a separate QGIS configuration
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
config="${QGIS_CUSTOM_CONFIG_PATH:-$HOME/.local/share/QGIS/QGIS3}"
plugins="$config/profiles/default/python/plugins"
mkdir -p "$plugins"
ln -sfn "$here" "$plugins/deepgu"
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
export QGIS_CUSTOM_CONFIG_PATH="$config"
qgis_process.bin plugins enable deepgu >/dev/null
echo "DeepGU installed in $plugins/deepgu and enabled"
