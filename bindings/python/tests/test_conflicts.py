"""The four conflict rules, seen from Python.

Two replicas ("devices") edit concurrently (neither has seen the other's
edit), then exchange bundles.  Settable clocks make "later" deterministic:
device B's clock runs ahead of device A's.
"""
import pytest

import shoal
from conftest import Clock, sync, sync_all


@pytest.fixture
def pair(make_replica):
    ca, cb = Clock(1_700_000_000_000), Clock(1_700_000_000_000)
    a = make_replica("a", clock=ca)
    b = make_replica("b", clock=cb)
    return a, b, ca, cb


def shared(a, b, coll="orders", doc="o-1", **fields):
    """Create a document on a with fields and bring b up to date."""
    d = a.doc(coll, doc)
    d.update(fields or {"created": True})
    sync(a, b)
    return d, b.doc(coll, doc)


def assert_converged(a, b):
    assert a.digest() == b.digest()
    assert a.digest(full=True) == b.digest(full=True)
    assert a.version() == b.version()


# -- rule 1: deletes win ----------------------------------------------------

def test_delete_wins_over_concurrent_edits(pair):
    a, b, ca, cb = pair
    da, db = shared(a, b, status="open")
    da.delete()
    cb.advance(5000)  # B's edit is later in time, and still loses
    db["status"] = "shipped"
    db.counter("n").add(3)  # a concurrent increment dies with its epoch
    db.list("l").append("x")
    sync_all(a, b)
    for d in (da, db):
        assert d.deleted and d.to_dict() == {}
    assert a.docs("orders") == b.docs("orders") == []
    assert_converged(a, b)


def test_recreate_after_delete_starts_a_new_epoch(pair):
    a, b, ca, cb = pair
    da, db = shared(a, b, status="open")
    da.delete()
    sync(a, b)
    assert db.deleted
    db["status"] = "re-opened"  # B saw the delete: re-creates, epoch 1
    sync_all(a, b)
    assert da.to_dict() == db.to_dict() == {"status": "re-opened"}
    assert da.epoch == db.epoch == 1
    # an edit made in the old epoch (by a device that missed all of this) is
    # discarded
    assert_converged(a, b)


def test_stale_epoch_edit_is_discarded(pair, make_replica):
    a, b, ca, cb = pair
    c = make_replica("c", clock=Clock(1_700_000_000_000))
    da, db = shared(a, b, status="open")
    sync(a, c)
    da.delete()
    sync(a, b)
    db["status"] = "again"  # epoch 1
    c.doc("orders", "o-1")["late"] = "old epoch"  # epoch 0, concurrent
    sync_all(a, b, c)
    for r in (a, b, c):
        assert r.doc("orders", "o-1").to_dict() == {"status": "again"}
    assert a.digest(full=True) == b.digest(full=True) == c.digest(full=True)


# -- rule 2: last write wins per field --------------------------------------

@pytest.mark.parametrize("later", ["a", "b"])
def test_last_write_wins(pair, later):
    a, b, ca, cb = pair
    da, db = shared(a, b, status="open", keep=1)
    (ca if later == "a" else cb).advance(10_000)
    da["status"] = "from-a"
    db["status"] = "from-b"
    sync_all(a, b)
    expected = "from-%s" % later
    assert da["status"] == db["status"] == expected
    assert da["keep"] == db["keep"] == 1  # other fields untouched
    assert_converged(a, b)


def test_remove_is_a_write_of_absent(pair):
    a, b, ca, cb = pair
    da, db = shared(a, b, status="open")
    db["status"] = "edited"
    cb.advance(1)
    ca.advance(10_000)
    del da["status"]  # later: removal wins
    sync_all(a, b)
    assert "status" not in da and "status" not in db
    assert_converged(a, b)


def test_field_kind_later_first_op_is_visible(pair):
    a, b, ca, cb = pair
    da, db = shared(a, b)
    da["qty"] = "a register"
    cb.advance(10_000)
    db.counter("qty").add(4)  # its first op is later: the counter shows
    sync_all(a, b)
    assert da.kind("qty") is db.kind("qty") is shoal.Kind.COUNTER
    assert da["qty"] == db["qty"] == 4
    assert_converged(a, b)


# -- rule 3: list inserts are ordered by time ------------------------------

def test_concurrent_inserts_later_first(pair):
    a, b, ca, cb = pair
    da, db = shared(a, b)
    da.list("lines").append("base")
    sync(a, b)
    da.list("lines").insert(0, "from-a")
    cb.advance(10_000)
    db.list("lines").insert(0, "from-b")
    sync_all(a, b)
    # same reference (the list head): the greater id (later) comes first
    assert da.list("lines") == db.list("lines") == ["from-b", "from-a", "base"]
    assert_converged(a, b)


def test_delete_element_wins_over_concurrent_replace(pair):
    a, b, ca, cb = pair
    da, db = shared(a, b)
    da.list("lines").extend(["x", "y"])
    sync(a, b)
    del da.list("lines")[0]
    cb.advance(10_000)
    db.list("lines")[0] = "x2"  # later, but the tombstone wins
    sync_all(a, b)
    assert da.list("lines") == db.list("lines") == ["y"]
    assert_converged(a, b)


def test_concurrent_replaces_last_write_wins(pair):
    a, b, ca, cb = pair
    da, db = shared(a, b)
    da.list("lines").append("x")
    sync(a, b)
    ca.advance(10_000)
    da.list("lines")[0] = "a-later"
    db.list("lines")[0] = "b-earlier"
    sync_all(a, b)
    assert da["lines"] == db["lines"] == ["a-later"]


# -- rule 4: increments and decrements are preserved -------------------------

def test_counter_keeps_every_increment(pair, make_replica):
    a, b, ca, cb = pair
    da, db = shared(a, b)
    da.counter("stock").add(10)
    sync(a, b)
    da.counter("stock").add(5)
    da.counter("stock").add(-1)
    db.counter("stock").add(-3)
    db.counter("stock").add(7)
    sync_all(a, b)
    assert da.counter("stock").value == db.counter("stock").value == 18
    assert_converged(a, b)


def test_merge_order_and_duplicates_do_not_matter(pair, make_replica):
    a, b, ca, cb = pair
    da, db = shared(a, b, status="open")
    da["status"] = "a"
    da.counter("n").add(1)
    cb.advance(3)
    db["status"] = "b"
    db.list("l").append(1)
    ba, bb = a.export(), b.export()
    x, y = make_replica("x"), make_replica("y")
    x.merge(ba)
    x.merge(bb)
    y.merge(bb)
    y.merge(ba)
    y.merge(bb)
    assert x.digest(full=True) == y.digest(full=True)
    assert x.doc("orders", "o-1").to_dict() == y.doc("orders", "o-1").to_dict()
