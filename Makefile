# kiro2api: thin wrapper over CMake. The README's two set-up commands are `make run` and `make test`.
#   make            release build (-O2) into build/ (build/kiro2api, build/kiro-sim)
#   make run        install missing packages, build, start the gateway (demo against kiro-sim without an account)
#   make test       install, build release + ASan/UBSan + fuzz, run every test in both builds (ctest), then a short
#                   fuzz pass (TEST_FUZZ_SECONDS, default 20 s per target)
#   make test-asan  only the sanitizer build's tests
#   make fuzz       libFuzzer targets for FUZZ_SECONDS each (clang), FUZZ_PARALLEL at a time
#   make soak       SOAK_SECONDS (default 1800) of mixed traffic against one gateway: RSS, fds, every answer (bench/soak.py)
#   make bench / bench-quick   the benchmark harness (writes bench/RESULTS.md)
#   make image-test build and run the container image with podman, then try `make run` on new Debian 12 containers
#                   (scripts/fresh-machine-test.sh); also in make test with KIRO_TEST_IMAGE=1
#   make format     clang-format every source file
# Each target first checks the Debian packages it needs (deps/install.sh SET): as root it installs them, otherwise it
# prints the one line to run as root. `make` and `make run` need only the build set (no test package).
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60
SOAK_SECONDS ?= 1800
CTEST_ARGS ?=
# the recursive makes of CMake's generated build would print "Entering directory" around every step
MAKEFLAGS += --no-print-directory

# $(call configure,DIR,CMAKE ARGS[,ENV]): CMake's configure output goes to DIR/configure.log and is shown only when
# it fails (a missing library, a wrong compiler), so that the make output stays short but every error is seen.
configure = @mkdir -p $(1) && if ! $(3) cmake -S . -B $(1) $(2) >$(1)/configure.log 2>&1; then \
	cat $(1)/configure.log >&2; echo "make: CMake could not configure $(1)/ (its output above, also in $(1)/configure.log)" >&2; \
	exit 1; fi

# The release build of the two binaries needs no test package: build/ is configured without the tests (K2A_TESTS=OFF)
# unless build-all or `make test` switched them on there and cmocka is still installed.
BUILD_TESTS_FLAG = $(if $(and $(shell grep -s '^K2A_TESTS:BOOL=ON' build/CMakeCache.txt),$(shell pkg-config --exists cmocka 2>/dev/null && echo y)),,-DK2A_TESTS=OFF)

.PHONY: all build build-all asan deps deps-all deps-fuzz deps-test deps-bench deps-soak run doctor test test-release test-asan \
	fuzz fuzz-build soak bench bench-quick image-test format clean

all: build

deps:
	@deps/install.sh build

deps-all:
	@deps/install.sh all

deps-fuzz:
	@deps/install.sh fuzz

deps-test:
	@deps/install.sh test
	@deps/npm.sh

deps-bench:
	@deps/install.sh bench

deps-soak:
	@deps/install.sh soak

build: deps
	$(call configure,build,-DCMAKE_BUILD_TYPE=Release $(BUILD_TESTS_FLAG))
	@cmake --build build -j$(JOBS) --target kiro2api kiro-sim

# everything in build/: the binaries, unit tests and micro-benchmarks
build-all: deps-all
	$(call configure,build,-DCMAKE_BUILD_TYPE=Release -DK2A_TESTS=ON)
	@cmake --build build -j$(JOBS)

asan: deps-all
	$(call configure,build-asan,-DCMAKE_BUILD_TYPE=Debug -DK2A_SANITIZE=ON -DK2A_TESTS=ON)
	@cmake --build build-asan -j$(JOBS)

run: build
	@scripts/run.sh

# checks every configured account end to end (DOCTOR_ARGS="--no-generate --json" ...)
DOCTOR_ARGS ?=
doctor: build
	@build/kiro2api doctor $(DOCTOR_ARGS)

test: deps-test build-all asan fuzz-build
	@scripts/test.sh

test-release: deps-test build-all
	@cd build && ctest --output-on-failure -j$(JOBS) $(CTEST_ARGS)

test-asan: deps-test asan
	@cd build-asan && ctest --output-on-failure -j$(JOBS) $(CTEST_ARGS)

# -O1 as libFuzzer recommends (1.4x the executions of -O0 for the request targets), ASan+UBSan, debug info
fuzz-build: deps-fuzz
	$(call configure,build-fuzz,-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS_DEBUG=-g -O1" -DK2A_FUZZ=ON,CC=clang)
	@cmake --build build-fuzz -j$(JOBS)

fuzz: fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

soak: deps-soak build
	@python3 bench/soak.py --seconds $(SOAK_SECONDS)

# deps-bench first: one install line for everything the benchmark needs, build-all's packages included
bench: deps-bench build-all
	@python3 bench/harness.py

bench-quick: deps-bench build-all
	@python3 bench/harness.py --quick

# the container image (scripts/image-test.sh), then the README's `make run` on new Debian 12 containers as root and as a
# normal user (scripts/fresh-machine-test.sh); both download Debian packages, so neither is part of `make test`
image-test:
	@deps/install.sh image
	@rc=0; scripts/image-test.sh || rc=1; scripts/fresh-machine-test.sh || rc=1; exit $$rc

format:
	@clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h' 'bench/*.c')

clean:
	@rm -rf build build-asan build-fuzz
