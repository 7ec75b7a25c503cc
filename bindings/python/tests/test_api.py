"""Every method of the shoal Python API, every field kind."""
import math
import os
import stat

import pytest

import shoal
from conftest import drain, sync


def test_open_creates_and_reopens(tmp_path):
    path = tmp_path / "new" / "parents" / "dev"  # parents are created too
    with shoal.Replica(path) as r:
        assert isinstance(r.id, str) and len(r.id) == 2 * shoal.KEY_BYTES
        int(r.id, 16)
        assert r.durable and not r.closed
        rid = r.id
        r.doc("orders", "o-1")["status"] = "open"
    assert r.closed
    assert os.path.isdir(path)
    with shoal.Replica(str(path)) as r2:  # str path, same identity and data
        assert r2.id == rid
        assert r2.doc("orders", "o-1")["status"] == "open"
    assert "closed" in repr(r2)


def test_identity_differs_between_replicas(make_replica):
    assert make_replica("a").id != make_replica("b").id


def test_library_version():
    v = shoal.library_version()
    assert v.count(".") == 2
    assert shoal.__version__ == v
    assert shoal.MAX_VALUE == 1 << 20
    assert shoal.MAX_COLLECTION == 128
    assert shoal.strerror(shoal.ErrorCode.NOTFOUND)


@pytest.mark.parametrize("value", [
    None, True, False, 0, 1, -1, 2**63 - 1, -2**63, 0.5, -0.0, 1e300,
    float("inf"), "", "open", "ünïcødé ✓", "x" * 1000, b"", b"\x00\xff\x01",
    bytes(range(256)),
])
def test_register_values_round_trip(replica, value):
    d = replica.doc("c", "d")
    d["f"] = value
    got = d["f"]
    assert type(got) is type(value)
    assert got == value
    if isinstance(value, float):
        assert math.copysign(1, got) == math.copysign(1, value)


def test_register_nan_and_bytes_like(replica):
    d = replica.doc("c", "d")
    d["nan"] = float("nan")
    assert math.isnan(d["nan"])
    d["ba"] = bytearray(b"ab")
    d["mv"] = memoryview(b"cd")
    assert d["ba"] == b"ab" and d["mv"] == b"cd"


def test_max_value_size_accepted(replica):
    d = replica.doc("c", "d")
    d["big"] = b"\x01" * shoal.MAX_VALUE
    assert len(d["big"]) == shoal.MAX_VALUE


def test_mapping_protocol(replica):
    d = replica.doc("orders", "o-1")
    assert not d.exists and not d.deleted and d.epoch is None
    assert len(d) == 0 and d.to_dict() == {} and list(d) == []
    assert d.get("status") is None and d.get("status", 7) == 7
    with pytest.raises(shoal.NotFound) as ei:
        d["status"]
    assert isinstance(ei.value, KeyError)
    d["status"] = "open"
    d.update({"price": 40, "size": 8})
    d.update([("a", 1)], b=2)
    assert d.exists and d.epoch == 0
    assert d["status"] == "open" and "status" in d and "missing" not in d
    assert 42 not in d
    assert d.to_dict() == {"status": "open", "price": 40, "size": 8, "a": 1, "b": 2}
    assert d.keys() == sorted(d.keys())  # bytewise order
    assert len(d) == 5 and set(d) == set(d.to_dict())
    assert dict(d.items()) == d.to_dict()
    assert sorted(map(str, d.values())) == sorted(map(str, d.to_dict().values()))
    assert d == d.to_dict() and d != {}
    assert d.kind("status") is shoal.Kind.REGISTER
    with pytest.raises(shoal.NotFound):
        d.kind("nope")
    del d["status"]
    assert "status" not in d and d.get("status", 0) == 0
    with pytest.raises(KeyError):
        del d["status"]
    d.unset("status")  # idempotent
    assert d.pop("a") == 1 and "a" not in d
    assert d.pop("a", "dflt") == "dflt"
    assert d.setdefault("z", 3) == 3 and d["z"] == 3
    d.clear()
    assert d.to_dict() == {} and d.exists and not d.deleted
    assert repr(d) == "<shoal.Document orders/o-1>"
    assert d.replica is replica
    assert replica["orders", "o-1"].to_dict() == {}


def test_update_is_one_change(replica):
    d = replica.doc("c", "d")
    before = sum(replica.version().values())
    d.update({"a": 1, "b": 2, "c": 3})
    assert sum(replica.version().values()) == before + 1
    d.update({})  # nothing to do, no change
    assert sum(replica.version().values()) == before + 1


def test_update_with_a_bad_value_changes_nothing(replica):
    d = replica.doc("c", "d")
    with pytest.raises(TypeError):
        d.update({"a": 1, "b": object()})
    assert d.to_dict() == {} and replica.version() == {}


def test_counter(replica):
    d = replica.doc("inv", "widget")
    c = d.counter("stock")
    assert c.value == 0 and int(c) == 0
    c.add(5)
    d.counter("stock").add(-2)
    assert d.counter("stock").value == 3
    c.add()
    c += 10
    c -= 4
    assert c.value == 10 and d["stock"] == 10
    assert d.kind("stock") is shoal.Kind.COUNTER
    c.add(0)  # a write of 0: the value stays
    assert c.value == 10
    z = d.counter("zero")
    z.add(0)  # creates the field as a counter reading 0
    assert d["zero"] == 0 and d.kind("zero") is shoal.Kind.COUNTER
    c.add(2**63 - 1)
    c.add(2)  # wraps like the C library's int64 view
    assert isinstance(c.value, int)
    assert "stock" in repr(c)
    assert d.to_dict()["stock"] == c.value


def test_counter_extremes_overflow(replica):
    c = replica.doc("c", "d").counter("n")
    with pytest.raises(OverflowError):
        c.add(2**63)
    with pytest.raises(OverflowError):
        c.add(-2**63 - 1)
    with pytest.raises(TypeError):
        c.add(1.5)
    with pytest.raises(TypeError):
        c.add("1")
    assert c.value == 0


def test_list(replica):
    d = replica.doc("orders", "o-1")
    lines = d.list("lines")
    assert len(lines) == 0 and list(lines) == [] and lines == []
    lines.insert(0, "a")
    lines.append("b")
    assert list(lines) == ["a", "b"]
    lines[0] = "z"
    assert lines[0] == "z" and lines[-1] == "b"
    del lines[0]
    assert list(lines) == ["b"] and len(lines) == 1
    lines.extend([1, 2.5, None, b"x", True])
    assert lines.to_list() == ["b", 1, 2.5, None, b"x", True]
    assert lines[1:3] == [1, 2.5] and lines[::-1][0] is True
    lines.insert(-1, "before-last")
    assert lines[-2] == "before-last"
    lines.insert(100, "end")  # past the end appends, like list.insert
    lines.insert(-100, "start")
    assert lines[0] == "start" and lines[-1] == "end"
    assert "b" in lines and lines.index("b") == 1 and lines.count("b") == 1
    assert lines.pop() == "end"
    assert lines.pop(0) == "start"
    lines.remove("before-last")
    with pytest.raises(ValueError):
        lines.remove("never")
    lines += ["t"]
    assert lines == ["b", 1, 2.5, None, b"x", True, "t"]
    assert d["lines"] == lines.to_list()
    assert d.kind("lines") is shoal.Kind.LIST
    lines[-1] = "u"
    del lines[-1]
    assert lines[-1] is True
    lines.clear()
    assert len(lines) == 0 and "lines" in d and d["lines"] == []
    assert "lines" in repr(lines)


def test_list_index_errors(replica):
    lines = replica.doc("c", "d").list("l")
    with pytest.raises(shoal.ListIndexError) as ei:
        lines[0]
    assert isinstance(ei.value, IndexError) and isinstance(ei.value, shoal.Error)
    assert ei.value.code == shoal.ErrorCode.RANGE
    lines.append("a")
    for bad in (1, -2):
        with pytest.raises(IndexError):
            lines[bad]
        with pytest.raises(IndexError):
            lines[bad] = "x"
        with pytest.raises(IndexError):
            del lines[bad]
    with pytest.raises(IndexError):
        lines.pop(5)
    with pytest.raises(TypeError):
        lines["0"]
    with pytest.raises(TypeError):
        lines[0:1] = ["x"]
    with pytest.raises(TypeError):
        del lines[0:1]
    assert lines == ["a"]


def test_kind_errors(replica):
    d = replica.doc("c", "d")
    d["reg"] = 1
    with pytest.raises(shoal.KindError) as ei:
        d.counter("reg").value
    assert isinstance(ei.value, TypeError) and ei.value.code == shoal.ErrorCode.KIND
    with pytest.raises(shoal.KindError):
        len(d.list("reg"))
    with pytest.raises(shoal.KindError):
        d.list("reg")[0]
    d.counter("cnt").add(1)
    with pytest.raises(shoal.KindError):
        d.list("cnt").to_list()


def test_delete_and_recreate(replica):
    d = replica.doc("orders", "o-1")
    d["status"] = "open"
    d.counter("n").add(3)
    assert replica.docs("orders") == ["o-1"]
    d.delete()
    assert d.deleted and not d.exists and d.epoch is None
    assert d.to_dict() == {} and len(d) == 0 and "status" not in d
    assert d.get("status", "gone") == "gone"
    with pytest.raises(shoal.Deleted) as ei:
        d["status"]
    assert isinstance(ei.value, KeyError) and ei.value.code == shoal.ErrorCode.DELETED
    assert d.counter("n").value == 0 and len(d.list("l")) == 0
    assert replica.docs("orders") == []
    assert replica.collections() == []
    d["status"] = "again"  # re-created in the next epoch, old fields gone
    assert not d.deleted and d.epoch == 1
    assert d.to_dict() == {"status": "again"}
    assert replica.docs("orders") == ["o-1"]


def test_docs_and_collections(replica):
    for i in (3, 1, 2):
        replica.doc("orders", "o-%d" % i)["x"] = i
    replica.doc("stock", "s")["x"] = 0
    assert replica.docs("orders") == ["o-1", "o-2", "o-3"]
    assert replica.docs("nothing") == []
    assert replica.collections() == ["orders", "stock"]


def test_transaction_commits_atomically(replica):
    a, b = replica.doc("c", "a"), replica.doc("c", "b")
    with replica.transaction() as t:
        assert t.active
        a["x"] = 1
        b.counter("n").add(2)
        b.list("l").append("p")
        b.list("l").append("q")  # append accounts for the pending insert
        t.doc("c", "e")["y"] = True
        assert "x" not in a  # reads do not see uncommitted edits
    assert not t.active
    assert a["x"] == 1 and b["n"] == 2 and b["l"] == ["p", "q"]
    assert replica.doc("c", "e")["y"] is True
    # one change per document
    assert sum(replica.version().values()) == 3


def test_transaction_aborts_on_exception(replica):
    d = replica.doc("c", "d")
    with pytest.raises(RuntimeError):
        with replica.transaction():
            d["x"] = 1
            raise RuntimeError("boom")
    assert d.to_dict() == {} and replica.version() == {}
    d["after"] = 1  # writes outside the block commit at once again
    assert d["after"] == 1


def test_transaction_explicit_end(replica):
    d = replica.doc("c", "d")
    with replica.transaction() as t:
        d["x"] = 1
        t.abort()
        t.abort()  # idempotent
        d["y"] = 2  # no longer in the transaction: commits at once
    assert d.to_dict() == {"y": 2}
    with replica.transaction() as t:
        d["z"] = 3
        t.commit()
        with pytest.raises(shoal.BusyError):
            t.commit()
    assert d["z"] == 3


def test_transaction_misuse(replica):
    with replica.transaction():
        with pytest.raises(shoal.BusyError):
            with replica.transaction():
                pass
    t = replica.transaction()
    with t:
        pass
    with pytest.raises(shoal.BusyError):
        with t:
            pass


def test_transaction_commit_error_stores_nothing(replica):
    d = replica.doc("c", "d")
    d["keep"] = 1
    before = replica.digest(full=True)
    with pytest.raises(shoal.ListIndexError):
        with replica.transaction():
            d["x"] = 1
            d.list("l")[5] = "no such element"
    assert replica.digest(full=True) == before
    assert d.to_dict() == {"keep": 1}


def test_version_export_merge(make_replica):
    a, b = make_replica("a"), make_replica("b")
    assert a.version() == {}
    a.doc("c", "d")["x"] = 1
    a.doc("c", "d")["y"] = 2
    assert a.version() == {a.id: 2}
    bundle = a.export()
    assert isinstance(bundle, bytes) and bundle[:8] == b"SHOALBN1"
    assert b.merge(bundle) == 2
    assert b.merge(bundle) == 0  # duplicates are no-ops
    res = b.import_bundle(bundle)
    assert res == shoal.ImportResult(0, 2, 0, 0) and res.duplicate == 2
    assert b.version() == {a.id: 2}
    assert b.doc("c", "d").to_dict() == {"x": 1, "y": 2}
    # since: only what the other lacks
    a.doc("c", "d")["z"] = 3
    delta = a.export(since=b.version())
    assert len(delta) < len(a.export())
    assert b.merge(bytearray(delta)) == 1
    assert a.export(since=a.version()) == a.export(since={k: v for k, v in a.version().items()})
    assert b.merge(a.export(since=a.version())) == 0
    # bytes keys work as well as hex ones
    assert a.export(since={bytes.fromhex(a.id): 3}) == a.export(since=a.version())
    assert a.digest() == b.digest() and a.digest(full=True) == b.digest(full=True)
    assert a.pending_count() == 0 and a.equivocators() == []


def test_pending_changes_wait_for_dependencies(make_replica):
    a, b = make_replica("a"), make_replica("b")
    a.doc("c", "d")["x"] = 1
    first = a.export()
    a.doc("c", "d")["x"] = 2
    second = a.export(since=a.version() | {a.id: 1})
    res = b.import_bundle(second)
    assert res.applied == 0 and res.pending == 1 and b.pending_count() == 1
    assert not b.doc("c", "d").exists
    assert b.merge(first) == 2  # the pending one is released
    assert b.pending_count() == 0 and b.doc("c", "d")["x"] == 2


def test_digest(make_replica):
    a, b = make_replica("a"), make_replica("b")
    empty = a.digest()
    assert len(empty) == 2 * shoal.DIGEST_BYTES and empty == b.digest()
    a.doc("c", "d")["x"] = 1
    assert a.digest() != empty and a.digest(full=True) != a.digest()
    b.doc("c", "d")["x"] = 1
    # the same visible state from different changes: visible digests agree,
    # full digests (op ids, authors) do not
    assert a.digest() == b.digest()
    assert a.digest(full=True) != b.digest(full=True)


def test_changes_events(make_replica):
    a, b = make_replica("a"), make_replica("b")
    drain(a)
    a.doc("orders", "o-1")["x"] = 1
    ev = a.next_change(5.0)
    assert ev == shoal.ChangeEvent("orders", "o-1", False, False)
    assert ev.collection == "orders" and ev.doc_id == "o-1" and not ev.remote
    assert a.next_change(0) is None
    assert a.next_change(0.05) is None
    with a.transaction():
        a.doc("orders", "o-2")["x"] = 1
        a.doc("stock", "s-1")["x"] = 1
    got = sorted((e.collection, e.doc_id) for e in a.changes(timeout=0.2))
    assert got == [("orders", "o-2"), ("stock", "s-1")]
    drain(b)
    sync(a, b)
    remote = list(b.changes(timeout=0.2))
    assert {(e.collection, e.doc_id) for e in remote} == {
        ("orders", "o-1"), ("orders", "o-2"), ("stock", "s-1")}
    assert all(e.remote for e in remote)
    with pytest.raises(ValueError):
        a.next_change(-1)
    with pytest.raises(ValueError):
        next(a.changes(timeout=float("nan")))


def test_flush_and_non_durable(tmp_path):
    with shoal.Replica(tmp_path / "r", durable=False, map_size=1 << 22,
                       max_drift_ms=1000) as r:
        assert not r.durable
        r.doc("c", "d")["x"] = 1
        r.flush()
    with shoal.Replica(tmp_path / "r") as r:
        assert r.doc("c", "d")["x"] == 1


def test_clock_option(make_replica, clock):
    r = make_replica("r", clock=clock)
    r.doc("c", "d")["x"] = 1
    clock.advance(1000)
    r.doc("c", "d")["x"] = 2
    assert r.doc("c", "d")["x"] == 2


def test_secret_key_owner_only(tmp_path):
    with shoal.Replica(tmp_path / "r"):
        pass
    for root, _dirs, files in os.walk(tmp_path / "r"):
        for f in files:
            mode = os.stat(os.path.join(root, f)).st_mode
            if "key" in f or "secret" in f:
                assert not mode & (stat.S_IRWXG | stat.S_IRWXO)


def test_list_edits_in_one_transaction_see_each_other(replica):
    # pop() twice in one transaction used the stored length for both and
    # failed at commit with "index 4, length 4".
    lines = replica.doc("c", "tx").list("l")
    lines.extend([0, 1, 2, 3, 4])
    with replica.transaction():
        assert lines.pop() == 4
        assert lines.pop() == 3
        assert lines.pop(-2) == 1
        assert lines.pop(0) == 0
        # Reads still show the stored list until the commit.
        assert lines.to_list() == [0, 1, 2, 3, 4]
    assert lines.to_list() == [2]
    with replica.transaction():
        lines.append("a")
        lines.insert(0, "z")
        lines[1] = "two"
        assert lines.pop() == "a"
        lines.remove("z")
        assert lines.pop(-1) == "two"
    assert lines.to_list() == []
    lines.extend(["x", "y", "z"])
    with replica.transaction():
        lines.pop()
        lines.clear()  # the two elements left, not three
    assert lines.to_list() == []
    # Outside a transaction nothing is remembered between calls.
    lines.extend([1, 2])
    assert lines.pop() == 2 and lines.pop() == 1 and lines.to_list() == []
