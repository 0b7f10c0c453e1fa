#!/usr/bin/env bash
# test.sh: the README's second command and what CI runs. Installs the dependencies, then builds
# and runs the whole test suite three ways:
#   1. g++ 12, RelWithDebInfo: every test, the install consumer test, the benchmark smoke run;
#   2. clang 14 with AddressSanitizer + UBSan and libFuzzer: every test again, plus a bounded
#      libFuzzer run of every fuzz target over its corpus (IOASID_FUZZ_SECONDS each, default 6);
#   3. g++ 12 with ThreadSanitizer: the concurrency tests.
# and checks clang-format. Exits non-zero on the first failure.
# The builds keep line tables, not full debug info (-g1 / -gline-tables-only: file and line in
# every backtrace and sanitizer report, a third less compile time than -g); a build by hand
# (README "Building by hand") is the usual RelWithDebInfo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

jobs=$(nproc)
fuzz_seconds=${IOASID_FUZZ_SECONDS:-6}
gcc_flags='-O2 -g1 -DNDEBUG'
clang_flags='-O2 -gline-tables-only -DNDEBUG'
start=$(date +%s)
section() { printf '\n=== %s (%ss elapsed)\n' "$1" "$(($(date +%s) - start))"; }

section "format: clang-format --dry-run --Werror"
git ls-files '*.cc' '*.hpp' '*.h' '*.c' | xargs clang-format --dry-run --Werror

section "1/3 g++ RelWithDebInfo: all tests"
cmake -S . -B build/gcc -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$gcc_flags" -DCMAKE_C_FLAGS_RELWITHDEBINFO="$gcc_flags"
ninja -C build/gcc
(cd build/gcc && ctest -j"$jobs" --output-on-failure --timeout 600)

section "2/3 clang ASan+UBSan+libFuzzer: all tests and bounded fuzzing"
cmake -S . -B build/clang-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$clang_flags" -DCMAKE_C_FLAGS_RELWITHDEBINFO="$clang_flags" \
  -DIOASID_SANITIZE=address,undefined -DIOASID_BUILD_FUZZERS=ON -DIOASID_BUILD_BENCH=OFF \
  -DIOASID_FUZZ_SECONDS="$fuzz_seconds"
ninja -C build/clang-asan
(cd build/clang-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest -j"$jobs" --output-on-failure --timeout 900 -LE install)

section "3/3 g++ ThreadSanitizer: concurrency tests"
cmake -S . -B build/gcc-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$gcc_flags" -DCMAKE_C_FLAGS_RELWITHDEBINFO="$gcc_flags" \
  -DIOASID_SANITIZE=thread -DIOASID_BUILD_BENCH=OFF
ninja -C build/gcc-tsan concurrency_tests
(cd build/gcc-tsan && TSAN_OPTIONS=halt_on_error=1 ctest -j"$jobs" --output-on-failure \
  --timeout 600 -L concurrency)

section "all test stages passed"
