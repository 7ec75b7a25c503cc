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


def main():
    vec, out = sys.argv[1], sys.argv[2]
    keys, changes, states = {}, [], []
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
        elif f[0] == "bundle":
            bundle = open(os.path.join(vec, f[1]), "rb").read()
        elif f[0] == "state":
            states.append(open(os.path.join(vec, f[3]), "rb").read())

    def put(target, name, data):
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as fh:
            fh.write(data)

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
    for name, fr in (("hello-empty", hello_empty), ("hello-full", hello_full),
                     ("batch-all", batch_all), ("batch-one", batch_one), ("ack", ack),
                     ("error", error), ("hello-v2", hello_v2)):
        put("frame", name, fr)
    put("session", "hello-batch-ack", SEP.join([hello_empty, batch_all, ack]))
    put("session", "hello-full-ack", SEP.join([hello_full, ack, ack]))
    put("session", "batch-before-hello", batch_one)
    put("session", "hello-error", SEP.join([hello_empty, error]))
    put("session", "hello-batches", SEP.join([hello_empty, batch_one,
                                              arr([uint(2), uint(2), uint(1),
                                                   binv(changes[1]["env"])])]))
    put("session", "hello-v2", hello_v2)
    del a


if __name__ == "__main__":
    main()
