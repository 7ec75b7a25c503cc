"""Who may link: allow-lists on the relay, refusals reported, replays harmless."""

import json
import os
import socket
import subprocess
import time

from conftest import (RELAY, SHOAL, curve_key, digest, get, init, run, seed_for, sync, version,
                      wait_until, write_allow)
from proxy import Proxy, replay


def peers_of(d):
    return json.loads(run("-d", d, "peers").stdout)


def test_device_not_on_allow_list_cannot_connect_read_or_write(net):
    seed_for("refused")
    a, m = net.dir("a"), net.dir("mallory")
    ka, km = init(a), init(m)
    rdir = net.dir("relay")
    relay = net.relay("relay", allow=[ka])
    R = relay.peer_spec()
    run("-d", a, "put", "secrets", "s1", '{"pin":"1234"}')
    sync(a, R)
    run("-d", m, "put", "secrets", "s1", '{"pin":"0000"}')
    run("-d", m, "put", "junk", "j1", '{"x":1}')
    before_full, before_vv = digest(rdir), version(rdir)
    m_before = digest(m)

    p = run("-d", m, "sync", R, "--timeout", 10, check=False, timeout=60)
    assert p.returncode == 5, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("shoal: ") and "refused" in lines[0]

    # Nothing moved either way.
    assert digest(rdir) == before_full and version(rdir) == before_vv
    assert get(rdir, "junk", "j1") is None
    assert digest(m) == m_before
    assert get(m, "secrets", "s1") == {"pin": "0000"}
    assert km not in version(rdir)

    # A live replica that keeps retrying gets nowhere either.
    net.serve("mallory-live", m, peers=[R])

    # The refusal is in the relay's log and in its persisted peer state.
    # A refused peer is known only by its CurveZMQ key.
    keys = (km, curve_key(km))

    def reported():
        log = [ln for ln in relay.log_text().splitlines() if "refused" in ln]
        if not any(k[:16] in ln for ln in log for k in keys):
            return False
        return any(pe["key"] in keys and pe["refused"] >= 1 and pe["received"] == 0
                   for pe in peers_of(rdir))
    wait_until(reported, 20, "the refusal to show in the relay's log and peers")
    assert digest(rdir) == before_full
    # The allowed device still syncs.
    run("-d", a, "incr", "secrets", "s1", "uses", 1)
    sync(a, R)
    assert get(rdir, "secrets", "s1") == {"pin": "1234", "uses": 1}


def test_replayed_batch_and_old_bundle_change_nothing(net):
    seed_for("replay")
    a, b = net.dir("a"), net.dir("b")
    ka, kb = init(a), init(b)
    rdir = net.dir("relay")
    relay = net.relay("relay", allow=[ka, kb])
    port = int(relay.endpoint.rsplit(":", 1)[1])
    rec = Proxy(port, record=True)
    try:
        for i in range(5):
            run("-d", a, "put", "items", f"i{i}", json.dumps({"n": i}))
        old_bundle = run("-d", a, "export", input=b"").stdout
        # A's sync through the recording proxy: its bytes are kept.
        sync(a, f"{rec.endpoint}@{relay.id}")
        assert get(rdir, "items", "i4") == {"n": 4}
        recorded = [bytes(r) for r in rec.recorded if r]
        assert recorded
        # Later state: a delete and an update.
        run("-d", a, "del", "items", "i0")
        run("-d", a, "put", "items", "i1", '{"n":100}')
        sync(a, relay.peer_spec())
        sync(b, relay.peer_spec())
        after = digest(rdir)
        vv = version(rdir)

        # The recorded connection replayed byte for byte: CurveZMQ's fresh
        # session keys make it useless, and nothing changes.
        for data in recorded:
            replay(port, data)
        assert digest(rdir) == after and version(rdir) == vv
        assert get(rdir, "items", "i0") == "deleted"
        # The old bundle imported again changes nothing either.
        res = run("-d", b, "import", input=old_bundle)
        counts = json.loads(res.stdout.decode())
        assert counts["applied"] == 0 and counts["duplicate"] == 5
        assert digest(b) == after
        # The relay still serves its devices after the replay.
        run("-d", a, "put", "items", "i9", '{"n":9}')
        sync(a, relay.peer_spec())
        assert get(rdir, "items", "i9") == {"n": 9}
    finally:
        rec.close()


def test_malformed_allow_list_is_refused_naming_the_line(tmp_path):
    bad = tmp_path / "allow"
    bad.write_text("# ok\n\n" + "ab" * 32 + "\nnot-a-key\n")
    p = subprocess.run([RELAY, "-d", str(tmp_path / "r"), "--listen", "tcp://127.0.0.1:*",
                        "--allow", str(bad)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "line 4" in p.stderr, p.stderr
    d = str(tmp_path / "d")
    init(d)
    p = subprocess.run([SHOAL, "-d", d, "serve", "--listen", "tcp://127.0.0.1:*",
                        "--allow", str(bad)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "line 4" in p.stderr, p.stderr
    assert p.stderr.count("\n") == 1


def test_relay_on_a_damaged_replica_exits_2_naming_it(tmp_path):
    """docs/operations.md, "A damaged replica": a relay whose data.mdb is
    damaged (both LMDB meta pages zeroed) does not start."""
    d = tmp_path / "r"
    init(str(d))
    run("-d", d, "put", "c", "x", '{"f":1}')
    with open(d / "data.mdb", "r+b") as f:
        f.write(bytes(8192))
    p = subprocess.run([RELAY, "-d", str(d), "--listen", "tcp://127.0.0.1:*", "--allow-any"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p.stderr
    assert "ERROR cannot open replica" in p.stderr and "the replica is damaged" in p.stderr


def test_relay_config_file_signals_and_peers(net, tmp_path):
    seed_for("relay-tool")
    a = net.dir("a")
    ka = init(a)
    allow = write_allow(tmp_path / "devices.allow", [ka])
    conf = tmp_path / "relay.conf"
    conf.write_text("# site relay\n"
                    f"dir = {tmp_path / 'relay'}\n"
                    "listen = tcp://127.0.0.1:*\n"
                    "listen = tcp://127.0.0.1:*\n"
                    "allow = devices.allow\n"
                    "log_level = debug\n"
                    "status_interval = 1\n")
    assert os.path.basename(allow) == "devices.allow"
    relay = net.relay("conf-relay", listen=(), extra=["--config", str(conf)],
                      dirname=False, expect=2)
    ep2 = relay.endpoints[1]
    assert ep2 != relay.endpoint
    run("-d", a, "put", "c", "d", '{"v":1}')
    sync(a, f"{ep2}@{relay.id}")
    sync(a, f"{relay.endpoint}@{relay.id}")
    rdir = str(tmp_path / "relay")
    assert get(rdir, "c", "d") == {"v": 1}
    # SIGUSR1: the peers as JSON on the log.
    relay.p.send_signal(10)  # SIGUSR1
    wait_until(lambda: ka in relay.log_text() and "peers" in relay.log_text(), 10,
               "SIGUSR1 to log the peers")
    line = next(ln for ln in relay.log_text().splitlines() if " peers [" in ln)
    peers = json.loads(line[line.index(" peers [") + 7:])
    assert any(pe["key"] == ka and pe["received"] >= 1 for pe in peers)
    wait_until(lambda: "status:" in relay.log_text(), 10, "a status line")
    # `peers` from another process reads the persisted state.
    wait_until(lambda: any(pe["key"] == ka for pe in peers_of(rdir)), 20,
               "the persisted peer state")
    # A clean stop: exit 0, logged, the replica still opens with the data.
    assert relay.stop() == 0
    assert "stopped" in relay.log_text()
    assert get(rdir, "c", "d") == {"v": 1}


def test_sync_unreachable_peer_exits_6_and_bad_spec_exits_1(tmp_path):
    d = str(tmp_path / "d")
    init(d)
    key = init(str(tmp_path / "absent"))  # a real key, of a replica not running
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    start = time.monotonic()
    p = run("-d", d, "sync", f"tcp://127.0.0.1:{port}@{key}", "--timeout", "1.5",
            check=False, timeout=60)
    took = time.monotonic() - start
    assert p.returncode == 6, (p.returncode, p.stderr)
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("shoal: sync ")
    assert 1.0 <= took < 20, took
    for spec in ("tcp://127.0.0.1:1", f"tcp://127.0.0.1:1@{'zz' * 32}", "@" + "ab" * 32):
        p = run("-d", d, "sync", spec, check=False)
        assert p.returncode == 1 and p.stderr.count("\n") == 1, (spec, p.stderr)
