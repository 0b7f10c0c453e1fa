#!/usr/bin/env bash
# demo.sh: the README's first command. Installs the dependencies, builds, and runs the main job
# (for now ioasid_demo, a tour of the IOASID space; ioasid-sim replaces it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DIOASID_BUILD_TESTS=OFF \
  -DIOASID_BUILD_BENCH=OFF
ninja -C build/release ioasid_demo
exec build/release/examples/ioasid_demo
