"""Revoking a device at run time: the relay re-reads its allow-list file on
SIGHUP; a key taken off the file loses its live link and is refused from
then on, a key added gets in, a file that does not parse changes nothing."""

import signal

from conftest import get, init, run, seed_for, sync, wait_until, write_allow


def test_sighup_reloads_the_allow_list(net):
    seed_for("revoke")
    a, b = net.dir("a"), net.dir("b")
    ka, kb = init(a), init(b)
    relay = net.relay("relay", allow=[ka])
    R = relay.peer_spec()
    allow_file = net.tmp / "relay.allow"
    run("-d", a, "put", "notes", "n1", '{"v":1}')

    # a keeps a live link; b is not on the list yet.
    dev = net.serve("a-live", a, peers=[R])
    wait_until(lambda: f"incoming link from {ka[:16]}" in relay.log_text(), 20,
               "a's link to come up at the relay")
    assert sync(b, R, check=False) == 5

    # A broken file changes nothing (and says so).
    allow_file.write_text("# broken\nnot-a-key\n")
    relay.p.send_signal(signal.SIGHUP)
    wait_until(lambda: "allow-list not reloaded" in relay.log_text(), 20,
               "the relay to report the broken file")
    assert sync(a, R) == 0

    # a off the list, b on it.
    write_allow(allow_file, [kb], comment="a revoked")
    relay.p.send_signal(signal.SIGHUP)
    wait_until(lambda: "reloaded: 1 key(s), 1 added, 1 removed" in relay.log_text(), 20,
               "the relay to reload the file")
    # a's live link was closed and its reconnects are refused.
    wait_until(lambda: "refused by the peer" in dev.log_text(), 20,
               "the live device to be refused")
    p = run("-d", a, "sync", R, "--timeout", 5, check=False, timeout=60)
    assert p.returncode == 5 and "refused" in p.stderr, (p.returncode, p.stderr)
    assert f"{ka[:16]}" in relay.log_text() and "disallowed" in relay.log_text()
    # b gets in now and receives what the relay holds.
    assert sync(b, R) == 0
    assert get(b, "notes", "n1") == {"v": 1}
    assert relay.alive() and dev.alive()
