#!/usr/bin/env bash
# test/cli/test_cli.sh - end-to-end tests of the `shoal` tool.
#
#   bash test/cli/test_cli.sh PATH/TO/shoal
#
# Every check runs the real binary on real replica directories in a temp
# dir (removed on exit).  Prints "N passed, N failed"; exits 1 on any failure.
set -u

SHOAL=${1:?usage: test_cli.sh PATH/TO/shoal}
case $SHOAL in /*) ;; *) SHOAL=$PWD/$SHOAL ;; esac

T=$(mktemp -d -t shoal-cli.XXXXXX) || exit 1
serve_pid=
trap '[ -n "$serve_pid" ] && kill -KILL "$serve_pid" 2>/dev/null; rm -rf "$T"' EXIT

passed=0
failed=0
out=
err=
rc=0

pass() { passed=$((passed + 1)); }
fail() {
    failed=$((failed + 1))
    echo "FAIL: $*" >&2
}

# run ARGS...: run shoal; sets $out (stdout), $err (stderr), $rc.
run() {
    out=$("$SHOAL" "$@" 2>"$T/stderr")
    rc=$?
    err=$(cat "$T/stderr")
}

# run_in FILE ARGS...: like run, with stdin from FILE.
run_in() {
    local f=$1
    shift
    out=$("$SHOAL" "$@" <"$f" 2>"$T/stderr")
    rc=$?
    err=$(cat "$T/stderr")
}

# check_eq NAME EXPECTED ACTUAL
check_eq() {
    if [ "$2" == "$3" ]; then pass; else fail "$1: expected [$2], got [$3]"; fi
}

# check_re NAME REGEX ACTUAL
check_re() {
    if [[ $3 =~ $2 ]]; then pass; else fail "$1: [$3] does not match /$2/"; fi
}

# check_ne NAME A B: A and B differ.
check_ne() {
    if [ "$2" != "$3" ]; then pass; else fail "$1: both are [$2]"; fi
}

# expect NAME RC ARGS...: run and check the exit code; on an error also
# check that stderr is exactly one line "shoal: ...".
expect() {
    local name=$1 want=$2
    shift 2
    run "$@"
    check_rc "$name" "$want"
}

expect_in() {
    local name=$1 want=$2 f=$3
    shift 3
    run_in "$f" "$@"
    check_rc "$name" "$want"
}

check_rc() {
    local name=$1 want=$2
    if [ "$rc" -ne "$want" ]; then
        fail "$name: exit $rc, expected $want (stderr: $err)"
        return
    fi
    pass
    if [ "$want" -ne 0 ]; then
        local lines
        lines=$(wc -l <"$T/stderr")
        if [ "$lines" -eq 1 ] && [[ $err == "shoal: "* ]]; then
            pass
        else
            fail "$name: stderr is not one 'shoal: ' line: [$err]"
        fi
    fi
}

# bundle_count FILE: the change count in a bundle's header (u32 BE at 8).
bundle_count() {
    local b
    b=($(od -An -tu1 -j8 -N4 "$1"))
    echo $(((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]))
}

# flip_byte FILE OFFSET: invert the bits of one byte in place.
flip_byte() {
    local v
    v=$(od -An -tu1 -j"$2" -N1 "$1" | tr -d ' ')
    printf "\\x$(printf %02x $((v ^ 255)))" |
        dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# digest_of DIR [--full]: the digest, or "(no digest)" on failure, so two
# failures never compare equal.
digest_of() {
    local d
    if d=$("$SHOAL" -d "$1" digest ${2:+"$2"} 2>/dev/null) && [[ $d =~ ^[0-9a-f]{64}$ ]]; then
        echo "$d"
    else
        echo "(no digest: $RANDOM$RANDOM)"
    fi
}

A=$T/a
B=$T/b

# ---------------------------------------------------------------- help
expect "--help" 0 --help
check_re "--help text" "exit status" "$out"
check_re "--help lists exit code 4" "4  input rejected" "$out"
check_re "--help lists exit code 7" "7  the replica is damaged" "$out"
expect "help" 0 help
check_re "help text" "usage: shoal" "$out"
expect "--version" 0 --version
check_re "--version text" "^shoal [0-9]+\.[0-9]+\.[0-9]+ \(libshoal [0-9.]+\)$" "$out"

# ---------------------------------------------------------------- init
expect "init" 0 -d "$A" init
id_a=$out
check_re "init prints a 64-hex id" "^[0-9a-f]{64}$" "$id_a"
expect "init again" 0 -d "$A" init
check_eq "init id is stable" "$id_a" "$out"
expect "init B" 0 -d "$B" init
id_b=$out
check_re "B's id is 64 hex" "^[0-9a-f]{64}$" "$id_b"
check_ne "two replicas have different ids" "$id_a" "$id_b"
expect "init creates missing parents" 0 -d "$T/p1/p2/r" init
[ -d "$T/p1/p2/r" ] && pass || fail "init did not create $T/p1/p2/r"
check_eq "new replica dir is private" 700 "$(stat -c %a "$T/p1/p2/r")"
: >"$T/plainfile"
expect "init under a file -> 1" 1 -d "$T/plainfile/r" init
check_re "init names the file" "plainfile: it exists and is not a directory" "$err"

# ---------------------------------------------------------------- put / get
expect "put" 0 -d "$A" put c d1 '{"a":1,"b":"x","c":true,"n":null,"f":1.5,"neg":-7}'
check_eq "put prints nothing" "" "$out"
expect "get" 0 -d "$A" get c d1
check_eq "get after put" '{"a":1,"b":"x","c":true,"f":1.5,"n":null,"neg":-7}' "$out"
expect "put again (one change, two fields)" 0 -d "$A" put c d1 '{"a":2,"s":"\u00e9\u0000z"}'
expect "get after second put" 0 -d "$A" get c d1
check_eq "put overwrites, keeps others, NUL and UTF-8 kept" \
    '{"a":2,"b":"x","c":true,"f":1.5,"n":null,"neg":-7,"s":"é\u0000z"}' "$out"
expect "put real stays real" 0 -d "$A" put c d1 '{"f":2.0,"z":-0.0,"big":9223372036854775807,"small":-9223372036854775808}'
expect "get reals" 0 -d "$A" get c d1
check_re "2.0 is a real" '"f":2\.0[,}]' "$out"
check_re "-0.0 keeps its sign" '"z":-0\.0[,}]' "$out"
check_re "int64 max" '"big":9223372036854775807[,}]' "$out"
check_re "int64 min" '"small":-9223372036854775808[,}]' "$out"

# ---------------------------------------------------------------- unset
expect "unset" 0 -d "$A" unset c d1 b
expect "get after unset" 0 -d "$A" get c d1
check_re "unset field gone" '^\{"a":2,"big":[^}]*"c":true,' "$out"
[[ $out == *'"b":'* ]] && fail "unset: field b still shown: $out" || pass

# ---------------------------------------------------------------- incr
expect "incr" 0 -d "$A" incr c d1 cnt 10
expect "incr -5 is a number, not an option" 0 -d "$A" incr c d1 cnt -5
expect "get counter" 0 -d "$A" get c d1
check_re "counter 10 - 5 = 5" '"cnt":5[,}]' "$out"
expect "incr to negative" 0 -d "$A" incr c ctr n -12
expect "get negative counter" 0 -d "$A" get c ctr
check_eq "negative counter" '{"n":-12}' "$out"
expect "incr 0 creates the counter" 0 -d "$A" incr k0 zero n 0
expect "get zero counter" 0 -d "$A" get k0 zero
check_eq "zero counter" '{"n":0}' "$out"
expect "incr N not a number" 1 -d "$A" incr c d1 cnt abc
expect "incr N beyond int64" 1 -d "$A" incr c d1 cnt 9223372036854775808
expect "incr 1.5 refused" 1 -d "$A" incr c d1 cnt 1.5

# ---------------------------------------------------------------- lists
expect "insert" 0 -d "$A" insert c d1 l 0 '"x"'
expect "insert at end" 0 -d "$A" insert c d1 l 1 '2'
expect "insert at head" 0 -d "$A" insert c d1 l 0 'null'
expect "insert bytes" 0 -d "$A" insert c d1 l 3 '{"$bytes":"AQI="}'
expect "get list" 0 -d "$A" get c d1
check_re "list order" '"l":\[null,"x",2,\{"\$bytes":"AQI="\}\]' "$out"
expect "remove" 0 -d "$A" remove c d1 l 1
expect "get after remove" 0 -d "$A" get c d1
check_re "list after remove" '"l":\[null,2,\{"\$bytes":"AQI="\}\]' "$out"
expect "remove out of range" 1 -d "$A" remove c d1 l 7
expect "insert out of range" 1 -d "$A" insert c d1 l 9 '1'
expect "insert INDEX -1 refused" 1 -d "$A" insert c d1 l -1 '1'
expect "remove to empty 1" 0 -d "$A" remove c d1 l 0
expect "remove to empty 2" 0 -d "$A" remove c d1 l 0
expect "remove to empty 3" 0 -d "$A" remove c d1 l 0
expect "get empty list" 0 -d "$A" get c d1
check_re "empty list shows as []" '"l":\[\]' "$out"

# ---------------------------------------------------------------- binary, non-finite
expect "put binary and non-finite" 0 -d "$A" put c bin \
    '{"b":{"$bytes":"AAEC/w=="},"e":{"$bytes":""},"x":{"$float":"nan"},"y":{"$float":"inf"},"w":{"$float":"-inf"}}'
expect "get binary and non-finite" 0 -d "$A" get c bin
check_eq "binary and non-finite round trip" \
    '{"b":{"$bytes":"AAEC/w=="},"e":{"$bytes":""},"w":{"$float":"-inf"},"x":{"$float":"nan"},"y":{"$float":"inf"}}' "$out"
round=$out
expect "put the get output back" 0 -d "$A" put c bin2 "$round"
expect "get it" 0 -d "$A" get c bin2
check_eq "get output is valid put input" "$round" "$out"

# ---------------------------------------------------------------- refused input
d0=$(digest_of "$A" --full)
expect "nested array refused" 1 -d "$A" put c d1 '{"a":[1,2]}'
check_re "nested array message" "nested arrays" "$err"
expect "nested object refused" 1 -d "$A" put c d1 '{"a":{"b":1}}'
check_re "nested object message" "nested objects" "$err"
expect "insert array refused" 1 -d "$A" insert c d1 l 0 '[1]'
expect "put non-object refused" 1 -d "$A" put c d1 '[1]'
expect "invalid JSON refused" 1 -d "$A" put c d1 '{"a":}'
expect "trailing garbage refused" 1 -d "$A" put c d1 '{"a":1} x'
expect "integer beyond int64 refused" 1 -d "$A" put c d1 '{"a":9223372036854775808}'
expect "duplicate keys refused" 1 -d "$A" put c d1 '{"a":1,"a":2}'
expect "bad base64 refused" 1 -d "$A" put c d1 '{"a":{"$bytes":"AB"}}'
# Strict base64: one text names one byte string.
for b64 in "iVBORw=" "iVBORx==" "iVBO Rw==" "YQ==YQ==" "====" "YW==" "iVBORw==\n"; do
    expect "base64 [$b64] refused" 1 -d "$A" put c d1 "{\"a\":{\"\$bytes\":\"$b64\"}}"
done
expect "bad \$float refused" 1 -d "$A" put c d1 '{"a":{"$float":"NaN"}}'
expect "one bad field refuses the whole put" 1 -d "$A" put c d1 '{"ok":1,"bad":[1]}'
check_eq "refused input changed nothing" "$d0" "$(digest_of "$A" --full)"
expect "get after refused" 0 -d "$A" get c d1
[[ $out == *'"ok":'* ]] && fail "refused put wrote a field: $out" || pass

# ---------------------------------------------------------------- ls, del, exit codes 2 and 3
expect "put d2" 0 -d "$A" put c d2 '{"v":1}'
expect "put a0" 0 -d "$A" put c a0 '{"v":0}'
expect "put other collection" 0 -d "$A" put other o1 '{"v":1}'
expect "ls" 0 -d "$A" ls c
check_eq "ls sorted" "$(printf 'a0\nbin\nbin2\nctr\nd1\nd2')" "$out"
expect "ls empty collection" 0 -d "$A" ls nothing
check_eq "ls empty" "" "$out"
expect "del" 0 -d "$A" del c d2
expect "ls after del" 0 -d "$A" ls c
check_eq "deleted doc not listed" "$(printf 'a0\nbin\nbin2\nctr\nd1')" "$out"
expect "get missing -> 2" 2 -d "$A" get c nope
expect "get deleted -> 3" 3 -d "$A" get c d2
expect "unset on missing -> 2" 2 -d "$A" unset c nope f
expect "unset on deleted -> 3" 3 -d "$A" unset c d2 v
expect "del missing -> 2" 2 -d "$A" del c nope
expect "del deleted -> 3" 3 -d "$A" del c d2
expect "incr on deleted -> 3" 3 -d "$A" incr c d2 n 1
expect "insert on deleted -> 3" 3 -d "$A" insert c d2 l 0 1
expect "remove on missing -> 2" 2 -d "$A" remove c nope l 0
expect "put re-creates a deleted doc" 0 -d "$A" put c d2 '{"w":2}'
expect "get re-created" 0 -d "$A" get c d2
check_eq "re-created doc has only new fields" '{"w":2}' "$out"

# ---------------------------------------------------------------- usage errors (exit 1)
expect "no command" 1 -d "$A"
expect "unknown command" 1 -d "$A" frobnicate
expect "unknown option" 1 --bogus init
expect "missing -d" 1 get c d1
expect "-d without value" 1 -d
expect "too few arguments" 1 -d "$A" get c
expect "too many arguments" 1 -d "$A" get c d1 extra
expect "missing replica dir" 1 -d "$T/does-not-exist" get c d1
[ -e "$T/does-not-exist" ] && fail "get created a replica directory" || pass
expect "digest bad option" 1 -d "$A" digest --fast
expect "export bad option" 1 -d "$A" export --sinse x
expect "bad collection name" 1 -d "$A" put "" d1 '{"a":1}'
out=$(SHOAL_DIR=$A "$SHOAL" ls c 2>&1)
check_eq "SHOAL_DIR is the default directory" "$(printf 'a0\nbin\nbin2\nctr\nd1\nd2')" "$out"

# ---------------------------------------------------------------- version, digest
expect "version" 0 -d "$A" version
check_re "version is {id_a: seq}" "^\{\"$id_a\":[0-9]+\}$" "$out"
expect "digest" 0 -d "$A" digest
check_re "digest is 64 hex" "^[0-9a-f]{64}$" "$out"
dv=$out
expect "digest --full" 0 -d "$A" digest --full
check_re "full digest is 64 hex" "^[0-9a-f]{64}$" "$out"
check_ne "visible and full digests differ" "$dv" "$out"
expect "empty replica version" 0 -d "$B" version
check_eq "empty version" "{}" "$out"

# ---------------------------------------------------------------- export / import
"$SHOAL" -d "$A" export >"$T/all.bundle"
check_eq "export exit" 0 $?
check_eq "bundle magic" "SHOALBN1" "$(head -c 8 "$T/all.bundle")"
n_all=$(bundle_count "$T/all.bundle")
seq_a=$("$SHOAL" -d "$A" version | sed 's/.*://; s/}//')
check_eq "export holds every change" "$seq_a" "$n_all"
expect_in "import" 0 "$T/all.bundle" -d "$B" import
check_eq "import counts" "{\"applied\":$n_all,\"duplicate\":0,\"equivocations\":0,\"pending\":0,\"rejected\":0}" "$out"
expect_in "import twice" 0 "$T/all.bundle" -d "$B" import
check_eq "second import: all duplicates" "{\"applied\":0,\"duplicate\":$n_all,\"equivocations\":0,\"pending\":0,\"rejected\":0}" "$out"
check_eq "equal visible digests after import" "$(digest_of "$A")" "$(digest_of "$B")"
check_eq "equal full digests after import" "$(digest_of "$A" --full)" "$(digest_of "$B" --full)"
expect "get on B" 0 -d "$B" get c d1
check_eq "B sees A's document" "$("$SHOAL" -d "$A" get c d1)" "$out"
check_eq "B version equals A version" "$("$SHOAL" -d "$A" version)" "$("$SHOAL" -d "$B" version)"

# The README's quick start: import into a directory that does not exist
# makes a new replica there (parents too); a rejected bundle leaves nothing.
expect_in "import into a new directory" 0 "$T/all.bundle" -d "$T/fresh/other" import
check_eq "new directory: all applied" "{\"applied\":$n_all,\"duplicate\":0,\"equivocations\":0,\"pending\":0,\"rejected\":0}" "$out"
check_eq "new directory converged" "$(digest_of "$A" --full)" "$(digest_of "$T/fresh/other" --full)"
printf 'junk' >"$T/junk0.bundle"
expect_in "rejected import into a new directory -> 4" 4 "$T/junk0.bundle" -d "$T/gone/other" import
[ -e "$T/gone" ] && fail "a rejected import left $T/gone behind" || pass
mkdir "$T/emptydir"
expect_in "rejected import into an empty directory -> 4" 4 "$T/junk0.bundle" -d "$T/emptydir" import
check_eq "the empty directory stays, empty" "" "$(ls -A "$T/emptydir")"
expect "get on an empty directory -> 1" 1 -d "$T/emptydir" get c d1
check_re "empty directory named" "the directory is empty" "$err"

# --since: nothing missing -> empty bundle; one new change -> one change.
"$SHOAL" -d "$B" version >"$T/b.vv"
"$SHOAL" -d "$A" export --since "$T/b.vv" >"$T/none.bundle"
check_eq "export --since when nothing is missing" 0 "$(bundle_count "$T/none.bundle")"
check_eq "empty bundle is 12 bytes" 12 "$(wc -c <"$T/none.bundle")"
expect "one more edit" 0 -d "$A" put c d1 '{"late":1}'
"$SHOAL" -d "$A" export --since - <"$T/b.vv" >"$T/one.bundle"
check_eq "export --since - holds only the missing change" 1 "$(bundle_count "$T/one.bundle")"
expect_in "import the missing change" 0 "$T/one.bundle" -d "$B" import
check_eq "one applied" '{"applied":1,"duplicate":0,"equivocations":0,"pending":0,"rejected":0}' "$out"
check_eq "digests equal again" "$(digest_of "$A" --full)" "$(digest_of "$B" --full)"
echo '{"zz":1}' >"$T/bad.vv"
expect "export --since bad key" 1 -d "$A" export --since "$T/bad.vv"
expect "export --since missing file" 1 -d "$A" export --since "$T/no-such-file"
echo '{"a":' >"$T/bad2.vv"
expect "export --since invalid JSON" 1 -d "$A" export --since "$T/bad2.vv"

# ---------------------------------------------------------------- rejected bundles (exit 4)
C=$T/c
expect "init C" 0 -d "$C" init
expect "C edit" 0 -d "$C" put k doc '{"a":1}'
expect "C edit 2" 0 -d "$C" incr k doc n 5
"$SHOAL" -d "$C" export >"$T/c.bundle"
size=$(wc -c <"$T/c.bundle")
b_full=$(digest_of "$B" --full)
b_vis=$(digest_of "$B")
for off in 20 $((size / 2)) $((size - 10)); do
    cp "$T/c.bundle" "$T/bad.bundle"
    flip_byte "$T/bad.bundle" "$off"
    expect_in "flipped byte at $off -> 4" 4 "$T/bad.bundle" -d "$B" import
    check_eq "flipped byte at $off: state unchanged" "$b_full" "$(digest_of "$B" --full)"
done
head -c $((size - 5)) "$T/c.bundle" >"$T/trunc.bundle"
expect_in "truncated bundle -> 4" 4 "$T/trunc.bundle" -d "$B" import
printf 'not a bundle at all' >"$T/junk.bundle"
expect_in "junk -> 4" 4 "$T/junk.bundle" -d "$B" import
: >"$T/empty.bundle"
expect_in "empty input -> 4" 4 "$T/empty.bundle" -d "$B" import
check_eq "rejected bundles changed nothing (full)" "$b_full" "$(digest_of "$B" --full)"
check_eq "rejected bundles changed nothing (visible)" "$b_vis" "$(digest_of "$B")"
expect "k/doc not on B" 2 -d "$B" get k doc

# pending: the second change without the first waits.
printf '{"%s":1}' "$(printf %s "$("$SHOAL" -d "$C" init)")" >"$T/c1.vv"
"$SHOAL" -d "$C" export --since "$T/c1.vv" >"$T/c2.bundle"
check_eq "export --since seq 1 holds one change" 1 "$(bundle_count "$T/c2.bundle")"
D=$T/d
expect "init D" 0 -d "$D" init
expect_in "import out of order" 0 "$T/c2.bundle" -d "$D" import
check_eq "out-of-order change is pending" '{"applied":0,"duplicate":0,"equivocations":0,"pending":1,"rejected":0}' "$out"
expect "pending change not visible" 2 -d "$D" get k doc
expect_in "import the rest" 0 "$T/c.bundle" -d "$D" import
check_re "pending released" '"pending":0' "$out"
check_eq "D converged with C" "$(digest_of "$C" --full)" "$(digest_of "$D" --full)"

# equivocation: a copy of a replica's directory signs a different change
# with the same (author, seq); the importer counts it, and whichever order
# the two arrive in, the smaller change id wins (docs/c-api.md).
E=$T/e
expect "init E" 0 -d "$E" init
expect "E base" 0 -d "$E" put q d '{"v":1}'
cp -r "$E" "$T/e-twin"
expect "E writes seq 2" 0 -d "$E" put q d '{"v":2}'
expect "E's twin writes another seq 2" 0 -d "$T/e-twin" put q d '{"v":3}'
"$SHOAL" -d "$E" export >"$T/e.bundle"
"$SHOAL" -d "$T/e-twin" export >"$T/e-twin.bundle"
expect_in "import E" 0 "$T/e.bundle" -d "$T/ev" import
check_eq "no equivocation yet" '{"applied":2,"duplicate":0,"equivocations":0,"pending":0,"rejected":0}' "$out"
expect_in "import E's twin" 0 "$T/e-twin.bundle" -d "$T/ev" import
check_re "one equivocation reported" '^\{"applied":[01],"duplicate":1,"equivocations":1,"pending":0,"rejected":0\}$' "$out"
expect_in "import E's twin first elsewhere" 0 "$T/e-twin.bundle" -d "$T/ev2" import
expect_in "then E" 0 "$T/e.bundle" -d "$T/ev2" import
check_re "one equivocation reported there too" '"equivocations":1,' "$out"
check_eq "both orders converge" "$(digest_of "$T/ev" --full)" "$(digest_of "$T/ev2" --full)"
expect_in "the twin again" 0 "$T/e-twin.bundle" -d "$T/ev" import
check_eq "a replayed equivocation is a duplicate" '{"applied":0,"duplicate":2,"equivocations":0,"pending":0,"rejected":0}' "$out"

# ---------------------------------------------------------------- offline conflicts converge
P=$T/p
Q=$T/q
expect "init P" 0 -d "$P" init
expect "init Q" 0 -d "$Q" init
expect "P base doc" 0 -d "$P" put inv w '{"name":"widget","price":10}'
expect "P base counter" 0 -d "$P" incr inv w stock 5
expect "P base list" 0 -d "$P" insert inv w tags 0 '"base"'
expect "P second doc" 0 -d "$P" put inv g '{"name":"gadget"}'
"$SHOAL" -d "$P" export >"$T/base.bundle"
expect_in "Q gets the base" 0 "$T/base.bundle" -d "$Q" import
# Offline, on both sides.
expect "P register write" 0 -d "$P" put inv w '{"price":12}'
expect "Q register write" 0 -d "$Q" put inv w '{"price":11,"colour":"red"}'
expect "P counter +3" 0 -d "$P" incr inv w stock 3
expect "Q counter -1" 0 -d "$Q" incr inv w stock -1
expect "P list insert" 0 -d "$P" insert inv w tags 0 '"p"'
expect "Q list insert" 0 -d "$Q" insert inv w tags 1 '"q"'
expect "P deletes g" 0 -d "$P" del inv g
expect "Q updates g" 0 -d "$Q" put inv g '{"name":"gizmo"}'
check_ne "replicas differ before sync" "$(digest_of "$P")" "$(digest_of "$Q")"
# Exchange both ways, each side sending only what the other lacks.
"$SHOAL" -d "$Q" version >"$T/q.vv"
"$SHOAL" -d "$P" version >"$T/p.vv"
"$SHOAL" -d "$P" export --since "$T/q.vv" >"$T/p2q.bundle"
"$SHOAL" -d "$Q" export --since "$T/p.vv" >"$T/q2p.bundle"
check_eq "P sends its 4 offline changes" 4 "$(bundle_count "$T/p2q.bundle")"
check_eq "Q sends its 4 offline changes" 4 "$(bundle_count "$T/q2p.bundle")"
expect_in "Q imports P's" 0 "$T/p2q.bundle" -d "$Q" import
check_eq "Q applied 4" '{"applied":4,"duplicate":0,"equivocations":0,"pending":0,"rejected":0}' "$out"
expect_in "P imports Q's" 0 "$T/q2p.bundle" -d "$P" import
check_eq "P applied 4" '{"applied":4,"duplicate":0,"equivocations":0,"pending":0,"rejected":0}' "$out"
check_eq "converged visible digests" "$(digest_of "$P")" "$(digest_of "$Q")"
check_eq "converged full digests" "$(digest_of "$P" --full)" "$(digest_of "$Q" --full)"
expect "get w on P" 0 -d "$P" get inv w
wp=$out
expect "get w on Q" 0 -d "$Q" get inv w
check_eq "equal documents" "$wp" "$out"
check_re "register: one of the two writes won" '"price":1[12][,}]' "$wp"
check_re "colour from Q kept" '"colour":"red"' "$wp"
check_re "counter: 5 + 3 - 1" '"stock":7[,}]' "$wp"
check_re "list: both inserts kept" '"tags":\["p","base","q"\]' "$wp"
expect "delete wins on P" 3 -d "$P" get inv g
expect "delete wins on Q" 3 -d "$Q" get inv g
check_eq "equal versions" "$("$SHOAL" -d "$P" version)" "$("$SHOAL" -d "$Q" version)"
check_eq "equal ls" "$("$SHOAL" -d "$P" ls inv)" "$("$SHOAL" -d "$Q" ls inv)"

# ---------------------------------------------------------------- serve: the node loop
# The loop shoal-relay shares (tools/node.c): bound endpoint and id on
# stdout, SIGUSR1 logs the peers, SIGHUP re-reads the allow-list (a bad
# file changes nothing), SIGTERM stops with exit 0.
# wait_for FILE REGEX: poll FILE for a line matching REGEX, up to 20 s.
wait_for() {
    local i
    for i in $(seq 200); do
        grep -qE "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
printf '# devices\n%s\n' "$id_b" >"$T/serve.allow"
"$SHOAL" -d "$A" serve --listen 'tcp://127.0.0.1:*' --allow "$T/serve.allow" \
    >"$T/serve.out" 2>"$T/serve.err" &
serve_pid=$!
if wait_for "$T/serve.out" "^id $id_a\$"; then pass; else fail "serve: no id line: $(cat "$T/serve.out" "$T/serve.err")"; fi
check_re "serve prints the port the OS picked" "^tcp://127\.0\.0\.1:[0-9]+$" "$(head -1 "$T/serve.out")"
kill -USR1 "$serve_pid"
if wait_for "$T/serve.err" ' shoal-serve INFO peers \[.*\]$'; then pass; else fail "serve: SIGUSR1 logged no peers line: $(cat "$T/serve.err")"; fi
printf '%s\n%s\n' "$id_b" "$id_a" >"$T/serve.allow"
kill -HUP "$serve_pid"
if wait_for "$T/serve.err" "reloaded: 2 key\(s\), 1 added, 0 removed"; then pass; else fail "serve: SIGHUP did not reload: $(cat "$T/serve.err")"; fi
printf 'not-a-key\n' >"$T/serve.allow"
kill -HUP "$serve_pid"
if wait_for "$T/serve.err" "allow-list not reloaded, nothing changed: .* line 1"; then pass; else fail "serve: bad allow-list on SIGHUP: $(cat "$T/serve.err")"; fi
kill -TERM "$serve_pid"
wait "$serve_pid"
check_eq "serve exits 0 on SIGTERM" 0 $?
serve_pid=
check_re "serve logs its shutdown" "SIGTERM: shutting down" "$(cat "$T/serve.err")"
expect "serve with a bad --peer -> 1" 1 -d "$A" serve --peer "tcp://127.0.0.1:1@zz"
expect "serve with --allow and --allow-any -> 1" 1 -d "$A" serve --listen 'tcp://127.0.0.1:*' --allow "$T/serve.allow" --allow-any
expect "serve with an unreadable allow-list -> 1" 1 -d "$A" serve --listen 'tcp://127.0.0.1:*' --allow "$T/no-such-allow"

# ---------------------------------------------------------------- check, a damaged replica (exit 7)
# docs/cli.md "Checking a replica" and docs/operations.md "A damaged
# replica": a clean check, a flipped byte in a stored change, a damaged
# environment, and the recovery: the old identity in a new directory,
# re-synced from the relay (serve) before it writes.
D=$T/dev
R=$T/rel
expect "check: init device" 0 -d "$D" init
id_d=$out
expect "check: init relay" 0 -d "$R" init
id_r=$out
expect "check: put" 0 -d "$D" put items a '{"name":"check-unique-value-1"}'
expect "check: incr" 0 -d "$D" incr items a stock 3
expect "check: insert" 0 -d "$D" insert items a tags 0 '"t"'
expect "check: put b" 0 -d "$D" put items b '{"x":1}'
expect "check: del b" 0 -d "$D" del items b
expect "check: relay put" 0 -d "$R" put other z '{"f":1}'
"$SHOAL" -d "$R" export >"$T/rel.bundle"
expect_in "check: import another author" 0 "$T/rel.bundle" -d "$D" import
expect "check: a healthy replica -> 0" 0 -d "$D" check
check_re "check: summary" '^\{"changes":6,"documents":3,"evidence":0,"free_pages":[0-9]+,"ok":true,"pages":[1-9][0-9]*,"pending":0,"problems":0,"superseded":0\}$' "$out"
check_eq "check: clean stderr" "" "$err"
# The relay gets everything the device has so far (a sync by bundle).
"$SHOAL" -d "$D" export >"$T/dev.bundle"
expect_in "check: relay imports the device" 0 "$T/dev.bundle" -d "$R" import

# A byte flipped inside a stored change (every copy LMDB's file holds):
# only check notices (the read path trusts what it verified on arrival).
cp -a "$D" "$T/flip"
offs=$(grep -obUa 'check-unique-value-1' "$T/flip/data.mdb" | cut -d: -f1)
check_ne "check: the value is in data.mdb" "" "$offs"
for o in $offs; do flip_byte "$T/flip/data.mdb" "$o"; done
run -d "$T/flip" check
check_eq "check: damaged -> exit 7" 7 "$rc"
check_re "check: damaged summary" '^\{"changes":6,"documents":3,"evidence":0,"free_pages":[0-9]+,"ok":false,"pages":[0-9]+,"pending":0,"problems":1,"superseded":0\}$' "$out"
check_re "check: the problem line" '^shoal: check: log [0-9]+: change [0-9a-f]{16}: the signature does not verify$' "$(head -1 <<<"$err")"
check_re "check: the verdict line" "^shoal: the replica in $T/flip is damaged: 1 problem\(s\); move it aside and re-sync" "$(tail -1 <<<"$err")"
check_eq "check: two stderr lines" 2 "$(wc -l <<<"$err")"

# A document's stored meta with a wrong version byte (the meta rides in
# the log entry after "coll NUL id" and its u32 length): the pages are
# sound, the read of that document fails: exit 7 for get, check names it.
M=$T/meta
expect "check: meta init" 0 -d "$M" init
expect "check: meta put" 0 -d "$M" put items dmg '{"a":1}'
perl -0777 -pi -e 's/(items\x00dmg\x00\x00\x00.)\x02/$1\x03/gs' "$M/data.mdb"
expect "check: get of a damaged document -> 7" 7 -d "$M" get items dmg
check_re "check: get names the directory" "^shoal: get: the replica in $M is damaged \(stored state is corrupt: items/dmg\); run 'shoal -d $M check'" "$err"
run -d "$M" check
check_eq "check: damaged meta -> exit 7" 7 "$rc"
check_eq "check: damaged meta problem" "shoal: check: document items/dmg: malformed meta" "$(head -1 <<<"$err")"

# A damaged environment (both LMDB meta pages zeroed): every command
# fails to open it with exit 7 and one line naming the directory.
cp -a "$D" "$T/env"
dd if=/dev/zero of="$T/env/data.mdb" bs=4096 count=2 conv=notrunc status=none
for cmd in "get items a" "put items a {\"n\":1}" "version" "export" "check"; do
    # shellcheck disable=SC2086
    expect "check: $cmd on a damaged environment -> 7" 7 -d "$T/env" $cmd
    check_re "check: $cmd names the directory" "^shoal: cannot open replica $T/env: the replica is damaged" "$err"
done

# Recovery: the damaged directory moved aside; the old identity in a new
# directory; re-synced from the relay before anything is written, the
# next change continues after the device's highest seq the relay holds.
mv "$D" "$T/dev.damaged"
mkdir -m 700 "$D"
cp -p "$T/dev.damaged/identity" "$D/identity"
expect "check: the new directory keeps the id" 0 -d "$D" init
check_eq "check: same id" "$id_d" "$out"
printf '%s\n' "$id_d" >"$T/rel.allow"
"$SHOAL" -d "$R" serve --listen 'tcp://127.0.0.1:*' --allow "$T/rel.allow" \
    >"$T/rel.out" 2>"$T/rel.err" &
serve_pid=$!
if wait_for "$T/rel.out" "^id $id_r\$"; then pass; else fail "check: relay did not start: $(cat "$T/rel.err")"; fi
ep=$(head -1 "$T/rel.out")
expect "check: re-sync from the relay" 0 -d "$D" sync "$ep@$id_r" --timeout 20
check_re "check: the device's changes came back" '^\{"received":6,"sent":0\}$' "$out"
expect "check: the re-synced replica checks clean" 0 -d "$D" check
check_eq "check: same digest as the relay" "$(digest_of "$R")" "$(digest_of "$D")"
expect "check: version after the re-sync" 0 -d "$D" version
check_re "check: own seq 5 after the re-sync" "\"$id_d\":5" "$out"
expect "check: a new write" 0 -d "$D" put items a '{"name":"after"}'
expect "check: version after the write" 0 -d "$D" version
check_re "check: own seq 6: the next after the relay's" "\"$id_d\":6" "$out"
expect "check: sync the new write" 0 -d "$D" sync "$ep@$id_r" --timeout 20
check_re "check: one change sent" '^\{"received":0,"sent":1\}$' "$out"
expect "check: check runs beside the serving relay" 0 -d "$R" check
kill -TERM "$serve_pid"
wait "$serve_pid"
serve_pid=
run -d "$R" get items a
check_eq "check: the relay holds the new write" '{"name":"after","stock":3,"tags":["t"]}' "$out"
expect "check: no equivocation at the relay" 0 -d "$R" check
check_re "check: relay summary" '"evidence":0,.*"ok":true' "$out"

# ---------------------------------------------------------------- permissions (auth)
# docs/permissions.md: a root replica, a device that trusts it, a policy,
# a certificate; a write the role does not allow exits 8 and writes nothing.
PR="$T/perm-root" PD="$T/perm-dev" PO="$T/perm-open"
expect "init --root self" 0 -d "$PR" init --root self
root_key=$out
expect "auth show: enforcing" 0 -d "$PR" auth show
check_re "auth show: mode and root" "\"mode\":\"enforcing\".*\"root\":\"$root_key\"" "$out"
expect "init --root KEY" 0 -d "$PD" init --root "$root_key"
dev_key=$out
expect "init with another root is refused" 1 -d "$PD" init --root "$dev_key"
expect "init --root: bad key" 1 -d "$PD" init --root xyz
cat > "$T/policy.json" <<'JSON'
{"collections": {"products": {"guard": ["store_id"], "queryable": ["store_id", "price"]}},
 "roles": {"clerk": {"products": {"where": "store_id == $user.store_id", "read": "*", "write": ["stock"]}},
           "manager": {"products": {"where": "store_id == $user.store_id", "read": "*", "write": "*", "create": true, "delete": true}}}}
JSON
expect "auth policy" 0 -d "$PR" auth policy "$T/policy.json"
check_eq "auth policy prints the version" '{"version":1}' "$out"
echo '{"collections": {}, "roles": {"r": {"c": {"where": "TRUE"}}}}' > "$T/bad-policy.json"
expect "auth policy: a rule broken" 1 -d "$PR" auth policy "$T/bad-policy.json"
check_re "auth policy: the message names it" 'not declared' "$err"
expect "auth grant" 0 -d "$PR" auth grant "$dev_key" --role manager --user ann --attr store_id=1 --expires 30d
expect "auth grant: no role" 1 -d "$PR" auth grant "$dev_key"
expect "auth admin" 0 -d "$PR" auth admin "$dev_key" --cap issue --scope 'role == "clerk"' --max-life 7d
expect "auth admin: unknown cap" 1 -d "$PR" auth admin "$dev_key" --cap fly
expect "auth show" 0 -d "$PR" auth show
check_re "auth show: the certificate" '"user":"ann"' "$out"
check_re "auth show: the admin" '"caps":\["issue"\]' "$out"
"$SHOAL" -d "$PR" export > "$T/perm.bundle"
expect_in "the device takes the authority" 0 "$T/perm.bundle" -d "$PD" import
check_re "nothing rejected" '"rejected":0' "$out"
expect "an allowed write" 0 -d "$PD" put products p1 '{"store_id":1,"stock":3}'
before=$(digest_of "$PD" --full)
expect "a write the role does not allow -> 8" 8 -d "$PD" put products p2 '{"store_id":2}'
check_re "the message names the rule" 'products/p2: no role may create' "$err"
check_eq "nothing was written" "$before" "$(digest_of "$PD" --full)"
expect "the device may not publish a policy -> 8" 8 -d "$PD" auth policy "$T/policy.json"
expect "a replica without a root: open mode" 0 -d "$PO" init
expect "auth show: open" 0 -d "$PO" auth show
check_eq "auth show: open mode" '{"admins":[],"certificates":[],"equivocations":[],"mode":"open","policy":null,"revocations":[],"root":null}' "$out"
expect "auth policy in open mode" 1 -d "$PO" auth policy "$T/policy.json"
"$SHOAL" -d "$PD" export > "$T/dev.bundle"
expect_in "the root admits the device's writes" 0 "$T/dev.bundle" -d "$PR" import
check_re "none rejected at the root" '"rejected":0' "$out"
# reading (docs/permissions.md "Reading"): the root serves the device only
# what its role reads, so only as a partial replica
"$SHOAL" -d "$PR" serve --listen 'tcp://127.0.0.1:*' >"$T/perm.out" 2>"$T/perm.err" &
serve_pid=$!
if wait_for "$T/perm.out" "^id $root_key\$"; then pass; else fail "perm: serve did not start: $(cat "$T/perm.err")"; fi
pep=$(head -1 "$T/perm.out")
expect "a device whose role reads part of the data syncs as a full replica -> 8" 8 -d "$PD" sync "$pep@$root_key" --timeout 20
check_re "the message says to subscribe" 'must link as a partial replica' "$err"
expect "the device subscribes" 0 -d "$PD" subscribe mine products
expect "then it syncs" 0 -d "$PD" sync "$pep@$root_key" --timeout 20
kill -TERM "$serve_pid"
wait "$serve_pid"
serve_pid=
# revoking the device: its cut is the root's entry for it; a revoked key
# is refused (exit 5)
expect "the device may not revoke -> 8" 8 -d "$PD" auth revoke "$root_key"
expect "auth revoke: a bad cut" 1 -d "$PR" auth revoke "$dev_key" --cut x
expect "auth revoke" 0 -d "$PR" auth revoke "$dev_key" --reason lost
check_eq "auth revoke prints the cut" '{"cut":1}' "$out"
expect "auth show: the revocation" 0 -d "$PR" auth show
check_re "auth show lists it" '"revocations":\[\{"certificate":"[0-9a-f]{64}","cut":1,.*"reason":"lost"' "$out"
"$SHOAL" -d "$PR" serve --listen 'tcp://127.0.0.1:*' --allow-any >"$T/perm.out" 2>"$T/perm.err" &
serve_pid=$!
if wait_for "$T/perm.out" "^id $root_key\$"; then pass; else fail "perm: serve did not start again: $(cat "$T/perm.err")"; fi
pep=$(head -1 "$T/perm.out")
expect "a revoked device is refused -> 5" 5 -d "$PD" sync "$pep@$root_key" --timeout 20
kill -TERM "$serve_pid"
wait "$serve_pid"
serve_pid=
# orphans (docs/permissions.md "Orphans"): a smaller cut voids the
# device's write; it lists it and re-issues it under a new key
expect "auth orphans: none yet" 0 -d "$PD" auth orphans
check_eq "auth orphans: an empty list" '[]' "$out"
expect "auth revoke --cut 0" 0 -d "$PR" auth revoke "$dev_key" --cut 0
"$SHOAL" -d "$PR" export > "$T/rev.bundle"
expect_in "the device takes the revocation" 0 "$T/rev.bundle" -d "$PD" import
expect "auth orphans" 0 -d "$PD" auth orphans
check_re "auth orphans lists the write" '^\[\{"change":"[0-9a-f]{64}","collection":"products","doc":"p1","ops":\[.*"value":3.*\],"seq":1\}\]$' "$out"
new_key=$("$SHOAL" -d "$T/perm-new" init --root "$root_key")
expect "the new key gets a certificate" 0 -d "$PR" auth grant "$new_key" --role manager --user ann --attr store_id=1
"$SHOAL" -d "$PR" export > "$T/new.bundle"
expect_in "the new key takes the authority" 0 "$T/new.bundle" -d "$T/perm-new" import
expect "auth orphans --reauthor" 0 -d "$PD" auth orphans --reauthor "$T/perm-new"
check_eq "auth orphans --reauthor counts" '{"reissued":1}' "$out"
expect "the write again, under the new key" 0 -d "$T/perm-new" get products p1
check_re "its values" '"stock":3' "$out"
expect "auth orphans --reauthor: no replica there" 1 -d "$PD" auth orphans --reauthor "$T/nowhere"

# ---------------------------------------------------------------- docs/permissions.md "Using it"
# The snippet as written, with the policy of "Policy file" from the same page.
mkdir "$T/using"
src_root=$(cd "$(dirname "$0")/../.." && pwd)
sed -n '/^## Policy file/,/^## Rights/p' "$src_root/docs/permissions.md" |
    sed -n '/^```json$/,/^```$/p' | sed '1d;$d' > "$T/using/policy.json"
if (
    cd "$T/using" || exit 1
    shoal() { "$SHOAL" "$@"; }
    R=$(shoal -d ./root init --root self)
    D=$(shoal -d ./tablet init --root "$R")
    [ "$(shoal -d ./root auth policy policy.json)" = '{"version":1}' ] || exit 1
    shoal -d ./root auth grant "$D" --role manager --user ann --attr store_id=12 --expires 30d || exit 1
    shoal -d ./root export > auth.bundle || exit 1
    shoal -d ./tablet import < auth.bundle >/dev/null || exit 1
    shoal -d ./tablet put products p1 '{"store_id": 12, "stock": 3}' || exit 1
    shoal -d ./tablet put products p2 '{"store_id": 13}'
    [ $? -eq 8 ] || exit 1
    shoal -d ./tablet auth show | grep -q '"user":"ann"'
) 2>"$T/stderr"; then
    pass
else
    fail "docs/permissions.md 'Using it' snippet: $(cat "$T/stderr")"
fi

# sealed fields (docs/permissions.md "Sealed fields"): the auditor of that
# policy syncs the products with cost_price REDACTED; the root reads it
U="$T/using"
U_R=$("$SHOAL" -d "$U/root" auth show | sed 's/.*"root":"\([0-9a-f]*\)".*/\1/')
expect "sealed: an auditor's replica" 0 -d "$U/auditor" init --root "$U_R"
U_A=$out
expect "sealed: certify it" 0 -d "$U/root" auth grant "$U_A" --role auditor --user abe
expect "sealed: the tablet writes a cost" 0 -d "$U/tablet" put products p1 '{"cost_price":2.5,"stock":4}'
"$SHOAL" -d "$U/tablet" export > "$T/sealed.bundle"
check_eq "sealed: the bundle is version 2" "SHOALBN2" "$(head -c 8 "$T/sealed.bundle")"
expect_in "sealed: the root takes it" 0 "$T/sealed.bundle" -d "$U/root" import
check_re "sealed: nothing rejected" '"rejected":0' "$out"
run -d "$U/root" get products p1
check_eq "sealed: the root reads the cost" '{"cost_price":2.5,"stock":4,"store_id":12}' "$out"
"$SHOAL" -d "$U/root" serve --listen 'tcp://127.0.0.1:*' >"$T/sealed.out" 2>"$T/sealed.err" &
serve_pid=$!
if wait_for "$T/sealed.out" "^id $U_R\$"; then pass; else fail "sealed: serve did not start: $(cat "$T/sealed.err")"; fi
sep=$(head -1 "$T/sealed.out")
expect "sealed: the auditor subscribes" 0 -d "$U/auditor" subscribe all products
expect "sealed: the auditor syncs" 0 -d "$U/auditor" sync "$sep@$U_R" --timeout 20
kill -TERM "$serve_pid"
wait "$serve_pid"
serve_pid=
run -d "$U/auditor" get products p1
check_eq "sealed: the auditor's cost is redacted" '{"cost_price":{"$redacted":true},"stock":4,"store_id":12}' "$out"
expect "sealed: the auditor may not write it back" 1 -d "$U/auditor" put products p1 '{"cost_price":{"$redacted":true}}'
expect "sealed: the auditor checks clean" 0 -d "$U/auditor" check
expect "sealed: the auditor's commitment digest" 0 -d "$U/auditor" digest --commitment
ca=$out
expect "sealed: the root's commitment digest" 0 -d "$U/root" digest --commitment
check_eq "sealed: the same commitment digest" "$ca" "$out"
if [ "$(digest_of "$U/auditor" --full)" != "$(digest_of "$U/root" --full)" ]; then pass; else fail "sealed: the full digests should differ"; fi
expect "digest: a bad option" 1 -d "$U/root" digest --both

# ---------------------------------------------------------------- README quick start
# The snippet of README.md ("The `shoal` tool"), as written, in a new dir.
mkdir "$T/readme"
if (
    cd "$T/readme" || exit 1
    shoal() { "$SHOAL" "$@"; }
    set -e
    shoal -d ./replica init >/dev/null
    shoal -d ./replica put items widget '{"name":"Widget","price":10}'
    shoal -d ./replica incr items widget stock -2
    shoal -d ./replica get items widget >/dev/null
    shoal -d ./replica export > changes.bundle
    shoal -d ./other import < changes.bundle >/dev/null
    [ "$(shoal -d ./other get items widget)" = '{"name":"Widget","price":10,"stock":-2}' ]
) 2>"$T/stderr"; then
    pass
else
    fail "README quick start snippet: $(cat "$T/stderr")"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
