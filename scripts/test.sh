#!/usr/bin/env bash
# `make test`: the whole suite (unit, integration, real clients) in the release build, then again in the
# ASan+UBSan build with LeakSanitizer on, then a short pass of every libFuzzer target (build-fuzz/,
# TEST_FUZZ_SECONDS per target, default 20; 0 skips it). Each step prints its own summary; the script fails
# if any fails. CTEST_ARGS passes extra arguments (e.g. CTEST_ARGS="-R unit"). KIRO_TEST_IMAGE=1 also builds
# and runs the container image and tries `make run` on new Debian 12 containers (`make image-test`). The long
# runs (60 s per fuzz target in CI, 10 M executions, the 30-minute soak) are outside: `make fuzz`, `make soak`.
set -u
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}
rc=0
# every process a test starts inherits these: leaks, UB and any sanitizer report are fatal, never silent
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
echo "== release build (build/) =="
(cd build && ctest --output-on-failure -j"$jobs" ${CTEST_ARGS:-}) || rc=1
echo "== sanitizer build (build-asan/: ASan + UBSan + LSan) =="
(cd build-asan && ctest --output-on-failure -j"$jobs" ${CTEST_ARGS:-}) || rc=1
also=""
fuzz_secs=${TEST_FUZZ_SECONDS:-20}
if [ "$fuzz_secs" != 0 ] && [ -z "${CTEST_ARGS:-}" ]; then
    also=" and the fuzz pass"
    echo "== fuzz targets (build-fuzz/: ${fuzz_secs} s each, scripts/fuzz.sh) =="
    FUZZ_SECONDS=$fuzz_secs scripts/fuzz.sh || rc=1
fi
if [ "${KIRO_TEST_IMAGE:-0}" = 1 ]; then
    also="$also and the image test"
    echo "== container image and a new machine (KIRO_TEST_IMAGE=1: scripts/image-test.sh, scripts/fresh-machine-test.sh) =="
    if deps/install.sh image; then
        scripts/image-test.sh || rc=1
        scripts/fresh-machine-test.sh || rc=1
    else
        rc=1
    fi
fi
if [ $rc -eq 0 ]; then echo "make test: both builds${also} passed"; else echo "make test: FAILED"; fi
exit $rc
