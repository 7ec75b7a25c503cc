#!/usr/bin/env python3
"""Python binding overhead: writes/s and reads/s through `shoal` versus the
same work done in C.

Three implementations of one workload, in one process, on fresh replicas in
a temp dir:

  python    the public Python API: ``docs[i % 100]["v"] = i`` (one commit
            per write) and ``docs[i % 100]["v"]`` (one snapshot read)
  cffi-raw  the same C calls made directly through the cffi ``lib`` (what
            the binding costs over bare cffi)
  c         a C loop (compiled here with cffi against shoal.h and the same
            libshoal) doing the same calls: the floor

Writes are measured non-durable (commits written, synced once at the end:
the binding's overhead is visible) and durable (fsync per commit: the disk
dominates).  If `shoal-bench` is found (the build's bench/shoal-bench, or
--shoal-bench PATH) its `commits` figures are printed too.

Each result is one JSON object per line on stdout.

Run from a build:
  meson devenv -C BUILD /usr/bin/python3 bindings/python/bench_overhead.py
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

_here = os.path.dirname(os.path.abspath(__file__))
# Run from the source tree, this directory holds the uncompiled `shoal`
# sources: prefer the built package on PYTHONPATH.
if os.path.isfile(os.path.join(_here, "shoal", "meson.build")):
    sys.path = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import shoal  # noqa: E402
from shoal import _ffi as ffi, _lib as lib  # noqa: E402

COLL = b"bench"
NDOCS = 100

C_HELPER = r"""
#include <stdio.h>
#include "shoal.h"

static void doc_name(char *buf, size_t cap, uint64_t i)
{
    snprintf(buf, cap, "d%03llu", (unsigned long long)(i % 100));
}

int bench_c_writes(shoal_replica *r, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        char id[32];
        shoal_txn *t;
        shoal_value v = {.type = SHOAL_T_INT, .i = (int64_t)i};
        doc_name(id, sizeof id, i);
        if (shoal_txn_begin(r, &t) != SHOAL_OK)
            return -1;
        if (shoal_txn_set(t, "bench", id, "v", &v) != SHOAL_OK) {
            shoal_txn_abort(t);
            return -1;
        }
        if (shoal_txn_commit(t) != SHOAL_OK)
            return -1;
    }
    return shoal_replica_flush(r) == SHOAL_OK ? 0 : -1;
}

int64_t bench_c_reads(shoal_replica *r, uint64_t n)
{
    int64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        char id[32];
        shoal_doc *d;
        size_t fi;
        shoal_value v;
        doc_name(id, sizeof id, i);
        if (shoal_doc_get(r, "bench", id, &d) != SHOAL_OK)
            return -1;
        if (shoal_doc_field_find(d, "v", &fi) != SHOAL_OK ||
            shoal_doc_field_value(d, fi, &v) != SHOAL_OK) {
            shoal_doc_free(d);
            return -1;
        }
        sum += v.i;
        shoal_doc_free(d);
    }
    return sum;
}
"""


def find_header():
    cands = []
    if os.environ.get("SHOAL_SOURCE_ROOT"):
        cands.append(os.environ["SHOAL_SOURCE_ROOT"])
    cands.append(os.path.join(_here, "..", ".."))
    for root in cands:
        h = os.path.join(root, "include", "shoal.h")
        if os.path.isfile(h):
            return os.path.dirname(os.path.abspath(h))
    return None


def loaded_libshoal():
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if os.path.basename(path).startswith("libshoal.so"):
                return path
    return None


def build_c_helper(tmp):
    """Compile the C loops; return (ffi, lib) or None with a reason."""
    inc, so = find_header(), loaded_libshoal()
    if not inc or not so:
        return None, "shoal.h or the loaded libshoal not found"
    try:
        import cffi
        cffi_ = cffi.FFI()
        cffi_.cdef("typedef struct shoal_replica shoal_replica;"
                   "int bench_c_writes(shoal_replica *r, uint64_t n);"
                   "int64_t bench_c_reads(shoal_replica *r, uint64_t n);")
        cffi_.set_source("_shoal_bench_c", C_HELPER, include_dirs=[inc],
                         extra_link_args=[so, "-Wl,-rpath," + os.path.dirname(so)],
                         extra_compile_args=["-O2", "-std=c11"])
        path = cffi_.compile(tmpdir=tmp, verbose=False)
        import importlib.util
        spec = importlib.util.spec_from_file_location("_shoal_bench_c", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod, None
    except Exception as e:  # a compiler may be missing: report, go on
        return None, "cannot compile the C loops: %s" % e


def emit(**kw):
    print(json.dumps(kw, sort_keys=False), flush=True)


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_python_writes(r, n):
    docs = [r.doc("bench", "d%03d" % k) for k in range(NDOCS)]

    def go():
        for i in range(n):
            docs[i % NDOCS]["v"] = i
        r.flush()
    return timed(go)


def run_python_reads(r, n):
    docs = [r.doc("bench", "d%03d" % k) for k in range(NDOCS)]
    total = [0]

    def go():
        s = 0
        for i in range(n):
            s += docs[i % NDOCS]["v"]
        total[0] = s
    return timed(go)


def run_raw_writes(r, n):
    p = r._p
    ids = [b"d%03d" % k for k in range(NDOCS)]
    cv = ffi.new("shoal_value *")
    cv.type = lib.SHOAL_T_INT
    tp = ffi.new("shoal_txn **")

    def go():
        for i in range(n):
            cv.i = i
            if lib.shoal_txn_begin(p, tp):
                raise RuntimeError("begin")
            if lib.shoal_txn_set(tp[0], COLL, ids[i % NDOCS], b"v", cv):
                raise RuntimeError("set")
            if lib.shoal_txn_commit(tp[0]):
                raise RuntimeError("commit")
        lib.shoal_replica_flush(p)
    return timed(go)


def run_raw_reads(r, n):
    p = r._p
    ids = [b"d%03d" % k for k in range(NDOCS)]
    dp = ffi.new("shoal_doc **")
    fi = ffi.new("size_t *")
    cv = ffi.new("shoal_value *")

    def go():
        s = 0
        for i in range(n):
            if lib.shoal_doc_get(p, COLL, ids[i % NDOCS], dp):
                raise RuntimeError("get")
            lib.shoal_doc_field_find(dp[0], b"v", fi)
            lib.shoal_doc_field_value(dp[0], fi[0], cv)
            s += cv.i
            lib.shoal_doc_free(dp[0])
    return timed(go)


def shoal_bench_path(explicit):
    if explicit:
        return explicit
    pkg = os.path.dirname(os.path.abspath(shoal.__file__))
    cand = os.path.join(pkg, "..", "..", "..", "bench", "shoal-bench")
    return cand if os.access(cand, os.X_OK) else None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--writes", type=int, default=20000, help="non-durable writes per implementation")
    ap.add_argument("--durable-writes", type=int, default=300, help="durable writes per implementation (0: skip)")
    ap.add_argument("--reads", type=int, default=100000, help="reads per implementation")
    ap.add_argument("--runs", type=int, default=3, help="runs; the median is reported")
    ap.add_argument("--shoal-bench", help="path of shoal-bench for its `commits` figures")
    ap.add_argument("--no-shoal-bench", action="store_true", help="do not run shoal-bench")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="shoal-pybench-") as tmp:
        cmod, why = build_c_helper(os.path.join(tmp, "cbuild"))
        if cmod is None:
            emit(bench="python_overhead", note=why)
        impls = {
            "python": (run_python_writes, run_python_reads),
            "cffi-raw": (run_raw_writes, run_raw_reads),
        }
        if cmod is not None:
            def handle(r):  # the same pointer, seen through the helper's ffi
                return cmod.ffi.cast("shoal_replica *", int(ffi.cast("uintptr_t", r._p)))

            def c_writes(r, n):
                h = handle(r)
                return timed(lambda: cmod.lib.bench_c_writes(h, n) == 0 or sys.exit("C writes failed"))

            def c_reads(r, n):
                h = handle(r)
                return timed(lambda: cmod.lib.bench_c_reads(h, n) >= 0 or sys.exit("C reads failed"))
            impls["c"] = (c_writes, c_reads)

        results = {}
        seq = [0]

        def fresh(durable):
            seq[0] += 1
            return shoal.Replica(os.path.join(tmp, "r%d" % seq[0]), durable=durable)

        work = [("write", False, args.writes), ("read", False, args.reads)]
        if args.durable_writes > 0:
            work.append(("write", True, args.durable_writes))
        for op, durable, n in work:
            for impl, (wfn, rfn) in impls.items():
                times = []
                for _ in range(args.runs):  # each run on a fresh replica
                    with fresh(durable) as r:
                        if op == "write":
                            times.append(wfn(r, n))
                        else:
                            run_raw_writes(r, NDOCS)  # every doc has "v"
                            times.append(rfn(r, n))
                med = sorted(times)[len(times) // 2]
                results[(op, durable, impl)] = n / med
                emit(bench="python_overhead", op=op, durable=durable, impl=impl, n=n,
                     runs_ms=[round(t * 1000, 1) for t in times],
                     ms=round(med * 1000, 1), per_s=round(n / med))
        for op, durable, _n in work:
            base = results.get((op, durable, "c"))
            py = results[(op, durable, "python")]
            raw = results[(op, durable, "cffi-raw")]
            emit(bench="python_overhead", op=op, durable=durable, summary=True,
                 python_per_s=round(py), cffi_raw_per_s=round(raw),
                 c_per_s=round(base) if base else None,
                 python_vs_c=round(py / base, 3) if base else None,
                 python_us_over_c=round((1 / py - 1 / base) * 1e6, 2) if base else None,
                 binding_us_over_cffi=round((1 / py - 1 / raw) * 1e6, 2))

    if not args.no_shoal_bench:
        sb = shoal_bench_path(args.shoal_bench)
        if sb:
            out = subprocess.run([sb, "commits", "--n", str(max(args.durable_writes, 100)),
                                  "--runs", "1"], capture_output=True, text=True)
            for line in out.stdout.splitlines():
                if line.startswith("{"):
                    rec = json.loads(line)
                    rec["source"] = "shoal-bench commits"
                    emit(**rec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
