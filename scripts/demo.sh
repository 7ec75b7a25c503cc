#!/usr/bin/env bash
# scripts/demo.sh - shoal's main job in one run: two devices edit the same
# documents offline, with conflicting writes, then swap bundles and agree.
#
#   bash scripts/demo.sh
#
# Installs what is missing (scripts/deps.sh), builds the `shoal` tool in
# build/normal if needed, and works in a temp dir that it removes.  Exits
# non-zero if the two replicas do not converge.
set -euo pipefail

cd "$(dirname "$0")/.."
root=${SHOAL_BUILD_ROOT:-build}
case $root in /*) ;; *) root=$PWD/$root ;; esac
export PATH="/usr/bin:/bin:$PATH"

bash scripts/deps.sh
if [ ! -f "$root/normal/meson-private/coredata.dat" ]; then
    meson setup "$root/normal" >/dev/null
fi
echo "building the shoal tool..."
ninja -C "$root/normal" -j 2 tools/shoal >/dev/null
shoal=$root/normal/tools/shoal

work=$(mktemp -d -t shoal-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
till=$work/till     # a point-of-sale device
scan=$work/scanner  # a stock scanner in the same shop

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold= plain=; fi
say() { printf '\n%s%s%s\n' "$bold" "$*" "$plain"; }
# show ARGS...: the words as a shell would need them typed.
show() {
    local a out=
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_./=-]+$ ]]; then out+=" $a"; else out+=" '$a'"; fi
    done
    echo "${out# }"
}
run() {
    echo "  \$ shoal -d $(basename "$1") $(show "${@:2}")"
    "$shoal" -d "$@" | sed 's/^/    /'
}

say "Two replicas, each with its own Ed25519 identity"
id_till=$("$shoal" -d "$till" init)
id_scan=$("$shoal" -d "$scan" init)
echo "  till    id: $id_till"
echo "  scanner id: $id_scan"

say "The till creates two products and shares them with the scanner"
run "$till" put items widget '{"name":"Widget","price":10}'
run "$till" incr items widget stock 5
run "$till" insert items widget tags 0 '"tools"'
run "$till" put items gadget '{"name":"Gadget","price":25}'
"$shoal" -d "$till" export >"$work/base.bundle"
printf '  $ shoal -d till export > base.bundle  (%s bytes)\n' "$(wc -c <"$work/base.bundle")"
printf '  $ shoal -d scanner import < base.bundle\n    '
"$shoal" -d "$scan" import <"$work/base.bundle"

say "The network goes down; both devices keep editing"
echo "  till:"
run "$till" put items widget '{"price":12}'
run "$till" incr items widget stock 3
run "$till" insert items widget tags 0 '"sale"'
run "$till" del items gadget
echo "  scanner:"
run "$scan" put items widget '{"price":11,"shelf":"B4"}'
run "$scan" incr items widget stock -1
run "$scan" insert items widget tags 1 '"metal"'
run "$scan" put items gadget '{"price":20}'
echo
echo "  till    sees widget: $("$shoal" -d "$till" get items widget)"
echo "  scanner sees widget: $("$shoal" -d "$scan" get items widget)"

say "Back online: each side sends only what the other lacks"
"$shoal" -d "$till" version >"$work/till.vv"
"$shoal" -d "$scan" version >"$work/scan.vv"
"$shoal" -d "$till" export --since "$work/scan.vv" >"$work/till-to-scan.bundle"
"$shoal" -d "$scan" export --since "$work/till.vv" >"$work/scan-to-till.bundle"
printf '  $ shoal -d scanner import < till-to-scan.bundle\n    '
"$shoal" -d "$scan" import <"$work/till-to-scan.bundle"
printf '  $ shoal -d till import < scan-to-till.bundle\n    '
"$shoal" -d "$till" import <"$work/scan-to-till.bundle"

say "Converged documents"
for side in till scanner; do
    dir=$work/$side
    echo "  $side:"
    echo "    items/widget: $("$shoal" -d "$dir" get items widget)"
    if gadget=$("$shoal" -d "$dir" get items gadget 2>&1); then
        echo "    items/gadget: $gadget"
    else
        echo "    items/gadget: deleted (the delete beat the concurrent update)"
    fi
    echo "    items: $("$shoal" -d "$dir" ls items | paste -sd ' ')"
done
cat <<'EOF'

  price:  last writer wins (the later of the two offline writes)
  stock:  5 + 3 - 1 = 7, both increments kept
  tags:   both inserts kept, in one order on both sides
  gadget: deleted; a delete wins over updates made concurrently
EOF

say "Digests"
d_till=$("$shoal" -d "$till" digest)
d_scan=$("$shoal" -d "$scan" digest)
f_till=$("$shoal" -d "$till" digest --full)
f_scan=$("$shoal" -d "$scan" digest --full)
echo "  till    visible $d_till"
echo "  scanner visible $d_scan"
echo "  till    full    $f_till"
echo "  scanner full    $f_scan"
if [ "$d_till" = "$d_scan" ] && [ "$f_till" = "$f_scan" ]; then
    say "Converged: both replicas hold the same state."
else
    say "NOT converged: the digests differ." >&2
    exit 1
fi
