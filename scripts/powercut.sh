#!/usr/bin/env bash
# scripts/powercut.sh - the long power-cut run (docs/testing.md "Power
# cuts"): thousands of cuts over every workload of test/powercut/, in both
# disk models, at nice 19.  CI runs the same driver with 256 cuts (suite
# powercut); run this by hand before a release or after touching store/.
#
#   bash scripts/powercut.sh [--cuts N] [--seed S] [--build DIR] [driver options]
#
# --cuts N     cuts in all (default 2400), spread evenly over the cells
#              (workload x model x event/time) and ending on a whole round
# --seed S     the seed (default: a new one from the clock, printed first)
# --time-limit SEC  no new cut starts after SEC seconds (default 840)
# --build DIR  the meson build directory (default: build/normal if it
#              exists, else build); it is compiled first
# The workloads: durable, fast, import, net, big, create, durable2 and fast2
# (two cuts in a row), lying.  Other options go to test/powercut/driver.py
# (--workloads, which replaces that list, --models, --verbose).  The lying
# writer runs first alone, its deterministic proof (driver.py --lying),
# then as one more cell of the matrix, whose violations are counted and
# expected.  Exit status: non-zero on any violation by an honest workload,
# or when the lying writer is not caught.
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="/usr/bin:/bin:$PATH"

cuts=2400
tlimit=840
seed=$(( $(date +%s) % 1000000007 ))
build=
extra=()
while [ $# -gt 0 ]; do
    case $1 in
    --cuts) cuts=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --time-limit) tlimit=$2; shift 2 ;;
    *) extra+=("$1"); shift ;;
    esac
done
if [ -z "$build" ]; then
    if [ -d build/normal ]; then build=build/normal; else build=build; fi
fi
[ -d "$build" ] || {
    echo "powercut.sh: no build directory $build (meson setup $build first)" >&2
    exit 2
}
nice -n 19 meson compile -C "$build" -j 2 test/powercut/pc_work test/powercut/pc_restore \
    test/powercut/pcshim
bin=$build/test/powercut
echo "powercut.sh: $cuts cuts, seed $seed, build $build"
rc=0
nice -n 19 /usr/bin/python3 test/powercut/driver.py --bin "$bin" --seed "$seed" --lying || rc=1
nice -n 19 /usr/bin/python3 test/powercut/driver.py --bin "$bin" --seed "$seed" --cuts "$cuts" \
    --workloads durable,fast,import,net,big,create,durable2,fast2,lying --time-limit "$tlimit" "${extra[@]}" || rc=1
exit $rc
