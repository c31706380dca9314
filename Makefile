# kiro2api: thin wrapper over CMake. The README's two set-up commands are `make run` and `make test`.
#   make            release build (-O2) into build/ (build/kiro2api, build/kiro-sim)
#   make run        install missing packages, build, start the gateway (demo against kiro-sim without an account)
#   make test       install, build release + ASan/UBSan, run every test in both builds (ctest)
#   make test-asan  only the sanitizer build's tests
#   make fuzz       libFuzzer targets for FUZZ_SECONDS each (clang)
#   make bench / bench-quick   the benchmark harness (writes bench/RESULTS.md)
#   make image-test build and run the container image with podman (also in make test with KIRO_TEST_IMAGE=1)
#   make format     clang-format every source file
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60
CTEST_ARGS ?=


.PHONY: all build build-all asan deps deps-test run test test-release test-asan fuzz fuzz-build bench bench-quick image-test format clean

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

test: deps-test build-all asan
	@scripts/test.sh

test-release: deps-test build-all
	@cd build && ctest --output-on-failure -j$(JOBS) $(CTEST_ARGS)

test-asan: deps-test asan
	@cd build-asan && ctest --output-on-failure -j$(JOBS) $(CTEST_ARGS)

fuzz-build: deps-test
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DK2A_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j$(JOBS)

fuzz: fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

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
