"""Permissions with real processes (docs/permissions.md): the hub is the
root of trust and admits devices by their certificates; a store relay
certified for store 12 subscribes to every product and holds store 12's
only (its role AND its subscription); clerks syncing through it hold what
their role reads; a clerk linking as a full replica is refused with exit 8;
certificates and revocations written by another process while the hub
runs take effect on it within seconds."""

import json

from conftest import run, sync, wait_until

POLICY = {
    "collections": {"products": {"guard": ["store_id"],
                                 "queryable": ["store_id", "price"]}},
    "roles": {
        "hq": {"products": {"where": "TRUE", "read": "*", "write": "*",
                            "create": True, "delete": True}},
        "site": {"products": {"where": "store_id == $user.store_id", "read": "*"}},
        "clerk": {"products": {"where": "store_id == $user.store_id", "read": "*",
                               "write": ["stock"]}},
    },
}


def ids(d, where=None):
    args = ["-d", d, "find", "products"] + ([where] if where else [])
    return sorted(json.loads(line)["_id"] for line in run(*args).stdout.splitlines())


def test_retail_deployment(net, tmp_path):
    hubdir, storedir = net.dir("hub"), net.dir("store12")
    writer, b, c, full, late = (net.dir(n) for n in ("writer", "b", "c", "full", "late"))
    root = run("-d", hubdir, "init", "--root", "self").stdout.strip()
    kstore, kw, kb, kc, kf, klate = (run("-d", d, "init", "--root", root).stdout.strip()
                                     for d in (storedir, writer, b, c, full, late))
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(POLICY))
    run("-d", hubdir, "auth", "policy", str(policy))
    run("-d", hubdir, "auth", "grant", kw, "--role", "hq")
    run("-d", hubdir, "auth", "grant", kstore, "--role", "site", "--attr", "store_id=12")
    run("-d", hubdir, "auth", "grant", kb, "--role", "clerk", "--attr", "store_id=12")
    run("-d", hubdir, "auth", "grant", kc, "--role", "clerk", "--attr", "store_id=13")
    run("-d", hubdir, "auth", "grant", kf, "--role", "clerk", "--attr", "store_id=12")
    bundle = run("-d", hubdir, "export", input=b"").stdout
    for d in (storedir, writer, b, c, full, late):
        run("-d", d, "import", input=bundle)
    for i in range(30):
        run("-d", writer, "put", "products", f"p{i:02d}",
            json.dumps({"store_id": 11 + i % 3, "price": i, "stock": 1}))

    # The hub admits certified devices only (no allow-list).
    hub = net.serve("hub", hubdir, listen=["tcp://127.0.0.1:*"])
    sync(writer, hub.peer_spec())
    assert len(ids(hubdir)) == 30

    # The store relay subscribes to every product; its role reads store 12.
    store = net.relay("store12", upstream=[hub.peer_spec()], extra=["--subscribe", "products"])
    want12 = ids(hubdir, "store_id == 12")
    assert len(want12) == 10
    wait_until(lambda: ids(storedir) == want12, 30, "the store relay to hold store 12")

    # Clerks through the relay: each holds what its role reads.
    for d in (b, c):
        run("-d", d, "subscribe", "all", "products")
    sync(b, store.peer_spec())
    assert ids(b) == want12
    sync(c, store.peer_spec())
    assert ids(c) == []
    sync(c, hub.peer_spec())
    assert ids(c) == ids(hubdir, "store_id == 13")

    # A clerk's write goes up through the relay to the hub.
    doc = want12[0]
    run("-d", b, "put", "products", doc, json.dumps({"stock": 7}))
    sync(b, store.peer_spec())
    wait_until(lambda: json.loads(run("-d", hubdir, "get", "products", doc).stdout)["stock"] == 7,
               30, "the clerk's write to reach the hub")

    # A clerk linking as a full replica reads part of the data: refused.
    p = run("-d", full, "sync", hub.peer_spec(), "--timeout", "10", check=False)
    assert p.returncode == 8, p.stderr
    assert "partial replica" in p.stderr

    # Another process certifies a device while the hub runs: admitted
    # within seconds; then revokes it: refused within seconds.
    run("-d", late, "subscribe", "all", "products")
    assert sync(late, hub.peer_spec(), check=False) == 5  # not certified yet
    run("-d", hubdir, "auth", "grant", klate, "--role", "clerk", "--attr", "store_id=11")
    wait_until(lambda: sync(late, hub.peer_spec(), check=False) == 0, 30,
               "the hub to admit the device certified by another process")
    assert ids(late) == ids(hubdir, "store_id == 11")
    out = run("-d", hubdir, "auth", "revoke", klate, "--reason", "lost").stdout
    assert json.loads(out)["cut"] == 0
    wait_until(lambda: sync(late, hub.peer_spec(), check=False) == 5, 30,
               "the hub to refuse the key revoked by another process")
