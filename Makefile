# uhmm: the two commands a new user types.
#   make run    build and run the main job (uhmm demo)
#   make test   build and run every test
#   make bench  the benchmarks; make stress  the migration storm, long
#   make fuzz   the differential fuzzer, FUZZ_SECONDS per fault mode
#   make chaos  sqlite3 and python3 with their heap migrating, CHAOS_RUNS each
# Variables: BUILD (build dir), SANITIZE (address,undefined | thread), JOBS.

BUILD ?= build
SANITIZE ?=
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX ?= /usr/local

.PHONY: all configure build run test bench stress fuzz chaos install clean deps

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	@./scripts/install-deps.sh
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DUHMM_SANITIZE=$(SANITIZE) \
	      -DCMAKE_INSTALL_PREFIX=$(PREFIX)

configure: $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/uhmm demo

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench: build
	$(BUILD)/uhmm bench

# The migration storm, long (STRESS_SECONDS per fault mode).
STRESS_SECONDS ?= 60
stress: build
	UHMM_FAULT_MODE=thread UHMM_STORM_SECONDS=$(STRESS_SECONDS) $(BUILD)/tests/test-migrate_storm
	UHMM_FAULT_MODE=signal UHMM_STORM_SECONDS=$(STRESS_SECONDS) $(BUILD)/tests/test-migrate_storm

# The differential fuzzer (docs/FUZZING.md): random seeds for FUZZ_SECONDS
# per fault mode; a failure prints a minimized reproducer (fuzz replay FILE).
FUZZ_SECONDS ?= 180
FUZZ_OPS ?= 400
fuzz: build
	UHMM_FAULT_MODE=thread $(BUILD)/tests/fuzz campaign $(FUZZ_SECONDS) $(FUZZ_OPS)
	UHMM_FAULT_MODE=signal $(BUILD)/tests/fuzz campaign $(FUZZ_SECONDS) $(FUZZ_OPS)

# The chaos run (docs/CHAOS.md): unmodified programs, byte-identical output.
CHAOS_RUNS ?= 10
chaos: build
	UHMM_FAULT_MODE=thread tests/chaos/run.sh $(BUILD) $(CHAOS_RUNS)

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD)
