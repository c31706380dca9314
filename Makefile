# kiro2api: thin wrapper over CMake. The README's two set-up commands are `make run` and `make test`.
#   make            release build (-O2) into build/ (build/kiro2api, build/kiro-sim)
#   make run        install missing packages, build, start the gateway (demo against kiro-sim without an account)
#   make test       install, build release + ASan/UBSan + fuzz, run every test in both builds (ctest), then a short
#                   fuzz pass (TEST_FUZZ_SECONDS, default 20 s per target)
#   make test-asan  only the sanitizer build's tests
#   make fuzz       libFuzzer targets for FUZZ_SECONDS each (clang), FUZZ_PARALLEL at a time
#   make soak       SOAK_SECONDS (default 1800) of mixed traffic against one gateway: RSS, fds, every answer (bench/soak.py)
#   make bench / bench-quick   the benchmark harness (writes bench/RESULTS.md)
#   make image-test build and run the container image with podman (also in make test with KIRO_TEST_IMAGE=1)
#   make format     clang-format every source file
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60
SOAK_SECONDS ?= 1800
CTEST_ARGS ?=

.PHONY: all build build-all asan deps deps-test run test test-release test-asan fuzz fuzz-build soak bench bench-quick image-test format clean

all: build

deps:
	@deps/install.sh build

deps-test:
	@deps/install.sh test
	@deps/npm.sh

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build -j$(JOBS) --target kiro2api kiro-sim

build-all: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build -j$(JOBS)

asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DK2A_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j$(JOBS)

run: build
	@scripts/run.sh

test: deps-test build-all asan fuzz-build
	@scripts/test.sh

test-release: deps-test build-all
	@cd build && ctest --output-on-failure -j$(JOBS) $(CTEST_ARGS)

test-asan: deps-test asan
	@cd build-asan && ctest --output-on-failure -j$(JOBS) $(CTEST_ARGS)

# -O1 as libFuzzer recommends (1.4x the executions of -O0 for the request targets), ASan+UBSan, debug info
fuzz-build: deps-test
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS_DEBUG=-g -O1" -DK2A_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j$(JOBS)

fuzz: fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

soak: build
	@python3 bench/soak.py --seconds $(SOAK_SECONDS)

bench: build-all
	@deps/install.sh bench
	@python3 bench/harness.py

bench-quick: build-all
	@deps/install.sh bench
	@python3 bench/harness.py --quick

image-test:
	@deps/install.sh image
	@scripts/image-test.sh

format:
	@clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h' 'bench/*.c')

clean:
	@rm -rf build build-asan build-fuzz
