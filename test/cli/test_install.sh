#!/usr/bin/env bash
# test/cli/test_install.sh - `meson install --destdir` puts every shipped file
# where the build says: the programs, the library and header, the man pages
# and the relay's systemd unit (whose ExecStart names the installed relay).
#
#   bash test/cli/test_install.sh BUILD_DIR PREFIX BINDIR MANDIR UNITDIR BENCH
#
# BINDIR and MANDIR are relative to PREFIX (meson's options), UNITDIR is
# absolute or "no", BENCH is "true" when shoal-bench is built.  The staging
# dir is removed on exit.  Prints "N passed, N failed".
set -u
build=${1:?usage: test_install.sh BUILD_DIR PREFIX BINDIR MANDIR UNITDIR BENCH}
prefix=$2 bindir=$3 mandir=$4 unitdir=$5 bench=$6
case $bindir in /*) ;; *) bindir=$prefix/$bindir ;; esac
case $mandir in /*) ;; *) mandir=$prefix/$mandir ;; esac

T=$(mktemp -d -t shoal-install.XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT
passed=0
failed=0
pass() { passed=$((passed + 1)); }
fail() {
    failed=$((failed + 1))
    echo "FAIL: $*" >&2
}
have() { if [ -e "$T/stage$1" ]; then pass; else fail "not installed: $1"; fi; }

if meson install -C "$build" --no-rebuild --quiet --destdir "$T/stage" >"$T/log" 2>&1; then
    pass
else
    fail "meson install: $(tail -20 "$T/log")"
fi
have "$bindir/shoal"
have "$bindir/shoal-relay"
have "$prefix/include/shoal.h"
have "$mandir/man1/shoal.1"
have "$mandir/man8/shoal-relay.8"
if [ "$bench" = true ]; then
    have "$bindir/shoal-bench"
    have "$mandir/man1/shoal-bench.1"
fi
if [ "$unitdir" != no ]; then
    unit=$T/stage$unitdir/shoal-relay.service
    have "$unitdir/shoal-relay.service"
    if grep -qx "ExecStart=$bindir/shoal-relay --config /etc/shoal/relay.conf -d /var/lib/shoal-relay" "$unit" 2>/dev/null; then
        pass
    else
        fail "the unit's ExecStart does not name $bindir/shoal-relay"
    fi
    if grep -q '@[A-Z]*@' "$unit" 2>/dev/null; then
        fail "unsubstituted @VAR@ in the unit"
    else
        pass
    fi
fi
# The man pages format without a warning (groff, when present).
if command -v groff >/dev/null 2>&1; then
    for page in "$T/stage$mandir"/man[18]/shoal*.[18]; do
        w=$(groff -man -ww -z "$page" 2>&1)
        if [ -z "$w" ]; then pass; else fail "groff warns on $page: $w"; fi
    done
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
