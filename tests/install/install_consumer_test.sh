#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# install_consumer_test.sh: the install consumer test. Installs the build tree into a scratch
# prefix, then builds and runs tests/install/consumer against it in two ways: CMake
# (find_package(ioasid), ioasid::ioasid and ioasid::c) and pkg-config (cc ... $(pkg-config
# --cflags --libs ioasid)). Any failing step fails the test.
#
# Usage: install_consumer_test.sh CMAKE BUILD_DIR CONSUMER_SRC WORK_DIR LIBDIR CC CXX
#          [SANITIZE_CFLAGS [SANITIZE_LDFLAGS]]
set -eu

if [ $# -lt 7 ]; then
  echo "usage: $0 CMAKE BUILD_DIR CONSUMER_SRC WORK_DIR LIBDIR CC CXX [SAN_CFLAGS [SAN_LDFLAGS]]" >&2
  exit 2
fi
cmake=$1
build_dir=$2
consumer_src=$3
work=$4
libdir=$5
cc=$6
cxx=$7
san=${8:-}
san_ld=${9:-}

prefix=$work/prefix
rm -rf "$work"
mkdir -p "$work"

step() { echo "== $*"; }

step "install into $prefix"
"$cmake" --install "$build_dir" --prefix "$prefix"
for f in "$prefix/include/ioasid/ioasid.h" "$prefix/include/ioasid/space.hpp" \
         "$prefix/$libdir/cmake/ioasid/ioasidConfig.cmake" \
         "$prefix/$libdir/pkgconfig/ioasid.pc"; do
  [ -f "$f" ] || { echo "missing installed file: $f" >&2; exit 1; }
done
ls "$prefix/$libdir"/libioasid.so* >/dev/null
# The programs and what runs them (dist/): ioasidd, ioasidctl, the systemd units, sysusers.
for f in "$prefix/sbin/ioasidd" "$prefix/bin/ioasidctl"; do
  [ -x "$f" ] || { echo "missing installed program: $f" >&2; exit 1; }
done
for f in "$prefix/lib/systemd/system/ioasidd.socket" "$prefix/lib/systemd/system/ioasidd.service" \
         "$prefix/lib/systemd/system/ioasidctl-metrics.service" \
         "$prefix/lib/systemd/system/ioasidctl-metrics.timer" "$prefix/lib/sysusers.d/ioasid.conf"; do
  [ -f "$f" ] || { echo "missing installed file: $f" >&2; exit 1; }
done
"$prefix/bin/ioasidctl" --help >/dev/null

step "configure the consumer with find_package(ioasid)"
"$cmake" -S "$consumer_src" -B "$work/build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_C_FLAGS="$san" -DCMAKE_CXX_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="$san_ld"
step "build the consumer"
"$cmake" --build "$work/build" -j 2
step "run the C++ consumer"
"$work/build/consumer_cxx"
step "run the C consumer"
"$work/build/consumer_c"

step "build main_c.c with pkg-config"
PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
export PKG_CONFIG_PATH
pc_flags=$(pkg-config --cflags --libs ioasid)
echo "pkg-config: $pc_flags"
# The .pc must describe the prefix it was installed into, not the configure-time one.
same_dir() { [ "$(cd "$1" && pwd -P)" = "$(cd "$2" && pwd -P)" ]; }
same_dir "$(pkg-config --variable=includedir ioasid)" "$prefix/include" ||
  { echo "pkg-config includedir does not point into $prefix" >&2; exit 1; }
same_dir "$(pkg-config --variable=libdir ioasid)" "$prefix/$libdir" ||
  { echo "pkg-config libdir does not point into $prefix" >&2; exit 1; }
# shellcheck disable=SC2086 # word splitting of the flags is intended
"$cc" -std=c11 -Wall -Wextra -Werror $san $san_ld "$consumer_src/main_c.c" $pc_flags \
  -o "$work/main_c_pc"
step "run it"
LD_LIBRARY_PATH="$prefix/$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$work/main_c_pc"

echo "install consumer test: ok"
