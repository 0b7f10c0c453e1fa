#!/usr/bin/env bash
# Installs every system package ioasid needs to build, test, fuzz and benchmark, with apt-get.
# Works on a minimal Debian 12 root (debootstrap --variant=minbase) run as root; when run as
# another user it uses sudo if present. Safe to run repeatedly.
set -euo pipefail

packages=(
  # toolchains: g++ 12 (primary), clang 14 (second compiler, sanitizers, libFuzzer)
  g++ clang clang-14 libclang-rt-14-dev lld-14 llvm-14
  cmake ninja-build git pkg-config clang-format ca-certificates
  # libraries
  libexpected-dev libgtest-dev libgmock-dev libbenchmark-dev liburcu-dev
  libfmt-dev libcli11-dev nlohmann-json3-dev libsqlite3-dev sqlite3 libsystemd-dev
  # tools used by the test suite (systemd: systemd-analyze verify, systemd-socket-activate and
  # systemd-sysusers --dry-run check the units in dist/systemd; none needs systemd as PID 1)
  procps systemd
)

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "install-deps: must run as root (or with sudo available) to use apt-get" >&2
    exit 1
  fi
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q
"${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
