"""Shared fixtures of the shoal Python tests.

Run through meson (`meson test -C BUILD --suite python`), which puts the
build directory's `shoal` package on PYTHONPATH.
"""
import os

import pytest
from hypothesis import HealthCheck, settings

import shoal

# One fixed, reproducible hypothesis profile: no randomness between runs, no
# deadline (commits fsync), no example database written anywhere.
settings.register_profile(
    "shoal",
    derandomize=True,
    deadline=None,
    max_examples=int(os.environ.get("SHOAL_HYPOTHESIS_EXAMPLES", "40")),
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("shoal")


class Clock:
    """A settable wall clock (milliseconds) for Replica(clock=...)."""

    def __init__(self, now_ms=1_700_000_000_000):
        self.now = now_ms

    def __call__(self):
        return self.now

    def advance(self, ms=1):
        self.now += ms


@pytest.fixture
def make_replica(tmp_path):
    """Factory: make_replica(name="r", **options) -> open Replica under
    tmp_path (non-durable unless durable=True is passed); all are closed at
    teardown."""
    opened = []

    def make(name="r", **kw):
        kw.setdefault("durable", False)
        r = shoal.Replica(tmp_path / name, **kw)
        opened.append(r)
        return r

    yield make
    for r in opened:
        r.close()


@pytest.fixture
def replica(make_replica):
    """One open, non-durable replica."""
    return make_replica("main")


@pytest.fixture
def clock():
    return Clock()


def sync(a, b):
    """Bring b up to date with a (a -> b) through a bundle; return applied."""
    return b.merge(a.export(since=b.version()))


def sync_all(*rs):
    """Exchange bundles until every replica holds every change."""
    for _ in range(2):
        for a in rs:
            for b in rs:
                if a is not b:
                    sync(a, b)


def drain(r):
    """Discard queued change events; return how many there were."""
    n = 0
    while r.next_change(0) is not None:
        n += 1
    return n
