"""Devices and relays as real processes: convergence, offline catch-up, and
a change crossing two site relays through a hub."""

import json
import random

from conftest import digest, get, init, run, seed_for, sync, wait_until


def converged(dirs, full=True):
    ds = {digest(d, full) for d in dirs}
    return len(ds) == 1


def random_edits(d, rng, n, tag):
    """n random edits of every kind on docs x0..x2 of d."""
    for i in range(n):
        doc = f"x{rng.randrange(3)}"
        kind = rng.choice(["put", "incr", "insert", "remove", "del", "unset"])
        cur = get(d, "rnd", doc)
        if kind == "put" or cur in (None, "deleted"):
            run("-d", d, "put", "rnd", doc, json.dumps({f"f{rng.randrange(3)}": f"{tag}{i}"}))
        elif kind == "incr":
            run("-d", d, "incr", "rnd", doc, "n", rng.randrange(-5, 6) or 1)
        elif kind == "insert":
            items = cur.get("l", [])
            run("-d", d, "insert", "rnd", doc, "l", rng.randrange(len(items) + 1),
                json.dumps(f"{tag}{i}"))
        elif kind == "remove":
            if isinstance(cur.get("l"), list) and cur["l"]:
                run("-d", d, "remove", "rnd", doc, "l", rng.randrange(len(cur["l"])))
        elif kind == "unset":
            f = next((k for k in sorted(cur) if k.startswith("f")), None)
            if f is not None:
                run("-d", d, "unset", "rnd", doc, f)
        else:
            run("-d", d, "del", "rnd", doc)


def test_two_devices_and_relay_converge_after_concurrent_edits(net):
    rng = random.Random(seed_for("converge"))
    a, b = net.dir("a"), net.dir("b")
    ka, kb = init(a), init(b)
    relay = net.relay("relay", allow=[ka, kb])
    R = relay.peer_spec()
    rdir = net.dir("relay")

    # A common starting point, through the relay.
    run("-d", a, "put", "items", "w", '{"name":"Widget","price":10}')
    run("-d", a, "incr", "items", "w", "stock", 5)
    run("-d", a, "insert", "items", "w", "tags", 0, '"tools"')
    run("-d", a, "put", "items", "g", '{"name":"Gadget","price":25}')
    run("-d", a, "put", "items", "r", '{"v":1}')
    sync(a, R)
    sync(b, R)
    assert converged([a, b, rdir])
    assert get(b, "items", "w") == {"name": "Widget", "price": 10, "stock": 5,
                                    "tags": ["tools"]}

    # Concurrent edits of every field kind; neither device is linked.
    run("-d", a, "put", "items", "w", '{"price":12}')
    run("-d", a, "incr", "items", "w", "stock", 3)
    run("-d", a, "insert", "items", "w", "tags", 0, '"sale"')
    run("-d", a, "del", "items", "g")
    run("-d", a, "del", "items", "r")
    run("-d", a, "put", "items", "r", '{"v":2}')  # re-created: next epoch
    random_edits(a, rng, 8, "a")
    run("-d", b, "put", "items", "w", '{"price":11,"shelf":"B4"}')
    run("-d", b, "incr", "items", "w", "stock", -1)
    run("-d", b, "insert", "items", "w", "tags", 1, '"metal"')
    run("-d", b, "remove", "items", "w", "tags", 0)
    run("-d", b, "put", "items", "g", '{"price":20}')
    run("-d", b, "unset", "items", "w", "name")
    random_edits(b, rng, 8, "b")
    assert not converged([a, b])

    # B goes live (a serve process linked to the relay), A syncs until all
    # three hold the same state.
    net.serve("b-live", b, peers=[R], events=True)

    def done():
        sync(a, R)
        return converged([a, b, rdir]) and converged([a, b, rdir], full=False)

    wait_until(done, 60, "a, b and the relay to converge")
    w = get(a, "items", "w")
    assert w["price"] == 11  # the later write
    assert w["stock"] == 7   # 5 + 3 - 1: every increment kept
    assert sorted(w["tags"]) == ["metal", "sale"]  # "tools" removed, both inserts kept
    assert w["shelf"] == "B4" and "name" not in w
    assert get(a, "items", "g") == "deleted"  # the delete beat the concurrent update
    assert get(b, "items", "r") == {"v": 2}   # re-created after the delete
    for d in (a, b, rdir):
        assert get(d, "items", "w") == w


def test_offline_device_catches_up_on_restart(net):
    rng = random.Random(seed_for("offline"))
    a, c = net.dir("a"), net.dir("c")
    ka, kc = init(a), init(c)
    relay = net.relay("relay", allow=[ka, kc])
    R = relay.peer_spec()
    rdir = net.dir("relay")

    dev_c = net.serve("c", c, peers=[R])
    run("-d", a, "put", "notes", "n0", '{"text":"hello"}')
    sync(a, R)
    wait_until(lambda: get(c, "notes", "n0") == {"text": "hello"}, 30,
               "the live device to receive n0")

    # C's process stops; others write meanwhile, and C writes offline.
    assert dev_c.stop() == 0
    for i in range(1, 21):
        op = rng.choice(["put", "incr", "insert"])
        if op == "put":
            run("-d", a, "put", "notes", f"n{i}", json.dumps({"text": f"note {i}"}))
        elif op == "incr":
            run("-d", a, "incr", "notes", "n0", "views", rng.randrange(1, 9))
        else:
            run("-d", a, "insert", "notes", "n0", "log", 0, json.dumps(f"entry {i}"))
    sync(a, R)
    run("-d", c, "put", "notes", "from-c", '{"text":"written offline"}')
    run("-d", c, "incr", "notes", "n0", "views", 100)
    assert get(c, "notes", "n20") != get(a, "notes", "n20") or get(c, "notes", "n20") is None
    assert digest(c) != digest(rdir)

    net.serve("c-again", c, peers=[R])

    def done():
        sync(a, R)
        return converged([a, c, rdir])

    wait_until(done, 60, "the restarted device to catch up")
    assert get(c, "notes", "n20") == get(a, "notes", "n20")
    assert get(a, "notes", "from-c") == {"text": "written offline"}
    assert get(c, "notes", "n0") == get(a, "notes", "n0")
    assert get(a, "notes", "n0")["views"] >= 100


def test_change_crosses_site_relays_through_hub(net):
    seed_for("hub")
    d1, d2 = net.dir("d1"), net.dir("d2")
    k1, k2 = init(d1), init(d2)
    s1dir, s2dir = net.dir("site1"), net.dir("site2")
    ks1, ks2 = init(s1dir), init(s2dir)  # a relay's identity is its replica's
    hub = net.relay("hub", allow=[ks1, ks2])
    site1 = net.relay("site1", allow=[k1], upstream=[hub.peer_spec()])
    site2 = net.relay("site2", allow=[k2], upstream=[hub.peer_spec()])
    assert site1.id == ks1 and site2.id == ks2

    run("-d", d1, "put", "orders", "o1", '{"from":"site 1","qty":3}')
    sync(d1, site1.peer_spec())

    def arrived(d, peer, doc, want):
        def cond():
            sync(d, peer)
            return get(d, "orders", doc) == want
        return cond

    wait_until(arrived(d2, site2.peer_spec(), "o1", {"from": "site 1", "qty": 3}), 60,
               "o1 to reach the device behind site 2")

    # And back: an edit behind site 2 reaches the device behind site 1.
    run("-d", d2, "incr", "orders", "o1", "shipped", 2)
    run("-d", d2, "put", "orders", "o2", '{"from":"site 2"}')
    sync(d2, site2.peer_spec())
    wait_until(arrived(d1, site1.peer_spec(), "o2", {"from": "site 2"}), 60,
               "o2 to reach the device behind site 1")
    assert get(d1, "orders", "o1") == {"from": "site 1", "qty": 3, "shipped": 2}
    wait_until(lambda: converged([d1, d2, s1dir, s2dir, net.dir("hub")]), 30,
               "every replica to hold the same state")


def test_live_devices_push_commits_of_other_processes(net):
    """Two devices each run `shoal serve --peer RELAY`; edits made with the
    CLI (another process on the same directory) reach the other device with
    no `sync` at all."""
    rng = random.Random(seed_for("live"))
    a, b = net.dir("a"), net.dir("b")
    ka, kb = init(a), init(b)
    relay = net.relay("relay", allow=[ka, kb])
    net.serve("a-live", a, peers=[relay.peer_spec()])
    net.serve("b-live", b, peers=[relay.peer_spec()])
    for i in range(4):
        src, dst = (a, b) if rng.random() < 0.5 else (b, a)
        run("-d", src, "incr", "live", "counter", "n", i + 1)
        run("-d", src, "put", "live", f"d{i}", json.dumps({"i": i}))
        wait_until(lambda: get(dst, "live", f"d{i}") == {"i": i}, 30,
                   f"d{i} to reach the other live device")
    wait_until(lambda: converged([a, b, net.dir("relay")]), 30, "the live devices to converge")
    assert get(a, "live", "counter") == {"n": 10}
