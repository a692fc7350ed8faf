#!/bin/bash
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

# Exactly the public API is exported from the shared library: every
# function the installed headers declare, nothing else named uhmm, and the
# libc calls it interposes (src/interpose.c, fdguard.c, kaccess.c).
exported=$(nm -D --defined-only "$libdir/libuhmm.so.0" | awk '{print $3}' | sed 's/@.*//' |
	grep -vx 'UHMM_0' | sort -u)
declared=$(cat "$tmp"/prefix/include/uhmm.h "$tmp"/prefix/include/uhmm/*.h |
	grep -v 'static inline' | grep -oE '^[a-z].*[ *](uhmm_[a-z0-9_]+)\(' |
	grep -oE 'uhmm_[a-z0-9_]+\($' | tr -d '(' | sort -u)
interposed="munmap mremap madvise mprotect mmap close close_range closefrom dup2 dup3
read write pread pread64 pwrite pwrite64 readv writev preadv preadv64 pwritev pwritev64
recv recvfrom recvmsg send sendto sendmsg __read_chk __pread_chk __pread64_chk __recv_chk
__recvfrom_chk"
expected=$( (echo "$declared"; echo $interposed | tr ' ' '\n') | sort -u)
if [ "$exported" != "$expected" ]; then
	echo "libuhmm.so exports differ from the headers (< exported, > declared):"
	diff <(echo "$exported") <(echo "$expected") || true
	exit 1
fi
echo "install.consumer: ok"
