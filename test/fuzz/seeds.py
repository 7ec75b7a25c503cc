#!/usr/bin/env python3
"""test/fuzz/seeds.py VECTORS OUT: write starting inputs for every fuzz
target, made from the golden vectors of test/vectors/, into OUT/TARGET/.

The checked-in corpora (test/fuzz/corpus/TARGET/) were made by minimising
this output together with campaign finds (libFuzzer -merge=1); run this
again when the formats change, then merge:
    python3 test/fuzz/seeds.py test/vectors /tmp/seeds
    build/fuzz/test/fuzz/fuzz_T -merge=1 test/fuzz/corpus/T /tmp/seeds/T
"""
import hashlib
import os
import struct
import sys

SEP = b"\xc1\xc1\xc1\xc1"  # FUZZ_SEP of test/fuzz/fuzz.h


def uint(v):
    if v < 128:
        return bytes([v])
    if v < 1 << 8:
        return b"\xcc" + struct.pack(">B", v)
    if v < 1 << 16:
        return b"\xcd" + struct.pack(">H", v)
    if v < 1 << 32:
        return b"\xce" + struct.pack(">I", v)
    return b"\xcf" + struct.pack(">Q", v)


def binv(b):
    n = len(b)
    if n < 1 << 8:
        return b"\xc4" + bytes([n]) + b
    if n < 1 << 16:
        return b"\xc5" + struct.pack(">H", n) + b
    return b"\xc6" + struct.pack(">I", n) + b


def strv(s):
    b = s.encode()
    assert len(b) < 32
    return bytes([0xA0 + len(b)]) + b


def arr(items):
    n = len(items)
    head = bytes([0x90 + n]) if n < 16 else b"\xdc" + struct.pack(">H", n)
    return head + b"".join(items)


def boolv(b):
    return b"\xc3" if b else b"\xc2"


def auth_seeds():
    """Inputs for fuzz_auth: a mode byte, then an object or policy JSON."""
    k1, k2 = bytes([0xD1, 4]) + bytes(30), bytes([0xA1, 2]) + bytes(30)
    policy = arr([uint(1), uint(1), uint(3), b"\xc0",
                  arr([arr([strv("products"), arr([strv("store_id")]),
                            arr([strv("price"), strv("store_id")])])]),
                  arr([arr([strv("clerk"),
                            arr([arr([strv("products"), strv("store_id == $user.store_id"),
                                      arr([uint(0)]), arr([uint(1), arr([strv("stock")])]),
                                      boolv(False), boolv(False)])])]),
                       arr([strv("manager"),
                            arr([arr([strv("products"), strv("TRUE"),
                                      arr([uint(2), arr([strv("cost")])]), arr([uint(0)]),
                                      boolv(True), boolv(True)])])])])])
    cert = arr([uint(2), binv(k1), strv("u1"), arr([strv("clerk"), strv("manager")]),
                arr([arr([strv("store_id"), uint(1)])]), uint(0), uint(1 << 40),
                uint(1), b"\xc0", uint(3)])
    grant = arr([uint(3), binv(k2), uint(15), strv("store_id == 12"), uint(86400000),
                 uint(1), binv(bytes(32))])
    revoke = arr([uint(4), binv(k1), uint(41), binv(bytes(32)), strv("stolen")])
    retail = (b'{"collections": {"products": {"guard": ["store_id"], "queryable": '
              b'["store_id", "category", "size", "price"]}}, "roles": {'
              b'"clerk": {"products": {"where": "store_id == $user.store_id", '
              b'"read": "*", "write": ["stock"]}}, '
              b'"manager": {"products": {"where": "store_id == $user.store_id", '
              b'"read": "*", "write": "*", "create": true, "delete": true}}, '
              b'"auditor": {"products": {"where": "TRUE", "read": {"except": '
              b'["cost_price"]}, "write": []}}}}')
    return {"policy": b"\x00" + policy, "cert": b"\x01" + cert,
            "grant": b"\x02" + grant, "revoke": b"\x03" + revoke,
            "json": b"\x04" + retail}


def main():
    vec, out = sys.argv[1], sys.argv[2]
    keys, changes, states, groups, proofs = {}, [], [], [], []
    bundle = None
    for line in open(os.path.join(vec, "index.txt")):
        f = line.split()
        if not f or f[0].startswith("#"):
            continue
        if f[0] == "key":
            keys[f[1]] = (len(keys), bytes.fromhex(f[3]))
        elif f[0] == "change":
            env = open(os.path.join(vec, f[7]), "rb").read()
            body = open(os.path.join(vec, f[8]), "rb").read()
            changes.append(dict(label=f[2], author=f[3], seq=int(f[4]),
                                id=bytes.fromhex(f[6]), env=env, body=body))
        elif f[0] == "group":
            groups.append((int(f[1]), int(f[2]), open(os.path.join(vec, f[3]), "rb").read()))
        elif f[0] == "bundle":
            bundle = open(os.path.join(vec, f[1]), "rb").read()
        elif f[0] == "state":
            states.append(open(os.path.join(vec, f[3]), "rb").read())
        elif f[0] == "equivocation":
            proofs.append(open(os.path.join(vec, f[3]), "rb").read())

    def put(target, name, data):
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as fh:
            fh.write(data)

    for name, data in auth_seeds().items():
        put("auth", name, data)
    for i, proof in enumerate(proofs):
        put("auth", "equivocation-%d" % i, b"\x05" + proof)

    def piece(c):
        return bytes([keys[c["author"]][0]]) + c["body"]

    sku1 = [c for c in changes if c["label"] in
            ("set", "unset", "count", "ins", "ins-ref", "rep", "insrun", "textrun",
             "del", "delrun")]
    for c in changes:
        put("envelope", "env-" + c["label"], c["env"])
        put("change", "body-" + c["label"], piece(c))
        put("import", "one-" + c["label"], b"\x01" + piece(c))
    put("change", "chain-sku-1", SEP.join(piece(c) for c in sku1))
    # a sealed body, then its group (fuzz_change.c: g byte, group bytes)
    for ci, g, data in groups:
        put("change", "sealed-%d-%d" % (ci, g), piece(changes[ci]) + SEP + bytes([g]) + data)
    for i, s in enumerate(states):
        put("state", "state-%d" % i, s)
    put("state", "state-0-plus", states[0] + SEP + SEP.join(piece(c) for c in sku1[:4]))
    put("state", "state-empty-plus", states[-1] + SEP + piece(sku1[0]))

    head = b"SHOALBN1"
    put("bundle", "all", bundle)
    put("bundle", "empty", head + struct.pack(">I", 0))
    put("bundle", "one", head + struct.pack(">I", 1) + changes[0]["env"])
    put("import", "bundle-all", b"\x00" + bundle)
    put("import", "bundle-empty", b"\x00" + head + struct.pack(">I", 0))
    put("import", "sealed-all", b"\x01" + SEP.join(piece(c) for c in changes))
    put("import", "sealed-reversed", b"\x01" + SEP.join(piece(c) for c in reversed(changes)))
    put("converge", "all", SEP.join(piece(c) for c in changes))
    put("converge", "sku-1", SEP.join(piece(c) for c in sku1))
    put("converge", "sku-2", SEP.join(piece(c) for c in changes if c["label"] in
                                      ("set-doc2", "deldoc", "recreate")))
    for c in changes:
        put("converge", "one-" + c["label"], piece(c))

    # apply (test/fuzz/fuzz_apply.c): items, each a control byte (kind in
    # the low 3 bits, author in the rest) and its bytes.
    def raw(c):
        b = c["body"]
        return bytes([keys[c["author"]][0] << 3]) + struct.pack("<H", len(b)) + b

    def built(author, ops, fl=0, mask=0, doc=0):
        # ops: (op byte, argument byte) pairs; kind 2 = a built change.
        out = bytes([2 | author << 3, fl, mask, doc, (len(ops) - 1) % 6])
        return out + b"".join(bytes(o) for o in ops)

    def again(i):
        return bytes([1, i])

    SET, UNSET, COUNT, HEAD, AFTER, DEL, REP, RUN = range(8)
    put("apply", "raw-all", b"".join(raw(c) for c in changes))
    put("apply", "raw-reversed", b"".join(raw(c) for c in reversed(changes)))
    put("apply", "raw-sku-1", b"".join(raw(c) for c in sku1))
    put("apply", "raw-garbage", raw(changes[0])[:3] + b"\x90\x01" + raw(changes[1]))
    chain = (built(0, [(HEAD, 1), (SET | 1 << 3 | 2 << 5, 7)]) +
             built(1, [(AFTER, 0), (COUNT | 2 << 3, 5)], mask=1) +
             built(2, [(RUN | 3 << 5, 1)], mask=3) +
             built(0, [(DEL | 1 << 5, 0), (REP | 4 << 5, 1)], mask=7) +
             built(1, [(AFTER, 3), (UNSET | 1 << 3, 0)], mask=15, doc=1))
    put("apply", "built-chain", chain)
    put("apply", "built-chain-dups", chain + again(0) + again(3) + again(1))
    put("apply", "built-equivocation",
        built(0, [(SET | 2 << 5, 1)]) + built(0, [(SET | 2 << 5, 2)], fl=3) +
        built(1, [(COUNT, 3)], mask=1) + built(0, [(SET | 1 << 3 | 4 << 5, 4)]) +
        built(0, [(COUNT, 9)], fl=3, mask=2))
    put("apply", "built-bad", built(0, [(HEAD, 1)]) + built(0, [(SET, 1)], fl=0x1c) +
        built(1, [(AFTER, 0)], mask=3))
    put("apply", "built-late", built(0, [(SET, 1)], fl=0xe0) + built(1, [(SET, 2)], fl=0xc0) +
        built(2, [(SET, 3)], fl=0x14) + built(0, [(COUNT, 1)], mask=7))
    put("apply", "built-epochs", built(0, [(SET, 1)]) + built(1, [(RUN | 7 << 5, 0)], mask=1) +
        built(2, [(SET, 2)], doc=0x0c | 0x10) + built(0, [(HEAD, 4)], mask=6, doc=0x0c))
    put("apply", "built-runs", built(0, [(RUN | 4 << 5, 1), (RUN | 2 << 5, 0)]) +
        built(1, [(DEL | 3 << 5, 2), (AFTER | 4 << 5, 5)], mask=1) +
        built(2, [(DEL | 3 << 5, 7), (REP, 3)], mask=3))
    put("apply", "mixed", raw(changes[0]) + built(1, [(AFTER, 0)], mask=1) + raw(changes[1]) +
        built(0, [(SET, 5)], mask=2) + again(1))

    # Frames (docs/protocol.md).
    a, b = keys["A"][1], keys["B"][1]
    latest = {}
    for c in changes:
        latest[keys[c["author"]][1]] = (c["seq"], c["id"])
    vv = [arr([binv(k), uint(s), binv(i)]) for k, (s, i) in sorted(latest.items())]
    hello_empty = arr([uint(1), uint(1), binv(b), arr([])])
    hello_full = arr([uint(1), uint(1), binv(b), arr(vv)])
    envs = b"".join(c["env"] for c in changes)
    batch_all = arr([uint(2), uint(1), uint(len(changes)), binv(envs)])
    batch_one = arr([uint(2), uint(1), uint(1), binv(changes[0]["env"])])
    ack = arr([uint(3), uint(1), uint(14), uint(0), uint(0), arr(vv[:1])])
    error = arr([uint(4), uint(7), strv("malformed frame")])
    hello_v2 = arr([uint(1), uint(2), binv(b), arr([]), uint(0)])
    # Partial sync: HELLO version 2 with a subscription and a held
    # document, SUBSCRIBE, LEAVE, COMPLETE.
    params = arr([arr([strv("s"), uint(12)])])
    subs = arr([arr([strv("mine"), strv("products"), strv("store_id == :s"), binv(params)])])
    held = arr([arr([strv("products"), strv("p1"), binv(changes[0]["id"])])])
    hello_partial = arr([uint(1), uint(2), binv(b), arr(vv[:1]), subs, held])
    subscribe = arr([uint(6), subs, arr([])])
    leave = arr([uint(8), uint(1), strv("products"), strv("p1"), uint(1), binv(changes[0]["id"])])
    leave_behind = arr([uint(8), uint(1), strv("products"), strv("p1"), uint(3),
                        binv(changes[0]["id"] + changes[1]["id"])])
    leave_gone = arr([uint(8), uint(1), strv("products"), strv("p1"), uint(4), binv(b"")])
    have = arr([uint(9), arr([arr([strv("products"), strv("p1"), binv(changes[0]["id"])]),
                              arr([strv("products"), strv("p2"), binv(b"")])])])
    complete = arr([uint(10), uint(1)])
    holds = arr([uint(11), arr(vv[:1])])
    for name, fr in (("hello-empty", hello_empty), ("hello-full", hello_full),
                     ("batch-all", batch_all), ("batch-one", batch_one), ("ack", ack),
                     ("error", error), ("hello-v2", hello_v2), ("hello-partial", hello_partial),
                     ("subscribe", subscribe), ("leave", leave), ("leave-behind", leave_behind),
                     ("leave-gone", leave_gone), ("have", have), ("complete", complete),
                     ("holds", holds)):
        put("frame", name, fr)
    put("session", "hello-batch-ack", SEP.join([hello_empty, batch_all, ack]))
    put("session", "hello-full-ack", SEP.join([hello_full, ack, ack]))
    put("session", "batch-before-hello", batch_one)
    put("session", "hello-error", SEP.join([hello_empty, error]))
    put("session", "hello-batches", SEP.join([hello_empty, batch_one,
                                              arr([uint(2), uint(2), uint(1),
                                                   binv(changes[1]["env"])])]))
    put("session", "hello-v2", hello_v2)
    put("session", "partial", SEP.join([hello_partial, batch_one, leave, complete, subscribe]))
    put("session", "partial-have", SEP.join([hello_partial, have, batch_one, leave_behind,
                                             leave_gone, have, holds]))
    put("session", "full-then-subscribe", SEP.join([hello_empty, subscribe, batch_all, ack]))
    del a


if __name__ == "__main__":
    main()
