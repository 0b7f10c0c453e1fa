#!/usr/bin/env bash
# demo.sh: the README's first command. Installs the dependencies, builds ioasidd and ioasid-sim
# (Release), and runs the main job: scenarios/default.json against a real ioasidd that ioasid-sim
# starts with its store in build/sim-state (four VMs with VT-d in both register layouts and
# virtio-iommu with and without max_pasid, a vIOMMU hot-unplug, a VMM crash with resume, a daemon
# kill -9 and restart), then prints the report (also in build/sim-report, with pasids.svg).
# Extra arguments go to ioasid-sim (--json, --seed N, ...); IOASID_JOBS limits build parallelism.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DIOASID_BUILD_TESTS=OFF \
  -DIOASID_BUILD_BENCH=OFF
ninja -C build/release ${IOASID_JOBS:+-j"$IOASID_JOBS"} ioasidd ioasid-sim
exec build/release/src/sim/ioasid-sim scenarios/default.json \
  --ioasidd build/release/src/daemon/ioasidd --state-dir build/sim-state \
  --report-dir build/sim-report "$@"
