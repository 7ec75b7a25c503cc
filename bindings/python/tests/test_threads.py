"""Threads: the binding is as thread-safe as the C API, releases the GIL
during C calls, and event iteration never deadlocks."""
import threading
import time

import shoal


def test_concurrent_writers(replica):
    n_threads, n = 4, 150
    errors = []

    def writer(k):
        try:
            d = replica.doc("t", "shared")
            mine = replica.doc("t", "w%d" % k)
            for i in range(n):
                d.counter("hits").add(1)
                mine["i"] = i
                with replica.transaction():
                    mine.list("log").append(i)
                    d.counter("txn").add(1)
        except BaseException as e:  # noqa: B902 - reported below
            errors.append(e)

    ts = [threading.Thread(target=writer, args=(k,)) for k in range(n_threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors
    d = replica.doc("t", "shared")
    assert d["hits"] == d["txn"] == n_threads * n
    for k in range(n_threads):
        assert replica.doc("t", "w%d" % k)["log"] == list(range(n))


def test_transactions_are_per_thread(replica):
    a = replica.doc("t", "a")
    inside = threading.Event()
    done = threading.Event()

    def other():
        inside.wait(10)
        a["other"] = 1  # not in the main thread's transaction: commits now
        done.set()

    t = threading.Thread(target=other)
    t.start()
    with replica.transaction():
        a["main"] = 1
        inside.set()
        assert done.wait(10)
        assert a.get("other") == 1 and "main" not in a
    t.join()
    assert a.to_dict() == {"main": 1, "other": 1}


def test_event_iteration_in_a_thread(make_replica):
    a, b = make_replica("a"), make_replica("b")
    seen = []
    ready = threading.Event()

    def listen():
        ready.set()
        for ev in b.changes(timeout=5.0):
            seen.append(ev)
            if len(seen) == 3:
                return

    t = threading.Thread(target=listen)
    t.start()
    ready.wait(10)
    for i in range(3):
        a.doc("c", "d%d" % i)["x"] = i
    b.merge(a.export())
    t.join(30)
    assert not t.is_alive()
    assert sorted(e.doc_id for e in seen) == ["d0", "d1", "d2"]
    assert all(e.remote for e in seen)


def test_waiting_releases_the_gil(replica):
    # A thread blocked in next_change() must not stop this thread running.
    t = threading.Thread(target=lambda: replica.next_change(1.5))
    t.start()
    start = time.monotonic()
    count = 0
    while time.monotonic() - start < 0.5:
        count += 1
    t.join(10)
    assert count > 10_000


def test_close_while_other_threads_work(tmp_path):
    r = shoal.Replica(tmp_path / "r", durable=False)
    working = threading.Barrier(3)
    outcomes = []

    def writer():
        d = r.doc("c", "d")
        try:
            for i in range(1_000_000):
                d["x"] = i
                d.get("x")
                if i == 50:
                    working.wait(30)
            outcomes.append("never closed")
        except shoal.ClosedError:
            outcomes.append("closed")

    def reader():
        outcomes.append(("events", len(list(r.changes(timeout=None)))))

    ts = [threading.Thread(target=writer) for _ in range(2)] + [threading.Thread(target=reader)]
    for t in ts:
        t.start()
    working.wait(30)  # both writers are busy
    r.close()
    for t in ts:
        t.join(30)
        assert not t.is_alive()
    assert outcomes.count("closed") == 2
