#!/bin/sh
# install.consumer: install uhmm into a scratch prefix and build a consumer
# against it with pkg-config and with CMake's find_package(uhmm); run both.
set -eu
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v pkg-config >/dev/null || { echo "SKIP: no pkg-config"; exit 77; }

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*)
test -f "$tmp/prefix/include/uhmm.h"
test -f "$libdir/libuhmm.a"
test -L "$libdir/libuhmm.so.0"

export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -o "$tmp/consumer-pc" "$src/tests/install/consumer.c" $(pkg-config --cflags --libs uhmm)
LD_LIBRARY_PATH="$libdir" "$tmp/consumer-pc"

mkdir "$tmp/cm"
cat > "$tmp/cm/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.20)
project(consumer C)
find_package(uhmm REQUIRED)
add_executable(consumer $src/tests/install/consumer.c)
target_link_libraries(consumer PRIVATE uhmm::uhmm)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm/build" >/dev/null
LD_LIBRARY_PATH="$libdir" "$tmp/cm/build/consumer"

# Only the public API is exported from the shared library, plus the five
# memory calls it interposes (src/interpose.c).
extra=$(nm -D --defined-only "$libdir/libuhmm.so.0" | awk '{print $3}' | sed 's/@.*//' |
	grep -v '^uhmm_' | grep -vx 'UHMM_0' | grep -vxE 'munmap|mremap|madvise|mprotect|mmap' || true)
if [ -n "$extra" ]; then
	echo "libuhmm.so exports unexpected symbols: $extra"
	exit 1
fi
echo "install.consumer: ok"
