"""Permissions from Python (docs/permissions.md, docs/python.md): a root,
a policy, certificates and admins; writes a role does not allow raise
PermissionDeniedError and write nothing; a replica without a root is in
open mode."""
import pytest

import shoal
from conftest import sync

POLICY = {
    "collections": {"products": {"guard": ["store_id"],
                                 "queryable": ["store_id", "price"]}},
    "roles": {
        "clerk": {"products": {"where": "store_id == $user.store_id",
                               "read": "*", "write": ["stock"]}},
        "manager": {"products": {"where": "store_id == $user.store_id",
                                 "read": "*", "write": "*",
                                 "create": True, "delete": True}},
    },
}


def test_root_policy_and_rights(make_replica):
    root = make_replica("root", root="self")
    assert root.root == root.id
    dev = make_replica("dev", root=root.id)
    clerk = make_replica("clerk", root=root.id)
    assert dev.root == root.id
    assert root.auth_policy(POLICY) == 1
    root.auth_grant(dev.id, ["manager"], user="ann", attrs={"store_id": 1})
    root.auth_grant(clerk.id, ["clerk"], user="bob", attrs={"store_id": 1},
                    expires=3600)
    sync(root, dev)
    sync(root, clerk)
    dev["products", "p1"].update(store_id=1, stock=3, price=9)
    with pytest.raises(shoal.PermissionDeniedError) as e:
        dev["products", "p2"].update(store_id=2, stock=1)
    assert isinstance(e.value, PermissionError)
    assert e.value.code == shoal.ErrorCode.PERM
    assert "create" in str(e.value)
    assert dev.docs("products") == ["p1"]
    sync(dev, clerk)
    clerk["products", "p1"]["stock"] = 2
    with pytest.raises(shoal.PermissionDeniedError):
        clerk["products", "p1"]["price"] = 1
    assert clerk["products", "p1"]["price"] == 9
    sync(clerk, root)
    assert root["products", "p1"]["stock"] == 2
    shown = root.auth_show()
    assert shown["mode"] == "enforcing" and shown["root"] == root.id
    assert shown["policy"]["version"] == 1
    users = sorted(c["user"] for c in shown["certificates"])
    assert users == ["ann", "bob"]


def test_admins_and_bad_input(make_replica):
    root = make_replica("root", root="self")
    adm = make_replica("adm", root=root.id)
    root.auth_policy(POLICY)
    root.auth_admin(adm.id, ["issue"], scope='role == "clerk" AND store_id == 1')
    with pytest.raises(shoal.InvalidArgumentError):
        root.auth_admin(adm.id, ["fly"])
    with pytest.raises(shoal.InvalidArgumentError):
        root.auth_policy({"collections": {}, "roles": {"r": {"c": {"where": "TRUE"}}}})
    sync(root, adm)
    other = "77" * 32
    adm.auth_grant(other, ["clerk"], attrs={"store_id": 1})
    with pytest.raises(shoal.PermissionDeniedError):
        adm.auth_grant(other, ["manager"], attrs={"store_id": 1})
    with pytest.raises(shoal.PermissionDeniedError):
        adm.auth_policy(POLICY)
    assert adm.auth_show()["admins"][0]["caps"] == ["issue"]


def test_open_mode(make_replica):
    r = make_replica("open")
    assert r.root is None
    assert r.auth_show() == {"admins": [], "certificates": [], "equivocations": [],
                             "mode": "open", "policy": None, "revocations": [], "root": None}
    with pytest.raises(shoal.InvalidArgumentError):
        r.auth_policy(POLICY)
    r["products", "p1"]["price"] = 1  # anything goes, as before
    res = r.import_bundle(r.export())
    assert res.rejected == 0 and res.duplicate == 1
    r.close()
    with pytest.raises(shoal.InvalidArgumentError):
        make_replica("open", root="aa" * 32)  # holds changes: refused


def test_revoke(make_replica):
    root = make_replica("root", root="self")
    dev = make_replica("dev", root=root.id)
    root.auth_policy(POLICY)
    root.auth_grant(dev.id, ["manager"], user="ann", attrs={"store_id": 1})
    sync(root, dev)
    dev["products", "p1"].update(store_id=1, stock=3)
    sync(dev, root)
    with pytest.raises(shoal.PermissionDeniedError):
        dev.auth_revoke(root.id)
    assert root.auth_revoke(dev.id, reason="lost") == 1
    assert root.auth_revoke(dev.id, cut=0) == 0
    revs = root.auth_show()["revocations"]
    assert [(r["key"], r["cut"]) for r in revs] == [(dev.id, 0)]
    with pytest.raises(shoal.InvalidArgumentError):
        make_replica("open").auth_revoke(dev.id)


def test_orphans(make_replica):
    """A device's own writes that a revocation voids are listed and
    re-issued under its new key (docs/permissions.md, "Orphans")."""
    root = make_replica("root", root="self")
    dev = make_replica("dev", root=root.id)
    new = make_replica("new", root=root.id)
    root.auth_policy(POLICY)
    root.auth_grant(dev.id, ["manager"], user="ann", attrs={"store_id": 1})
    root.auth_grant(new.id, ["manager"], user="ann", attrs={"store_id": 1})
    sync(root, dev)
    sync(root, new)
    dev["products", "p1"].update(store_id=1, stock=3)
    assert dev.orphans() == []
    sync(dev, root)
    root.auth_revoke(dev.id, cut=0)
    assert root.docs("products") == []
    sync(root, dev)
    orphans = dev.orphans()
    assert [(o["collection"], o["doc"], o["seq"]) for o in orphans] == [("products", "p1", 1)]
    ops = {op["field"]: op["value"] for op in orphans[0]["ops"]}
    assert ops == {"store_id": 1, "stock": 3}
    assert dev.orphan_reauthor(new) == 1
    assert new["products", "p1"]["stock"] == 3
    sync(new, root)
    assert root["products", "p1"]["stock"] == 3


SEALED = {
    "collections": {"products": {"guard": ["store_id"],
                                 "queryable": ["store_id", "price"]}},
    "roles": {
        "manager": {"products": {"where": "store_id == $user.store_id",
                                 "read": "*", "write": "*",
                                 "create": True, "delete": True}},
        "auditor": {"products": {"where": "TRUE",
                                 "read": {"except": ["cost", "margin"]}}},
    },
}


def test_sealed_fields(make_replica):
    """An auditor that may not read cost and margin syncs the products
    with those values REDACTED (docs/permissions.md, "Sealed fields")."""
    root = make_replica("root", root="self")
    dev = make_replica("dev", root=root.id)
    aud = make_replica("aud", root=root.id)
    root.auth_policy(SEALED)
    root.auth_grant(dev.id, ["manager"], user="ann", attrs={"store_id": 1})
    root.auth_grant(aud.id, ["auditor"], user="abe")
    sync(root, dev)
    dev["products", "p1"].update(store_id=1, stock=3, cost=7)
    dev["products", "p1"].counter("margin").add(5)
    sync(dev, root)
    assert root["products", "p1"]["cost"] == 7
    assert root["products", "p1"]["margin"] == 5
    ep = root.listen()
    aud.subscribe("all", "products")
    aud.sync(ep, root.id, timeout=20)
    p = aud["products", "p1"]
    assert p["stock"] == 3
    assert p["cost"] is shoal.REDACTED
    assert p["margin"] is shoal.REDACTED
    assert repr(shoal.REDACTED) == "REDACTED"
    assert aud.digest(commitment=True) == root.digest(commitment=True)
    assert aud.digest(full=True) != root.digest(full=True)
