#!/usr/bin/env bash
# Install the plugin into a QGIS profile and enable it.
#   scripts/install_plugin.sh            -> a symbolic link to this folder in the default profile of the current user
#   scripts/install_plugin.sh --copy     -> a copy of the plugin files only, as "Install from ZIP" makes it
#                                           (scripts/package_plugin.sh's zip, unpacked; no tests, venv or outputs)
#   QGIS_CUSTOM_CONFIG_PATH=/some/dir scripts/install_plugin.sh   -> a separate QGIS configuration
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
mode=link
case "${1:-}" in
  "") ;;
  --copy) mode=copy ;;
  *) echo "usage: $0 [--copy]" >&2; exit 2 ;;
esac
config="${QGIS_CUSTOM_CONFIG_PATH:-$HOME/.local/share/QGIS/QGIS3}"
plugins="$config/profiles/default/python/plugins"
mkdir -p "$plugins"
rm -rf "$plugins/deepgu"          # a previous link (only the link is removed) or copy
if [ "$mode" = link ]; then
  ln -s "$here" "$plugins/deepgu"
else
  dist="$(mktemp -d)"
  trap 'rm -rf "$dist"' EXIT
  zip="$(bash "$here/scripts/package_plugin.sh" "$dist")"
  python3 -m zipfile -e "$zip" "$plugins"
fi
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
export QGIS_CUSTOM_CONFIG_PATH="$config"
log="$(qgis_process.bin plugins enable deepgu 2>&1)" || grep -q "already enabled" <<<"$log" || { echo "$log" >&2; exit 1; }
echo "DeepGU installed in $plugins/deepgu ($mode) and enabled"
