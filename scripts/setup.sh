#!/usr/bin/env bash
# Installs what normlab needs on a fresh Debian machine, only when it is missing.
# Idempotent: a machine that has everything does nothing (and needs no network).
set -euo pipefail

APT_PACKAGES=(pkg-config libopenblas-dev python3-dev python3-numpy python3-pytest
              python3-scipy python3-sklearn python3-matplotlib python3-requests python3-nbformat python3-pip dataset-fashion-mnist)
# Python packages not in Debian, installed into the project (never into the system):
PIP_TARGET=".deps/python"
PIP_PACKAGES=(mnist1d==0.0.2.post1)

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

cd "$(dirname "$0")/.."
for spec in "${PIP_PACKAGES[@]}"; do
  name="${spec%%==*}"
  if [ ! -d "$PIP_TARGET/$name" ]; then
    echo "setup: installing $spec into $PIP_TARGET"
    /usr/bin/python3 -m pip --version >/dev/null 2>&1 || python3 -m pip --version >/dev/null 2>&1 \
      || { echo "setup: pip is needed to install $spec" >&2; exit 1; }
    PIP=(/usr/bin/python3 -m pip); /usr/bin/python3 -m pip --version >/dev/null 2>&1 || PIP=(python3 -m pip)
    "${PIP[@]}" install -q --no-deps --disable-pip-version-check --root-user-action=ignore --target "$PIP_TARGET" "$spec"
  fi
done

command -v swift >/dev/null || { echo "setup: the Swift toolchain (swift 6.x) is not on PATH" >&2; exit 1; }
/usr/bin/python3 -c "import numpy, pytest, sklearn, matplotlib, nbformat" || { echo "setup: Debian's python3 cannot import numpy/pytest" >&2; exit 1; }
echo "setup: ok"
