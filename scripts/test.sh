#!/usr/bin/env bash
# scripts/test.sh - the one command that runs every test of shoal.
#
#   bash scripts/test.sh
#
# 1. scripts/deps.sh installs the Debian packages that are missing.
# 2. A normal build (build/normal) runs every meson test suite.
# 3. An ASan+UBSan build (build/asan) runs the C suites ("c").
# 4. A clang libFuzzer build (build/fuzz, scripts/fuzz.sh) replays every
#    seed corpus of test/fuzz/ and fuzzes each target briefly (a fixed
#    seed and number of inputs, test/fuzz/run.sh): suite "fuzz".
# The last line is "N passed, N failed" over the meson tests of all runs;
# the exit status is non-zero when a build or a test failed or no test ran.
#
# SHOAL_BUILD_ROOT (default: build) moves every build directory.
set -uo pipefail

cd "$(dirname "$0")/.."
root=${SHOAL_BUILD_ROOT:-build}
case $root in /*) ;; *) root=$PWD/$root ;; esac

# Use Debian's interpreter and tools even when another python3 (a venv, a
# pyenv shim) comes first on PATH: the packages deps.sh installs are there.
export PATH="/usr/bin:/bin:$PATH"
export PYTHON=/usr/bin/python3

bash scripts/deps.sh || {
    echo "test.sh: installing dependencies failed" >&2
    echo "0 passed, 1 failed"
    exit 1
}

build_failures=0

# setup DIR OPTIONS...: configure DIR (again) with OPTIONS.
setup() {
    local dir=$1
    shift
    if [ -f "$dir/meson-private/coredata.dat" ]; then
        meson setup --reconfigure "$dir" "$@"
    else
        meson setup "$dir" "$@"
    fi
}

# run_suite NAME DIR [meson test options]: build DIR and run its tests;
# a failed build counts as one failure.
run_suite() {
    local name=$1 dir=$2
    shift 2
    rm -f "$dir/meson-logs/testlog.json"
    echo "=== $name: build ($dir)"
    if ! meson compile -C "$dir" -j 2; then
        echo "test.sh: $name build failed" >&2
        build_failures=$((build_failures + 1))
        return
    fi
    echo "=== $name: tests"
    meson test -C "$dir" --print-errorlogs --num-processes 2 "$@" || true
}

echo "=== normal: configure"
if setup "$root/normal" -Dwerror=true; then
    run_suite normal "$root/normal"
else
    echo "test.sh: configuring $root/normal failed" >&2
    build_failures=$((build_failures + 1))
fi

# LeakSanitizer cannot run under ptrace (some containers, debuggers): probe
# it once and turn leak detection off only where it cannot work.
leaks=0
probe=$(mktemp -d -t shoal-lsan.XXXXXX)
printf 'int main(void) { return 0; }\n' >"$probe/p.c"
if gcc -fsanitize=address "$probe/p.c" -o "$probe/p" 2>/dev/null &&
    ASAN_OPTIONS=detect_leaks=1 "$probe/p" >/dev/null 2>&1; then
    leaks=1
else
    echo "test.sh: LeakSanitizer does not work here; leak detection off" >&2
fi
rm -rf "$probe"
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=$leaks:print_summary=1"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1"

echo "=== asan: configure"
if setup "$root/asan" -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false; then
    run_suite asan "$root/asan" --suite c --timeout-multiplier 2
else
    echo "test.sh: configuring $root/asan failed" >&2
    build_failures=$((build_failures + 1))
fi

# The fuzz stage: its own clang build (the gcc builds above are untouched);
# the sanitizer options above apply.
echo "=== fuzz: configure and build"
rm -f "$root/fuzz/meson-logs/testlog.json"
if SHOAL_BUILD_ROOT=$root bash scripts/fuzz.sh setup; then
    echo "=== fuzz: replay every corpus, then a fixed number of inputs per target"
    meson test -C "$root/fuzz" --no-rebuild --print-errorlogs --num-processes 2 --suite fuzz ||
        true
else
    echo "test.sh: the fuzz build failed" >&2
    build_failures=$((build_failures + 1))
fi

# Count meson's results over every run.  testlog.json has one JSON object
# per line; each test's outcome is its "result".
count() {
    local logs=() f
    for f in "$root/normal/meson-logs/testlog.json" "$root/asan/meson-logs/testlog.json" \
        "$root/fuzz/meson-logs/testlog.json"; do
        [ -f "$f" ] && logs+=("$f")
    done
    [ "${#logs[@]}" -gt 0 ] || {
        echo "0 0 0"
        return
    }
    /usr/bin/python3 - "${logs[@]}" <<'PY'
import json, sys
ok = bad = skip = 0
for path in sys.argv[1:]:
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line).get("result")
            if r in ("OK", "EXPECTEDFAIL"):
                ok += 1
            elif r == "SKIP":
                skip += 1
            else:
                bad += 1
print(ok, bad, skip)
PY
}

read -r passed failed skipped < <(count)
failed=$((failed + build_failures))
echo "skipped: $skipped"
echo "$passed passed, $failed failed"
if [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
    exit 1
fi
exit 0
