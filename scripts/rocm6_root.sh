#!/usr/bin/env bash
# A modern ROCm (Debian sid's 6.4 hipRTC) for compile tests on a Debian 12 machine: sid's ROCm
# packages need sid's glibc, so they go in a Debian sid root built with debootstrap. rocmforge,
# built on the host, runs inside it unchanged (chroot).
#
#   scripts/rocm6_root.sh            builds the root once (about a minute and ~400 MB) and prints
#                                    its path; run again, it only checks the root and mounts /proc
#   scripts/rocm6_root.sh path       prints the root's path (built or not)
#   scripts/rocm6_root.sh run CMD…   runs CMD inside the root (chroot)
#
# The root lives in $ROCMFORGE_ROCM6_ROOT, else ~/.cache/rocmforge/rocm6-root. It is ready when
# its stamp file .rocmforge-rocm6-ready names the packages below; tests/jit_rocm6.rs looks for it.
# /proc is mounted inside (warm's worker processes re-run /proc/self/exe) and left mounted.
# Needs root (debootstrap, chroot, mount); installs debootstrap on the host when it is missing.
set -euo pipefail

ROOT="${ROCMFORGE_ROCM6_ROOT:-$HOME/.cache/rocmforge/rocm6-root}"
MIRROR="${ROCMFORGE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES="libhiprtc6 libhiprtc-builtins6 libamdhip64-6 rocm-device-libs-21"
STAMP="$ROOT/.rocmforge-rocm6-ready"
# The mirror serves a dated snapshot of sid, whose Release file has expired: accept it.
APT=(apt-get -o Acquire::Check-Valid-Until=false -o APT::Install-Recommends=false -y -qq)

say() { echo "rocm6_root: $*" >&2; }

mount_proc() {
  if [ ! -e "$ROOT/proc/self/exe" ]; then
    mkdir -p "$ROOT/proc"
    mount -t proc proc "$ROOT/proc"
  fi
}

ready() { [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$PACKAGES" ]; }

build() {
  if [ "$(id -u)" -ne 0 ]; then
    say "needs root (debootstrap, chroot, mount); run it as root or with sudo"
    exit 1
  fi
  if ready; then
    mount_proc
    echo "$ROOT"
    return
  fi
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
  fi
  # A root left half-built by an interrupted run is finished in place: debootstrap's stamp says
  # whether its own part completed.
  if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
    for d in "$ROOT" "$ROOT.tmp"; do
      if mountpoint -q "$d/proc" 2>/dev/null; then umount "$d/proc"; fi
      rm -rf "$d"
    done
    mkdir -p "$(dirname "$ROOT")"
    say "debootstrap --variant=minbase sid $ROOT"
    debootstrap --variant=minbase sid "$ROOT.tmp" "$MIRROR" >/dev/null
    mv "$ROOT.tmp" "$ROOT"
  fi
  mount_proc
  say "installing $PACKAGES"
  # (apt's "Can not write log (Is /dev/pts mounted?)" is harmless in a bare root: filtered out.)
  chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive "${APT[@]}" update 2> >(grep -v posix_openpt >&2) >/dev/null
  # shellcheck disable=SC2086
  chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive "${APT[@]}" install $PACKAGES 2> >(grep -v posix_openpt >&2) >/dev/null
  chroot "$ROOT" apt-get clean
  echo "$PACKAGES" >"$STAMP"
  echo "$ROOT"
}

case "${1:-build}" in
build) build ;;
path) echo "$ROOT" ;;
run)
  shift
  ready || { say "no ROCm 6 root at $ROOT: run scripts/rocm6_root.sh first"; exit 1; }
  mount_proc
  exec chroot "$ROOT" "$@"
  ;;
*)
  echo "usage: scripts/rocm6_root.sh [build|path|run CMD…]" >&2
  exit 2
  ;;
esac
