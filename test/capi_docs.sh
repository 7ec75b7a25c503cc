#!/bin/bash
# test/capi_docs.sh - docs/c-api.md documents the whole public header.
#
# Usage: capi_docs.sh SOURCE_ROOT
#
# Every function declared with SHOAL_API in include/shoal.h, every type it
# defines (typedef names) and every enum constant (SHOAL_*) must appear in
# docs/c-api.md inside a code span (`name`, `name(args)`, or a signature
# such as `shoal_err name(...)`).  A new public function without its
# paragraph fails here.  The header is read without its comments, so a name
# only mentioned in a comment does not count as declared; on the page, only
# names inside code spans count.
set -euo pipefail
export LC_ALL=C
root=${1:?usage: capi_docs.sh SOURCE_ROOT}
hdr=$root/include/shoal.h
doc=$root/docs/c-api.md
[ -r "$hdr" ] && [ -r "$doc" ] || { echo "capi_docs: cannot read $hdr or $doc" >&2; exit 1; }

# The header without comments and preprocessor lines (SHOAL_API's own
# definition is not a declaration).
code=$(perl -0pe 's{/\*.*?\*/}{ }gs; s{//[^\n]*}{}g; s{^[ \t]*#(?:[^\n]*\\\n)*[^\n]*}{}gm' "$hdr")

# Functions: the identifier before the first "(" of each SHOAL_API declaration.
funcs=$(printf '%s\n' "$code" | perl -0ne 'while (/\bSHOAL_API\b([^;]*?)\(/gs) { my $d = $1; $d =~ /(\w+)\s*$/ and print "$1\n" }' | sort -u)
# Types: typedef names.
types=$(printf '%s\n' "$code" | perl -0ne 'while (/\btypedef\b[^;]*?(\w+)\s*;/gs) { print "$1\n" }' | sort -u)
# Enum constants: SHOAL_* names followed by "=" or "," or "}" inside enums.
consts=$(printf '%s\n' "$code" | perl -0ne 'while (/\benum\b[^{]*\{([^}]*)\}/gs) { my $b = $1; while ($b =~ /\b(SHOAL_\w+)\b/g) { print "$1\n" } }' | sort -u)

nf=$(printf '%s\n' "$funcs" | grep -c . || true)
if [ "$nf" -lt 50 ]; then
    echo "capi_docs: found only $nf SHOAL_API functions in $hdr: the parser is broken" >&2
    exit 1
fi

# Every identifier that appears inside a code span (`...`) of the page.
documented=$(perl -0ne 'while (/`([^`]+)`/g) { my $c = $1; print "$_\n" for $c =~ /\w+/g }' "$doc" | sort -u)
missing=0
for kind in function type constant; do
    case $kind in
        function) names=$funcs ;;
        type) names=$types ;;
        constant) names=$consts ;;
    esac
    for n in $(comm -23 <(printf '%s\n' $names | sort -u) <(printf '%s\n' "$documented")); do
        echo "docs/c-api.md does not document $kind $n" >&2
        missing=$((missing + 1))
    done
done
nt=$(printf '%s\n' "$types" | grep -c . || true)
nc=$(printf '%s\n' "$consts" | grep -c . || true)
if [ "$missing" -gt 0 ]; then
    echo "capi_docs: $missing public name(s) of include/shoal.h missing from docs/c-api.md" >&2
    exit 1
fi
echo "capi_docs: $nf functions, $nt types and $nc constants of include/shoal.h are all in docs/c-api.md"
