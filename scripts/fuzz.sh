#!/usr/bin/env bash
# Runs every libFuzzer target in build-fuzz/ for FUZZ_SECONDS (default 60) from a scratch copy of its
# committed seed corpus (tests/fuzz/corpus/<name>/), so the repository's corpus stays small. Targets run
# FUZZ_PARALLEL at a time (default: the number of cores), one process each. Prints each target's execution
# count and coverage; fails if any target has a finding (the crashing input is kept in build-fuzz/findings/,
# reproduce with build-fuzz/tests/fuzz/fuzz_<name> <file>). FUZZ_TARGETS="eventstream anthropic_req"
# restricts the set. Used by `make fuzz` (60 s, CI) and by `make test` (a short pass, scripts/test.sh).
set -u
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
parallel=${FUZZ_PARALLEL:-$(nproc)}
out=build-fuzz/findings
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Symbolized stack traces in findings (llvm-symbolizer comes with Debian's llvm package: deps/install.sh test)
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && command -v llvm-symbolizer >/dev/null 2>&1; then
    export ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer)
fi

run_target() { # name bin -> writes $tmp/<name>.result
    local name=$1 bin=$2 work="$tmp/$1.corpus" log="$tmp/$1.log"
    mkdir -p "$work"
    [ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$work/"
    # -timeout: one input taking 10 s is a hang; the sanitizer options make leaks and UB fatal
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        "$bin" -max_total_time="$secs" -timeout=10 -print_final_stats=1 -artifact_prefix="$out/$name-" -rss_limit_mb=2048 \
        "$work" >"$log" 2>&1
    local status=$?
    local runs cov
    runs=$(grep -Eo 'stat::number_of_executed_units: [0-9]+' "$log" | grep -Eo '[0-9]+' | tail -n1)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -n1 | grep -Eo '[0-9]+')
    if [ $status -ne 0 ]; then
        {
            echo "fuzz $name: FINDING (exit $status) after ${runs:-?} runs; see $out/"
            grep -E 'check failed|ERROR|SUMMARY|runtime error|==[0-9]+==' "$log" | head -n 20
            tail -n 30 "$log"
        } >"$tmp/$name.result"
        return 1
    fi
    echo "fuzz $name: ${runs:-?} runs in ${secs}s, coverage ${cov:-?} edges, no finding" >"$tmp/$name.result"
}

names=()
running=0
for bin in build-fuzz/tests/fuzz/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    name=${name#fuzz_}
    if [ -n "${FUZZ_TARGETS:-}" ] && ! [[ " $FUZZ_TARGETS " == *" $name "* ]]; then continue; fi
    names+=("$name")
    run_target "$name" "$bin" &
    running=$((running + 1))
    if [ "$running" -ge "$parallel" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait
if [ ${#names[@]} -eq 0 ]; then
    echo "fuzz: no target in build-fuzz/tests/fuzz (make fuzz-build)" >&2
    exit 1
fi
rc=0
for name in "${names[@]}"; do
    cat "$tmp/$name.result"
    grep -q "no finding" "$tmp/$name.result" || rc=1
done
exit $rc
