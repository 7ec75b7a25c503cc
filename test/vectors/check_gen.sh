#!/usr/bin/env bash
# test/vectors/check_gen.sh GEN DIR: run the vector generator GEN into a
# temporary directory and compare its output with the checked-in DIR, byte
# for byte, both ways (no file missing, none extra).
set -euo pipefail
gen=$1 dir=$2
tmp=$(mktemp -d -t shoal-vectors.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$gen" "$tmp/out"
status=0
for f in "$tmp"/out/*; do
    name=$(basename "$f")
    if ! cmp -s "$f" "$dir/$name"; then
        echo "vectors: $name differs from the generator's output (or is missing)" >&2
        status=1
    fi
done
for f in "$dir"/*.bin "$dir"/index.txt; do
    name=$(basename "$f")
    [ -e "$tmp/out/$name" ] || {
        echo "vectors: $name is checked in but no longer generated" >&2
        status=1
    }
done
if [ "$status" -eq 0 ]; then
    echo "vectors: $(ls "$tmp/out" | wc -l) files match the generator"
    echo "1 passed, 0 failed"
else
    echo "0 passed, 1 failed"
fi
exit "$status"
