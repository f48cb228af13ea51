#!/usr/bin/env bash
# Build the zip that QGIS's "Plugins > Manage and Install Plugins > Install from ZIP" accepts:
# one top folder `deepgu/` holding the plugin files only (no tests, benchmarks, venv or outputs).
#   scripts/package_plugin.sh [output folder, default dist]   -> <folder>/deepgu-<version>.zip
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-$here/dist}" && cd "${1:-$here/dist}" && pwd)"
version="$(sed -n 's/^version=\(.*\)$/\1/p' "$here/metadata.txt")"
[ -n "$version" ] || { echo "package_plugin: metadata.txt has no version" >&2; exit 1; }

# What QGIS loads (entry points, algorithms, core with its data, the workflow model), what a user
# may read (README with its pictures, licence, changelog); nothing else.
files=(__init__.py plugin.py provider.py metadata.txt icon.svg LICENSE CHANGELOG.md README.md
       algorithms core models docs)
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/deepgu"
(cd "$here" && cp -r "${files[@]}" "$stage/deepgu/")
find "$stage/deepgu" \( -name __pycache__ -o -name '*.pyc' -o -name '.*' \) -prune -exec rm -rf {} +

zip="$out/deepgu-$version.zip"
(cd "$stage" && python3 -m zipfile -c "$stage/plugin.zip" deepgu)
mv "$stage/plugin.zip" "$zip"
echo "$zip"
