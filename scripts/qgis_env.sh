# Set up this shell to run QGIS headless with the plugin's Python packages (torch) visible:
#   source /path/to/deepgu/scripts/qgis_env.sh      (bash; from any folder)
#   qgis_process.bin list | grep deepgu
# Finds the venv from this file's own location (DEEPGU_VENV overrides it), whatever its Python version,
# puts its site-packages first on PYTHONPATH and sets QT_QPA_PLATFORM=offscreen (no display needed).
# Meant to be sourced: it never exits the shell, it only returns 1 with a message when something is missing.
_deepgu_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
_deepgu_venv="${DEEPGU_VENV:-$_deepgu_root/.venv}"
if [ ! -x "$_deepgu_venv/bin/python" ]; then
  echo "qgis_env: no virtual environment at $_deepgu_venv (run $_deepgu_root/scripts/setup_env.sh)" >&2
  unset _deepgu_root _deepgu_venv
  return 1 2>/dev/null || exit 1
fi
_deepgu_site="$("$_deepgu_venv/bin/python" -c 'import site; print(site.getsitepackages()[0])')"
export QT_QPA_PLATFORM=offscreen
case ":${PYTHONPATH:-}:" in
  *":$_deepgu_site:"*) ;;
  *) export PYTHONPATH="$_deepgu_site${PYTHONPATH:+:$PYTHONPATH}" ;;
esac
if ! command -v qgis_process.bin >/dev/null 2>&1; then
  echo "qgis_env: qgis_process.bin not found (run $_deepgu_root/scripts/setup_env.sh)" >&2
elif [ ! -d "$_deepgu_site/torch" ]; then
  echo "qgis_env: torch is not installed in $_deepgu_site: the VAE and DeepGU steps will refuse to run" >&2
fi
unset _deepgu_root _deepgu_venv _deepgu_site
