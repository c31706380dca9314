#!/usr/bin/env bash
# `make test`: the whole suite (unit, integration, real clients) in the release build, then again in the
# ASan+UBSan build with LeakSanitizer on. Each ctest run prints its own summary line; the script fails if
# either run fails. CTEST_ARGS passes extra arguments (e.g. CTEST_ARGS="-R unit"). KIRO_TEST_IMAGE=1 also builds
# and runs the container image (`make image-test`).
set -u
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}
rc=0
echo "== release build (build/) =="
(cd build && ctest --output-on-failure -j"$jobs" ${CTEST_ARGS:-}) || rc=1
echo "== sanitizer build (build-asan/: ASan + UBSan + LSan) =="
(cd build-asan && ctest --output-on-failure -j"$jobs" ${CTEST_ARGS:-}) || rc=1
also=""
if [ "${KIRO_TEST_IMAGE:-0}" = 1 ]; then
    also=" and the image test"
    echo "== container image (KIRO_TEST_IMAGE=1: podman build + run, scripts/image-test.sh) =="
    { deps/install.sh image && scripts/image-test.sh; } || rc=1
fi
if [ $rc -eq 0 ]; then echo "make test: both builds${also} passed"; else echo "make test: FAILED"; fi
exit $rc
