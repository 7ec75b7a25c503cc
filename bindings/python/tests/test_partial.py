"""Partial sync through the binding: subscribe, unsubscribe, subscriptions,
eviction events (ChangeEvent.left), sync_async and wait_complete.

A relay (a full replica listening on 127.0.0.1 for any key) holds 200
products; devices in temporary directories subscribe and sync with it over
real sockets, then compare what they hold with find on the relay.  Every
wait is a bounded poll."""
import asyncio
import socket
import time

import pytest

import shoal

N_PRODUCTS = 200
SYNC_S = 30.0   # generous: the exchange itself takes milliseconds
WAIT_S = 20.0
CATS = "abcd"


def wait_for(cond, timeout=WAIT_S, what="condition"):
    """Poll cond() until it returns a true value (returned) or fail."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            pytest.fail("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(0.02)


def ids(r, where=None, params=None):
    """Ids of the live products of r matching where, sorted."""
    return [row["_id"] for row in r.find("products", where, params, fields=[])]


def events(r):
    """Every change event queued on r now."""
    res = []
    while True:
        ev = r.next_change(0)
        if ev is None:
            return res
        res.append(ev)


def left_ids(evs):
    return sorted(e.doc_id for e in evs if e.left)


def received_from(d, peer_id):
    for p in d.peers():
        if p.id == peer_id:
            return p.received
    return 0


def states(d):
    return {s["name"]: s["state"] for s in d.subscriptions()}


class Relay:
    """A full replica with N_PRODUCTS products (store_id = i % 10,
    category = CATS[(i // 10) % 4], price = i % 97), listening."""

    def __init__(self, r):
        self.r = r
        with r.transaction():
            for i in range(N_PRODUCTS):
                r.doc("products", "p%05d" % i).update(
                    {"store_id": i % 10, "category": CATS[(i // 10) % 4],
                     "price": i % 97})
        self.ep = r.listen("tcp://127.0.0.1:*", allow_any=True)
        self.id = r.id

    def sync(self, d):
        d.sync(self.ep, self.id, timeout=SYNC_S)


@pytest.fixture
def relay(make_replica):
    return Relay(make_replica("relay"))


@pytest.fixture
def dev(make_replica):
    return make_replica("dev")


# ------------------------------------------------------------ exact views

@pytest.mark.parametrize("subs, union", [
    ([("s1", "store_id == 3", None)], "store_id == 3"),
    ([("s1", "store_id == 3", None), ("s2", 'category == "a"', None)],
     'store_id == 3 OR category == "a"'),
    ([("s1", "store_id == :s AND price < :max", {"s": 7, "max": 40})],
     "store_id == 7 AND price < 40"),
], ids=["single", "overlap", "params"])
def test_a_sync_brings_exactly_the_view(relay, dev, subs, union):
    for name, where, params in subs:
        dev.subscribe(name, "products", where, params)
    assert states(dev) == {name: "pending" for name, _, _ in subs}
    relay.sync(dev)
    want = ids(relay.r, union)
    assert want and ids(dev) == want
    assert dev.collections() == ["products"]
    assert states(dev) == {name: "complete" for name, _, _ in subs}
    for s, (name, where, params) in zip(dev.subscriptions(), subs):
        assert s["docs"] == relay.r.count("products", where, params)
    # Nothing else crossed: one change per matching document.
    assert received_from(dev, relay.id) == len(want)
    # A second sync sends nothing new.
    relay.sync(dev)
    assert received_from(dev, relay.id) == len(want)
    assert ids(dev) == want


def test_a_whole_collection(relay, dev):
    relay.r.doc("stores", "s1")["name"] = "north"
    relay.r.doc("stores", "s2")["name"] = "south"
    dev.subscribe("stores", "stores")
    relay.sync(dev)
    assert dev.collections() == ["stores"]
    assert dev.docs("stores") == ["s1", "s2"]
    assert dev.doc("stores", "s2").to_dict() == {"name": "south"}
    assert dev.subscriptions() == [{"name": "stores", "collection": "stores",
                                    "where": "TRUE", "params": {},
                                    "state": "complete", "docs": 2}]


# ----------------------------------------------------- subscriptions()

def test_subscriptions_contents_and_states(relay, dev):
    assert dev.subscriptions() == []
    params = {"s": 3, "c": "a", "f": 1.5, "b": True, "n": None, "raw": b"\x00\xff"}
    where = ("store_id == :s AND category == :c AND price > :f AND flag != :b "
             "AND missing == :n AND blob != :raw")
    dev.subscribe("mine", "products", where, params)
    dev.subscribe("cheap", "products", "price < 5")
    assert dev.subscriptions() == [
        {"name": "mine", "collection": "products", "where": where,
         "params": params, "state": "pending", "docs": 0},
        {"name": "cheap", "collection": "products", "where": "price < 5",
         "params": {}, "state": "pending", "docs": 0},
    ]
    # A leading colon on a parameter name is accepted, as in find.
    dev.subscribe("cheap", "products", "price < :p", {":p": 5})
    relay.sync(dev)
    mine = relay.r.count("products", where, params)
    cheap = relay.r.count("products", "price < 5")
    assert mine > 0 and cheap > 0
    assert dev.subscriptions() == [
        {"name": "mine", "collection": "products", "where": where,
         "params": params, "state": "complete", "docs": mine},
        {"name": "cheap", "collection": "products", "where": "price < :p",
         "params": {"p": 5}, "state": "complete", "docs": cheap},
    ]
    # The same definition again changes nothing: it stays complete.
    dev.subscribe("cheap", "products", "price < :p", {"p": 5})
    assert states(dev) == {"mine": "complete", "cheap": "complete"}


def test_replacing_a_subscription(relay, dev):
    dev.subscribe("mine", "products", "store_id == :s", {"s": 3})
    relay.sync(dev)
    before = ids(relay.r, "store_id == 3")
    assert ids(dev) == before
    events(dev)
    # Another definition under the same name: pending again, and what it
    # no longer matches is evicted at once, before any sync.
    dev.subscribe("mine", "products", "store_id == :s AND price < 50", {"s": 3})
    assert dev.subscriptions() == [
        {"name": "mine", "collection": "products",
         "where": "store_id == :s AND price < 50", "params": {"s": 3},
         "state": "pending", "docs": len(ids(relay.r, "store_id == 3 AND price < 50"))}]
    assert ids(dev) == ids(relay.r, "store_id == 3 AND price < 50")
    assert left_ids(events(dev)) == ids(relay.r, "store_id == 3 AND price >= 50")
    # A wider one: the sync brings what was missing.
    dev.subscribe("mine", "products", "store_id == :s", {"s": 4})
    assert ids(dev) == []
    relay.sync(dev)
    assert states(dev) == {"mine": "complete"}
    assert ids(dev) == ids(relay.r, "store_id == 4")


def test_subscriptions_persist(relay, make_replica):
    d = make_replica("persist")
    d.subscribe("mine", "products", "store_id == :s", {"s": 3})
    relay.sync(d)
    want = d.subscriptions()
    d.close()
    d = make_replica("persist")
    assert d.subscriptions() == want
    assert ids(d) == ids(relay.r, "store_id == 3")


# ------------------------------------------------------------ unsubscribe

def test_unsubscribe_removes_and_evicts(relay, dev):
    dev.subscribe("store", "products", "store_id == 3")
    dev.subscribe("cat", "products", 'category == "a"')
    relay.sync(dev)
    assert ids(dev) == ids(relay.r, 'store_id == 3 OR category == "a"')
    events(dev)

    dev.unsubscribe("cat")
    # At once, no sync: only what "store" matches stays, and every document
    # that went has a left event.
    assert [s["name"] for s in dev.subscriptions()] == ["store"]
    assert ids(dev) == ids(relay.r, "store_id == 3")
    gone = ids(relay.r, 'category == "a" AND store_id != 3')
    assert gone and left_ids(events(dev)) == gone
    for doc_id in gone:
        assert not dev.doc("products", doc_id).exists
    relay.sync(dev)
    assert ids(dev) == ids(relay.r, "store_id == 3")

    with pytest.raises(shoal.NotFound) as ei:
        dev.unsubscribe("cat")
    assert isinstance(ei.value, KeyError)
    assert ei.value.code == shoal.ErrorCode.NOTFOUND
    assert "cat" in str(ei.value)

    # The last one: the replica is full again and the next sync brings
    # everything.
    dev.unsubscribe("store")
    assert dev.subscriptions() == []
    assert ids(dev) == []
    relay.sync(dev)
    assert ids(dev) == ids(relay.r)
    assert dev.digest(full=True) == relay.r.digest(full=True)


# ------------------------------------------------------------ left events

def test_a_document_leaving_the_view_is_evicted_with_an_event(relay, dev):
    dev.subscribe("mine", "products", "store_id == 3")
    relay.sync(dev)
    assert dev.doc("products", "p00013").exists
    evs = events(dev)
    assert evs and all(e.remote and not e.left for e in evs)

    # An edit that keeps it in view arrives as a plain remote change.
    relay.r.doc("products", "p00013")["price"] = 500
    relay.sync(dev)
    assert dev.doc("products", "p00013")["price"] == 500
    assert events(dev) == [shoal.ChangeEvent("products", "p00013", True, False, False)]

    # One that moves it out: the device receives that change, judges the
    # document on it, evicts it and says so.
    relay.r.doc("products", "p00013")["store_id"] = 4
    relay.sync(dev)
    assert not dev.doc("products", "p00013").exists
    assert dev.doc("products", "p00013").to_dict() == {}
    assert events(dev) == [shoal.ChangeEvent("products", "p00013", True, False, False),
                           shoal.ChangeEvent("products", "p00013", False, False, True)]
    assert ids(dev) == ids(relay.r, "store_id == 3")
    assert dev.check().ok

    # Back in view: the whole document again, the price set before included.
    relay.r.doc("products", "p00013")["store_id"] = 3
    relay.sync(dev)
    assert dev.doc("products", "p00013").to_dict() == relay.r.doc("products", "p00013").to_dict()
    assert dev.doc("products", "p00013")["price"] == 500
    assert not any(e.left for e in events(dev))


def test_an_offline_edit_reaches_the_relay_before_eviction(relay, dev):
    dev.subscribe("mine", "products", "store_id == 3")
    relay.sync(dev)
    dev.doc("products", "p00033")["count"] = 17           # offline edit
    relay.r.doc("products", "p00033")["store_id"] = 5      # leaves the view
    dev.doc("products", "x_outside")["store_id"] = 9       # never in view
    relay.sync(dev)
    assert relay.r.doc("products", "p00033")["count"] == 17
    assert relay.r.doc("products", "x_outside")["store_id"] == 9

    # Evicted once the relay acknowledged them: within that sync or at the
    # next one, when the relay's hello shows it.
    def evicted():
        if dev.doc("products", "p00033").exists or dev.doc("products", "x_outside").exists:
            relay.sync(dev)
            return False
        return True
    wait_for(evicted, what="the acknowledged documents to be evicted")
    assert ids(dev) == ids(relay.r, "store_id == 3")
    assert {"p00033", "x_outside"} <= set(left_ids(events(dev)))


def test_local_changes_have_left_false(replica):
    replica.doc("orders", "o-1")["status"] = "open"
    ev = replica.next_change(1.0)
    assert ev.left is False and ev == ("orders", "o-1", False, False, False, False)


# ------------------------------------------------- sync_async, wait_complete

def test_sync_async_then_every_subscription_is_complete(relay, dev):
    dev.subscribe("mine", "products", "store_id == :s", {"s": 7})
    dev.subscribe("cat", "products", 'category == "b"')

    async def main():
        ticks = []

        async def ticker():
            while True:
                ticks.append(1)
                await asyncio.sleep(0.001)
        t = asyncio.create_task(ticker())
        try:
            assert states(dev) == {"mine": "pending", "cat": "pending"}
            await dev.sync_async(relay.ep, relay.id, timeout=SYNC_S)
            # The loop ran the ticker while the sync was in its thread.
            assert ticks
            return dev.subscriptions()
        finally:
            t.cancel()

    subs = asyncio.run(main())
    assert [s["state"] for s in subs] == ["complete", "complete"]
    assert ids(dev) == ids(relay.r, 'store_id == 7 OR category == "b"')


def test_sync_async_errors(dev, relay, make_replica):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()

    async def unreachable():
        await dev.sync_async("tcp://127.0.0.1:%d" % port, relay.id, timeout=0.3)

    t0 = time.monotonic()
    with pytest.raises(shoal.TimeoutError):
        asyncio.run(unreachable())
    assert time.monotonic() - t0 < 10.0

    async def bad_endpoint():
        await dev.sync_async("not an endpoint", relay.id)
    with pytest.raises(shoal.InvalidArgumentError):
        asyncio.run(bad_endpoint())

    stranger = make_replica("stranger").id

    async def wrong_key():
        await dev.sync_async(relay.ep, stranger, timeout=SYNC_S)
    with pytest.raises(shoal.RefusedError):
        asyncio.run(wrong_key())


def test_wait_complete_on_a_live_link(relay, dev):
    dev.subscribe("mine", "products", "store_id == 3")
    dev.connect(relay.ep, relay.id)
    assert dev.wait_complete(WAIT_S)
    assert states(dev) == {"mine": "complete"}
    assert ids(dev) == ids(relay.r, "store_id == 3")
    # Changes on the relay move documents in and out on the live link.
    relay.r.doc("products", "p00044")["store_id"] = 3
    wait_for(lambda: dev.doc("products", "p00044").exists, what="p00044 to arrive")
    relay.r.doc("products", "p00053")["store_id"] = 8
    wait_for(lambda: not dev.doc("products", "p00053").exists, what="p00053 to leave")
    # A new subscription takes effect on the link; wait_complete waits for it.
    dev.subscribe("more", "products", "store_id == 8")
    assert dev.wait_complete(WAIT_S)
    assert states(dev) == {"mine": "complete", "more": "complete"}
    wait_for(lambda: ids(dev) == ids(relay.r, "store_id == 3 OR store_id == 8"),
             what="the view of both subscriptions")
    dev.disconnect(relay.ep)


def test_wait_complete_is_bounded(make_replica):
    full = make_replica("full")
    t0 = time.monotonic()
    assert full.wait_complete(5.0)          # a full replica: nothing to wait for
    assert time.monotonic() - t0 < 1.0
    lonely = make_replica("lonely")
    lonely.subscribe("mine", "products")
    t0 = time.monotonic()
    assert lonely.wait_complete(0.2) is False   # no peer: stays pending
    assert 0.2 <= time.monotonic() - t0 < 5.0
    assert lonely.wait_complete(0) is False
    with pytest.raises(ValueError):
        lonely.wait_complete(-1)
    with pytest.raises(TypeError):
        lonely.wait_complete(None)


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("bad", ["", "x" * 65, "a\0b", "\udc80"])
def test_bad_subscription_names(dev, bad):
    with pytest.raises(shoal.InvalidArgumentError) as ei:
        dev.subscribe(bad, "products")
    assert isinstance(ei.value, ValueError)
    assert ei.value.code == shoal.ErrorCode.INVAL
    assert dev.subscriptions() == []


def test_subscription_name_bounds(dev):
    dev.subscribe("x" * 64, "products")                 # 64 bytes: fine
    dev.subscribe("é" * 32, "products")                 # 64 bytes of UTF-8
    with pytest.raises(shoal.InvalidArgumentError):
        dev.subscribe("é" * 32 + "x", "products")       # 65 bytes
    assert [s["name"] for s in dev.subscriptions()] == ["x" * 64, "é" * 32]
    with pytest.raises(TypeError):
        dev.subscribe(b"mine", "products")
    with pytest.raises(TypeError):
        dev.unsubscribe(None)


def test_subscribe_errors_leave_the_set_alone(dev):
    dev.subscribe("keep", "products", "price < 5")
    want = dev.subscriptions()
    with pytest.raises(shoal.InvalidArgumentError) as ei:
        dev.subscribe("mine", "products", "store_id == :s")         # unbound
    assert ":s" in str(ei.value) and "not bound" in str(ei.value)
    with pytest.raises(shoal.NotFound):
        dev.subscribe("mine", "products", "store_id == 3", {"nope": 1})
    with pytest.raises(shoal.InvalidArgumentError) as ei:
        dev.subscribe("mine", "products", "price <")                # syntax
    assert "position 7" in str(ei.value)
    with pytest.raises(shoal.InvalidArgumentError):
        dev.subscribe("mine", "", "price < 5")                      # collection
    with pytest.raises(TypeError):
        dev.subscribe("mine", "products", "price < :p", {"p": [1]})
    # A failed replacement keeps the old definition.
    with pytest.raises(shoal.InvalidArgumentError):
        dev.subscribe("keep", "products", "price < :p")
    assert dev.subscriptions() == want


def test_unsubscribe_unknown_is_not_found(dev):
    for name in ("nope", "x" * 65):
        with pytest.raises(shoal.NotFound):
            dev.unsubscribe(name)
    with pytest.raises(shoal.InvalidArgumentError):
        dev.unsubscribe("")
    with pytest.raises(shoal.InvalidArgumentError):
        dev.unsubscribe("a\0b")


def test_at_most_64_subscriptions(dev):
    for i in range(64):
        dev.subscribe("s%d" % i, "products", "store_id == %d" % i)
    with pytest.raises(shoal.TooBigError):
        dev.subscribe("one too many", "products")
    dev.subscribe("s0", "products", "store_id == 100")   # replacing is fine
    assert len(dev.subscriptions()) == 64


def test_closed_replica(make_replica):
    r = make_replica("closed")
    r.subscribe("mine", "products")
    r.close()
    for call in (lambda: r.subscribe("other", "products"),
                 lambda: r.unsubscribe("mine"),
                 r.subscriptions,
                 lambda: r.wait_complete(0.1)):
        with pytest.raises(shoal.ClosedError):
            call()

    async def main():
        await r.sync_async("tcp://127.0.0.1:1", "ab" * 32)
    with pytest.raises(shoal.ClosedError):
        asyncio.run(main())
