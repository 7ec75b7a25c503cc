"""Memory: 100,000 writes and reads through the binding do not grow the
process's anonymous memory (RssAnon; LMDB's file pages do not count) or
Python's own allocations (tracemalloc) without bound."""
import gc
import tracemalloc

import shoal

N = 100_000
WARMUP = 5_000


def rss_anon_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/self/status")


def work(r, start, n):
    docs = [r.doc("mem", "d%d" % k) for k in range(16)]
    for i in range(start, start + n):
        d = docs[i % 16]
        d["v"] = i                      # register write
        if i % 4 == 0:
            d.counter("n").add(1)       # counter write
        if i % 8 == 0:
            d["s"] = "x" * (i % 200)    # str value
        assert d["v"] == i              # read
        if i % 16 == 0:
            d.to_dict()
            r.version()
        if i % 1000 == 0:
            r.next_change(0)            # drain a little of the event queue


def test_no_unbounded_growth(tmp_path):
    with shoal.Replica(tmp_path / "mem", durable=False) as r:
        work(r, 0, WARMUP)
        gc.collect()
        tracemalloc.start()
        rss0 = rss_anon_kib()
        py0, _ = tracemalloc.get_traced_memory()
        work(r, WARMUP, N)
        gc.collect()
        py1, _ = tracemalloc.get_traced_memory()
        rss1 = rss_anon_kib()
        tracemalloc.stop()
        print("growth: python %d bytes, RssAnon %d KiB" % (py1 - py0, rss1 - rss0))
        # fixed slack: far below what a per-call leak of even 80 bytes would
        # add up to over 100,000 iterations (8 MB)
        assert py1 - py0 < 512 * 1024, "Python allocations grew by %d bytes" % (py1 - py0)
        assert rss1 - rss0 < 6 * 1024, "RssAnon grew by %d KiB" % (rss1 - rss0)
        last = (WARMUP + N - 1) // 16 * 16
        assert r.doc("mem", "d0")["v"] == last
