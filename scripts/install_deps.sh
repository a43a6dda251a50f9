#!/usr/bin/env bash
# Installs what rocmforge builds and tests with on a fresh Debian/Ubuntu machine: a C toolchain,
# Python with pip (models come from PyPI), the Debian ROCm 5.2 hipRTC packages (AMD code objects
# are compiled without a GPU), a Debian sid root with ROCm 6.4's hipRTC for the modern AMD targets
# (scripts/rocm6_root.sh; needs root), and Rust through rustup when no cargo is on the PATH.
# Safe to run again: it installs only what is missing.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "install_deps: not root and no sudo; install the packages below by hand" >&2
  fi
fi

need=()
for pkg in build-essential pkg-config curl ca-certificates python3 python3-pip git cmake ninja-build debootstrap \
           libamdhip64-5 libhiprtc-builtins5 rocm-device-libs; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "install_deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # The ROCm packages exist on Debian 12+ and Ubuntu 23.04+; elsewhere the AMD compile tests skip
  # with a note, so a missing one is a warning, not a failure.
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || {
    rocm=(libamdhip64-5 libhiprtc-builtins5 rocm-device-libs)
    base=()
    for p in "${need[@]}"; do [[ " ${rocm[*]} " == *" $p "* ]] || base+=("$p"); done
    [ ${#base[@]} -eq 0 ] || $SUDO apt-get install -y -qq --no-install-recommends "${base[@]}" >/dev/null
    echo "install_deps: warning: the ROCm hipRTC packages could not be installed" >&2
  }
fi

# ROCm 6.4 (gfx942, gfx950, gfx11xx, gfx12xx) lives in a Debian sid root, built once and cached
# (~1 minute, ~500 MB). chroot needs root: elsewhere the ROCm 6.4 tests say why they cannot run.
if [ "$(id -u)" -eq 0 ]; then
  bash "$(dirname "$0")/rocm6_root.sh" >/dev/null || echo "install_deps: warning: the ROCm 6.4 root could not be built" >&2
else
  echo "install_deps: not root: skipping the ROCm 6.4 root (run scripts/rocm6_root.sh as root)" >&2
fi

if ! command -v cargo >/dev/null; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then :; else
    echo "install_deps: installing Rust with rustup" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null
  fi
fi
