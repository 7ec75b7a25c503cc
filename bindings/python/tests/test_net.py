"""Live sync through the binding: listen, connect, disconnect, sync, peers,
allow-lists, the log callback, and two Python processes over loopback.

Everything stays on 127.0.0.1 with ports the OS picks; every wait is a
bounded poll."""
import json
import os
import queue
import re
import socket
import subprocess
import threading
import time

import pytest

import shoal

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "net_child.py")
ANY_PORT = "tcp://127.0.0.1:*"
PEER_FIELDS = {"id", "endpoint", "connected", "last_seen_ms", "sent", "received",
               "lag", "rejected", "connects", "refused", "equivocations",
               "last_error"}


def wait_for(cond, timeout=10.0, what="condition"):
    """Poll cond() until it returns a true value (returned) or fail."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            pytest.fail("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(0.02)


def closed_port():
    """A loopback port nobody listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def peer(r, peer_id):
    for p in r.peers():
        if p.id == peer_id:
            return p
    return None


@pytest.fixture
def pair(make_replica):
    """Two replicas, each with a document of its own."""
    a = make_replica("a")
    b = make_replica("b")
    a.doc("notes", "from-a")["text"] = "hello from a"
    b.doc("notes", "from-b")["text"] = "hello from b"
    return a, b


# ----------------------------------------------------------- listen

def test_listen_returns_the_port_it_bound(replica):
    ep = replica.listen(ANY_PORT)
    m = re.fullmatch(r"tcp://127\.0\.0\.1:(\d+)", ep)
    assert m, ep
    port = int(m.group(1))
    assert 0 < port < 65536
    # A real listening socket: a plain TCP connect is accepted.
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    # A second endpoint gets another port.
    ep2 = replica.listen(ANY_PORT)
    assert ep2 != ep and ep2.startswith("tcp://127.0.0.1:")


def test_listen_on_a_port_in_use_is_a_transport_error(make_replica):
    a, b = make_replica("a"), make_replica("b")
    ep = a.listen(ANY_PORT)
    with pytest.raises(shoal.BusyError) as ei:
        b.listen(ep)
    assert ep in str(ei.value)


def test_connect_to_a_linked_endpoint_with_another_key_is_busy(make_replica):
    a, b, c = make_replica("a"), make_replica("b"), make_replica("c")
    ep = "tcp://127.0.0.1:1"  # nobody listens: the link stays, retrying
    a.connect(ep, b.id)
    a.connect(ep, b.id)  # the same link again: nothing to do
    with pytest.raises(shoal.BusyError) as ei:
        a.connect(ep, c.id)
    assert ep in str(ei.value)


@pytest.mark.parametrize("bad", ["not an endpoint", "tcp://", "tcp://127.0.0.1",
                                 "tcp://127.0.0.1:notaport", "bogus://x:1"])
def test_bad_endpoint_is_a_clear_error(replica, bad):
    other = "ab" * 32
    for call in (lambda: replica.listen(bad),
                 lambda: replica.connect(bad, other),
                 lambda: replica.sync(bad, other, timeout=2.0)):
        t0 = time.monotonic()
        with pytest.raises(shoal.InvalidArgumentError) as ei:
            call()
        # An argument error, reported at once, not a timeout, naming the
        # endpoint; the library's text is not repeated.
        assert time.monotonic() - t0 < 1.5
        text = str(ei.value)
        assert bad in text and isinstance(ei.value, ValueError)
        assert text.count(shoal.strerror(shoal.ErrorCode.INVAL)) == 1, text


def test_endpoint_and_key_arguments_are_checked(replica):
    with pytest.raises(TypeError):
        replica.listen(7000)
    with pytest.raises(TypeError):
        replica.connect(b"tcp://127.0.0.1:1", "ab" * 32)
    with pytest.raises(shoal.InvalidArgumentError):
        replica.listen("tcp://127.0.0.1:*\0x")
    with pytest.raises(shoal.InvalidArgumentError):
        replica.listen("")
    with pytest.raises(shoal.InvalidArgumentError):
        replica.sync("tcp://127.0.0.1:1", "abcd")       # not a 32-byte key
    with pytest.raises(shoal.InvalidArgumentError):
        replica.connect("tcp://127.0.0.1:1", "zz" * 32)  # not hex
    with pytest.raises(TypeError):
        replica.sync("tcp://127.0.0.1:1", 12)
    with pytest.raises(TypeError):
        replica.listen(ANY_PORT, allow="ab" * 32)        # a list, not one id
    with pytest.raises(shoal.InvalidArgumentError):
        replica.listen(ANY_PORT, allow=["ab" * 32, "short"])
    with pytest.raises(TypeError):
        replica.listen(ANY_PORT, allow_any=1)
    with pytest.raises(TypeError):
        replica.allow_any("yes")
    with pytest.raises(ValueError):
        replica.sync("tcp://127.0.0.1:1", "ab" * 32, timeout=-1)
    with pytest.raises(ValueError):
        replica.sync("tcp://127.0.0.1:1", "ab" * 32, timeout=float("nan"))
    with pytest.raises(TypeError):
        replica.sync("tcp://127.0.0.1:1", "ab" * 32, timeout="5")


def test_network_methods_on_a_closed_replica(make_replica):
    r = make_replica("closed")
    key = "ab" * 32
    r.close()
    for call in (lambda: r.listen(ANY_PORT), lambda: r.connect("tcp://127.0.0.1:1", key),
                 lambda: r.disconnect("tcp://127.0.0.1:1"), lambda: r.sync("tcp://127.0.0.1:1", key),
                 r.peers, lambda: r.allow(key), lambda: r.allow_any(True), r.stop_network):
        with pytest.raises(shoal.ClosedError):
            call()


# ------------------------------------------------------------- sync

def test_sync_exchanges_both_ways(pair):
    a, b = pair
    a.doc("orders", "o-1").counter("stock").add(5)
    b.doc("orders", "o-1").counter("stock").add(-2)
    ep = b.listen(ANY_PORT, allow=[a.id])
    assert a.digest() != b.digest()
    a.sync(ep, b.id, timeout=10.0)
    for r in (a, b):
        assert r.doc("notes", "from-a")["text"] == "hello from a"
        assert r.doc("notes", "from-b")["text"] == "hello from b"
    assert a.doc("orders", "o-1")["stock"] == 3
    assert a.digest() == b.digest()
    assert a.digest(full=True) == b.digest(full=True)
    assert a.version() == b.version()
    # Again: nothing left to move, still fine.
    a.sync(ep, b.id, timeout=10.0)
    assert a.digest() == b.digest()


def test_sync_with_a_key_not_allowed_is_refused(pair, make_replica):
    a, b = pair
    c = make_replica("c")
    ep = b.listen(ANY_PORT, allow=[c.id])  # c may link, a may not
    with pytest.raises(shoal.RefusedError) as ei:
        a.sync(ep, b.id, timeout=10.0)
    e = ei.value
    assert e.code == shoal.ErrorCode.REFUSED
    assert isinstance(e, ConnectionRefusedError) and isinstance(e, shoal.TransportError)
    # Nothing moved either way.
    assert not a.doc("notes", "from-b").exists
    assert not b.doc("notes", "from-a").exists
    # The refusal is on record.
    wait_for(lambda: (peer(a, b.id) or {}).get("refused", 0) >= 1
             or (peer(b, a.id) or {}).get("refused", 0) >= 1,
             what="a refusal in peers()")


def test_listen_without_any_allowed_key_refuses_everyone(pair):
    a, b = pair
    ep = b.listen(ANY_PORT)  # allow-list empty, allow_any not chosen
    with pytest.raises(shoal.RefusedError):
        a.sync(ep, b.id, timeout=10.0)


def test_allow_list_kept_when_allow_is_none(pair):
    a, b = pair
    b.allow(a.id)
    ep = b.listen(ANY_PORT)  # allow=None keeps {a}
    a.sync(ep, b.id, timeout=10.0)
    assert b.doc("notes", "from-a").exists


def test_allow_any_is_explicit(pair, make_replica):
    a, b = pair
    ep = b.listen(ANY_PORT, allow_any=True)
    a.sync(ep, b.id, timeout=10.0)
    assert b.doc("notes", "from-a").exists
    c = make_replica("c")
    c.doc("notes", "from-c")["x"] = 1
    c.sync(ep, bytes.fromhex(b.id), timeout=10.0)  # raw key bytes work too
    assert b.doc("notes", "from-c")["x"] == 1
    # Switched off again: only allowed keys (none) get in.
    b.allow_any(False)
    c.doc("notes", "from-c")["x"] = 2
    with pytest.raises(shoal.RefusedError):
        c.sync(ep, b.id, timeout=10.0)
    assert b.doc("notes", "from-c")["x"] == 1


def test_disallow_closes_the_link_and_refuses_reconnects(pair):
    a, b = pair
    ep = b.listen(ANY_PORT, allow=[a.id])
    a.connect(ep, b.id)
    wait_for(lambda: b.doc("notes", "from-a").exists, what="catch-up over the live link")
    wait_for(lambda: (peer(b, a.id) or {}).get("connected"), what="b's link with a up")
    refused0 = peer(b, a.id).refused
    b.disallow(a.id)
    # Closed by the time disallow returns; a's reconnects are refused.
    assert not peer(b, a.id).connected
    wait_for(lambda: peer(b, a.id).refused > refused0, what="a's reconnect refused")
    assert "disallowed" in peer(b, a.id).last_error
    b.doc("notes", "after")["text"] = "not for a"
    with pytest.raises(shoal.RefusedError):
        a.sync(ep, b.id, timeout=5.0)
    assert not a.doc("notes", "after").exists
    # Allowed again: a's kept link comes back by itself.
    b.allow(bytes.fromhex(a.id))
    wait_for(lambda: a.doc("notes", "after").exists, timeout=20.0,
             what="a's link back after allow")
    with pytest.raises(TypeError):
        b.disallow(42)


def test_sync_with_the_wrong_peer_key_fails(pair, make_replica):
    a, b = pair
    stranger = make_replica("stranger")
    ep = b.listen(ANY_PORT, allow=[a.id])
    # The listener is not who a expects: the encrypted handshake cannot
    # complete, and nothing is exchanged.
    with pytest.raises(shoal.RefusedError):
        a.sync(ep, stranger.id, timeout=10.0)
    assert not b.doc("notes", "from-a").exists
    assert not a.doc("notes", "from-b").exists
    p = peer(a, stranger.id)
    assert p is not None and p.refused >= 1 and p.last_error


def test_sync_to_an_unreachable_peer_times_out_in_time(replica):
    ep = "tcp://127.0.0.1:%d" % closed_port()
    t0 = time.monotonic()
    with pytest.raises(shoal.TimeoutError) as ei:
        replica.sync(ep, replica.id, timeout=1.0)  # a valid key, nobody there
    elapsed = time.monotonic() - t0
    assert isinstance(ei.value, TimeoutError)  # the built-in one
    assert ei.value.code == shoal.ErrorCode.TIMEDOUT
    assert 0.9 <= elapsed < 4.0, elapsed


def test_sync_releases_the_gil_and_runs_from_many_threads(pair):
    a, b = pair
    ep = b.listen(ANY_PORT, allow=[a.id])
    dead = "tcp://127.0.0.1:%d" % closed_port()
    ticks = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks[0] += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        t0 = time.monotonic()
        with pytest.raises(shoal.TimeoutError):
            a.sync(dead, b.id, timeout=0.5)
        assert time.monotonic() - t0 >= 0.4
    finally:
        stop.set()
        spinner.join(10)
    assert ticks[0] > 1000  # Python ran while sync waited in C

    errors = []

    def worker(k):
        try:
            for i in range(3):
                a.doc("threads", "t%d" % k)["i"] = i
                a.sync(ep, b.id, timeout=10.0)
        except BaseException as e:  # noqa: B902 - reported below
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors
    assert sorted(b.docs("threads")) == ["t0", "t1", "t2", "t3"]
    assert a.digest() == b.digest()


def test_close_waits_for_a_running_sync(make_replica):
    r = make_replica("closing")
    dead = "tcp://127.0.0.1:%d" % closed_port()
    outcome = []
    started = threading.Event()

    def run():
        started.set()
        try:
            r.sync(dead, r.id, timeout=1.5)
            outcome.append("returned")
        except BaseException as e:  # noqa: B902 - checked below
            outcome.append(e)

    t = threading.Thread(target=run)
    t.start()
    started.wait(10)
    r.close()  # waits for the sync (its timeout at most), never crashes
    assert r.closed
    t.join(30)
    assert not t.is_alive()
    # The sync either ran to its timeout, or never started (ClosedError).
    assert len(outcome) == 1 and isinstance(
        outcome[0], (shoal.TimeoutError, shoal.ClosedError)), outcome
    with pytest.raises(shoal.ClosedError):
        r.sync(dead, r.id, timeout=0.1)


# ------------------------------------------------- connect and peers

def test_connect_pushes_commits_live_both_ways(pair):
    a, b = pair
    ep = b.listen(ANY_PORT, allow=[a.id])
    a.connect(ep, b.id)
    # Catch-up first ...
    wait_for(lambda: b.doc("notes", "from-a").exists and a.doc("notes", "from-b").exists,
             what="catch-up over the live link")
    # ... then live pushes, each way.
    a.doc("live", "x")["v"] = "from a"
    wait_for(lambda: b.doc("live", "x").get("v") == "from a", what="a -> b push")
    b.doc("live", "y").list("l").append(1)
    wait_for(lambda: a.doc("live", "y").get("l") == [1], what="b -> a push")
    wait_for(lambda: a.digest() == b.digest(), what="equal digests")

    pa = wait_for(lambda: (lambda p: p if p is not None and p.connected and p.sent >= 1
                           else None)(peer(a, b.id)), what="a's view of b")
    assert pa.endpoint == ep
    assert pa.connects >= 1 and pa.refused == 0 and pa.rejected == 0
    assert pa.received >= 1 and pa.equivocations == 0
    assert pa.last_seen_ms > 1_600_000_000_000  # wall clock ms
    pb = wait_for(lambda: (lambda p: p if p is not None and p.connected and p.received >= 1
                           else None)(peer(b, a.id)), what="b's view of a")
    assert pb.endpoint is None  # a connected to b
    # Dataclass and mapping at once.
    assert set(pa.keys()) == PEER_FIELDS and set(pa.to_dict()) == PEER_FIELDS
    assert dict(pa)["sent"] == pa["sent"] == pa.sent
    assert pa["id"] == b.id and "lag" in pa and "nope" not in pa
    with pytest.raises(KeyError):
        pa["nope"]
    assert isinstance(pa.connected, bool)
    assert pa.last_error is None or isinstance(pa.last_error, str)
    wait_for(lambda: peer(a, b.id).lag == 0, what="a's lag towards b to reach 0")

    a.disconnect(ep)
    wait_for(lambda: not peer(a, b.id).connected, what="the link to go down")
    with pytest.raises(shoal.Error):
        a.disconnect(ep)  # no such link any more


def test_peers_are_persisted(make_replica, tmp_path):
    a, b = make_replica("a"), make_replica("b")
    ep = b.listen(ANY_PORT, allow=[a.id])
    assert a.peers() == []
    a.sync(ep, b.id, timeout=10.0)
    wait_for(lambda: peer(a, b.id) is not None and peer(a, b.id).connects >= 1,
             what="a peer entry")
    a.close()
    again = make_replica("a")
    p = peer(again, b.id)
    assert p is not None and not p.connected and p.connects >= 1


def test_stop_network_closes_listeners(replica):
    ep = replica.listen(ANY_PORT)
    port = int(ep.rsplit(":", 1)[1])
    replica.stop_network()

    def refused():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return False
        except OSError:
            return True
    wait_for(refused, what="the listening socket to close")
    # The replica itself goes on working, and can listen again.
    replica.doc("x", "y")["z"] = 1
    assert replica.listen(ANY_PORT).startswith("tcp://127.0.0.1:")


# ---------------------------------------------------- log callback

def test_log_callback_gets_messages_and_is_unregistered_at_close(make_replica):
    got = []
    lock = threading.Lock()

    def log(level, msg):
        with lock:
            got.append((level, msg))

    a = make_replica("a", log=log)
    b = make_replica("b")
    ep = b.listen(ANY_PORT)  # refuses a: something worth a log line
    with pytest.raises(shoal.RefusedError):
        a.sync(ep, b.id, timeout=10.0)
    wait_for(lambda: got, what="a log message")
    with lock:
        for level, msg in got:
            assert isinstance(level, (shoal.LogLevel, int)) and isinstance(msg, str)
    sink = a._log_sink
    a.close()
    assert sink.fn is None  # the library can no longer reach the callable
    n = len(got)
    b.close()
    assert len(got) == n


def test_log_callback_exceptions_are_swallowed(pair, make_replica):
    calls = []

    def bad_log(level, msg):
        calls.append(level)
        raise RuntimeError("a broken log callback")

    a = make_replica("noisy", log=bad_log)
    a.doc("notes", "n")["x"] = 1
    _, b = pair
    ep = b.listen(ANY_PORT, allow=[a.id])
    a.sync(ep, b.id, timeout=10.0)   # works although the callback raises
    assert b.doc("notes", "n")["x"] == 1
    bad = make_replica("refused", log=bad_log)
    with pytest.raises(shoal.RefusedError):
        bad.sync(ep, b.id, timeout=10.0)
    wait_for(lambda: calls, what="the callback to be called")
    assert a._log_sink.failures + bad._log_sink.failures == len(calls)


def test_log_callback_cannot_reenter_shoal(make_replica):
    seen = []
    holder = {}

    def log(level, msg):
        try:
            holder["r"].digest()
            seen.append("entered")
        except shoal.BusyError:
            seen.append("busy")
        try:
            holder["r"].close()
            seen.append("closed")
        except shoal.BusyError:
            seen.append("busy")

    a = make_replica("a", log=log)
    holder["r"] = a
    b = make_replica("b")
    ep = b.listen(ANY_PORT)
    with pytest.raises(shoal.RefusedError):
        a.sync(ep, b.id, timeout=10.0)
    wait_for(lambda: seen, what="a log message")
    assert set(seen) == {"busy"}
    assert not a.closed
    holder.clear()


def test_log_level_maps_to_logging():
    import logging
    assert shoal.LogLevel.ERROR.logging_level == logging.ERROR
    assert shoal.LogLevel.WARN.logging_level == logging.WARNING
    assert shoal.LogLevel.INFO.logging_level == logging.INFO
    assert shoal.LogLevel.DEBUG.logging_level == logging.DEBUG
    with pytest.raises(TypeError):
        shoal.Replica("unused-dir-never-created", log=42)


# ------------------------------------------- two Python processes

class Child:
    """net_child.py in its own interpreter, with a line reader thread."""

    def __init__(self, path, allowed):
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", CHILD, str(path), allowed],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line(self, timeout=20.0):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail("the child said nothing for %.0fs" % timeout)
        if line is None:
            pytest.fail("the child exited early (status %s)" % self.proc.wait(10))
        return line

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.line()

    def reap(self):
        try:
            if self.proc.poll() is None:
                try:
                    self.proc.stdin.write("quit\n")
                    self.proc.stdin.close()
                except OSError:
                    pass
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(15)
        finally:
            if self.proc.stdout:
                self.proc.stdout.close()


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="needs /usr/bin/python3")
def test_sync_between_two_processes(make_replica, tmp_path):
    parent = make_replica("parent", durable=True)
    parent.doc("notes", "from-parent").update({"text": "written in the parent"})
    parent.doc("notes", "shared").counter("stock").add(2)
    child = Child(tmp_path / "child", parent.id)
    try:
        ready = child.line().split()
        assert ready[0] == "READY", ready
        endpoint, child_id = ready[1], ready[2]
        assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", endpoint)

        parent.sync(endpoint, child_id, timeout=20.0)
        assert parent.doc("notes", "from-child")["text"] == "written in the child"
        assert parent.doc("notes", "from-child")["stock"] == 7
        doc = json.loads(child.ask("doc notes from-parent").split(" ", 1)[1])
        assert doc == {"text": "written in the parent"}
        assert child.ask("digest") == "DIGEST " + parent.digest()

        # A live link across the processes: commits flow both ways.
        parent.connect(endpoint, child_id)
        parent.doc("notes", "shared").counter("stock").add(3)
        wait_for(lambda: json.loads(child.ask("doc notes shared").split(" ", 1)[1])
                 .get("stock") == 5, timeout=20.0, what="parent -> child push")
        assert child.ask("write notes from-child text edited") == "OK"
        wait_for(lambda: parent.doc("notes", "from-child")["text"] == "edited",
                 timeout=20.0, what="child -> parent push")
        wait_for(lambda: child.ask("digest") == "DIGEST " + parent.digest(),
                 timeout=20.0, what="equal digests")
        p = peer(parent, child_id)
        assert p is not None and p.endpoint == endpoint and p.connects >= 1
    finally:
        child.reap()
    assert child.proc.returncode == 0


def test_replica_collected_inside_its_own_log_callback(tmp_path, make_replica):
    """A replica dropped while its log callable refers to it (a reference
    cycle) may be collected by a garbage collection that runs inside that
    callable, on the replica's own engine thread.  Closing it there would
    make the engine wait for itself: the binding closes it from a thread
    of its own instead."""
    import gc
    import weakref

    collect = threading.Event()
    logged = threading.Event()
    holder = []

    def log(level, msg):
        logged.set()
        if collect.is_set() and holder:
            holder.clear()  # drops the cycle's last outside reference ...
            gc.collect()    # ... and collects the replica right here

    r = shoal.Replica(tmp_path / "cyclic", durable=False, log=log)
    r.doc("c", "d")["x"] = 1
    ep = r.listen(ANY_PORT)     # admits nobody: a refusal is logged
    holder.append(r)
    holder.append(holder)       # keep the list itself in a cycle too
    ref = weakref.ref(r)
    del r
    gc.collect()
    assert ref() is not None    # the log callable's cycle keeps it alive
    collect.set()
    other = make_replica("other")
    with pytest.raises(shoal.RefusedError):
        other.sync(ep, holder[0].id, timeout=10.0)
    wait_for(lambda: ref() is None, what="the replica to be collected")
    wait_for(lambda: not any(t.name == "shoal-close" for t in threading.enumerate()),
             what="the deferred close to finish")
    # Closed cleanly: it opens again with its data.
    with shoal.Replica(tmp_path / "cyclic") as again:
        assert again.doc("c", "d")["x"] == 1


EXIT_SCRIPT = r"""
import socket, sys, shoal
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
lines = []
r = shoal.Replica(sys.argv[1], durable=False,
                  log=lambda level, msg: lines.append(msg))
other = shoal.Replica(sys.argv[2], durable=False)
r.listen("tcp://127.0.0.1:*")
r.connect("tcp://127.0.0.1:%d" % port, other.id)  # retried, logged, forever
r.doc("c", "d")["x"] = 1
print("EXITING", flush=True)
# no close(): the interpreter exits with the engine running and logging
"""


def test_interpreter_exit_with_a_live_engine_and_a_log_callback(tmp_path):
    p = subprocess.run(["/usr/bin/python3", "-c", EXIT_SCRIPT,
                        str(tmp_path / "r"), str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert p.returncode == 0, p.stderr
    assert "EXITING" in p.stdout
    assert "Fatal" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    with shoal.Replica(tmp_path / "r") as again:  # closed cleanly
        assert again.doc("c", "d")["x"] == 1
