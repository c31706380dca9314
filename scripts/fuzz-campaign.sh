#!/usr/bin/env bash
# A long fuzzing campaign, one lane: runs each given target until it has executed RUNS inputs or SECONDS have
# passed, whichever comes first, at nice 19, from a persistent working corpus (build-fuzz/campaign/<name>/,
# seeded once from tests/fuzz/corpus/<name>/, and kept between runs so that a later run continues where the
# last one stopped). Appends one line per run to build-fuzz/campaign/results.tsv (date, commit, target,
# executions, seconds, coverage, features, outcome), which is what tests/fuzz/README.md's totals are made of.
# A finding stops the lane and is kept in build-fuzz/campaign/findings/.
#
#   scripts/fuzz-campaign.sh kiro_resp:10000000:3600 anthropic_req:10000000:1800
#
# FUZZ_MAX_LEN (default 4096) bounds the input size: small inputs run ~10x faster than the 100 KB Claude Code
# seeds (which the 60 s runs of `make fuzz` keep whole) and reach the same decoder states.
set -u
cd "$(dirname "$0")/.."
bdir=${FUZZ_BUILD:-build-fuzz} # where the fuzz binaries are (another build dir lets a rebuild not disturb a running lane)
camp=build-fuzz/campaign
mkdir -p "$camp/findings"
commit=${FUZZ_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)} # what the binaries were built from
maxlen=${FUZZ_MAX_LEN:-4096}
for spec in "$@"; do
    IFS=: read -r name runs secs <<<"$spec"
    bin=$bdir/tests/fuzz/fuzz_$name
    [ -x "$bin" ] || { echo "fuzz-campaign: no $bin (make fuzz-build)" >&2; exit 1; }
    work=$camp/$name
    if [ ! -d "$work" ]; then
        mkdir -p "$work"
        cp -r "tests/fuzz/corpus/$name/." "$work/"
    fi
    log=$camp/$name.$(date +%s).log
    start=$(date +%s)
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:malloc_context_size=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        nice -n 19 "$bin" -runs="$runs" -max_total_time="$secs" -max_len="$maxlen" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$camp/findings/$name-" "$work" >"$log" 2>&1
    status=$?
    took=$(($(date +%s) - start))
    execs=$(grep -Eo 'stat::number_of_executed_units: [0-9]+' "$log" | grep -Eo '[0-9]+' | tail -n1)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -n1 | grep -Eo '[0-9]+')
    ft=$(grep -Eo 'ft: [0-9]+' "$log" | tail -n1 | grep -Eo '[0-9]+')
    if [ $status -eq 0 ]; then outcome=none; else outcome="FINDING(exit $status)"; fi
    if [ -z "$execs" ]; then # killed before the final stats: the last progress line is a lower bound
        execs=">=$(grep -Eo '^#[0-9]+' "$log" | tail -n1 | tr -d '#')"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%F)" "$commit" "$name" "$execs" "$took" "${cov:-?}" "${ft:-?}" \
        "$outcome" >>"$camp/results.tsv"
    echo "fuzz-campaign $name: $execs executions in ${took}s, cov ${cov:-?}, ft ${ft:-?}, finding: $outcome"
    [ $status -eq 0 ] || exit 1
done
