"""Helpers for the multi-process network tests.

Every test runs the real `shoal` and `shoal-relay` programs (paths from
SHOAL_BIN and SHOAL_RELAY_BIN) on real replica directories under tmp_path,
with real sockets on 127.0.0.1 whose ports the OS picks and the programs
print.  Waits are bounded polls; every process a test starts is registered
with the `net` fixture, which stops and reaps it even when the test fails,
and prints the tail of its log then.
"""

import json
import os
import queue
import random
import signal
import subprocess
import threading
import time

import pytest

SHOAL = os.environ.get("SHOAL_BIN")
RELAY = os.environ.get("SHOAL_RELAY_BIN")

LOOPBACK = "tcp://127.0.0.1:*"


def seed_for(name):
    """A seed for one test: SHOAL_TEST_SEED if set, else random; printed."""
    env = os.environ.get("SHOAL_TEST_SEED")
    seed = int(env) if env else random.randrange(1, 2**31)
    print(f"{name}: seed {seed} (rerun with SHOAL_TEST_SEED={seed})")
    return seed


def wait_until(cond, timeout, what, interval=0.05):
    """Poll cond() until it returns a true value; fail after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def run(*args, input=None, timeout=60, check=True):
    """Run shoal ARGS; returns the CompletedProcess (text)."""
    p = subprocess.run([SHOAL, *map(str, args)], input=input, capture_output=True,
                       timeout=timeout, text=input is None or isinstance(input, str))
    if check and p.returncode != 0:
        pytest.fail(f"shoal {' '.join(map(str, args))} exited {p.returncode}: "
                    f"{p.stderr.strip()}")
    return p


def init(d):
    return run("-d", d, "init").stdout.strip()


def digest(d, full=True):
    return run("-d", d, "digest", *(["--full"] if full else [])).stdout.strip()


def version(d):
    return json.loads(run("-d", d, "version").stdout)


def get(d, coll, doc):
    """The document as a dict, or None (missing), or "deleted"."""
    p = run("-d", d, "get", coll, doc, check=False)
    if p.returncode == 0:
        return json.loads(p.stdout)
    if p.returncode == 2:
        return None
    if p.returncode == 3:
        return "deleted"
    pytest.fail(f"get {coll}/{doc} on {d}: exit {p.returncode}: {p.stderr.strip()}")


def sync(d, peer, timeout=10, check=True):
    """shoal sync; returns the exit code (and fails on non-zero if check)."""
    p = run("-d", d, "sync", peer, "--timeout", timeout, timeout=timeout + 30, check=False)
    if check and p.returncode != 0:
        pytest.fail(f"sync {d} with {peer} exited {p.returncode}: {p.stderr.strip()}")
    return p.returncode


def write_allow(path, keys, comment="allowed peers"):
    with open(path, "w") as f:
        f.write(f"# {comment}\n\n")
        for k in keys:
            f.write(k + "\n")
    return str(path)


def curve_key(ed_hex):
    """The X25519 (CurveZMQ) public key of an Ed25519 public key, in hex:
    u = (1 + y) / (1 - y) mod 2^255 - 19.  A relay can name a peer it
    refused only by this key (the ZAP handshake shows nothing else)."""
    p = 2**255 - 19
    y = int.from_bytes(bytes.fromhex(ed_hex), "little") & ((1 << 255) - 1)
    u = (1 + y) * pow(1 - y, p - 2, p) % p
    return u.to_bytes(32, "little").hex()


def dominates(big, small):
    """True if version vector big holds every seq of small."""
    return all(big.get(a, 0) >= s for a, s in small.items())


class Proc:
    """A long-running shoal or shoal-relay process with its stdout lines in
    a queue (read by a thread) and its stderr in a log file."""

    def __init__(self, name, argv, log_path):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log,
                                  stdin=subprocess.DEVNULL)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.p.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)

    def line(self, timeout=20):
        """The next stdout line; fails on EOF or timeout."""
        try:
            v = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"{self.name}: no output line within {timeout} s; log:\n"
                        f"{self.log_tail()}")
        if v is None:
            pytest.fail(f"{self.name}: exited ({self.p.poll()}) before printing a line; "
                        f"log:\n{self.log_tail()}")
        return v

    def startup(self, nlisten):
        """Read the nlisten bound endpoints and the "id HEX" line."""
        eps = [self.line() for _ in range(nlisten)]
        for ep in eps:
            assert ep.startswith("tcp://127.0.0.1:") and not ep.endswith("*"), ep
        idl = self.line()
        assert idl.startswith("id ") and len(idl) == 3 + 64, idl
        self.endpoints = eps
        self.endpoint = eps[0] if eps else None
        self.id = idl[3:]
        return self

    def peer_spec(self):
        return f"{self.endpoint}@{self.id}"

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Signal the process and reap it; returns its exit status.  A
        process that ignores SIGTERM is killed after timeout s."""
        if self.p.poll() is None:
            try:
                self.p.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=20)
        self.reader.join(timeout=5)
        self.log.close()
        return self.p.returncode


class Net:
    """Starts relays and serve processes under tmp_path and reaps them."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.procs = []

    def dir(self, name):
        return str(self.tmp / name)

    def relay(self, name, listen=(LOOPBACK,), allow=None, allow_any=False, upstream=(),
              extra=(), dirname=None, expect=None):
        """Start shoal-relay on DIR (tmp/dirname, default tmp/name; no -d if
        dirname is False) and read its startup lines: expect endpoints
        (default: one per listen), then the id."""
        argv = [RELAY, "--log-level", "debug", "--status-interval", "1"]
        if dirname is not False:
            argv += ["-d", self.dir(dirname or name)]
        for ep in listen:
            argv += ["--listen", ep]
        if allow is not None:
            argv += ["--allow", write_allow(self.tmp / f"{name}.allow", allow)]
        if allow_any:
            argv.append("--allow-any")
        for u in upstream:
            argv += ["--upstream", u]
        argv += list(extra)
        p = Proc(name, argv, str(self.tmp / f"{name}.log"))
        self.procs.append(p)
        return p.startup(len(listen) if expect is None else expect)

    def serve(self, name, d, listen=(), peers=(), allow=None, allow_any=False, events=False):
        argv = [SHOAL, "-d", d, "serve", "--log-level", "debug"]
        for ep in listen:
            argv += ["--listen", ep]
        for pe in peers:
            argv += ["--peer", pe]
        if allow is not None:
            argv += ["--allow", write_allow(self.tmp / f"{name}.allow", allow)]
        if allow_any:
            argv.append("--allow-any")
        if events:
            argv.append("--events")
        p = Proc(name, argv, str(self.tmp / f"{name}.log"))
        self.procs.append(p)
        return p.startup(len(listen))

    def close(self):
        for p in self.procs:
            p.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def net(tmp_path, request):
    if not SHOAL or not RELAY:
        pytest.skip("SHOAL_BIN and SHOAL_RELAY_BIN must name the built tools")
    n = Net(tmp_path)
    try:
        yield n
    finally:
        n.close()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            for p in n.procs:
                print(f"----- {p.name} ({' '.join(map(str, p.argv[1:]))}) exit "
                      f"{p.p.returncode}; log tail:\n{p.log_tail()}")
