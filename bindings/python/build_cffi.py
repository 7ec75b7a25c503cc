#!/usr/bin/env python3
"""Generate the C source of the ``shoal._shoal_cffi`` extension (cffi API mode).

Usage: build_cffi.py SHOAL_H OUT_C

The cdef is derived from the public header itself, so the binding cannot
drift from it: preprocessor lines, the ``extern "C"`` wrapper and the
SHOAL_API / SHOAL_NODISCARD markers are removed, and cffi (which drops
comments itself) parses the rest.  meson compiles the emitted C file into
the extension module, linked against libshoal.
"""
import re
import sys

import cffi

# Declarations of the binding itself (not part of shoal.h): the Python
# callbacks that can replace the replica's wall clock (tests, simulations),
# receive the library's log messages (called from its threads; cffi takes
# the GIL) and collect the problems of Replica.check().
EXTRA_CDEF = """
extern "Python" uint64_t shoal_py_clock(void *ctx);
extern "Python" void shoal_py_log(void *ctx, int level, const char *msg);
extern "Python" void shoal_py_check(void *ctx, const char *problem);
"""


def header_to_cdef(text):
    """Return the declarations of shoal.h in a form cffi's cdef accepts."""
    out = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("#"):
            # Skip the directive and its backslash continuations.
            while line.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                line = lines[i]
            i += 1
            continue
        out.append(line)
        i += 1
    src = "\n".join(out)
    # The C++ wrapper: `extern "C" {` ... `}` (its preprocessor guards are gone).
    src = re.sub(r'extern\s+"C"\s*\{', "", src)
    src = re.sub(r"\bSHOAL_API\b", "", src)
    src = re.sub(r"\bSHOAL_NODISCARD\b", "", src)
    # Drop comments here too so the brace balance below is not fooled.
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    src = re.sub(r"//[^\n]*", " ", src)
    # The closing brace of the extern "C" block is the one that leaves the
    # brace depth negative: remove it.
    depth = 0
    chars = []
    for ch in src:
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                continue
            depth -= 1
        chars.append(ch)
    return "".join(chars)


def make_ffi(header_path):
    with open(header_path, encoding="utf-8") as f:
        cdef = header_to_cdef(f.read())
    ffi = cffi.FFI()
    ffi.cdef(cdef + EXTRA_CDEF)
    ffi.set_source("shoal._shoal_cffi", '#include "shoal.h"')
    return ffi


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: build_cffi.py SHOAL_H OUT_C\n")
        return 2
    ffi = make_ffi(argv[1])
    ffi.emit_c_code(argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
