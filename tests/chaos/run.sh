#!/bin/bash
# The chaos run (docs/CHAOS.md): unmodified programs from Debian, their heap
# in memory uhmm manages while `uhmm chaos` migrates it to the reference
# device and back underneath them. Each must print exactly what a plain run
# prints.
#
#   tests/chaos/run.sh BUILD_DIR [RUNS]     (RUNS per program, default 1)
#
# The fault mode is UHMM_FAULT_MODE's. Exit: 0 all identical, 1 a
# difference or a failed run, 77 when the programs are not installed.
set -u
build=$1
runs=${2:-1}
here=$(cd "$(dirname "$0")" && pwd)
sqlite=/usr/bin/sqlite3
python=/usr/bin/python3
[ -x "$sqlite" ] && [ -x "$python" ] || { echo "SKIP: needs Debian's sqlite3 and python3"; exit 77; }
# Programs pass heap memory to every kind of system call (file names to
# open and stat, readdir's buffer): only a userfaultfd that serves the
# kernel's own faults (thread mode, not user-mode-only) can run them whole
# (docs/FAULTS.md).
if [ "${UHMM_FAULT_MODE:-thread}" != thread ]; then
	echo "SKIP: the chaos run of whole programs needs thread mode"; exit 77
fi
if "$build/uhmm" info --json | grep -q '"user_mode_only":true'; then
	echo "SKIP: this user's userfaultfd is user-mode-only: kernel accesses to managed memory fail"
	exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Python's small-object allocator takes its arenas from mmap directly:
# PYTHONMALLOC=malloc puts every object in the heap.
export PYTHONHASHSEED=0 PYTHONMALLOC=malloc

prog_sqlite_mem() { "$sqlite" :memory: < "$here/workload.sql"; }
prog_sqlite_file() { rm -f "$tmp/db"; "$sqlite" "$tmp/db" < "$here/workload.sql"; }
prog_python() { "$python" "$here/workload.py"; }

fail=0
for prog in sqlite_mem sqlite_file python; do
	"prog_$prog" > "$tmp/plain" 2>&1 || { echo "$prog: the plain run failed"; exit 1; }
	for run in $(seq 1 "$runs"); do
		case $prog in
		sqlite_mem) cmd=("$sqlite" :memory:) ;;
		sqlite_file) rm -f "$tmp/db"; cmd=("$sqlite" "$tmp/db") ;;
		python) cmd=("$python" "$here/workload.py") ;;
		esac
		input=/dev/null
		[ "$prog" = python ] || input="$here/workload.sql"
		start=$(date +%s%N)
		UHMM_CHAOS_VERBOSE=1 timeout 600 "$build/uhmm" chaos --seed "$run" -- "${cmd[@]}" \
			< "$input" > "$tmp/chaos" 2> "$tmp/err"
		rc=$?
		end=$(date +%s%N)
		summary=$(grep '^uhmm chaos:' "$tmp/err" | tail -1)
		if [ $rc -ne 0 ] || ! cmp -s "$tmp/plain" "$tmp/chaos"; then
			echo "$prog run $run (${UHMM_FAULT_MODE:-thread} mode): DIFFERENT (exit $rc)"
			diff "$tmp/plain" "$tmp/chaos" | head -20
			grep -v '^uhmm chaos:' "$tmp/err" | head -20
			fail=1
		else
			printf '%s run %d (%s mode): identical, %d ms; %s\n' "$prog" "$run" \
				"${UHMM_FAULT_MODE:-thread}" $(( (end - start) / 1000000 )) "${summary#uhmm chaos: }"
		fi
	done
done
exit $fail
