"""shoal.ErrorCode must equal the C enum shoal_err, name for name and value
for value.

shoal/_errors.py is written by hand, so nothing generates ErrorCode from
the header.  This test reads the C side twice, independently of the
binding's own code: by parsing the shoal_err enum out of include/shoal.h
(the source the library is built from), and through the compiled
extension, whose enum constants the C compiler computed from the same
header.  A code added, renumbered or renamed on one side only fails here.
"""
import os
import pathlib
import re

import shoal
from shoal._shoal_cffi import lib


def header_path():
    root = os.environ.get("SHOAL_SOURCE_ROOT")
    if root:
        return pathlib.Path(root) / "include" / "shoal.h"
    # bindings/python/tests/ -> the source root.
    return pathlib.Path(__file__).resolve().parents[3] / "include" / "shoal.h"


def header_codes():
    """{NAME: value} of `typedef enum shoal_err {...}` in shoal.h, with the
    SHOAL_ and E prefixes dropped as the binding does (SHOAL_ENOMEM ->
    NOMEM, SHOAL_OK -> OK)."""
    text = header_path().read_text(encoding="utf-8")
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    m = re.search(r"typedef\s+enum\s+shoal_err\s*\{(.*?)\}\s*shoal_err\s*;", text, re.S)
    assert m, "typedef enum shoal_err not found in %s" % header_path()
    codes = {}
    next_value = 0
    for item in m.group(1).split(","):
        item = item.strip()
        if not item:
            continue
        im = re.fullmatch(r"SHOAL_(\w+)(?:\s*=\s*(\d+))?", item)
        assert im, "cannot parse enum item %r" % item
        name, value = im.group(1), im.group(2)
        value = int(value) if value is not None else next_value
        next_value = value + 1
        if name != "OK":
            assert name.startswith("E"), name
            name = name[1:]
        assert name not in codes, "%s twice in shoal_err" % name
        codes[name] = value
    return codes


def test_header_parse_is_sane():
    codes = header_codes()
    assert codes["OK"] == 0 and codes["NOMEM"] == 1
    assert len(codes) >= 21
    assert len(set(codes.values())) == len(codes), "two codes share a value"


def test_python_error_code_equals_header():
    c = header_codes()
    py = {m.name: int(m.value) for m in shoal.ErrorCode}
    only_c = sorted(set(c) - set(py))
    only_py = sorted(set(py) - set(c))
    assert not only_c, "in shoal.h but not in shoal.ErrorCode: %s" % only_c
    assert not only_py, "in shoal.ErrorCode but not in shoal.h: %s" % only_py
    differ = {n: (c[n], py[n]) for n in c if c[n] != py[n]}
    assert not differ, "values differ (C, Python): %s" % differ


def test_python_error_code_equals_compiled_library():
    for m in shoal.ErrorCode:
        cname = "SHOAL_OK" if m.name == "OK" else "SHOAL_E" + m.name
        assert hasattr(lib, cname), "%s is not a constant of the library" % cname
        assert getattr(lib, cname) == int(m.value), cname


def test_library_knows_every_code():
    # shoal_strerror has a text for every code of the enum, and only those.
    for m in shoal.ErrorCode:
        assert shoal.strerror(int(m)) != "unknown error", m.name
    top = max(int(m) for m in shoal.ErrorCode)
    assert shoal.strerror(top + 1) == "unknown error"
