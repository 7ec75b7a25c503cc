"""Partial sync with real processes: devices subscribe with the CLI, a
store relay (`shoal-relay --subscribe`) holds only its store's documents,
and a device syncing through it ends with the same documents as one
syncing with the hub."""

import json
import random

from conftest import get, init, run, seed_for, sync, wait_until


def ls(d, coll="products"):
    return run("-d", d, "ls", coll).stdout.split()


def find_ids(d, where, coll="products"):
    out = run("-d", d, "find", coll, where).stdout.splitlines()
    return sorted(json.loads(line)["_id"] for line in out)


def subs(d):
    return json.loads(run("-d", d, "subscriptions").stdout)


def load_products(d, rng, n):
    """n products over stores 11..13 and three categories, written with put."""
    for i in range(n):
        doc = {"store_id": 11 + i % 3, "category": rng.choice(["jeans", "shirts", "shoes"]),
               "price": rng.randrange(5, 90)}
        run("-d", d, "put", "products", f"p{i:03d}", json.dumps(doc))


def test_scoped_store_relay_and_devices(net):
    rng = random.Random(seed_for("scoped"))
    writer, hubdir, storedir = net.dir("writer"), net.dir("hub"), net.dir("store12")
    b, c = net.dir("b"), net.dir("c")
    kw, kh, ks, kb, kc = init(writer), init(hubdir), init(storedir), init(b), init(c)
    hub = net.relay("hub", allow=[kw, ks, kc])
    load_products(writer, rng, 45)
    sync(writer, hub.peer_spec())

    store = net.relay("store12", allow=[kb], upstream=[hub.peer_spec()],
                      extra=["--subscribe", "products WHERE store_id == 12"])
    want12 = find_ids(hubdir, "store_id == 12")
    assert len(want12) == 15
    wait_until(lambda: ls(storedir) == want12, 30, "the store relay to hold store 12")
    # Never another store's document.
    assert find_ids(storedir, "store_id != 12") == []

    # A device through the store relay, one through the hub: the same view.
    for d in (b, c):
        run("-d", d, "subscribe", "mine", "products", "store_id == :s AND price < :p",
            "--param", "s=12", "--param", "p=60")
        s = subs(d)
        assert s == [{"name": "mine", "collection": "products",
                      "where": "store_id == :s AND price < :p", "params": {"s": 12, "p": 60},
                      "state": "pending", "docs": 0}]
    sync(b, store.peer_spec())
    sync(c, hub.peer_spec())
    want = find_ids(hubdir, "store_id == 12 AND price < 60")
    assert ls(b) == want and ls(c) == want
    for doc in want:
        assert get(b, "products", doc) == get(hubdir, "products", doc)
    assert subs(b)[0]["state"] == "complete" and subs(b)[0]["docs"] == len(want)

    # The store relay's record of the device shows its subscription.
    def seen():
        peers = json.loads(run("-d", storedir, "peers").stdout)
        mine = [p for p in peers if p["key"] == kb]
        return mine and mine[0]["subscriptions"] == \
            "mine: products WHERE store_id == :s AND price < :p" and mine[0]["view_docs"] == len(want)
    wait_until(seen, 30, "the store relay's peer record of the device")

    # A device edit goes up through the store relay to the hub.
    run("-d", b, "incr", "products", want[0], "stock", 4)
    sync(b, store.peer_spec())
    wait_until(lambda: (get(hubdir, "products", want[0]) or {}).get("stock") == 4, 30,
               "the edit to reach the hub")

    # The hub moves a document out of store 12: it leaves the store relay
    # and the device; another one moves in.
    out_doc = want[-1]
    in_doc = find_ids(hubdir, "store_id == 13 AND price < 60")[0]
    run("-d", writer, "put", "products", out_doc, '{"store_id": 13}')
    run("-d", writer, "put", "products", in_doc, '{"store_id": 12}')
    sync(writer, hub.peer_spec())

    def moved():
        sync(b, store.peer_spec())
        held = ls(b)
        return out_doc not in held and in_doc in held
    wait_until(moved, 60, "the move to reach the device through the store relay")
    assert out_doc not in ls(storedir)
    assert ls(b) == find_ids(hubdir, "store_id == 12 AND price < 60")

    # Unsubscribing evicts what no subscription matches.
    run("-d", b, "subscribe", "shoes", "products", 'category == "shoes"')
    assert subs(b)[1]["state"] == "pending"
    sync(b, store.peer_spec())
    both = find_ids(storedir, 'store_id == 12 AND (price < 60 OR category == "shoes")')
    assert ls(b) == both
    run("-d", b, "unsubscribe", "mine")
    assert ls(b) == find_ids(storedir, 'store_id == 12 AND category == "shoes"')
    assert [s["name"] for s in subs(b)] == ["shoes"]
    run("-d", b, "check")


def test_cli_subscription_errors(net):
    d = net.dir("d")
    init(d)
    bad = run("-d", d, "subscribe", "x", "products", "price <", check=False)
    assert bad.returncode == 1 and "position" in bad.stderr
    unbound = run("-d", d, "subscribe", "x", "products", "price < :p", check=False)
    assert unbound.returncode == 1 and ":p" in unbound.stderr
    sorted_ = run("-d", d, "subscribe", "", "products", check=False)
    assert sorted_.returncode == 1
    missing = run("-d", d, "unsubscribe", "nope", check=False)
    assert missing.returncode == 2 and "nope" in missing.stderr
    assert subs(d) == []
    run("-d", d, "subscribe", "all", "products")
    assert subs(d)[0]["where"] == "TRUE"
    # Replacing with the same definition keeps it; another one replaces it.
    run("-d", d, "subscribe", "all", "products", "price > 3")
    assert [(s["name"], s["where"]) for s in subs(d)] == [("all", "price > 3")]


def test_subscribe_while_serving(net):
    """A subscription made by another process on the directory of a running
    `shoal serve` takes effect on its live link: the matching documents
    arrive with no `sync`, and an unsubscribe evicts them."""
    rng = random.Random(seed_for("serve-subscribe"))
    writer, hubdir, d = net.dir("writer"), net.dir("hub"), net.dir("d")
    kw, kh, kd = init(writer), init(hubdir), init(d)
    hub = net.relay("hub", allow=[kw, kd])
    load_products(writer, rng, 12)
    sync(writer, hub.peer_spec())
    run("-d", d, "subscribe", "none", "products", "store_id == 99")
    net.serve("d-live", d, peers=[hub.peer_spec()])
    wait_until(lambda: subs(d)[0]["state"] == "complete", 30, "the first set to complete")
    assert ls(d) == []
    run("-d", d, "subscribe", "s11", "products", "store_id == 11")
    want = find_ids(hubdir, "store_id == 11")
    wait_until(lambda: ls(d) == want, 30, "store 11 to arrive on the live link")
    wait_until(lambda: all(s["state"] == "complete" for s in subs(d)), 30,
               "every subscription to complete")
    run("-d", d, "unsubscribe", "s11")
    assert ls(d) == []
