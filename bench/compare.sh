#!/usr/bin/env bash
# bench/compare.sh - run shoal-bench trace and the peer CRDT libraries on the
# same editing trace, in one go on one machine, and print the ratios that
# docs/benchmarks.md sets as targets.
#
#   bench/compare.sh [--runs N] [--bench PATH] [--trace FILE] [--peers DIR]
#
#   --runs N    runs per variant, medians reported (default 3)
#   --bench     the shoal-bench binary (default: shoal-bench next to a
#               build dir found under the repo, else the one on PATH)
#   --trace     the gzipped trace (default: ../shared/data/automerge-paper.json.gz
#               relative to the repository root)
#   --peers     the peer benchmark sources, with package.json and
#               trace-bench.mjs (default: ../shared/peers relative to the root)
#
# The peer sources are copied into a temp dir under $TMPDIR, `npm ci`
# installs their pinned packages there, and the dir is removed at the end
# (set SHOAL_PEERS_WORK=DIR to keep and reuse an installed copy).  Output:
# the JSON lines of both benchmarks, then a table of ratios vs targets.
# Machines are noisy: compare ratios from one run, never absolute times from
# different runs.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
runs=3
bench=""
trace="$root/../shared/data/automerge-paper.json.gz"
peers="$root/../shared/peers"

while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --bench) bench=$2; shift 2 ;;
        --trace) trace=$2; shift 2 ;;
        --peers) peers=$2; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

if [ -z "$bench" ]; then
    for b in "$root"/build*/bench/shoal-bench; do
        if [ -x "$b" ]; then bench=$b; break; fi
    done
    [ -n "$bench" ] || bench=$(command -v shoal-bench || true)
fi
[ -x "$bench" ] || { echo "compare.sh: no shoal-bench found (use --bench)" >&2; exit 2; }
[ -f "$trace" ] || { echo "compare.sh: no trace at $trace (use --trace)" >&2; exit 2; }
[ -f "$peers/trace-bench.mjs" ] || { echo "compare.sh: no peers at $peers (use --peers)" >&2; exit 2; }
command -v node >/dev/null || { echo "compare.sh: node is needed for the peers" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/shoal-compare-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# trace-bench.mjs reads ../data/automerge-paper.json.gz next to its own dir.
work=${SHOAL_PEERS_WORK:-$tmp/work}
if [ ! -d "$work/peers/node_modules" ]; then
    mkdir -p "$work/peers" "$work/data"
    cp "$peers/package.json" "$peers/package-lock.json" "$peers/trace-bench.mjs" "$work/peers/"
    (cd "$work/peers" && npm ci --no-audit --no-fund >&2)
fi
mkdir -p "$work/data"
if [ ! "$work/data/automerge-paper.json.gz" -ef "$trace" ]; then
    ln -sf "$(cd "$(dirname "$trace")" && pwd)/$(basename "$trace")" "$work/data/automerge-paper.json.gz"
fi

echo "# machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "# shoal-bench trace --runs $runs" >&2
"$bench" trace "$trace" --runs "$runs" | tee "$tmp/shoal.jsonl" ||
    echo "compare.sh: shoal-bench trace failed (ratios below use what it printed)" >&2
echo "# peers --runs $runs" >&2
(cd "$work/peers" && node trace-bench.mjs --runs "$runs" \
    yjs-perop yjs-delta diamond-types-perop automerge-batch) | tee "$tmp/peers.jsonl"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

node - "$tmp/shoal.jsonl" "$tmp/peers.jsonl" <<'EOF'
const fs = require('fs')
const lines = (f) => fs.readFileSync(f, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
const shoal = Object.fromEntries(lines(process.argv[2]).map((o) => [o.variant, o]))
// With --runs >= 2 the peers print one line per run, then a median line
// (with `stat`); the last line of each system is the one to use.
const peers = {}
for (const o of lines(process.argv[3])) peers[o.system] = o
const need = (o, k, what) => { if (!o || typeof o[k] !== 'number') throw new Error(`missing ${what}.${k}`); return o[k] }
const rows = []
const row = (name, value, target, ok, detail) => rows.push({ name, value, target, ok, detail })
try {
  const crdt = need(shoal.crdt, 'ms', 'crdt')
  const yPer = need(peers['yjs-perop'], 'ms_apply', 'yjs-perop')
  const dt = need(peers['diamond-types-perop'], 'ms_apply', 'diamond-types-perop')
  const yDelta = need(peers['yjs-delta'], 'ms_apply', 'yjs-delta')
  const amBytes = need(peers['automerge-batch'], 'encoded_bytes', 'automerge-batch')
  const b100 = need(shoal['local-batch100'], 'ms', 'local-batch100')
  const dur = shoal['local-batch100-durable']
  const txn = shoal['local-txn']
  const rem = shoal.remote
  row('yjs-perop ms / crdt ms', yPer / crdt, '>= 30', yPer / crdt >= 30, `${yPer} / ${crdt}`)
  row('diamond-types-perop ms / crdt ms', dt / crdt, '>= 1', dt / crdt >= 1, `${dt} / ${crdt}`)
  row('yjs-delta ms / local-batch100 ms', yDelta / b100, '>= 5', yDelta / b100 >= 5, `${yDelta} / ${b100}`)
  if (dur) {
    const lim = dur.floor_ms + 1.5 * b100
    row('local-batch100-durable ms / (floor + 1.5 x batch100)', dur.ms / lim, '<= 1', dur.ms <= lim,
      `${dur.ms} / (${dur.floor_ms} + 1.5 x ${b100})`)
  }
  if (txn) row('local-txn bytes / automerge-batch bytes', txn.bytes / amBytes, '<= 2', txn.bytes <= 2 * amBytes,
    `${txn.bytes} / ${amBytes}`)
  if (rem) {
    const lim = rem.verify_floor_ms + 2 * crdt
    row('remote ms / (verify floor + 2 x crdt)', rem.ms / lim, '<= 1', rem.ms <= lim,
      `${rem.ms} / (${rem.verify_floor_ms} + 2 x ${crdt})`)
  }
} catch (e) {
  console.error('compare.sh: ' + e.message)
  process.exitCode = 1
}
console.log('\n| ratio | value | target | met | from |\n| --- | --- | --- | --- | --- |')
for (const r of rows) console.log(`| ${r.name} | ${r.value.toFixed(2)} | ${r.target} | ${r.ok ? 'yes' : 'NO'} | ${r.detail} |`)
EOF
