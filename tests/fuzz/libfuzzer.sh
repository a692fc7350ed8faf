#!/bin/bash
# Build the differential fuzzer as a libFuzzer target (clang, ASan+UBSan)
# and run it: tests/fuzz/libfuzzer.sh [SECONDS] [libFuzzer options...].
# Crashing inputs land in $FUZZ_OUT (default ./libfuzzer-out); each is a
# list of 8-byte operations (tests/fuzz/libfuzzer.c). Skips without clang.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-60}
shift || true
out=${FUZZ_OUT:-$PWD/libfuzzer-out}
command -v clang >/dev/null || { echo "SKIP: no clang"; exit 77; }
mkdir -p "$out/corpus"
bin="$out/uhmm-libfuzzer"
flags=(-g -O1 -std=gnu11 -D_GNU_SOURCE -DUHMM_DEBUG -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -I"$src/include" -I"$src/src" -I"$src/tests"
       -I"$src/tests/fuzz")
sources=$(sed -n '/^set(UHMM_SOURCES/,/^)/p' "$src/CMakeLists.txt" | grep -E '^\s+[a-z].*\.c' |
	sed "s|^\s*|$src/|")
# The interposed libc calls run inside the sanitizer's own start-up: uninstrumented.
plain=()
for f in interpose fdguard kaccess; do
	clang -c -g -O1 -std=gnu11 -D_GNU_SOURCE -I"$src/include" -I"$src/src" \
		"$src/src/$f.c" -o "$out/$f.o"
	plain+=("$out/$f.o")
	sources=$(echo "$sources" | grep -v "/src/$f.c")
done
clang "${flags[@]}" $sources "${plain[@]}" "$src/tests/fuzz/ops.c" "$src/tests/fuzz/libfuzzer.c" \
	-lpthread -ldl -o "$bin"
ASAN_OPTIONS=${ASAN_OPTIONS:-handle_sigbus=0:detect_leaks=0} \
	"$bin" -max_total_time="$secs" -timeout=60 -rss_limit_mb=4096 -artifact_prefix="$out/" \
	"$@" "$out/corpus"
