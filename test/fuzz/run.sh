#!/usr/bin/env bash
# test/fuzz/run.sh MODE FUZZER CORPUS [RUNS]: one libFuzzer target as a
# meson test.
#   replay  run every file of CORPUS once (no fuzzing, nothing written).
#   run     fuzz RUNS inputs (default 10000) starting from a copy of CORPUS
#           (the checked-in corpus is never written), with libFuzzer's seed
#           $SHOAL_FUZZ_SEED (default 1), so that every run of the test
#           tries the same inputs in the same order: a machine either runs
#           them all or, stopped by the cap of $SHOAL_FUZZ_SECONDS (default
#           60) seconds, a prefix of them, and never meets an input another
#           machine did not.  SHOAL_FUZZ_RUNS overrides RUNS.
# A crash, leak or sanitizer report fails the test; the input is kept as
# $SHOAL_FUZZ_ARTIFACTS/NAME-crash-... (default: the build's meson-logs).
# The last line is "N passed, N failed".
set -uo pipefail
mode=$1 exe=$2 corpus=$3 runs=${SHOAL_FUZZ_RUNS:-${4:-10000}}
name=$(basename "$exe")
artifacts=${SHOAL_FUZZ_ARTIFACTS:-$(dirname "$exe")/../../meson-logs/fuzz-artifacts}
mkdir -p "$artifacts"
# LeakSanitizer cannot run under ptrace (scripts/test.sh probes it and
# exports detect_leaks=0 there); libFuzzer's own leak check follows it.
leaks=1
case ${ASAN_OPTIONS:-} in *detect_leaks=0*) leaks=0 ;; esac
# A crash exits 1, not libFuzzer's default 77, which meson reads as a
# skipped test (a crash then passed unnoticed).
common=(-detect_leaks=$leaks -rss_limit_mb=2048 -timeout=25 -error_exitcode=1 -timeout_exitcode=1
    -artifact_prefix="$artifacts/$name-")
[ -d "$corpus" ] || { echo "$name: no corpus at $corpus"; echo "0 passed, 1 failed"; exit 1; }
case $mode in
replay)
    files=("$corpus"/*)
    [ -e "${files[0]}" ] || { echo "$name: empty corpus"; echo "0 passed, 1 failed"; exit 1; }
    "$exe" "${common[@]}" "${files[@]}" 2>&1 | tail -n 20
    rc=${PIPESTATUS[0]}
    echo "$name: replayed ${#files[@]} inputs"
    ;;
run)
    tmp=$(mktemp -d -t shoal-fuzz-corpus.XXXXXX)
    trap 'rm -rf "$tmp"' EXIT
    cp "$corpus"/* "$tmp"/ 2>/dev/null || true
    echo "$name: seed ${SHOAL_FUZZ_SEED:-1}, $runs runs, at most ${SHOAL_FUZZ_SECONDS:-60} s"
    "$exe" "${common[@]}" -seed="${SHOAL_FUZZ_SEED:-1}" -runs="$runs" \
        -max_total_time="${SHOAL_FUZZ_SECONDS:-60}" -print_final_stats=1 "$tmp" 2>&1 |
        grep -v '^#[0-9]*.*\(NEW\|REDUCE\|pulse\)' | tail -n 40
    rc=${PIPESTATUS[0]}
    ;;
*)
    echo "usage: run.sh replay|run FUZZER CORPUS" >&2
    exit 2
    ;;
esac
if [ "$rc" -eq 0 ]; then
    echo "1 passed, 0 failed"
else
    echo "$name: failed (exit $rc); inputs kept under $artifacts"
    echo "0 passed, 1 failed"
fi
exit "$rc"
