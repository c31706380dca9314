#!/usr/bin/env bash
# Runs every libFuzzer target in build-fuzz/ for FUZZ_SECONDS (default 60) from a scratch copy of its
# committed seed corpus (tests/fuzz/corpus/<name>/), so the repository's corpus stays small. Prints
# each target's execution count and coverage; fails on the first finding (the crash file is kept in
# build-fuzz/findings/). FUZZ_TARGETS="eventstream anthropic_req" restricts the set.
set -u
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
out=build-fuzz/findings
mkdir -p "$out"
rc=0
for bin in build-fuzz/tests/fuzz/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin"); name=${name#fuzz_}
    if [ -n "${FUZZ_TARGETS:-}" ] && ! [[ " $FUZZ_TARGETS " == *" $name "* ]]; then continue; fi
    work=$(mktemp -d)
    [ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$work/"
    log=$(mktemp)
    "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$out/$name-" -rss_limit_mb=2048 "$work" >"$log" 2>&1
    status=$?
    runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' | tail -n1)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -n1 | grep -Eo '[0-9]+')
    if [ $status -ne 0 ]; then
        echo "fuzz $name: FINDING (exit $status) after ${runs:-?} runs; see $out/"
        tail -n 40 "$log"
        rc=1
    else
        echo "fuzz $name: ${runs:-?} runs in ${secs}s, coverage ${cov:-?} edges, no finding"
    fi
    rm -rf "$work" "$log"
done
exit $rc
