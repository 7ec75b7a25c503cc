"""A loopback TCP proxy that cuts, stalls and refuses connections.

It accepts on 127.0.0.1 (port picked by the OS) and forwards each accepted
connection to a target.  It works on TCP bytes, so it cannot reorder inside
a CurveZMQ stream; what it can do is what a bad Wi-Fi does:

- cut():      reset every open connection (SO_LINGER 0: RST, not FIN);
- stall(on):  stop moving bytes in both directions (the sockets stay open,
              so only heartbeats notice);
- refuse(on): accept and drop new connections at once.

run_schedule(seconds, rng) applies a random sequence of those, drawn from
rng (a seeded random.Random), and returns the list of what it did.  With
record=True the client-to-target bytes of every connection are kept, so a
test can replay them later over a fresh connection.
"""

import selectors
import socket
import struct
import threading
import time


class Proxy:
    def __init__(self, target_port, target_host="127.0.0.1", record=False):
        self.target = (target_host, target_port)
        self.record = record
        self.recorded = []  # one bytearray per connection (client -> target)
        self.lock = threading.Lock()
        self.conns = []  # (client, upstream) socket pairs
        self.stalled = False
        self.refusing = False
        self.closed = False
        self.accepted = 0
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.ls.settimeout(0.05)
        self.port = self.ls.getsockname()[1]
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.threads = [threading.Thread(target=self._accept_loop, daemon=True)]
        self.threads[0].start()

    # ------------------------------------------------------------ control

    def cut(self):
        with self.lock:
            conns, self.conns = self.conns, []
        for pair in conns:
            for s in pair:
                _reset(s)

    def stall(self, on):
        self.stalled = on

    def refuse(self, on):
        self.refusing = on

    def close(self):
        self.closed = True
        self.cut()
        for t in self.threads:
            t.join(timeout=5)
        self.ls.close()

    def run_schedule(self, seconds, rng):
        """Random faults for about `seconds`; ends with everything passing."""
        log = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            what = rng.choice(["pass", "pass", "cut", "stall", "refuse"])
            hold = rng.uniform(0.1, 1.2)
            log.append((what, round(hold, 2)))
            if what == "cut":
                self.cut()
                hold = rng.uniform(0.05, 0.5)
            elif what == "stall":
                self.stall(True)
            elif what == "refuse":
                self.refuse(True)
            time.sleep(hold)
            self.stall(False)
            self.refuse(False)
        return log

    # ----------------------------------------------------------- workers

    def _accept_loop(self):
        while not self.closed:
            try:
                c, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self.refusing or self.closed:
                _reset(c)
                continue
            try:
                u = socket.create_connection(self.target, timeout=2)
            except OSError:
                _reset(c)
                continue
            self.accepted += 1
            rec = None
            if self.record:
                rec = bytearray()
                self.recorded.append(rec)
            with self.lock:
                self.conns.append((c, u))
            t = threading.Thread(target=self._pump, args=(c, u, rec), daemon=True)
            self.threads.append(t)
            t.start()

    def _pump(self, c, u, rec):
        sel = selectors.DefaultSelector()
        try:
            # A cut() may have closed the pair already: every socket call
            # is inside the try.
            c.setblocking(False)
            u.setblocking(False)
            sel.register(c, selectors.EVENT_READ, u)
            sel.register(u, selectors.EVENT_READ, c)
            while not self.closed:
                if self.stalled:
                    time.sleep(0.02)
                    continue
                for key, _ in sel.select(timeout=0.05):
                    src, dst = key.fileobj, key.data
                    data = src.recv(65536)
                    if not data:
                        return
                    if rec is not None and src is c:
                        rec.extend(data)
                    _send_all(dst, data, self)
        except (OSError, ValueError):
            return
        finally:
            sel.close()
            with self.lock:
                if (c, u) in self.conns:
                    self.conns.remove((c, u))
            for s in (c, u):
                _reset(s)


def _send_all(s, data, proxy):
    view = memoryview(data)
    while view:
        if proxy.closed:
            raise OSError("proxy closed")
        try:
            n = s.send(view)
            view = view[n:]
        except BlockingIOError:
            time.sleep(0.005)


def _reset(s):
    """Close s with an RST (SO_LINGER 0), as a dropped link would."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


def replay(port, data, seconds=2.0):
    """Send recorded bytes to 127.0.0.1:port on a fresh connection, read
    whatever comes back for `seconds`, close.  Returns the bytes received."""
    got = bytearray()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError:
        return bytes(got)
    try:
        s.settimeout(0.2)
        try:
            s.sendall(bytes(data))
        except OSError:
            pass
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            got.extend(chunk)
    finally:
        s.close()
    return bytes(got)

