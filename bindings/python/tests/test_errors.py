"""Every exception path: error classes, bad input, closed replicas, bad
bundles.  Nothing here may crash the interpreter."""
import struct

import pytest

import shoal
from shoal._errors import error_class


ALL_CLASSES = {
    shoal.ErrorCode.NOMEM: (shoal.NoMemoryError, MemoryError),
    shoal.ErrorCode.INVAL: (shoal.InvalidArgumentError, ValueError),
    shoal.ErrorCode.NOTFOUND: (shoal.NotFound, KeyError),
    shoal.ErrorCode.CLOSED: (shoal.ClosedError, shoal.Error),
    shoal.ErrorCode.TIMEDOUT: (shoal.TimeoutError, TimeoutError),
    shoal.ErrorCode.NOSPC: (shoal.NoSpaceError, shoal.StorageError),
    shoal.ErrorCode.PROTO: (shoal.DecodeError, ValueError),
    shoal.ErrorCode.BADSIG: (shoal.SignatureError, ValueError),
    shoal.ErrorCode.CORRUPT: (shoal.CorruptError, shoal.StorageError),
    shoal.ErrorCode.STORE: (shoal.StorageError, shoal.Error),
    shoal.ErrorCode.TRANSPORT: (shoal.TransportError, shoal.Error),
    shoal.ErrorCode.DELETED: (shoal.Deleted, KeyError),
    shoal.ErrorCode.KIND: (shoal.KindError, TypeError),
    shoal.ErrorCode.RANGE: (shoal.ListIndexError, IndexError),
    shoal.ErrorCode.TRUNC: (shoal.TruncatedError, shoal.DecodeError),
    shoal.ErrorCode.TOOBIG: (shoal.TooBigError, ValueError),
    shoal.ErrorCode.VERSION: (shoal.VersionError, shoal.DecodeError),
    shoal.ErrorCode.READONLY: (shoal.ReadOnlyError, shoal.StorageError),
    shoal.ErrorCode.BUSY: (shoal.BusyError, shoal.Error),
    shoal.ErrorCode.REFUSED: (shoal.RefusedError, ConnectionRefusedError),
    shoal.ErrorCode.PERM: (shoal.PermissionDeniedError, PermissionError),
}


def test_every_code_has_a_class():
    codes = [c for c in shoal.ErrorCode if c != shoal.ErrorCode.OK]
    assert set(codes) == set(ALL_CLASSES)
    for code, (cls, builtin) in ALL_CLASSES.items():
        assert error_class(code) is cls
        assert issubclass(cls, shoal.Error) and issubclass(cls, builtin)
        text = shoal.strerror(code)
        assert text and text != shoal.strerror(0)
        e = cls(text, int(code), "detail")
        assert e.code == code and e.code is code and e.strerror == text
        assert str(e) == text + ": detail"
        assert shoal.ErrorCode[code.name] == code
    assert error_class(16, input_side=True) is shoal.InputTooBigError
    assert issubclass(shoal.InputTooBigError, shoal.DecodeError)
    assert issubclass(shoal.InputTooBigError, shoal.TooBigError)
    unknown = error_class(999)("x", 999)
    assert type(unknown) is shoal.Error and unknown.code == 999


def test_error_pickles():
    import pickle
    e = shoal.NotFound("no such", 3, "field 'x'")
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is shoal.NotFound and e2.code == 3 and str(e2) == str(e)


@pytest.mark.parametrize("bad", [1, None, b"bytes", 1.5, ("t",)])
def test_wrong_name_types(replica, bad):
    with pytest.raises(TypeError):
        replica.doc(bad, "d")
    with pytest.raises(TypeError):
        replica.doc("c", bad)
    d = replica.doc("c", "d")
    with pytest.raises(TypeError):
        d[bad] = 1
    with pytest.raises(TypeError):
        d.counter(bad)
    with pytest.raises(TypeError):
        d.list(bad)
    with pytest.raises(TypeError):
        replica.docs(bad)


@pytest.mark.parametrize("bad", [object(), [1], {"a": 1}, (1,), 1j, {1}, shoal])
def test_wrong_value_types(replica, bad):
    d = replica.doc("c", "d")
    with pytest.raises(TypeError):
        d["f"] = bad
    with pytest.raises(TypeError):
        d.list("l").append(bad)
    d.list("l").append(0)
    with pytest.raises(TypeError):
        d.list("l")[0] = bad
    assert d.get("f") is None and d["l"] == [0]


def test_int_overflow(replica):
    d = replica.doc("c", "d")
    for v in (2**63, -2**63 - 1, 10**40):
        with pytest.raises(OverflowError):
            d["f"] = v
        with pytest.raises(OverflowError):
            d.list("l").append(v)
    assert "f" not in d


@pytest.mark.parametrize("name", ["", "a\0b", "x" * 300, "\ud800"])
def test_invalid_names(replica, name):
    with pytest.raises(shoal.InvalidArgumentError) as ei:
        r = replica.doc(name, "d")
        r["f"] = 1
    assert isinstance(ei.value, ValueError)
    with pytest.raises(shoal.InvalidArgumentError):
        replica.doc("c", name)["f"] = 1
    with pytest.raises(shoal.InvalidArgumentError):
        replica.doc("c", "d")[name] = 1
    assert replica.version() == {}


def test_name_limits(replica):
    replica.doc("c" * shoal.MAX_COLLECTION, "d" * shoal.MAX_DOC_ID)["f" * shoal.MAX_FIELD] = 1
    with pytest.raises(shoal.Error):
        replica.doc("c" * (shoal.MAX_COLLECTION + 1), "d")["f"] = 1
    with pytest.raises(shoal.Error):
        replica.doc("c", "d" * (shoal.MAX_DOC_ID + 1))["f"] = 1
    with pytest.raises(shoal.Error):
        replica.doc("c", "d")["f" * (shoal.MAX_FIELD + 1)] = 1


def test_read_with_invalid_name_is_an_error(replica):
    with pytest.raises(shoal.InvalidArgumentError):
        replica.doc("c", "d")["x" * 1000]
    with pytest.raises(shoal.InvalidArgumentError):
        replica.docs("")


def test_huge_values(replica):
    d = replica.doc("c", "d")
    for v in (b"\0" * (shoal.MAX_VALUE + 1), "x" * (shoal.MAX_VALUE + 1),
              b"\1" * (16 << 20)):
        with pytest.raises(shoal.Error) as ei:
            d["f"] = v
        assert isinstance(ei.value, ValueError)
        with pytest.raises(shoal.Error):
            d.list("l").append(v)
    assert d.to_dict() == {}


def test_unencodable_string_value(replica):
    with pytest.raises(shoal.InvalidArgumentError):
        replica.doc("c", "d")["f"] = "bad \udcff surrogate"


def test_closed_replica_raises_before_c(tmp_path):
    r = shoal.Replica(tmp_path / "r", durable=False)
    d = r.doc("c", "d")
    d["x"] = 1
    c, lst = d.counter("n"), d.list("l")
    r.close()
    r.close()  # idempotent
    calls = [
        lambda: r.doc("c", "d"), lambda: r.docs("c"), r.collections,
        r.version, r.export, lambda: r.merge(b"SHOALBN1"), r.digest,
        r.pending_count, r.equivocators, r.flush, lambda: r.transaction().__enter__(),
        lambda: d["x"], lambda: d.__setitem__("x", 2), lambda: d.update(a=1),
        lambda: "x" in d, d.to_dict, lambda: len(d), d.delete,
        lambda: d.deleted, lambda: c.value, lambda: c.add(1), lambda: len(lst),
        lambda: lst.append(1), lambda: lst[0], lambda: r.__enter__(),
        lambda: r.import_bundle(b""), lambda: r["c", "d"],
    ]
    for call in calls:
        with pytest.raises(shoal.ClosedError) as ei:
            call()
        assert ei.value.code == shoal.ErrorCode.CLOSED
    assert r.next_change(0) is None
    assert list(r.changes(timeout=0)) == []
    assert r.id  # still known


def test_close_drops_open_transaction(tmp_path):
    r = shoal.Replica(tmp_path / "r", durable=False)
    d = r.doc("c", "d")
    with pytest.raises(shoal.ClosedError):
        with r.transaction():
            d["x"] = 1
            r.close()
    with shoal.Replica(tmp_path / "r") as r2:
        assert r2.doc("c", "d").to_dict() == {}


def test_open_errors(tmp_path):
    f = tmp_path / "file"
    f.write_bytes(b"not a directory")
    with pytest.raises(shoal.Error):
        shoal.Replica(f)
    with pytest.raises(ValueError):
        shoal.Replica(str(tmp_path / "a\0b"))
    with pytest.raises(TypeError):
        shoal.Replica(tmp_path / "x", durable="yes")
    with pytest.raises(TypeError):
        shoal.Replica(tmp_path / "x", clock=5)
    with pytest.raises(TypeError):
        shoal.Replica(tmp_path / "x", map_size="big")
    with pytest.raises(OverflowError):
        shoal.Replica(tmp_path / "x", max_drift_ms=-1)
    with pytest.raises(TypeError):
        shoal.Replica(12)


def test_bad_since(replica):
    with pytest.raises(TypeError):
        replica.export(since=[("a", 1)])
    with pytest.raises(shoal.InvalidArgumentError):
        replica.export(since={"zz": 1})
    with pytest.raises(shoal.InvalidArgumentError):
        replica.export(since={"ab" * 31: 1})
    with pytest.raises(TypeError):
        replica.export(since={1: 1})
    with pytest.raises(OverflowError):
        replica.export(since={"ab" * 32: -1})
    with pytest.raises(TypeError):
        replica.export(since={"ab" * 32: "1"})


@pytest.fixture
def one_change_bundle(make_replica):
    a = make_replica("a")
    a.doc("c", "d")["x"] = "hello"
    return a.export()


def _rejected(r, data, cls):
    before = (r.digest(full=True), r.version(), r.pending_count())
    with pytest.raises(cls) as ei:
        r.merge(data)
    assert (r.digest(full=True), r.version(), r.pending_count()) == before
    return ei.value


def test_bad_bundles(make_replica, one_change_bundle):
    b = make_replica("b")
    good = one_change_bundle
    assert good[:8] == b"SHOALBN1" and struct.unpack(">I", good[8:12])[0] == 1
    # signature byte flipped, body byte flipped, author flipped: EBADSIG
    for pos in (len(good) - 1, len(good) - 70, 13):
        bad = bytearray(good)
        bad[pos] ^= 0x01
        e = _rejected(b, bytes(bad), shoal.SignatureError)
        assert e.code == shoal.ErrorCode.BADSIG
        # The library's detail, without its copy of the code's text.
        assert e.detail and str(e) == e.strerror + ": " + e.detail
        assert not e.detail.startswith(e.strerror), e.detail
    # truncated anywhere
    for cut in (1, 8, 11, 12, 13, 40, len(good) - 1):
        _rejected(b, good[:cut], shoal.DecodeError)
    # a declared count larger than the envelopes present
    _rejected(b, good[:8] + struct.pack(">I", 2) + good[12:], shoal.DecodeError)
    _rejected(b, good[:8] + struct.pack(">I", 0xFFFFFFFF) + good[12:], shoal.DecodeError)
    # trailing garbage, wrong magic, unknown envelope version, garbage
    _rejected(b, good + b"\0", shoal.DecodeError)
    _rejected(b, b"SHOALBN3" + good[8:], shoal.DecodeError)
    v = bytearray(good)
    v[12] = 99
    _rejected(b, bytes(v), shoal.DecodeError)
    _rejected(b, b"", shoal.DecodeError)
    _rejected(b, b"\xff" * 1000, shoal.DecodeError)
    # a good change followed by a bad one: all rejected
    two = good[:8] + struct.pack(">I", 2) + good[12:] + good[12:-1] + bytes([good[-1] ^ 1])
    _rejected(b, two, (shoal.SignatureError, shoal.DecodeError))
    with pytest.raises(TypeError):
        b.merge("SHOALBN1")
    with pytest.raises(TypeError):
        b.merge(None)
    # and the good bundle still applies afterwards
    assert b.merge(good) == 1 and b.doc("c", "d")["x"] == "hello"


def test_declared_body_length_too_big(make_replica, one_change_bundle):
    b = make_replica("b")
    bad = bytearray(one_change_bundle)
    bad[45:49] = struct.pack(">I", 0xFFFFFFF0)  # envelope body length
    with pytest.raises(shoal.DecodeError):
        b.merge(bytes(bad))
    assert b.version() == {}


def test_event_wait_is_interruptible_by_close(tmp_path):
    import threading
    r = shoal.Replica(tmp_path / "r", durable=False)
    got = []
    t = threading.Thread(target=lambda: got.extend(r.changes(timeout=None)))
    t.start()
    r.close()
    t.join(10)
    assert not t.is_alive() and got == []


def test_invalid_utf8_string_values_read_back_losslessly():
    # A peer may send a str value whose bytes are not UTF-8: it reads back
    # with surrogateescape, never raising, and encodes back to its bytes.
    from shoal._api import _value, ffi, lib
    raw = b"ok \xff\xfe \xc3"
    buf = ffi.new("uint8_t[]", raw)
    cv = ffi.new("shoal_value *")
    cv.type = lib.SHOAL_T_STR
    cv.ptr = buf
    cv.len = len(raw)
    got = _value(cv)
    assert isinstance(got, str) and got.startswith("ok ")
    assert got.encode("utf-8", "surrogateescape") == raw
    cv.len = 0
    cv.ptr = ffi.NULL
    assert _value(cv) == ""
    cv.type = 99  # an unknown type from a newer library: an error, no crash
    with pytest.raises(shoal.Error):
        _value(cv)
