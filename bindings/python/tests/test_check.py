"""Replica.check() and a damaged replica (docs/python.md, docs/operations.md
"A damaged replica")."""
import shutil

import pytest

import shoal
from conftest import sync


def _filled(make_replica):
    a = make_replica("a")
    a["items", "w"].update(name="check-py-unique", price=3)
    a.doc("items", "w").counter("stock").add(4)
    a.doc("items", "w").list("tags").insert(0, "x")
    a["items", "gone"]["k"] = 1
    a.doc("items", "gone").delete()
    b = make_replica("b")
    b["other", "z"]["f"] = "zed"
    sync(b, a)
    return a


def test_healthy(make_replica):
    a = _filled(make_replica)
    res = a.check()
    assert isinstance(res, shoal.CheckResult)
    assert res.ok and res.problems == [] and res.problem_count == 0
    assert (res.changes, res.pending, res.evidence, res.documents) == (6, 0, 0, 3)
    assert res.pages > 0


def _flip(path, needle):
    data = bytearray(path.read_bytes())
    at = data.find(needle)
    assert at >= 0
    while at >= 0:
        data[at] ^= 0x20  # a letter's case: still a string, another signature
        at = data.find(needle, at + 1)
    path.write_bytes(bytes(data))


def test_flipped_byte(make_replica, tmp_path):
    a = _filled(make_replica)
    a.close()
    _flip(tmp_path / "a" / "data.mdb", b"check-py-unique")
    r = make_replica("a")
    # Reads trust what was verified on arrival: the changed value reads back.
    assert r["items", "w"]["name"] == "Check-py-unique"
    res = r.check()
    assert not res.ok
    assert res.problem_count == 1 and len(res.problems) == 1
    assert res.problems[0].startswith("log ")
    assert res.problems[0].endswith("the signature does not verify")


def test_damaged_environment(make_replica, tmp_path):
    a = _filled(make_replica)
    a.close()
    with open(tmp_path / "a" / "data.mdb", "r+b") as f:
        f.write(bytes(8192))  # both LMDB meta pages
    with pytest.raises(shoal.CorruptError) as e:
        shoal.Replica(tmp_path / "a")
    assert e.value.code == shoal.ErrorCode.CORRUPT


def test_resync_keeps_seq(make_replica, tmp_path):
    """The old identity in a new directory, re-synced before it writes:
    the next change continues after the relay's highest seq."""
    dev = make_replica("dev")
    relay = make_replica("relay")
    for i in range(3):
        dev["items", "x"]["f"] = i
    sync(dev, relay)
    dev.close()
    (tmp_path / "new").mkdir(mode=0o700)
    shutil.copy2(tmp_path / "dev" / "identity", tmp_path / "new" / "identity")
    new = make_replica("new")
    assert new.id == dev.id
    sync(relay, new)
    assert new.version()[new.id] == 3
    new["items", "x"]["f"] = "after"
    assert new.version()[new.id] == 4
    res = relay.import_bundle(new.export(since=relay.version()))
    assert (res.applied, res.equivocations) == (1, 0)
    assert relay.check().ok
