#!/usr/bin/env bash
# test/layering.sh - check the module arrows of DESIGN.md by reading every
# #include of the library, tool and benchmark sources.
#
#   bash test/layering.sh SOURCE_ROOT
#
# Headers under /usr/include compile from anywhere, so only this check
# keeps, say, crdt/ from growing an LMDB call.  Rules:
#   base/       project headers: base/'s own and the public shoal.h only; no
#               <lmdb.h>, <zmq.h>, <sodium.h>, <msgpack.h> (every module
#               below may include base/)
#   crdt/       no project header from store/ core/ transport/; no <lmdb.h>, <zmq.h>
#   store/      no project header from transport/ or core/; no <zmq.h>
#   transport/  no project header from store/ (or core/)
#   <lmdb.h>    only under store/ (and bench/, whose raw-LMDB floor is a baseline)
#   <zmq.h>     only under transport/
#   tools/      project headers: shoal.h and tools/'s own headers only
#   bench/      project headers: shoal.h and bench/'s own headers only;
#               its in-memory benchmarks (bench_authz.c, bench_list.c, bench_trace.c's
#               "crdt" variant) may also include crdt.h
#   shoal.h     includes only <stdbool.h> <stddef.h> <stdint.h>
# test/ may include anything and is not scanned.
# Prints one line per checked file and "N passed, N failed".
set -u

root=${1:?usage: layering.sh SOURCE_ROOT}
cd "$root" || exit 1

passed=0
failed=0
modules=(include base crdt store core transport)

# module_of FILE NAME: the project module that a quoted include NAME in FILE
# resolves to, or "external" when no project file has that name.
module_of() {
    local file=$1 name=$2 dir
    dir=$(dirname "$file")
    if [ -f "$dir/$name" ]; then
        # Resolve ../ and take the first component relative to the root.
        local p
        p=$(realpath --relative-to=. "$dir/$name")
        echo "${p%%/*}"
        return
    fi
    local m
    for m in "${modules[@]}"; do
        if [ -f "$m/$name" ]; then
            echo "$m"
            return
        fi
    done
    if [[ $name == */* ]] && [ -f "$name" ]; then
        echo "${name%%/*}"
        return
    fi
    echo external
}

# check_file FILE: apply the rules of FILE's module to its includes.
check_file() {
    local file=$1 mod=${1%%/*} base
    base=$(basename "$file")
    local bad=() line name kind target
    while IFS= read -r line; do
        if [[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\<([^\>]+)\> ]]; then
            name=${BASH_REMATCH[1]}
            kind=system
        elif [[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\"([^\"]+)\" ]]; then
            name=${BASH_REMATCH[1]}
            kind=quoted
        else
            continue
        fi
        if [ "$kind" = system ]; then
            case $name in
            lmdb.h)
                [ "$mod" = store ] || [ "$mod" = bench ] || bad+=("<lmdb.h> outside store/")
                ;;
            zmq.h)
                [ "$mod" = transport ] || bad+=("<zmq.h> outside transport/")
                ;;
            esac
            if [ "$mod" = base ]; then
                case $name in
                lmdb.h | zmq.h | sodium.h | sodium/* | msgpack.h | msgpack/*)
                    bad+=("base/ includes <$name>")
                    ;;
                esac
            fi
            if [ "$file" = include/shoal.h ]; then
                case $name in
                stdbool.h | stddef.h | stdint.h) ;;
                *) bad+=("public header includes <$name>") ;;
                esac
            fi
            continue
        fi
        target=$(module_of "$file" "$name")
        [ "$target" = external ] && continue
        case $mod in
        base)
            case $target in base | include) ;; *) bad+=("\"$name\" from $target/") ;; esac
            ;;
        crdt)
            case $target in store | core | transport) bad+=("\"$name\" from $target/") ;; esac
            ;;
        store)
            case $target in core | transport) bad+=("\"$name\" from $target/") ;; esac
            ;;
        transport)
            case $target in core | store) bad+=("\"$name\" from $target/") ;; esac
            ;;
        tools | bench | bindings)
            if [ "$target" = include ] || [ "$target" = "$mod" ]; then
                :
            elif [ "$mod" = bench ] &&
                { [ "$base" = bench_list.c ] || [ "$base" = bench_trace.c ] ||
                    [ "$base" = bench_authz.c ]; } &&
                [ "$target" = crdt ] && [ "$(basename "$name")" = crdt.h ]; then
                :
            else
                bad+=("\"$name\" from $target/ (only shoal.h allowed)")
            fi
            ;;
        include)
            bad+=("public header includes project header \"$name\"")
            ;;
        esac
    done <"$file"
    if [ "${#bad[@]}" -eq 0 ]; then
        echo "ok   $file"
        passed=$((passed + 1))
    else
        local b
        for b in "${bad[@]}"; do
            echo "FAIL $file: $b"
        done
        failed=$((failed + 1))
    fi
}

checked=0
for d in include base crdt store core transport tools bench bindings; do
    [ -d "$d" ] || continue
    while IFS= read -r f; do
        check_file "$f"
        checked=$((checked + 1))
    done < <(find "$d" -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort)
done

# The apply pipeline (core/apply.[ch]) is sans-I/O: it reaches storage only
# through its shoal__apply_store, so its code (comments aside) names no store,
# working set, replica, thread or clock call.
for f in core/apply.c core/apply.h; do
    [ -f "$f" ] || continue
    hits=$(grep -nE 'shoal__stxn_|shoal__store_|shoal__wset|shoal__wctx|shoal_replica|pthread|clock_gettime|gettimeofday|[^_]time\(' "$f" |
        grep -vE '^[0-9]+:[[:space:]]*(/?\*|//)')
    if [ -z "$hits" ]; then
        echo "ok   $f (no I/O)"
        passed=$((passed + 1))
    else
        echo "FAIL $f: reaches past its store interface:"
        echo "$hits"
        failed=$((failed + 1))
    fi
done

# The scan must have seen the core modules, or it proves nothing.
for d in include base crdt store core tools; do
    if [ -n "$(find "$d" -maxdepth 1 -name '*.[ch]' 2>/dev/null | head -1)" ]; then
        passed=$((passed + 1))
    else
        echo "FAIL no sources found in $d/"
        failed=$((failed + 1))
    fi
done

echo "layering: checked $checked files"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
