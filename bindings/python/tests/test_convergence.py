"""Randomised convergence: three replicas edit concurrently and exchange
bundles in random orders (full and delta exports, duplicates, partial
deliveries); once everyone has everything, all hold the same state."""
import tempfile

from hypothesis import given, settings, strategies as st

import shoal

DOCS = ["d0", "d1"]
FIELDS = ["f0", "f1"]
values = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
                   st.floats(allow_nan=False), st.text(max_size=8),
                   st.binary(max_size=8))
who = st.integers(0, 2)
doc = st.sampled_from(DOCS)
field = st.sampled_from(FIELDS)

edit = st.one_of(
    st.tuples(st.just("set"), who, doc, field, values),
    st.tuples(st.just("unset"), who, doc, field),
    st.tuples(st.just("add"), who, doc, field, st.integers(-5, 5)),
    st.tuples(st.just("ins"), who, doc, field, st.integers(0, 10), values),
    st.tuples(st.just("del"), who, doc, field, st.integers(0, 10)),
    st.tuples(st.just("rep"), who, doc, field, st.integers(0, 10), values),
    st.tuples(st.just("delete"), who, doc),
    st.tuples(st.just("txn"), who, doc, doc, values),
)
exchange = st.one_of(
    st.tuples(st.just("full"), who, who),    # export everything
    st.tuples(st.just("delta"), who, who),   # export since the receiver's version
    st.tuples(st.just("stale"), who, who),   # a bundle kept from earlier
)
steps = st.lists(st.one_of(edit, exchange), min_size=1, max_size=30)


def apply_edit(rs, step):
    kind, i, d = step[0], step[1], step[2]
    r = rs[i]
    doc_ = r.doc("c", d)
    try:
        if kind == "set":
            doc_[step[3]] = step[4]
        elif kind == "unset":
            doc_.unset(step[3])
        elif kind == "add":
            doc_.counter(step[3]).add(step[4])
        elif kind in ("ins", "del", "rep"):
            lst = doc_.list(step[3])
            n = len(lst)
            if kind == "ins":
                lst.insert(step[4] % (n + 1), step[5])
            elif n:
                if kind == "del":
                    del lst[step[4] % n]
                else:
                    lst[step[4] % n] = step[5]
        elif kind == "delete":
            doc_.delete()
        elif kind == "txn":
            with r.transaction():
                r.doc("c", step[2])["t"] = step[4]
                r.doc("c", step[3]).counter("tc").add(1)
    except shoal.KindError:
        pass  # the field currently shows another kind: fine


@settings(max_examples=150)
@given(steps)
def test_three_replicas_converge(plan):
    with tempfile.TemporaryDirectory(prefix="shoal-conv-") as tmp:
        rs = [shoal.Replica("%s/r%d" % (tmp, i), durable=False) for i in range(3)]
        try:
            kept = []
            for step in plan:
                if step[0] in ("full", "delta", "stale"):
                    src, dst = rs[step[1]], rs[step[2]]
                    if step[0] == "full":
                        bundle = src.export()
                        kept.append(bundle)
                    elif step[0] == "delta":
                        bundle = src.export(since=dst.version())
                    else:
                        bundle = kept[len(kept) // 2] if kept else src.export()
                    dst.merge(bundle)
                else:
                    apply_edit(rs, step)
            # deliver everything, in a fixed but arbitrary order
            for _ in range(2):
                for src in rs:
                    for dst in reversed(rs):
                        if src is not dst:
                            dst.merge(src.export(since=dst.version()))
            versions = [r.version() for r in rs]
            assert versions[0] == versions[1] == versions[2]
            assert all(r.pending_count() == 0 for r in rs)
            full = [r.digest(full=True) for r in rs]
            assert full[0] == full[1] == full[2]
            vis = [r.digest() for r in rs]
            assert vis[0] == vis[1] == vis[2]
            for d in DOCS:
                states = [(r.doc("c", d).to_dict(), r.doc("c", d).deleted) for r in rs]
                assert states[0] == states[1] == states[2]
            assert rs[0].docs("c") == rs[1].docs("c") == rs[2].docs("c")
        finally:
            for r in rs:
                r.close()
