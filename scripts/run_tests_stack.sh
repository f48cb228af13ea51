#!/usr/bin/env bash
# Run the test suite (./scripts/run_tests.sh) on another Debian release: a root made with debootstrap from
# the mirror apt already uses, QGIS and every Python package from that release's own Debian packages (no pip),
# the repository copied in, the suite run in a chroot. See docs/stacks.md.
#
#   scripts/run_tests_stack.sh SUITE [pytest arguments]      SUITE: trixie (Debian 13), sid (unstable), ...
#
# Needs root and debootstrap (installed from apt when missing). Environment:
#   DEEPGU_STACK_DIR     keep the root in this folder and reuse it on the next run (default: a temporary
#                        root under /var/tmp, deleted at the end: CI caches nothing)
#   DEEPGU_STACK_MIRROR  Debian mirror (default: the one in this machine's apt sources, else deb.debian.org)
# Prints the time of each stage; the suite prints the stack's versions (Debian, QGIS, GDAL, ...) and its counts.
set -euo pipefail
main() {      # (the whole script is read before it runs: editing it meanwhile cannot derail a run)
suite="${1:?usage: $0 SUITE [pytest arguments]   (SUITE: trixie, sid, ...)}"
shift
here="$(cd "$(dirname "$0")/.." && pwd)"
say() { echo "[stack $suite] $*"; }
[ "$(id -u)" -eq 0 ] || { say "needs root (debootstrap, chroot, mount)"; exit 1; }

#: what the suite needs, from the release's own packages (python3-distributed brings dask)
packages=(qgis python3-qgis qgis-providers python3-gdal python3-numpy python3-scipy python3-torch
          python3-distributed python3-pytest python3-matplotlib python3-venv xvfb xauth)

mirror="${DEEPGU_STACK_MIRROR:-}"
if [ -z "$mirror" ]; then      # the Debian mirror of this machine's apt sources (deb822 or one-line form)
  mirror="$(grep -hsE '^\s*(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
            /etc/apt/sources.list.d/*.list | grep -oE 'https?://[^ ]+/debian/?' | head -n 1 || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
fi

if [ -n "${DEEPGU_STACK_DIR:-}" ]; then
  root="$DEEPGU_STACK_DIR"
  mkdir -p "$root"
  keep=1
else
  mkdir -p /var/tmp
  root="$(mktemp -d "/var/tmp/deepgu-stack-$suite.XXXXXX")"
  chmod 755 "$root"          # (mktemp's 0700 keeps apt's _apt user out)
  keep=0
fi
root="$(cd "$root" && pwd)"
case "$root/" in "$here"/*) say "the root must lie outside the repository: $root"; exit 1;; esac

mounts=()
cleanup() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount "${mounts[$i]}" 2>/dev/null || umount -l "${mounts[$i]}" || true
  done
  mounts=()
  # and what the tests mounted inside and left (a test's small tmpfs), deepest first
  awk -v prefix="$root/" 'index($2, prefix) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n 1 umount -l || true
  if [ "$keep" -eq 0 ] && [ -d "$root" ]; then
    say "removing $root"
    rm -rf --one-file-system "$root"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mount_in() {      # mount_in TARGET mount-arguments...: mount under the root, unmounted by cleanup
  local target="$root$1"
  shift
  mkdir -p "$target"
  mount "$@" "$target"
  mounts+=("$target")
}
stage_start=0
stage() { stage_start=$(date +%s); say "$*"; }
stage_done() { say "$1: $(( $(date +%s) - stage_start )) s"; }

command -v debootstrap >/dev/null 2>&1 || {
  say "installing debootstrap from apt"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}

if [ ! -x "$root/usr/bin/apt-get" ] || [ -d "$root/debootstrap" ]; then     # (debootstrap/ remains when unfinished)
  stage "debootstrap $suite from $mirror into $root"
  # minbase: apt and dpkg only; everything else comes from apt below, which resolves dependencies properly
  debootstrap --variant=minbase "$suite" "$root" "$mirror" > "$root.debootstrap.log" 2>&1 || {
    tail -n 20 "$root.debootstrap.log"; exit 1; }
  rm -f "$root.debootstrap.log"
  stage_done "debootstrap"
fi

mount_in /proc -t proc proc
mount_in /sys -t sysfs sysfs
mount_in /dev --bind /dev
mount_in /dev/pts --bind /dev/pts
mount_in /dev/shm -t tmpfs tmpfs          # torch and dask share memory through it
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

if ! in_root sh -c 'command -v qgis_process.bin && command -v xvfb-run' >/dev/null 2>&1 \
   || ! in_root python3 -c "import qgis.core, osgeo, numpy, scipy, torch, distributed, pytest, matplotlib" >/dev/null 2>&1; then
  stage "apt: ${packages[*]}"
  echo "deb $mirror $suite main" > "$root/etc/apt/sources.list"
  # a throwaway root: no fsync per file, no documentation, manual pages or translations
  printf '%s\n' force-unsafe-io path-exclude=/usr/share/doc/* path-exclude=/usr/share/man/* \
    path-exclude=/usr/share/locale/* path-exclude=/usr/share/qgis/i18n/* > "$root/etc/dpkg/dpkg.cfg.d/deepgu-stack"
  # unstable's Release file may be past its Valid-Until on a snapshot mirror
  in_root apt-get -o Acquire::Check-Valid-Until=false update -qq
  in_root apt-get install -y -qq --no-install-recommends "${packages[@]}" > "$root/var/log/deepgu-apt.log" 2>&1 || {
    tail -n 30 "$root/var/log/deepgu-apt.log"; exit 1; }
  in_root apt-get clean
  stage_done "apt"
fi

# the repository as it is here (tracked and untracked, not ignored files: no .venv, no build output), at the
# same place relative to the shared data the tests look for in ../shared/data
stage "copying the repository"
rm -rf "$root/work/deepgu"
mkdir -p "$root/work/deepgu"
(cd "$here" && git ls-files -z --cached --others --exclude-standard \
   | xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh \
   | tar --null -T - -cf -) | tar -xf - -C "$root/work/deepgu"
if [ -d "$here/../shared/data" ]; then
  mount_in /work/shared --bind -o ro "$here/../shared"
fi

stage "tests: ./scripts/run_tests.sh $*"
set +e
# system packages only (DEEPGU_SYSTEM_PACKAGES: a venv over them, no pip); lint runs once, on the host stack
in_root sh -c 'cd /work/deepgu && DEEPGU_SYSTEM_PACKAGES=1 DEEPGU_LINT=0 ./scripts/run_tests.sh "$@"' sh "$@"
status=$?
set -e
stage_done "tests (exit $status)"
exit $status
}
main "$@"
