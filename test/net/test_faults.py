"""Faults over real sockets: a loopback proxy that cuts and stalls links on a
seeded schedule, and a relay killed with SIGKILL during heavy sync."""

import json
import random
import signal
import threading
import time

import pytest

from conftest import (digest, dominates, get, init, run, seed_for, sync, version,
                      wait_until)
from proxy import Proxy


class Writer(threading.Thread):
    """A device that writes n changes with the CLI and syncs every few
    writes.  A write is acknowledged when its command exited 0; a sync is
    acknowledged when it exited 0, and then the peer held everything this
    device held when that sync began (recorded as acked_vvs)."""

    def __init__(self, name, d, peer, seed, n, sync_every, sync_timeout):
        super().__init__(daemon=True)
        self.name, self.d, self.peer = name, d, peer
        self.rng = random.Random(seed)
        self.n, self.sync_every, self.sync_timeout = n, sync_every, sync_timeout
        self.docs = []      # acknowledged puts: (doc, value)
        self.delta = 0      # sum of acknowledged increments of shared/n
        self.items = []     # acknowledged inserts into shared/l
        self.acked_vvs = []
        self.syncs_ok = self.syncs_failed = 0
        self.error = None
        self.lock = threading.Lock()

    def run(self):
        try:
            for i in range(self.n):
                op = self.rng.choice(["put", "put", "incr", "insert"])
                if op == "put":
                    doc = f"{self.name}-{i}"
                    run("-d", self.d, "put", "docs", doc, json.dumps({"i": i, "by": self.name}))
                    self.docs.append(doc)
                elif op == "incr":
                    k = self.rng.randrange(1, 10)
                    run("-d", self.d, "incr", "shared", "s", "n", k)
                    self.delta += k
                else:
                    v = f"{self.name}-{i}"
                    run("-d", self.d, "insert", "shared", "s", "l", 0, json.dumps(v))
                    self.items.append(v)
                if (i + 1) % self.sync_every == 0:
                    self.sync_now()
        except BaseException as e:  # pytest.fail raises a BaseException
            self.error = e

    def sync_now(self):
        vv = version(self.d)
        rc = sync(self.d, self.peer, timeout=self.sync_timeout, check=False)
        with self.lock:
            if rc == 0:
                self.syncs_ok += 1
                self.acked_vvs.append(vv)
            else:
                assert rc in (5, 6, 1), rc
                self.syncs_failed += 1

    def check(self, d, writers):
        """Every write acknowledged by any writer is in replica d."""
        total = sum(w.delta for w in writers)
        shared = get(d, "shared", "s")
        assert shared["n"] == total
        assert sorted(shared["l"]) == sorted(v for w in writers for v in w.items)
        have = set(run("-d", d, "ls", "docs").stdout.split())
        for w in writers:
            missing = [doc for doc in w.docs if doc not in have]
            assert not missing, f"{d} lacks acknowledged writes {missing[:5]}"


def union(vvs):
    out = {}
    for vv in vvs:
        for a, s in vv.items():
            out[a] = max(out.get(a, 0), s)
    return out


def converge_loop(pairs, dirs, timeout, what):
    """Sync every (dir, peer) until all of dirs have equal full digests."""
    def cond():
        for d, peer in pairs:
            sync(d, peer, timeout=5, check=False)
        return len({digest(d) for d in dirs}) == 1
    wait_until(cond, timeout, what)


def test_proxy_cuts_and_stalls_then_all_converge(net):
    seed = seed_for("proxy")
    rng = random.Random(seed)
    a, b = net.dir("a"), net.dir("b")
    ka, kb = init(a), init(b)
    sdir, hdir = net.dir("site"), net.dir("hub")
    ks = init(sdir)
    hub = net.relay("hub", allow=[ks, kb])
    # The site relay's uplink goes through one proxy, device A's syncs
    # through another; device B syncs with the hub directly.
    up = Proxy(int(hub.endpoint.rsplit(":", 1)[1]))
    site = None
    front = None
    try:
        site = net.relay("site", allow=[ka], upstream=[f"{up.endpoint}@{hub.id}"])
        front = Proxy(int(site.endpoint.rsplit(":", 1)[1]))
        pa = f"{front.endpoint}@{site.id}"
        pb = hub.peer_spec()
        wa = Writer("a", a, pa, rng.random(), 60, 5, 3)
        wb = Writer("b", b, pb, rng.random(), 60, 5, 3)
        # A live, read-only device whose one long link goes through the
        # faulty front proxy: it must reconnect by itself after each cut.
        d = net.dir("d")
        kd = init(d)
        site.stop()
        site = net.relay("site", allow=[ka, kd], upstream=[f"{up.endpoint}@{hub.id}"],
                         listen=[f"tcp://127.0.0.1:{site.endpoint.rsplit(':', 1)[1]}"])
        net.serve("d-live", d, peers=[pa])
        logs = {}
        sched = [threading.Thread(target=lambda p=p, r=r, k=k: logs.__setitem__(
                     k, p.run_schedule(10, random.Random(r))), daemon=True)
                 for p, r, k in ((up, rng.random(), "uplink"), (front, rng.random(), "front"))]
        for t in sched + [wa, wb]:
            t.start()
        for t in sched + [wa, wb]:
            t.join(timeout=180)
            assert not t.is_alive()
        print("fault schedules:", logs)
        print(f"syncs: a ok {wa.syncs_ok} failed {wa.syncs_failed}; "
              f"b ok {wb.syncs_ok} failed {wb.syncs_failed}; "
              f"proxied connections {up.accepted} + {front.accepted}")
        for w in (wa, wb):
            if w.error is not None:
                raise w.error
        converge_loop([(a, pa), (b, pb)], [a, b, sdir, hdir, d], 90,
                      "every replica to converge after the faults")
        for x in (a, b, sdir, hdir, d):
            wa.check(x, [wa, wb])
        assert len({digest(x, full=False) for x in (a, b, sdir, hdir, d)}) == 1
    finally:
        up.close()
        if front is not None:
            front.close()


def start_relay_on(net, name, dirname, port, allow, tries=40):
    """Restart a relay on a fixed port (retrying while the port is busy)."""
    for _ in range(tries):
        try:
            return net.relay(name, listen=[f"tcp://127.0.0.1:{port}"], allow=allow,
                             dirname=dirname)
        except pytest.fail.Exception:
            time.sleep(0.25)
    pytest.fail(f"cannot restart the relay on port {port}")


def test_relay_sigkill_during_heavy_sync_loses_nothing(net):
    seed = seed_for("sigkill")
    rng = random.Random(seed)
    a, b, c = net.dir("a"), net.dir("b"), net.dir("c")
    ka, kb, kc = init(a), init(b), init(c)
    rdir = net.dir("relay")
    relay = net.relay("relay", allow=[ka, kb, kc])
    port = int(relay.endpoint.rsplit(":", 1)[1])
    peer = f"tcp://127.0.0.1:{port}@{relay.id}"
    # Two writers that sync dozens of changes at a time, and a live reader
    # the relay pushes everything to.
    wa = Writer("a", a, peer, rng.random(), 200, rng.randrange(15, 40), 5)
    wb = Writer("b", b, peer, rng.random(), 200, rng.randrange(15, 40), 5)
    net.serve("c-live", c, peers=[peer])
    wa.start()
    wb.start()
    wait_until(lambda: sum(version(rdir).values()) >= 60 or wa.error or wb.error, 120,
               "the relay to receive a first part of the writes")
    time.sleep(rng.uniform(0, 0.3))
    assert relay.stop(signal.SIGKILL) == -signal.SIGKILL
    killed_at = sum(version(rdir).values())

    # What the relay acknowledged before it died is on its disk.
    with wa.lock, wb.lock:
        acked = union(wa.acked_vvs + wb.acked_vvs)
    held = version(rdir)
    assert dominates(held, acked), (held, acked)
    time.sleep(rng.uniform(0.2, 1.0))  # devices keep writing while it is down

    start_relay_on(net, "relay-restarted", "relay", port, [ka, kb, kc])
    for w in (wa, wb):
        w.join(timeout=240)
        assert not w.is_alive()
        if w.error is not None:
            raise w.error
    print(f"killed holding {killed_at} changes; syncs: a ok {wa.syncs_ok} failed "
          f"{wa.syncs_failed}; b ok {wb.syncs_ok} failed {wb.syncs_failed}")
    assert wa.syncs_ok + wb.syncs_ok >= 4
    # The live reader reconnects by itself; the writers sync until equal.
    converge_loop([(a, peer), (b, peer)], [a, b, rdir, c], 90,
                  "devices and the restarted relay to converge")
    assert dominates(version(rdir), union(wa.acked_vvs + wb.acked_vvs))
    for d in (a, b, rdir, c):
        wa.check(d, [wa, wb])
