#!/usr/bin/python3
"""test/powercut/driver.py - cut the power under shoal's workloads.

Each cut copies a fresh replica, runs one workload of pc_work under the
power-cut shim (libpcshim.so), kills it (the shim SIGKILLs it just before a
chosen write/sync event, or the driver SIGKILLs it after a seeded random
delay), "powers on" with pc_restore in one disk model (ordered: every
unsynced write lost; reorder: each 512-byte block keeps any version since
the last sync), and runs `pc_work check`, which opens the replica without
the shim and names the prefix P of commits it holds, or fails.  The lines
the workload printed before it died are its promises; the rules:

  every workload   the replica opens and reads; its state is a prefix P,
                   and P is at most the commits started
  durable, big     P >= the last "ack" (shoal_txn_commit returned)
  fast             P >= the last "flushed" (group commit: a cut loses the
                   open batch, the commits of the last 10 ms, never a
                   flushed one)
  import           P >= the last "ack" (shoal_import returned)
  net              P >= the last "ack" the sender printed (shoal_net_sync
                   to the listener returned OK); only the listener is cut
  lying            fast mode printing "ack": the harness must catch it
  big              durable, 60 commits that each add a 20,000-byte register
                   value (overflow pages, a bigger tree) to a replica created
                   with a 1 MiB map, which it outgrows (the map grows)
  durable2, fast2  two runs, two cuts on one replica: the second run goes
                   on from what the first cut left, and its prefix may not
                   fall below the first one (that state was on the disk)
  create           durable, but the replica directory starts empty, so
                   the cut can fall while the replica is created (see
                   docs/testing.md "Power cuts")

Usage:
  driver.py --bin DIR [--cuts N] [--seed S] [--workloads a,b] [--models a,b]
            [--time-limit SEC] [--verbose]
      The matrix: workloads x models x {event, time} cuts, N in all, after
      one uncut dry run per workload (its event count and duration are what
      the cuts draw from: an event uniform in 1..E+1, a delay uniform over
      the run).  One JSON line per workload and model: cuts, violations,
      min_P / max_P, below_promised (cuts where P fell below the last
      ack/done line: the fast mode's lost last commit), ran_to_end (the
      cut came after the workload ended), undone_records (unsynced records
      the restore saw), seconds.  Exit 1 on any violation; a "lying" cell
      counts the violations it should have, without failing.
  driver.py --bin DIR --lying [--seed S]
      The proof that the harness fails: cut the lying writer at the first
      write event after ack k (k from the seed), ordered model; exit 0
      only if the check finds acked commit k missing.
  driver.py --bin DIR --selftest
      The shim and both models on known bytes (pc_work rawio).
  driver.py --bin DIR --one WORKLOAD MODEL EVENT RSEED [--keep]
      One event cut again (the repro a violation prints), with the
      workload's lines; --keep keeps its directory and undo log.

DIR holds pc_work, pc_restore and libpcshim.so (build/test/powercut).  The
seed is printed first; every cut's event and restore seed are derived from
it and the cut's place in the matrix, so an event cut repeats exactly
(with --one); a time cut repeats only as closely as the machine's timing.
Every process runs in its own process group and is killed and reaped, and
the temporary directory is removed, whatever happens.
"""

import argparse
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

WORKLOADS = ("durable", "fast", "import", "net")
MODELS = ("ordered", "reorder")
N_COMMITS = {"durable": 12, "fast": 12, "import": 12, "net": 8, "lying": 6, "create": 4,
             "durable2": 12, "fast2": 12, "big": 60}
BIG_MAP = 1 << 20  # big: a 1 MiB map, which its 60 commits of 20 KB outgrow
# Two runs and two cuts in a row on one replica (see Harness.cut).
TWICE = {"durable2": "durable", "fast2": "fast"}
FLUSH_EVERY = 3  # fast mode: shoal_replica_flush every 3 commits
PROC_TIMEOUT = 60.0  # seconds any one process may run
SYNC_GRACE = 0.2  # seconds the sender gets, once the listener is dead, to print


class Harness:
    def __init__(self, bindir, root):
        self.work = os.path.join(bindir, "pc_work")
        self.restore = os.path.join(bindir, "pc_restore")
        self.shim = os.path.join(bindir, "libpcshim.so")
        for p in (self.work, self.restore, self.shim):
            if not os.path.exists(p):
                raise SystemExit("driver: missing %s" % p)
        self.root = root
        self.procs = []
        self.env = dict(os.environ)
        self.env["TMPDIR"] = root
        for k in ("LD_PRELOAD", "SHOAL_PC_DIR", "SHOAL_PC_LOG", "SHOAL_PC_CUT",
                  "SHOAL_PC_FILES"):
            self.env.pop(k, None)
        self.templates = {}

    # ------------------------------------------------------------ processes

    def spawn(self, args, shim=None, stdin=subprocess.DEVNULL):
        env = dict(self.env)
        if shim:
            env.update(shim)
            env["LD_PRELOAD"] = self.shim
        p = subprocess.Popen(args, stdin=stdin, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def kill(self, p):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def reap(self, p, timeout=PROC_TIMEOUT):
        """Wait for p (killing it after timeout); its stdout lines and
        whether it timed out."""
        timed_out = False
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self.kill(p)
            out, err = p.communicate()
        if p in self.procs:
            self.procs.remove(p)
        return out.decode(errors="replace").splitlines(), err.decode(errors="replace"), \
            timed_out

    def cleanup(self):
        for p in list(self.procs):
            self.kill(p)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for f in (p.stdin, p.stdout, p.stderr):
                if f:
                    try:
                        f.close()
                    except OSError:
                        pass
        self.procs = []

    def run(self, args, timeout=PROC_TIMEOUT):
        p = self.spawn(args)
        lines, err, timed_out = self.reap(p, timeout)
        if timed_out or p.returncode != 0:
            raise RuntimeError("%s failed (%s): %s" % (" ".join(args[:2]),
                               "timeout" if timed_out else p.returncode, err.strip()))
        return lines

    # ------------------------------------------------------------ templates

    def template(self, workload):
        """Directories copied for each cut: made once, without the shim."""
        if workload in self.templates:
            return self.templates[workload]
        base = os.path.join(self.root, "tpl-" + workload)
        os.mkdir(base)
        t = {"dir": os.path.join(base, "r")}
        t["author"] = None  # the replica's own key
        if workload == "create":
            # An empty directory: the replica is created under the shim.
            os.mkdir(t["dir"], 0o700)
            self.templates[workload] = t
            return t
        size = [str(BIG_MAP)] if workload == "big" else []
        t["id"] = self.run([self.work, "init", t["dir"]] + size)[0]
        if workload == "import":
            src = os.path.join(base, "src")
            t["author"] = self.run([self.work, "init", src])[0]
            t["bundles"] = os.path.join(base, "bundles")
            self.run([self.work, "bundles", src, t["bundles"], str(N_COMMITS[workload])])
        if workload == "net":
            t["sender"] = os.path.join(base, "s")
            t["author"] = self.run([self.work, "init", t["sender"]])[0]
        self.templates[workload] = t
        return t

    # ------------------------------------------------------------------ cut

    def cut(self, workload, model, event=0, delay=None, rseed=1, keep=None):
        """One power cut: the workload killed at an event (event > 0) or
        after delay seconds; then restore and check.  A result dict.  A
        "twice" workload (durable2, fast2) then runs again on what the cut
        left, from the next commit, is cut at the same event or delay,
        restored and checked again: everything the first restore left was
        on the disk, so the second prefix may not be smaller."""
        t = self.template(workload)
        d = keep or tempfile.mkdtemp(prefix="cut-", dir=self.root)
        rdir = os.path.join(d, "r")
        shutil.copytree(t["dir"], rdir)
        res = {"workload": workload, "model": model, "event": event, "rseed": rseed}
        if delay is not None:
            res["delay_ms"] = round(delay * 1000, 1)
        try:
            self._run_once(workload, t, model, rdir, os.path.join(d, "undo.log"), 1, event,
                           delay, rseed, res)
            if workload in TWICE and "violation" not in res:
                first = {"P": res["P"], "run_seconds": res["run_seconds"],
                         "killed": res["killed"]}
                res2 = dict(res)
                self._run_once(workload, t, model, rdir, os.path.join(d, "undo2.log"),
                               res["P"] + 1, event, delay, rseed + 1, res2, floor=res["P"])
                res = res2
                res["first"] = first
            return res
        finally:
            if not keep:
                shutil.rmtree(d, ignore_errors=True)

    def _run_once(self, workload, t, model, rdir, log, start, event, delay, rseed, res,
                  floor=0):
        """Run, cut, restore and check once; results into res."""
        n = N_COMMITS[workload]
        shim = {"SHOAL_PC_DIR": rdir, "SHOAL_PC_LOG": log}
        if event:
            shim["SHOAL_PC_CUT"] = str(event)
        t0 = time.monotonic()
        if workload == "net":
            lines, promises = self._net(t, rdir, shim, n, delay)
        else:
            base = TWICE.get(workload, workload)
            if base in ("durable", "lying", "create", "big"):
                args = [self.work, "durable" if base == "create" else base, rdir, str(n)]
            elif base == "fast":
                args = [self.work, "fast", rdir, str(n), str(FLUSH_EVERY)]
            else:
                args = [self.work, "import", rdir, t["bundles"], str(n)]
            if start > 1:
                args.append(str(start))
            p = self.spawn(args, shim)
            if delay is not None:
                try:
                    p.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    self.kill(p)
            lines, err, timed_out = self.reap(p)
            if timed_out:
                res["violation"] = "workload hung (killed after %ds)" % PROC_TIMEOUT
                return
            if p.returncode not in (0, -signal.SIGKILL):
                res["violation"] = "workload failed (%s): %s" % (p.returncode,
                                                                err.strip()[-300:])
                return
            promises = lines
        res["run_seconds"] = time.monotonic() - t0
        res["killed"] = not any(x.startswith("end ") for x in lines)
        rinfo = json.loads(self.run([self.restore, model, log, rdir, str(rseed)])[0])
        res["unsynced"] = sum(f["unsynced"] for f in rinfo["files"])
        res["events"] = rinfo["events"]
        author = [t["author"]] if t["author"] else []
        cp = self.spawn([self.work, "check", rdir] + author)
        clines, cerr, ctimed = self.reap(cp)
        if ctimed or not clines:
            res["violation"] = "check gave no verdict (%s): %s" % (
                "timeout" if ctimed else "exit %s" % cp.returncode, cerr.strip()[-300:])
            return
        verdict = json.loads(clines[-1])
        res["P"] = verdict["P"]
        if not verdict["ok"]:
            res["violation"] = "check: " + verdict["error"]
            return
        judge(TWICE.get(workload, workload), n, promises, res, floor, start)
        res["lines"] = promises

    def _net(self, t, rdir, shim, n, delay):
        """The listener under the shim, the sender (no shim) syncing to it
        after each commit.  The sender's lines are the promises."""
        sdir = os.path.join(os.path.dirname(rdir), "s")
        shutil.copytree(t["sender"], sdir)
        start = time.monotonic()
        lp = self.spawn([self.work, "listen", rdir, t["author"]], shim, stdin=subprocess.PIPE)
        ep = None
        buf = b""
        deadline = start + 20
        while ep is None and time.monotonic() < deadline and lp.poll() is None:
            r, _, _ = select.select([lp.stdout], [], [], 0.1)
            if r:
                chunk = os.read(lp.stdout.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
                for line in buf.decode(errors="replace").splitlines():
                    if line.startswith("listening "):
                        ep = line.split()[1]
        if ep is None:
            # Cut before it listened (an event at open): nothing was sent.
            lines, _, _ = self.reap(lp)
            return lines, []
        sp = self.spawn([self.work, "send", sdir, ep, t["id"], str(n)])
        if delay is not None:
            left = delay - (time.monotonic() - start)
            try:
                lp.wait(timeout=max(left, 0))
            except subprocess.TimeoutExpired:
                self.kill(lp)
        # The sender ends by itself: all synced, or a sync failed.  Once the
        # listener is dead it gets SYNC_GRACE to notice.
        end = time.monotonic() + PROC_TIMEOUT
        while sp.poll() is None and lp.poll() is None and time.monotonic() < end:
            time.sleep(0.005)
        slines, _, _ = self.reap(sp, SYNC_GRACE if lp.poll() is not None else PROC_TIMEOUT)
        lines, _, _ = self.reap(lp)  # closes its stdin: a live listener closes
        return buf.decode(errors="replace").splitlines() + lines, slines

    def dry(self, workload, runs=3):
        """Runs without a cut: the events and duration the cuts draw from
        (the most events, the shortest run: the first run of a program on
        a busy machine is often the slowest, and delays past the end of a
        run cut nothing), and a check that an uncut run passes."""
        best = None
        for _ in range(runs):
            res = self.cut(workload, "ordered", rseed=0)
            if "violation" in res and workload != "lying":
                raise RuntimeError("dry run of %s failed: %s" % (workload, res["violation"]))
            if best is None:
                best = res
            best["events"] = max(best["events"], res["events"])
            best["run_seconds"] = min(best["run_seconds"], res["run_seconds"])
        return best


def last(lines, word):
    v = 0
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == word:
            v = int(parts[1])
    return v


def judge(workload, n, lines, res, floor=0, start=1):
    """The rules (see the top of this file) on the promises in lines; a
    second run (start > 1) keeps at least floor, the prefix it began on."""
    p = res["P"]
    if workload in ("durable", "lying", "import", "create", "big"):
        acked = max(last(lines, "ack"), floor)
        need, most = acked, min(max(acked + 1, start), n)
        res["promised"] = acked
    elif workload == "fast":
        done = max(last(lines, "done"), floor)
        flushed = last(lines, "flushed")
        need = max(flushed, floor)
        most = min(max(done + 1, start), n)
        res["promised"] = done
    else:
        acked = last(lines, "ack")
        need, most = acked, last(lines, "sent")
        res["promised"] = acked
    need = max(need, floor)
    if p < need:
        res["violation"] = "prefix %d below the bound %d" % (p, need)
    elif p > most:
        res["violation"] = "prefix %d above the commits started (%d)" % (p, most)


def repro(res, seed):
    if res.get("event"):
        return "driver.py --bin DIR --seed %d --one %s %s %d %d --keep" % (
            seed, res["workload"], res["model"], res["event"], res["rseed"])
    return "(time cut at %s ms: rerun the seed)" % res.get("delay_ms")


def matrix(h, args, out):
    workloads = [w for w in args.workloads.split(",") if w]
    models = [m for m in args.models.split(",") if m]
    for w in workloads:
        if w not in WORKLOADS + ("lying", "create", "big") + tuple(TWICE):
            raise SystemExit("driver: unknown workload %s" % w)
    for m in models:
        if m not in MODELS:
            raise SystemExit("driver: unknown model %s" % m)
    cells = [(w, m, k) for w in workloads for m in models for k in ("event", "time")]
    per = max(1, args.cuts // len(cells))
    dries = {}
    for w in workloads:
        dries[w] = h.dry(TWICE.get(w, w))  # a twice workload's runs are its base's
        out({"dry": w, "events": dries[w]["events"],
             "seconds": round(dries[w]["run_seconds"], 3)})
    stats = {}
    violations = []
    started = time.monotonic()
    stopped = False
    for i in range(per):
        for (w, m, k) in cells:
            if args.time_limit and time.monotonic() - started > args.time_limit:
                stopped = True
                break
            rnd = random.Random("%d/%s/%s/%s/%d" % (args.seed, w, m, k, i))
            rseed = rnd.randrange(1, 2**63)
            t0 = time.monotonic()
            if k == "event":
                # Events 1..E of the dry run, and E + 1: a cut after the end.
                res = h.cut(w, m, event=rnd.randint(1, dries[w]["events"] + 1), rseed=rseed)
            else:
                res = h.cut(w, m, delay=rnd.uniform(0, dries[w]["run_seconds"]), rseed=rseed)
            dt = time.monotonic() - t0
            if args.verbose:
                out(dict(res, seconds=round(dt, 3), lines=None))
            s = stats.setdefault((w, m), {"workload": w, "model": m, "cuts": 0,
                                          "event_cuts": 0, "time_cuts": 0, "violations": 0,
                                          "min_P": None, "max_P": None, "below_promised": 0,
                                          "ran_to_end": 0, "undone_records": 0,
                                          "seconds": 0.0})
            s["cuts"] += 1
            s[k + "_cuts"] += 1
            s["seconds"] += dt
            s["undone_records"] += res.get("unsynced", 0)
            s["ran_to_end"] += 0 if res.get("killed", True) else 1
            if "P" in res and res["P"] is not None and res["P"] >= 0:
                s["min_P"] = res["P"] if s["min_P"] is None else min(s["min_P"], res["P"])
                s["max_P"] = res["P"] if s["max_P"] is None else max(s["max_P"], res["P"])
                if res["P"] < res.get("promised", 0):
                    s["below_promised"] += 1
            res.pop("lines", None)
            if "violation" in res:
                s["violations"] += 1
                res["repro"] = repro(res, args.seed)
                if w != "lying":
                    violations.append(res)
                    out({"violation": res})
        if stopped:
            break
    for s in stats.values():
        s["seconds"] = round(s["seconds"], 2)
        out(s)
    total = sum(s["cuts"] for s in stats.values())
    out({"total_cuts": total, "violations": len(violations), "seed": args.seed,
         "seconds": round(time.monotonic() - started, 1), "stopped_by_time_limit": stopped})
    return 1 if violations or total == 0 else 0


def lying(h, args, out):
    """The proof that the harness can fail: a writer in fast mode that acks
    each commit as durable loses an acknowledged commit when the power goes
    at the first write after an ack (ordered model)."""
    dry = h.dry("lying")
    acks = {}
    for line in dry["lines"]:
        parts = line.split()
        if len(parts) == 4 and parts[0] == "ack":
            acks[int(parts[1])] = int(parts[3])
    k = random.Random("%d/lying" % args.seed).randint(1, N_COMMITS["lying"] - 1)
    if k not in acks:
        out({"lying": "the dry run printed no ack %d" % k})
        return 1
    res = h.cut("lying", "ordered", event=acks[k] + 1, rseed=1)
    # Caught: the check found the replica below what the cut run itself had
    # acknowledged (a hung or failed run is not a catch).  Not P < k: the batch flusher runs on a timer, so the
    # cut run may have printed more acks by the same event than the dry run
    # (k = 2 in the dry run, 6 acks in the cut run, P = 2: an acknowledged
    # commit lost, yet not below k).
    caught = (res.get("P") is not None and
              "below the bound" in res.get("violation", ""))
    out({"lying": "caught" if caught else "NOT CAUGHT", "acked": k, "cut_event": acks[k] + 1,
         "P": res.get("P"), "violation": res.get("violation"), "dry_events": dry["events"],
         "repro": repro(res, args.seed)})
    return 0 if caught else 1


def selftest(h, args, out):
    """The shim and both models on known bytes: pc_work rawio (see its
    comment) writes blocks of 'B'..'F' over a synced file of 'A's; what
    each model may leave is known exactly."""
    d = os.path.join(h.root, "selftest")
    tpl = os.path.join(d, "tpl")
    os.makedirs(tpl)
    with open(os.path.join(tpl, "data.mdb"), "wb") as f:
        f.write(b"A" * 2048)
    fails = []

    def expect(cond, what):
        if not cond:
            fails.append(what)

    def run(cut=0):
        run.n += 1
        base = os.path.join(d, "run%d" % run.n)
        os.mkdir(base)
        rdir = os.path.join(base, "r")
        shutil.copytree(tpl, rdir)
        log = os.path.join(base, "undo.log")
        shim = {"SHOAL_PC_DIR": rdir, "SHOAL_PC_LOG": log}
        if cut:
            shim["SHOAL_PC_CUT"] = str(cut)
        p = h.spawn([h.work, "rawio", rdir], shim)
        h.reap(p)
        return base, p.returncode
    run.n = 0

    def restored(base, model, seed, extra=b""):
        c = tempfile.mkdtemp(prefix="copy-", dir=d)
        shutil.copytree(os.path.join(base, "r"), os.path.join(c, "r"))
        with open(os.path.join(base, "undo.log"), "rb") as f:
            log = f.read()
        with open(os.path.join(c, "undo.log"), "wb") as f:
            f.write(log + extra)
        info = json.loads(h.run([h.restore, model, os.path.join(c, "undo.log"),
                                 os.path.join(c, "r"), str(seed)])[0])
        with open(os.path.join(c, "r", "data.mdb"), "rb") as f:
            data = f.read()
        shutil.rmtree(c)
        return data, info

    blk = {ch: ch.encode() * 512 for ch in "ABCDF"}
    zero = bytes(512)
    base, rc = run()
    expect(rc == 0, "rawio failed: %s" % rc)
    # ordered: the synced state, plus the O_DSYNC bytes.
    data, _ = restored(base, "ordered", 1)
    want = blk["A"] + blk["B"] + b"E" * 100 + b"A" * 412 + blk["A"]
    expect(data == want, "ordered: %r..." % data[:64])
    # reorder: every block one of its allowed versions, each one seen.
    allowed = [{blk["A"], blk["F"]}, {blk["B"]}, {b"E" * 100 + b"C" * 412},
               {blk["A"], blk["C"]}, {zero, blk["D"]}, {zero}]
    seen = [set() for _ in allowed]
    sizes = set()
    for seed in range(1, 65):
        data, _ = restored(base, "reorder", seed)
        sizes.add(len(data))
        expect(len(data) in (2048, 3072), "reorder seed %d: size %d" % (seed, len(data)))
        for b in range(min(len(data) // 512, len(allowed))):
            v = data[b * 512:(b + 1) * 512]
            expect(v in allowed[b], "reorder seed %d: block %d is %r..." % (seed, b, v[:8]))
            seen[b].add(v)
    expect(sizes == {2048, 3072}, "reorder: sizes seen %s" % sorted(sizes))
    for b, want_set in enumerate(allowed[:5]):
        expect(seen[b] == want_set, "reorder: block %d showed %d of %d versions" % (
            b, len(seen[b]), len(want_set)))
    # A cut just before event 4 (the writev): 'C' is undone, 'D' never came;
    # a record cut short at the end of the log is ignored.
    base, rc = run(cut=4)
    expect(rc == -signal.SIGKILL, "cut at event 4: exit %s" % rc)
    data, info = restored(base, "ordered", 1)
    expect(info["events"] == 3, "cut at event 4: the log holds %d events" % info["events"])
    expect(data == blk["A"] + blk["B"] + blk["A"] + blk["A"], "cut at event 4: wrong bytes")
    with open(os.path.join(base, "undo.log"), "rb") as f:
        head = f.read(30)
    data2, info2 = restored(base, "ordered", 1, extra=head)
    expect(info2["truncated"] and data2 == data, "a truncated last record was not ignored")
    shutil.rmtree(d)
    out({"selftest": "ok" if not fails else "FAILED", "failures": fails})
    return 1 if fails else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="directory of pc_work, pc_restore, libpcshim.so")
    ap.add_argument("--cuts", type=int, default=320)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--time-limit", type=float, default=0,
                    help="seconds after which no new cut starts (0: none)")
    ap.add_argument("--verbose", action="store_true", help="print every cut")
    ap.add_argument("--lying", action="store_true")
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--one", nargs=4, metavar=("WORKLOAD", "MODEL", "EVENT", "RSEED"))
    ap.add_argument("--keep", action="store_true", help="with --one: keep the directory")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = int(os.environ.get("SHOAL_SEED", "0") or 0) or 20261207
    print(json.dumps({"seed": args.seed, "note": "--seed %d repeats this run" % args.seed}),
          flush=True)

    def out(obj):
        print(json.dumps(obj), flush=True)

    # meson's timeout and ^C end the run through the finally below.
    def stop(signum, frame):
        raise SystemExit("driver: signal %d" % signum)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    root = tempfile.mkdtemp(prefix="shoal-powercut-")
    h = None
    rc = 1
    try:
        h = Harness(args.bin, root)
        if args.one:
            w, m, ev, rs = args.one
            keep = os.path.join(root, "kept") if args.keep else None
            if keep:
                os.mkdir(keep)
            res = h.cut(w, m, event=int(ev), rseed=int(rs), keep=keep)
            out(res)  # with the workload's lines: the promises
            if keep:
                dest = tempfile.mkdtemp(prefix="shoal-powercut-kept-")
                shutil.rmtree(dest)
                shutil.copytree(keep, dest)
                out({"kept": dest})
            rc = 1 if "violation" in res else 0
        elif args.lying:
            rc = lying(h, args, out)
        elif args.selftest:
            rc = selftest(h, args, out)
        else:
            rc = matrix(h, args, out)
    finally:
        try:
            if h:
                h.cleanup()
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
