#!/usr/bin/env bash
# test/symbols.sh - the shared library exports the public API and nothing
# else: every defined dynamic symbol starts with shoal_, none with shoal__
# (internal, built with hidden visibility), and no helper leaks unprefixed.
#
#   bash test/symbols.sh PATH/TO/libshoal.so
#
# Prints "N passed, N failed".
set -u

lib=${1:?usage: symbols.sh PATH/TO/libshoal.so}
passed=0
failed=0

if ! syms=$(nm -D --defined-only "$lib" 2>&1); then
    echo "FAIL nm -D $lib: $syms"
    echo "0 passed, 1 failed"
    exit 1
fi

# Names from lines "ADDR TYPE NAME"; type A entries are version nodes.
names=$(printf '%s\n' "$syms" | awk 'NF == 3 && $2 != "A" { print $3 }' | sed 's/@.*//' | LC_ALL=C sort -u)
count=$(printf '%s\n' "$names" | grep -c . || true)

if [ "$count" -gt 0 ]; then
    echo "ok   $count exported symbols"
    passed=$((passed + 1))
else
    echo "FAIL no exported symbols in $lib"
    failed=$((failed + 1))
fi

for required in shoal_replica_open shoal_strerror shoal_version shoal_import shoal_export; do
    if printf '%s\n' "$names" | grep -qx "$required"; then
        passed=$((passed + 1))
    else
        echo "FAIL public function $required is not exported"
        failed=$((failed + 1))
    fi
done

while IFS= read -r n; do
    [ -n "$n" ] || continue
    if [[ $n == shoal__* ]]; then
        echo "FAIL internal symbol exported: $n"
        failed=$((failed + 1))
    elif [[ $n == shoal_* ]]; then
        passed=$((passed + 1))
    else
        echo "FAIL symbol without the shoal_ prefix: $n"
        failed=$((failed + 1))
    fi
done <<<"$names"

echo "symbols: $count exported from $(basename "$lib")"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
