#!/usr/bin/env bash
# scripts/demo.sh - shoal's main job in one run: a relay and three devices
# on loopback.  Two devices sync through the relay with `shoal sync`, a third
# stays linked live (`shoal serve`); they edit the same documents, with
# conflicting writes and an offline period, and end up with equal state.
#
#   bash scripts/demo.sh
#
# Installs what is missing (scripts/deps.sh), builds `shoal` and
# `shoal-relay` in build/normal if needed, and works in a temp dir that it
# removes.  Every process it starts is stopped and reaped on exit.  Exits
# non-zero if the replicas do not converge.
set -euo pipefail

cd "$(dirname "$0")/.."
root=${SHOAL_BUILD_ROOT:-build}
case $root in /*) ;; *) root=$PWD/$root ;; esac
export PATH="/usr/bin:/bin:$PATH"

bash scripts/deps.sh
if [ ! -f "$root/normal/meson-private/coredata.dat" ]; then
    meson setup "$root/normal" -Dwerror=true >/dev/null
fi
echo "building shoal and shoal-relay..."
ninja -C "$root/normal" -j 2 tools/shoal tools/shoal-relay >/dev/null
shoal=$root/normal/tools/shoal
relay_bin=$root/normal/tools/shoal-relay

work=$(mktemp -d -t shoal-demo.XXXXXX)
pids=()
cleanup() {
    local pid i
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold= plain=; fi
say() { printf '\n%s%s%s\n' "$bold" "$*" "$plain"; }
# show ARGS...: the words as a shell would need them typed.
show() {
    local a out=
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_./=:*-]+$ ]]; then out+=" $a"; else out+=" '$a'"; fi
    done
    echo "${out# }"
}
# run DEVICE ARGS...: run shoal on a device, showing the command.
run() {
    echo "  \$ shoal -d $1 $(show "${@:2}")"
    "$shoal" -d "$work/$1" "${@:2}" | sed 's/^/    /'
}
# sync DEVICE: one exchange with the relay.
sync() {
    echo "  \$ shoal -d $1 sync \$RELAY"
    "$shoal" -d "$work/$1" sync "$relay_peer" --timeout 20 | sed 's/^/    /'
}
# wait_for SECONDS WHAT COMMAND...: poll COMMAND until it succeeds.
wait_for() {
    local secs=$1 what=$2 i
    shift 2
    for i in $(seq $((secs * 10))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "demo: timed out after ${secs}s waiting for $what" >&2
    return 1
}
lines_at_least() { [ "$(wc -l <"$1")" -ge "$2" ]; }
same_digest() { [ "$("$shoal" -d "$work/$1" digest --full)" = "$("$shoal" -d "$work/$2" digest --full)" ]; }
has_doc() { "$shoal" -d "$work/$1" get "$2" "$3"; }

# start_office: the office device as a live replica linked to the relay.
start_office() {
    echo "  \$ shoal -d office serve --peer \$RELAY --events &"
    "$shoal" -d "$work/office" serve --peer "$relay_peer" --events \
        >"$work/office.out" 2>>"$work/office.log" &
    office_pid=$!
    pids+=("$office_pid")
    wait_for 10 "the office to start" lines_at_least "$work/office.out" 1
}

say "A relay and three devices, each with its own Ed25519 identity"
for dev in till scanner office; do
    printf '  %-8s id: %s\n' "$dev" "$("$shoal" -d "$work/$dev" init)"
    "$shoal" -d "$work/$dev" init >>"$work/allow"
done
echo "  \$ shoal-relay -d relay --listen 'tcp://127.0.0.1:*' --allow allow &"
"$relay_bin" -d "$work/relay" --listen 'tcp://127.0.0.1:*' --allow "$work/allow" \
    --status-interval 0 >"$work/relay.out" 2>"$work/relay.log" &
pids+=($!)
wait_for 10 "the relay to start" lines_at_least "$work/relay.out" 2
endpoint=$(sed -n 1p "$work/relay.out")
relay_id=$(sed -n 2p "$work/relay.out" | cut -d' ' -f2)
relay_peer="$endpoint@$relay_id"
echo "  relay listens on $endpoint (the OS picked the port), id $relay_id"
echo "  RELAY=$endpoint@<relay id>"

say "The office stays linked live; the till creates two products and syncs"
start_office
run till put items widget '{"name":"Widget","price":10}'
run till incr items widget stock 5
run till insert items widget tags 0 '"tools"'
run till put items gadget '{"name":"Gadget","price":25}'
sync till
wait_for 20 "the office to receive the products" has_doc office items gadget
echo "  the office received them live:"
sed 's/^/    /' "$work/office.out" | grep '"remote":true' | sort -u
sync scanner

say "The office goes offline; everybody keeps editing"
echo "  \$ kill -TERM <office>   (its replica closes cleanly)"
kill -TERM "$office_pid"
wait "$office_pid" || true
echo "  till:"
run till put items widget '{"price":12}'
run till incr items widget stock 3
run till insert items widget tags 0 '"sale"'
run till del items gadget
echo "  scanner:"
run scanner put items widget '{"price":11,"shelf":"B4"}'
run scanner incr items widget stock -1
run scanner insert items widget tags 1 '"metal"'
run scanner put items gadget '{"price":20}'
echo "  office (offline):"
run office incr items widget stock -2
run office put items bolt '{"name":"Bolt","price":0.25}'
echo
echo "  till    sees widget: $("$shoal" -d "$work/till" get items widget)"
echo "  scanner sees widget: $("$shoal" -d "$work/scanner" get items widget)"
echo "  office  sees widget: $("$shoal" -d "$work/office" get items widget)"

say "The till and the scanner sync through the relay"
sync till
sync scanner
sync till

say "The office comes back and catches up (both ways) over its live link"
start_office
wait_for 30 "the office to catch up with the relay" same_digest office relay
sync till
sync scanner

say "Converged documents"
for dev in till scanner office relay; do
    dir=$work/$dev
    echo "  $dev:"
    echo "    items/widget: $("$shoal" -d "$dir" get items widget)"
    if gadget=$("$shoal" -d "$dir" get items gadget 2>&1); then
        echo "    items/gadget: $gadget"
    else
        echo "    items/gadget: deleted (the delete beat the concurrent update)"
    fi
    echo "    items/bolt:   $("$shoal" -d "$dir" get items bolt)"
done
cat <<'EOF'

  price:  last writer wins (the scanner wrote after the till)
  stock:  5 + 3 - 1 - 2 = 5, every increment kept, the offline one too
  tags:   both inserts kept, in one order everywhere
  gadget: deleted; a delete wins over updates made concurrently
  bolt:   written offline by the office, delivered when it came back
EOF

say "Per-peer state in the relay (kill -USR1 <relay> logs it as JSON)"
kill -USR1 "${pids[0]}"
wait_for 10 "the relay to log its peers" grep -q ' peers \[' "$work/relay.log"
names=()
for dev in till scanner office; do
    names+=(-e "s/$("$shoal" -d "$work/$dev" init)/$dev/g")
done
grep ' peers \[' "$work/relay.log" | tail -1 | sed 's/.* peers \[//; s/\]$//' |
    sed 's/},{/}\n{/g' | sed "${names[@]}" | sed 's/^/  /'
echo "  (\`shoal -d relay peers\` prints the same from another process, as last persisted)"

say "Digests"
ok=1
v0=$("$shoal" -d "$work/till" digest)
f0=$("$shoal" -d "$work/till" digest --full)
for dev in till scanner office relay; do
    v=$("$shoal" -d "$work/$dev" digest)
    f=$("$shoal" -d "$work/$dev" digest --full)
    printf '  %-8s visible %s\n  %-8s full    %s\n' "$dev" "$v" "" "$f"
    if [ "$v" != "$v0" ] || [ "$f" != "$f0" ]; then ok=0; fi
done
if [ "$ok" = 1 ]; then
    say "Converged: the relay and all three devices hold the same state."
else
    say "NOT converged: the digests differ." >&2
    exit 1
fi
