#!/usr/bin/env bash
# scripts/fuzz.sh - build the libFuzzer targets and run fuzzing campaigns.
#
#   bash scripts/fuzz.sh setup                  configure and build BUILD/fuzz
#   bash scripts/fuzz.sh TARGET SECONDS [merge] fuzz one target
#   bash scripts/fuzz.sh minimise TARGET [MAX]  rebuild the checked-in corpus
#   bash scripts/fuzz.sh list                   the targets
#
# Targets are test/fuzz/fuzz_TARGET.c; seed corpora are test/fuzz/corpus/
# TARGET/.  The fuzz build uses clang-14 with the whole library compiled
# for coverage (-fsanitize=fuzzer-no-link) under ASan+UBSan; the gcc builds
# of scripts/test.sh are untouched.
#
# A campaign runs one libFuzzer process (nice 19, one job) for SECONDS over
# a working corpus BUILD/fuzz-corpus/TARGET (kept between campaigns, seeded
# from the checked-in corpus), writes crashes to BUILD/fuzz-artifacts/ and
# prints libFuzzer's final stats (exec/s, cov, ft, corpus size).  With
# "merge", the inputs that add coverage are merged (-merge=1) back into
# test/fuzz/corpus/TARGET/ afterwards: review and commit them.
#
# minimise replaces test/fuzz/corpus/TARGET/ by at most MAX (default 48)
# inputs chosen from it and the working corpus: libFuzzer's -merge=1, then
# a greedy cover of the edges those inputs reach (test/fuzz/mincorpus.py).
# Files named regress-* (reproducers of fixed bugs) are always kept.
#
# SHOAL_BUILD_ROOT (default: build) moves the build directories, as in
# scripts/test.sh; CC defaults to clang-14.
set -euo pipefail

cd "$(dirname "$0")/.."
root=${SHOAL_BUILD_ROOT:-build}
case $root in /*) ;; *) root=$PWD/$root ;; esac
export PATH="/usr/bin:/bin:$PATH"
dir=$root/fuzz
fuzzdir=$dir/test/fuzz

setup() {
    local opts=(-Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=false
        "-Dc_args=-fsanitize=fuzzer-no-link -fno-sanitize-recover=all")
    if [ -f "$dir/meson-private/coredata.dat" ]; then
        CC=${CC:-clang-14} meson setup --reconfigure "$dir" "${opts[@]}"
    else
        CC=${CC:-clang-14} meson setup "$dir" "${opts[@]}"
    fi
    meson compile -C "$dir" -j 2 fuzzers
}

targets() {
    local f
    for f in test/fuzz/fuzz_*.c; do
        f=${f#test/fuzz/fuzz_}
        [ "$f" = util.c ] || echo "${f%.c}"
    done
}

case ${1:-} in
setup)
    setup
    ;;
minimise)
    target=${2:?usage: fuzz.sh minimise TARGET [MAX]} cap=${3:-48}
    [ -x "$fuzzdir/fuzz_$target" ] || setup
    corpus=test/fuzz/corpus/$target
    tmp=$(mktemp -d -t shoal-fuzz-min.XXXXXX)
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/merged" "$root/fuzz-corpus/$target"
    nice -n 19 "$fuzzdir/fuzz_$target" -merge=1 -merge_control_file="$tmp/ctl" -detect_leaks=0 \
        "$tmp/merged" "$corpus" "$root/fuzz-corpus/$target" 2>&1 | grep MERGE-OUTER || true
    nice -n 19 /usr/bin/python3 test/fuzz/mincorpus.py "$fuzzdir/fuzz_$target" "$tmp/ctl" \
        "$tmp/min" "$cap"
    cp "$corpus"/regress-* "$tmp/min"/ 2>/dev/null || true
    rm -rf "$corpus"
    cp -r "$tmp/min" "$corpus"
    echo "fuzz.sh: $corpus now holds $(ls "$corpus" | wc -l) inputs ($(du -sk "$corpus" | cut -f1) KiB)"
    ;;
list)
    targets
    ;;
'' | -h | --help)
    sed -n '2,28p' "$0"
    exit 2
    ;;
*)
    target=$1 seconds=${2:?usage: fuzz.sh TARGET SECONDS [merge]} merge=${3:-}
    [ -f "test/fuzz/fuzz_$target.c" ] || {
        echo "fuzz.sh: no target $target (have: $(targets | tr '\n' ' '))" >&2
        exit 2
    }
    [ -x "$fuzzdir/fuzz_$target" ] || setup
    work=$root/fuzz-corpus/$target
    mkdir -p "$work" "$root/fuzz-artifacts"
    cp -n "test/fuzz/corpus/$target"/* "$work"/ 2>/dev/null || true
    leaks=1
    case ${ASAN_OPTIONS:-} in *detect_leaks=0*) leaks=0 ;; esac
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
    echo "fuzz.sh: $target for ${seconds}s, corpus $work"
    rc=0
    nice -n 19 "$fuzzdir/fuzz_$target" -max_total_time="$seconds" -print_final_stats=1 \
        -detect_leaks=$leaks -rss_limit_mb=2048 -timeout=25 \
        -artifact_prefix="$root/fuzz-artifacts/$target-" "$work" || rc=$?
    if [ "$merge" = merge ]; then
        "$fuzzdir/fuzz_$target" -merge=1 -detect_leaks=$leaks "test/fuzz/corpus/$target" "$work"
    fi
    exit "$rc"
    ;;
esac
