#!/usr/bin/env bash
# Installs what normlab needs on a fresh Debian machine, only when it is missing.
# Idempotent: a machine that has everything does nothing (and needs no network).
set -euo pipefail

APT_PACKAGES=(pkg-config libopenblas-dev python3-dev python3-numpy python3-pytest)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v swift >/dev/null || { echo "setup: the Swift toolchain (swift 6.x) is not on PATH" >&2; exit 1; }
/usr/bin/python3 -c "import numpy, pytest" || { echo "setup: Debian's python3 cannot import numpy/pytest" >&2; exit 1; }
echo "setup: ok"
