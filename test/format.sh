#!/usr/bin/env bash
# test/format.sh - check that every tracked C file is laid out as the
# top-level .clang-format says (clang-format 14, from scripts/deps.sh).
#
#   bash test/format.sh SOURCE_ROOT
#
# Prints each file that differs and "N passed, N failed".  Fix with
#   clang-format -i FILE...
set -u
root=${1:?usage: format.sh SOURCE_ROOT}
cd "$root" || exit 1
fmt=$(command -v clang-format-14 || command -v clang-format) || {
    echo "format.sh: clang-format not found (scripts/deps.sh installs it)" >&2
    echo "0 passed, 1 failed"
    exit 1
}
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    mapfile -t files < <(git ls-files -co --exclude-standard -- '*.c' '*.h')
else
    mapfile -t files < <(find . -path ./build -prune -o \( -name '*.c' -o -name '*.h' \) -print)
fi
passed=0
failed=0
for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    if "$fmt" --style=file --dry-run -Werror "$f" >/dev/null 2>&1; then
        passed=$((passed + 1))
    else
        echo "not formatted: $f (clang-format -i $f)"
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
