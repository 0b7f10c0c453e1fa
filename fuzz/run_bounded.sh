#!/usr/bin/env bash
# run_bounded.sh FUZZER SECONDS [CORPUS]: a bounded libFuzzer run for the test suite. The checked-in
# corpus is copied to a scratch directory so the run never writes into the source tree.
set -euo pipefail
fuzzer=$1 seconds=$2 corpus=${3:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
if [ -n "$corpus" ] && [ -d "$corpus" ]; then cp -r "$corpus"/. "$work/corpus/"; fi
cd "$work"
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 corpus
