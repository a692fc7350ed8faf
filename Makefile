# uhmm: the two commands a new user types.
#   make run    build and run the main job (uhmm demo)
#   make test   build and run every test
#   make bench  the benchmarks; make stress  the migration storm, long
# Variables: BUILD (build dir), SANITIZE (address,undefined | thread), JOBS.

BUILD ?= build
SANITIZE ?=
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX ?= /usr/local

.PHONY: all configure build run test bench stress install clean deps

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

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD)
