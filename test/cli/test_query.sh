#!/usr/bin/env bash
# test/cli/test_query.sh - end-to-end tests of the `shoal` query commands:
# find, count, aggregate, index and watch.
#
#   bash test/cli/test_query.sh PATH/TO/shoal
#
# Every check runs the real binary on a real replica directory in a temp
# dir (removed on exit).  Outputs are compared exactly.  Every wait is a
# bounded poll of a file, never a fixed sleep.  Prints "N passed, N
# failed"; exits 1 on any failure.
# shellcheck disable=SC2016 # "$bytes" and "$float" in single quotes are JSON
set -u

SHOAL=${1:?usage: test_query.sh PATH/TO/shoal}
case $SHOAL in /*) ;; *) SHOAL=$PWD/$SHOAL ;; esac

T=$(mktemp -d -t shoal-query.XXXXXX) || exit 1
watch_pid=
trap '[ -n "$watch_pid" ] && kill -KILL "$watch_pid" 2>/dev/null; rm -rf "$T"' EXIT

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

# check_eq NAME EXPECTED ACTUAL
check_eq() {
    if [ "$2" == "$3" ]; then pass; else fail "$1: expected [$2], got [$3]"; fi
}

# check_re NAME REGEX ACTUAL
check_re() {
    if [[ $3 =~ $2 ]]; then pass; else fail "$1: [$3] does not match /$2/"; fi
}

# expect NAME RC ARGS...: run and check the exit code; on an error also
# check that stderr is exactly one line "shoal: ..." and stdout is empty.
expect() {
    local name=$1 want=$2
    shift 2
    run "$@"
    if [ "$rc" -ne "$want" ]; then
        fail "$name: exit $rc, expected $want (stderr: $err)"
        return
    fi
    pass
    if [ "$want" -ne 0 ]; then
        local lines
        lines=$(wc -l <"$T/stderr")
        if [ "$lines" -eq 1 ] && [[ $err == "shoal: "* ]] && [ -z "$out" ]; then
            pass
        else
            fail "$name: stderr is not one 'shoal: ' line, or stdout not empty: [$err] [$out]"
        fi
    fi
}

# expect_out NAME EXPECTED_STDOUT ARGS...: exit 0 and exactly this stdout.
expect_out() {
    local name=$1 want=$2
    shift 2
    expect "$name" 0 "$@"
    [ "$rc" -eq 0 ] && check_eq "$name: output" "$want" "$out"
}

# expect_err NAME REGEX ARGS...: exit 1, one stderr line matching REGEX.
expect_err() {
    local name=$1 re=$2
    shift 2
    expect "$name" 1 "$@"
    check_re "$name: message" "$re" "$err"
}

# wait_for FILE REGEX: poll FILE for a line matching REGEX, up to 10 s.
wait_for() {
    for _ in $(seq 200); do
        grep -qE "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# ids: the "_id" of each JSON line of $out, space-separated.
ids() {
    grep -oE '"_id":"[^"]*"' <<<"$out" | sed -E 's/"_id":"([^"]*)"/\1/' | tr '\n' ' ' |
        sed 's/ $//'
}

A=$T/a
S() { "$SHOAL" -d "$A" "$@"; }

# ---------------------------------------------------------------- data
# Six items: a4 is the only shirt, a3 the only size 10; a5's price is a
# double; a4 has no stock counter; a2 and a6 are on sale.
if S init >/dev/null &&
    S put items a1 '{"category":"jeans","size":8,"price":35,"name":"slim"}' &&
    S put items a2 '{"category":"jeans","size":8,"price":45,"name":"wide","sale":true}' &&
    S put items a3 '{"category":"jeans","size":10,"price":30,"name":"boot"}' &&
    S put items a4 '{"category":"shirts","size":8,"price":20,"name":"polo"}' &&
    S put items a5 '{"category":"jeans","size":8,"price":39.5,"name":"skinny"}' &&
    S put items a6 '{"category":"jeans","size":8,"price":12,"name":"kids","sale":false}' &&
    S incr items a1 stock 5 && S incr items a2 stock 3 && S incr items a3 stock 0 &&
    S incr items a5 stock 7 && S incr items a6 stock 1; then
    pass
else
    fail "could not build the data set"
fi

a1='{"_id":"a1","category":"jeans","name":"slim","price":35,"size":8,"stock":5}'
a5='{"_id":"a5","category":"jeans","name":"skinny","price":39.5,"size":8,"stock":7}'
a6='{"_id":"a6","category":"jeans","name":"kids","price":12,"sale":false,"size":8,"stock":1}'

# ---------------------------------------------------------------- find
expect_out "find: the seed's example" "$a1
$a5
$a6" -d "$A" find items 'category == "jeans" AND size == 8 AND price < 40'
expect "find: every document" 0 -d "$A" find items
check_eq "find: no WHERE gives all, by _id" "a1 a2 a3 a4 a5 a6" "$(ids)"
# The document part of a row is what `get` prints.
get_a5=$(S get items a5)
check_eq "find renders like get" "{\"_id\":\"a5\",${get_a5#\{}" "$a5"

expect "sort ascending" 0 -d "$A" find items --sort price
check_eq "sort ascending: ids" "a6 a4 a3 a1 a5 a2" "$(ids)"
expect "sort :asc" 0 -d "$A" find items --sort price:asc
check_eq "sort :asc: ids" "a6 a4 a3 a1 a5 a2" "$(ids)"
expect "sort descending" 0 -d "$A" find items --sort price:desc
check_eq "sort descending: ids" "a2 a5 a1 a3 a4 a6" "$(ids)"
expect "sort ties by _id" 0 -d "$A" find items --sort size
check_eq "sort ties by _id: ids" "a1 a2 a4 a5 a6 a3" "$(ids)"
expect "sort descending, ties by _id ascending" 0 -d "$A" find items --sort size:desc
check_eq "sort desc ties: ids" "a3 a1 a2 a4 a5 a6" "$(ids)"
expect "two sort keys" 0 -d "$A" find items --sort category:desc --sort price
check_eq "two sort keys: ids" "a4 a6 a3 a1 a5 a2" "$(ids)"
# Absent sorts first: only a2 and a6 have "sale" (false < true).
expect "sort on a field some lack" 0 -d "$A" find items --sort sale
check_eq "sort: absent first" "a1 a3 a4 a5 a6 a2" "$(ids)"
expect "sort by _id descending" 0 -d "$A" find items --sort _id:desc
check_eq "sort by _id desc: ids" "a6 a5 a4 a3 a2 a1" "$(ids)"

expect "limit" 0 -d "$A" find items --sort price --limit 2
check_eq "limit: ids" "a6 a4" "$(ids)"
expect "limit and offset" 0 -d "$A" find items --sort price --limit 2 --offset 1
check_eq "limit and offset: ids" "a4 a3" "$(ids)"
expect "offset alone" 0 -d "$A" find items --sort price --offset 4
check_eq "offset alone: ids" "a5 a2" "$(ids)"
expect_out "offset past the end" "" -d "$A" find items --offset 6
expect_out "limit 0 prints nothing" "" -d "$A" find items --limit 0
expect_err "limit 0 still checks the parameters" "parameter :c is not bound" \
    -d "$A" find items 'category == :c' --limit 0
expect_err "limit not a number" "--limit N must be" -d "$A" find items --limit -1
expect_err "offset not a number" "--offset N must be" -d "$A" find items --offset x

expect_out "fields" '{"_id":"a1","name":"slim","price":35}
{"_id":"a5","name":"skinny","price":39.5}' \
    -d "$A" find items 'category == "jeans" AND price > 30 AND price < 40' --fields name,price
expect_out "fields given twice" '{"_id":"a2","name":"wide","sale":true}' \
    -d "$A" find items 'sale == true' --fields name --fields sale
expect_out "fields: one the document lacks" '{"_id":"a1"}
{"_id":"a2","sale":true}' -d "$A" find items --fields sale --limit 2
expect_out "fields: only _id" '{"_id":"a1"}
{"_id":"a2"}' -d "$A" find items --fields _id --limit 2
expect_err "fields: an empty name" "an empty field name" -d "$A" find items --fields name,,price

# ---------------------------------------------------------------- parameters
expect_out "param: string" "$a1
$a5
$a6" -d "$A" find items 'category == :c AND size == 8 AND price < 40' --param 'c="jeans"'
expect_out "param: integer" "$a1
$a5
$a6" -d "$A" find items 'category == "jeans" AND size == :s AND price < 40' --param s=8
expect_out "param: double" "$a5" -d "$A" find items 'price == :p' --param p=39.5
expect_out "param: double with an exponent" "$a6" -d "$A" find items 'price < :p' --param p=1.5e1
expect_out "param: integer compares with a double" "$a1" -d "$A" find items 'price == :p' --param p=35.0
expect "param: true" 0 -d "$A" find items 'sale == :b' --param b=true
check_eq "param: true: ids" "a2" "$(ids)"
expect "param: false" 0 -d "$A" find items 'sale == :b' --param b=false
check_eq "param: false: ids" "a6" "$(ids)"
expect "param: null (absent == null)" 0 -d "$A" find items 'sale == :n' --param n=null
check_eq "param: null: ids" "a1 a3 a4 a5" "$(ids)"
S put blobs b1 '{"data":{"$bytes":"AAE="},"x":{"$float":"inf"}}'
S put blobs b2 '{"data":{"$bytes":"AAI="},"x":1}'
expect_out "param: binary" '{"_id":"b1","data":{"$bytes":"AAE="},"x":{"$float":"inf"}}' \
    -d "$A" find blobs 'data == :d' --param 'd={"$bytes":"AAE="}'
expect_out "param: a non-finite double" '{"_id":"b2","x":1}' \
    -d "$A" find blobs 'x < :inf' --param 'inf={"$float":"inf"}' --fields x
expect "param: several" 0 -d "$A" find items 'category == :c AND price >= :lo AND price <= :hi' \
    --param 'c="jeans"' --param lo=30 --param hi=39.5
check_eq "param: several: ids" "a1 a3 a5" "$(ids)"
expect "param: :name form" 0 -d "$A" find items 'size == :s' --param :s=10
check_eq "param: :name form: ids" "a3" "$(ids)"
expect "param used twice in WHERE" 0 -d "$A" find items 'price > :x OR size > :x' --param x=38
check_eq "param used twice: ids" "a2 a5" "$(ids)"

expect_err "param: an array" "--param s: wrong parameter type: an array" \
    -d "$A" find items 'size == :s' --param 's=[8]'
expect_err "param: an object" "--param s: wrong parameter type: an object" \
    -d "$A" find items 'size == :s' --param 's={"a":1}'
expect_err "param: not JSON" "--param c: value is not valid JSON" \
    -d "$A" find items 'category == :c' --param c=jeans
expect_err "param: no =" "--param needs NAME=JSON" -d "$A" find items 'size == :s' --param s
expect_err "param: empty name" "--param needs NAME=JSON" -d "$A" find items 'size == :s' --param =8
expect_err "param: unknown name" "--param t: the WHERE has no parameter :t" \
    -d "$A" find items 'size == :s' --param s=8 --param t=1
expect_err "param: unbound" "parameter :s is not bound" -d "$A" find items 'size == :s'
expect_err "param: one of two unbound" "parameter :hi is not bound" \
    -d "$A" find items 'price >= :lo AND price <= :hi' --param lo=1
expect_err "param: given twice" "--param s given twice" \
    -d "$A" find items 'size == :s' --param s=8 --param s=10
expect_err "param: count checks them too" "parameter :s is not bound" -d "$A" count items 'size == :s'
expect_err "param: aggregate checks them too" "--param s: wrong parameter type" \
    -d "$A" aggregate items 'size == :s' --param 's=[1]' --agg count

# ---------------------------------------------------------------- errors
expect_err "syntax error names the position" "position [0-9]+" -d "$A" find items 'price <'
expect_err "syntax error: count" "position [0-9]+" -d "$A" count items 'price < < 3'
expect_err "syntax error: aggregate" "position [0-9]+" -d "$A" aggregate items 'AND' --agg count
long=$(printf 'price == 1 OR %.0s' $(seq 400))
expect_err "bound error names the position" "position [0-9]+" -d "$A" find items "${long}price == 1"
expect_err "unknown option" "unknown option --sorted" -d "$A" find items --sorted price
expect_err "count takes no --sort" "unknown option --sort" -d "$A" count items --sort price
expect_err "option without its value" "option --sort needs a value" -d "$A" find items --sort
expect_err "two WHEREs" "unexpected argument" -d "$A" find items 'size == 8' 'price < 3'
expect_err "no collection" "usage: shoal -d DIR find" -d "$A" find
expect_err "bad collection name" "find" -d "$A" find ''

# ---------------------------------------------------------------- unknown collection
expect_out "find: unknown collection is empty" "" -d "$A" find nothing
expect_out "find: unknown collection with a WHERE" "" -d "$A" find nothing 'x == 1'
expect_out "count: unknown collection is 0" "0" -d "$A" count nothing
expect_out "aggregate: unknown collection" '{"count":0,"sum:x":null}' \
    -d "$A" aggregate nothing --agg count sum:x

# ---------------------------------------------------------------- count
expect_out "count: all" "6" -d "$A" count items
expect_out "count: jeans" "5" -d "$A" count items 'category == "jeans"'
expect_out "count: the seed's example" "3" -d "$A" count items \
    'category == "jeans" AND size == 8 AND price < 40'
expect_out "count: a param" "1" -d "$A" count items 'size == :s' --param s=10
expect_out "count: none" "0" -d "$A" count items 'price > 1000'

# ---------------------------------------------------------------- aggregate
# prices 35 45 30 20 39.5 12: sum 181.5, avg 30.25; stock 5 3 0 7 1 (a4 none).
expect_out "aggregate without --group" \
    '{"avg:price":30.25,"count":6,"max:price":45,"min:price":12,"sum:price":181.5,"sum:stock":16}' \
    -d "$A" aggregate items --agg count --agg sum:price --agg min:price max:price avg:price \
    --agg sum:stock
expect_out "aggregate: one --agg with several specs" '{"count":5,"sum:stock":16}' \
    -d "$A" aggregate items 'category == "jeans"' --agg count sum:stock
expect_out "aggregate: an int sum stays an int" '{"sum:size":50}' -d "$A" aggregate items --agg sum:size
expect_out "aggregate: min and max of strings" '{"max:name":"wide","min:name":"boot"}' \
    -d "$A" aggregate items --agg min:name max:name
expect_out "aggregate: nothing to aggregate is null" \
    '{"avg:nope":null,"count":0,"max:nope":null,"sum:price":null}' \
    -d "$A" aggregate items 'price > 1000' --agg count sum:price avg:nope max:nope
expect_out "aggregate --group" '{"avg:price":32.3,"category":"jeans","count":5,"sum:price":161.5}
{"avg:price":20.0,"category":"shirts","count":1,"sum:price":20}' \
    -d "$A" aggregate items --group category --agg count sum:price avg:price
expect_out "aggregate: two group fields" '{"category":"jeans","count":4,"size":8}
{"category":"jeans","count":1,"size":10}
{"category":"shirts","count":1,"size":8}' \
    -d "$A" aggregate items --group category --group size --agg count
expect_out "aggregate: absent groups as null, first" '{"count":4,"max:price":39.5,"sale":null}
{"count":1,"max:price":12,"sale":false}
{"count":1,"max:price":45,"sale":true}' \
    -d "$A" aggregate items --group sale --agg count max:price
expect_out "aggregate: --group with a WHERE and a param" '{"count":3,"size":8,"sum:stock":15}' \
    -d "$A" aggregate items 'price > :p' --param p=34 --group size --agg count sum:stock
expect_out "aggregate: the same spec twice counts once" '{"count":6}' \
    -d "$A" aggregate items --agg count --agg count
expect_err "aggregate without --agg" "at least one --agg" -d "$A" aggregate items
expect_err "aggregate: unknown spec" "unknown aggregate 'median:price'" \
    -d "$A" aggregate items --agg median:price
expect_err "aggregate: spec without a field" "unknown aggregate 'sum:'" \
    -d "$A" aggregate items --agg sum:
expect_err "aggregate: a group named like an aggregate" "has the name of an aggregate" \
    -d "$A" aggregate items --group count --agg count

# ---------------------------------------------------------------- index
q='category == "jeans" AND size == 8 AND price < 40'
run -d "$A" find items "$q" --sort price:desc
before=$out
run -d "$A" find items 'price >= 20 AND price < 40'
before_range=$out
expect_out "index ls: none" "" -d "$A" index ls
expect "index add" 0 -d "$A" index add items category
expect "index add again is a no-op" 0 -d "$A" index add items category
expect "index add a second" 0 -d "$A" index add items price
expect "index add in another collection" 0 -d "$A" index add orders total
expect_out "index ls" '{"collection":"items","field":"category"}
{"collection":"items","field":"price"}
{"collection":"orders","field":"total"}' -d "$A" index ls
expect_out "index ls COLL" '{"collection":"items","field":"category"}
{"collection":"items","field":"price"}' -d "$A" index ls items
expect_out "find with the index: same rows" "$before" -d "$A" find items "$q" --sort price:desc
expect_out "find a range with the index: same rows" "$before_range" \
    -d "$A" find items 'price >= 20 AND price < 40'
expect_out "count with the index" "3" -d "$A" count items "$q"
# The index follows later writes.
S put items a8 '{"category":"jeans","size":8,"price":1}'
expect "find after a write, indexed" 0 -d "$A" find items "$q" --sort price:desc
check_eq "indexed find sees the new document" "a5 a1 a6 a8" "$(ids)"
with_index=$out
expect "index drop" 0 -d "$A" index drop items category
expect "index drop price" 0 -d "$A" index drop items price
expect_out "find without the index: same rows" "$with_index" -d "$A" find items "$q" --sort price:desc
expect_out "index ls after drop" '{"collection":"orders","field":"total"}' -d "$A" index ls
expect "index drop of a missing index -> 2" 2 -d "$A" index drop items category
expect_err "index add _id" "index add" -d "$A" index add items _id
expect_err "index: no subcommand" "usage: shoal -d DIR index" -d "$A" index
expect_err "index: unknown subcommand" "usage: shoal -d DIR index" -d "$A" index rm items x
expect_err "index add: missing field" "usage: shoal -d DIR index" -d "$A" index add items
S del items a8

# ---------------------------------------------------------------- watch
# start_watch FILE ARGS...: run `watch ARGS` in the background into FILE.
start_watch() {
    local f=$1
    shift
    "$SHOAL" -d "$A" watch "$@" >"$f" 2>"$f.err" &
    watch_pid=$!
}

# stop_watch NAME SIGNAL: signal the watch, reap it, check exit 0 and that
# the process is gone.
stop_watch() {
    local pid=$watch_pid
    kill -"$2" "$pid"
    wait "$pid"
    check_eq "$1: exit status after SIG$2" 0 $?
    if kill -0 "$pid" 2>/dev/null; then fail "$1: pid $pid still there"; else pass; fi
    watch_pid=
}

W=$T/watch.out
start_watch "$W" items 'category == "jeans" AND price < :max' --param max=40
if wait_for "$W" '^\{"event":"ready"\}$'; then pass; else fail "watch: no ready line: $(cat "$W" "$W.err")"; fi
check_eq "watch: the initial result, then ready" \
    '{"_id":"a1","doc":{"category":"jeans","name":"slim","price":35,"size":8,"stock":5},"event":"enter"}
{"_id":"a3","doc":{"category":"jeans","name":"boot","price":30,"size":10,"stock":0},"event":"enter"}
{"_id":"a5","doc":{"category":"jeans","name":"skinny","price":39.5,"size":8,"stock":7},"event":"enter"}
{"_id":"a6","doc":{"category":"jeans","name":"kids","price":12,"sale":false,"size":8,"stock":1},"event":"enter"}
{"event":"ready"}' "$(cat "$W")"
# Changes from other processes: a7 enters, a1 changes, a3 leaves (price),
# a6 leaves (deleted), a4 stays out (a shirt), then z1 enters as the last.
S put items a7 '{"category":"jeans","price":10}'
if wait_for "$W" '"_id":"a7".*"event":"enter"'; then pass; else fail "watch: no enter for a7: $(cat "$W")"; fi
S put items a1 '{"price":36}'
if wait_for "$W" '"_id":"a1".*"event":"update"'; then pass; else fail "watch: no update for a1: $(cat "$W")"; fi
S put items a3 '{"price":50}'
S del items a6
S put items a4 '{"price":5}'
S put items z1 '{"category":"jeans","price":1}'
if wait_for "$W" '"_id":"z1".*"event":"enter"'; then pass; else fail "watch: no enter for z1: $(cat "$W")"; fi
check_eq "watch: the events after ready" \
    '{"_id":"a7","doc":{"category":"jeans","price":10},"event":"enter"}
{"_id":"a1","doc":{"category":"jeans","name":"slim","price":36,"size":8,"stock":5},"event":"update"}
{"_id":"a3","event":"leave"}
{"_id":"a6","event":"leave"}
{"_id":"z1","doc":{"category":"jeans","price":1},"event":"enter"}' "$(sed '1,/"event":"ready"/d' "$W")"
stop_watch "watch" TERM
check_eq "watch: nothing on stderr" "" "$(cat "$W.err")"

# SIGINT ends it the same way; an empty collection is just "ready".
W2=$T/watch2.out
start_watch "$W2" nothing
if wait_for "$W2" '^\{"event":"ready"\}$'; then pass; else fail "watch 2: no ready line: $(cat "$W2" "$W2.err")"; fi
check_eq "watch: an unknown collection gives only ready" '{"event":"ready"}' "$(cat "$W2")"
stop_watch "watch on SIGINT" INT

expect_err "watch: syntax error" "position [0-9]+" -d "$A" watch items 'price <'
expect_err "watch: unbound parameter" "parameter :max is not bound" -d "$A" watch items 'price < :max'
expect_err "watch takes no --sort" "unknown option --sort" -d "$A" watch items --sort price

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
