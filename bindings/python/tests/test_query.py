"""Queries through the binding: Replica.find, count and aggregate, indexes,
and live queries (Replica.watch) read blocking, with a timeout, through
the file descriptor and with asyncio, fed by this replica and by another
process writing to the same directory.

Every wait is bounded; every child process is reaped."""
import asyncio
import gc
import json
import select
import subprocess
import sys
import threading
import time

import pytest

import shoal

# The small data set every test starts from (collection "products").
# p7 is deleted after it is written; "other" holds a document that would
# match the seed query, to show that queries stay in their collection.
PRODUCTS = {
    "p1": {"category": "jeans", "size": 8, "price": 35, "name": "Slim", "sale": True},
    "p2": {"category": "jeans", "size": 8, "price": 45, "name": "Loose", "sale": False},
    "p3": {"category": "jeans", "size": 10, "price": 30, "name": "Wide"},
    "p4": {"category": "shirts", "size": 8, "price": 20, "name": "Oxford", "code": b"\x01\x02"},
    "p5": {"category": "jeans", "size": 8, "price": 39.5, "name": "Boot"},
    "p6": {"category": "jeans", "size": 8, "price": 25, "name": "Skinny"},
    "p7": {"category": "jeans", "size": 8, "price": 10, "name": "Gone"},
    "p8": {"category": "shirts", "size": 12, "price": 60, "name": "Flannel"},
    "p9": {"size": 8, "price": 5, "name": "Mystery"},
}
STOCK = {"p1": 5, "p2": 2, "p3": 7, "p4": 4, "p5": 3, "p8": 0}
TAGS = {"p1": ["blue", "slim"], "p8": ["red"]}
SEED = 'category == "jeans" AND size == 8 AND price < 40'
WAIT = 10.0  # seconds: the bound of every wait for an event that must come


def expected(doc_id):
    """The row find() gives for a product of the data set."""
    row = dict(PRODUCTS[doc_id])
    if doc_id in STOCK:
        row["stock"] = STOCK[doc_id]
    if doc_id in TAGS:
        row["tags"] = list(TAGS[doc_id])
    row["_id"] = doc_id
    return row


def ids(rows):
    return [row["_id"] for row in rows]


def fill(r):
    with r.transaction():
        for doc_id, fields in PRODUCTS.items():
            d = r.doc("products", doc_id)
            d.update(fields)
            if doc_id in STOCK:
                d.counter("stock").add(STOCK[doc_id])
            if doc_id in TAGS:
                d.list("tags").extend(TAGS[doc_id])
        r.doc("other", "x1").update({"category": "jeans", "size": 8, "price": 1})
    r.doc("products", "p7").delete()


@pytest.fixture
def shop(make_replica):
    r = make_replica("shop")
    fill(r)
    return r


# ------------------------------------------------------------------ find

def test_find_seed_query(shop):
    assert shop.find("products", SEED) == [expected("p1"), expected("p5"), expected("p6")]


def test_find_everything_by_id(shop):
    rows = shop.find("products")
    assert rows == [expected(i) for i in ("p1", "p2", "p3", "p4", "p5", "p6", "p8", "p9")]
    assert shop.find("products", "") == rows
    assert shop.find("products", "TRUE") == rows


def test_find_values_are_plain_python(shop):
    (row,) = shop.find("products", 'name == "Slim"')
    assert type(row["stock"]) is int and type(row["tags"]) is list
    assert row == shop.doc("products", "p1").to_dict() | {"_id": "p1"}
    (row,) = shop.find("products", 'name == "Oxford"')
    assert row["code"] == b"\x01\x02"


@pytest.mark.parametrize("where, want", [
    ('tags CONTAINS "red"', ["p8"]),
    ("category EXISTS", ["p1", "p2", "p3", "p4", "p5", "p6", "p8"]),
    ('category IN ("shirts", "hats")', ["p4", "p8"]),
    ('NOT category == "jeans"', ["p4", "p8", "p9"]),
    ("price >= 39.5", ["p2", "p5", "p8"]),
    ("size == 8 OR price > 50", ["p1", "p2", "p4", "p5", "p6", "p8", "p9"]),
    ("(size == 10 OR size == 12) AND stock > 0", ["p3"]),
    ("stock == 0", ["p8"]),
    ("sale == true", ["p1"]),
    ("FALSE", []),
])
def test_find_where(shop, where, want):
    assert ids(shop.find("products", where)) == want


def test_find_unknown_collection_is_empty(shop):
    assert shop.find("nothing") == []
    assert shop.find("nothing", SEED) == []


def test_find_sort(shop):
    assert ids(shop.find("products", SEED, sort=[("price", "desc")])) == ["p5", "p1", "p6"]
    assert ids(shop.find("products", SEED, sort=("price", "desc"))) == ["p5", "p1", "p6"]
    assert ids(shop.find("products", SEED, sort="price")) == ["p6", "p1", "p5"]
    assert ids(shop.find("products", SEED, sort=[("price", "ASC")])) == ["p6", "p1", "p5"]
    assert ids(shop.find("products", sort="name")) == [
        "p5", "p8", "p2", "p9", "p4", "p6", "p1", "p3"]
    # Absent first, ties by id.
    assert ids(shop.find("products", sort="category")) == [
        "p9", "p1", "p2", "p3", "p5", "p6", "p4", "p8"]
    # Counters sort as numbers.
    assert ids(shop.find("products", sort=["stock"])) == [
        "p6", "p9", "p8", "p2", "p5", "p4", "p1", "p3"]
    assert ids(shop.find("products", sort=[("size", "desc"), "price"])) == [
        "p8", "p3", "p9", "p4", "p6", "p1", "p5", "p2"]
    assert ids(shop.find("products", sort=[("_id", "desc")])) == [
        "p9", "p8", "p6", "p5", "p4", "p3", "p2", "p1"]


def test_find_limit_offset(shop):
    order = [("size", "desc"), "price"]
    assert ids(shop.find("products", sort=order, limit=2, offset=1)) == ["p3", "p9"]
    assert ids(shop.find("products", sort=order, limit=3)) == ["p8", "p3", "p9"]
    assert ids(shop.find("products", sort=order, offset=6)) == ["p5", "p2"]
    assert ids(shop.find("products", sort=order, offset=8)) == []
    assert ids(shop.find("products", sort=order, limit=100, offset=7)) == ["p2"]
    assert shop.find("products", limit=0) == []


def test_find_fields(shop):
    assert shop.find("products", SEED, fields=["name", "stock"]) == [
        {"name": "Slim", "stock": 5, "_id": "p1"},
        {"name": "Boot", "stock": 3, "_id": "p5"},
        {"name": "Skinny", "_id": "p6"}]
    assert shop.find("products", SEED, fields="price", sort="price") == [
        {"price": 25, "_id": "p6"}, {"price": 35, "_id": "p1"}, {"price": 39.5, "_id": "p5"}]
    assert shop.find("products", SEED, fields=[]) == [{"_id": "p1"}, {"_id": "p5"}, {"_id": "p6"}]
    assert shop.find("products", SEED, fields=["_id"]) == [{"_id": "p1"}, {"_id": "p5"}, {"_id": "p6"}]
    assert shop.find("products", 'name == "Slim"', fields=["tags", "nope"]) == [
        {"tags": ["blue", "slim"], "_id": "p1"}]


def test_find_sees_later_writes(shop):
    shop.doc("products", "p2")["price"] = 30
    shop.doc("products", "p1").delete()
    shop.doc("products", "p7")["name"] = "Back"  # re-created, but not all fields
    assert ids(shop.find("products", SEED)) == ["p2", "p5", "p6"]


@pytest.mark.parametrize("kw, exc", [
    ({"sort": ("price", "up")}, ValueError),
    ({"sort": ("price", "desc", "x")}, ValueError),
    ({"sort": 5}, TypeError),
    ({"sort": [5]}, TypeError),
    ({"sort": b"price"}, TypeError),
    ({"limit": -1}, ValueError),
    ({"limit": True}, TypeError),
    ({"limit": 1.5}, TypeError),
    ({"offset": -1}, ValueError),
    ({"fields": 3}, TypeError),
    ({"fields": [b"name"]}, TypeError),
    ({"where": 3}, TypeError),
    ({"params": [1, 2]}, TypeError),
])
def test_find_argument_errors(shop, kw, exc):
    kw.setdefault("where", SEED)
    with pytest.raises(exc):
        shop.find("products", **kw)


def test_find_bad_names(shop):
    with pytest.raises(shoal.InvalidArgumentError):
        shop.find("", SEED)
    with pytest.raises(TypeError):
        shop.find(None, SEED)
    with pytest.raises(shoal.InvalidArgumentError):
        shop.find("products", SEED, sort="")


# ------------------------------------------------------------ parameters

@pytest.mark.parametrize("where, params, want", [
    ("category == :c", {"c": "shirts"}, ["p4", "p8"]),
    ("category == :c", {":c": "shirts"}, ["p4", "p8"]),
    ("size == :s", {"s": 10}, ["p3"]),
    ("price < :p", {"p": 30.0}, ["p4", "p6", "p9"]),
    ("price < :p", {"p": 30}, ["p4", "p6", "p9"]),
    ("sale == :b", {"b": True}, ["p1"]),
    ("sale == :b", {"b": False}, ["p2"]),
    ("category == :n", {"n": None}, ["p9"]),
    ("code == :x", {"x": b"\x01\x02"}, ["p4"]),
    ("code == :x", {"x": bytearray(b"\x01\x02")}, ["p4"]),
    ('category == :c AND size == :s AND price < :p',
     {"c": "jeans", "s": 8, "p": 40}, ["p1", "p5", "p6"]),
    ("category IN (:a, :b)", {"a": "shirts", "b": "hats"}, ["p4", "p8"]),
    ('name == :n', {"n": 'Slim" OR TRUE'}, []),  # a value, never text
])
def test_params(shop, where, params, want):
    assert ids(shop.find("products", where, params)) == want
    assert shop.count("products", where, params) == len(want)


@pytest.mark.parametrize("value", [[1], {"a": 1}, (1,), object(), 1j, {1}])
def test_param_wrong_type(shop, value):
    with pytest.raises(TypeError, match=":c"):
        shop.find("products", "category == :c", {"c": value})
    with pytest.raises(TypeError, match=":c"):
        shop.count("products", "category == :c", {"c": value})
    with pytest.raises(TypeError, match=":c"):
        shop.watch("products", "category == :c", {"c": value})


def test_param_errors(shop):
    with pytest.raises(OverflowError, match=":s"):
        shop.find("products", "size == :s", {"s": 1 << 63})
    with pytest.raises(TypeError):
        shop.find("products", "size == :s", {1: 2})
    with pytest.raises(shoal.NotFound, match=":nope"):
        shop.find("products", "size == :s", {"s": 8, "nope": 1})
    with pytest.raises(shoal.InvalidArgumentError, match=":s"):
        shop.find("products", "size == :s")  # not bound
    with pytest.raises(shoal.InvalidArgumentError):
        shop.count("products", "size == :s", {})


# ------------------------------------------------------------ query errors

@pytest.mark.parametrize("where", [
    "price <", 'category == "jeans" AND', "size == 8 8", "(size == 8", "==",
    'category == "unterminated',
])
def test_syntax_error(shop, where):
    with pytest.raises(shoal.InvalidArgumentError) as info:
        shop.find("products", where)
    assert "position" in str(info.value)
    assert info.value.code == shoal.ErrorCode.INVAL
    with pytest.raises(shoal.InvalidArgumentError, match="position"):
        shop.count("products", where)
    with pytest.raises(shoal.InvalidArgumentError, match="position"):
        shop.aggregate("products", where)
    with pytest.raises(shoal.InvalidArgumentError, match="position"):
        shop.watch("products", where)


def test_syntax_error_position(shop):
    with pytest.raises(shoal.InvalidArgumentError, match=r"position \d+: "):
        shop.find("products", "size == 8 AND ")
    with pytest.raises(shoal.InvalidArgumentError, match=r"position \d+: "):
        shop.find("products", "size == 8 AND :")


def test_query_too_big(shop):
    where = " OR ".join("size == %d" % i for i in range(65))
    with pytest.raises(shoal.TooBigError):
        shop.find("products", where)


# ------------------------------------------------------------------ count

def test_count(shop):
    assert shop.count("products", SEED) == 3
    assert shop.count("products") == 8
    assert shop.count("products", "FALSE") == 0
    assert shop.count("other", SEED) == 1
    assert shop.count("nothing") == 0
    shop.doc("products", "p5").delete()
    assert shop.count("products", SEED) == 2


# -------------------------------------------------------------- aggregate

def test_aggregate_ungrouped(shop):
    assert shop.aggregate("products", SEED) == [{"count": 3}]
    assert shop.aggregate("products", SEED, aggs=[
        "count", "sum:stock", "min:price", "max:price", "avg:size", "sum:price",
        "min:name", "max:name"]) == [{
            "count": 3, "sum:stock": 8, "min:price": 25, "max:price": 39.5,
            "avg:size": 8.0, "sum:price": 99.5, "min:name": "Boot", "max:name": "Slim"}]
    (row,) = shop.aggregate("products", SEED, aggs="sum:stock")
    assert row == {"sum:stock": 8} and type(row["sum:stock"]) is int


def test_aggregate_over_nothing(shop):
    assert shop.aggregate("products", "price > 1000",
                          aggs=["count", "sum:stock", "min:price", "avg:price"]) == [
        {"count": 0, "sum:stock": None, "min:price": None, "avg:price": None}]
    assert shop.aggregate("nothing") == [{"count": 0}]
    assert shop.aggregate("products", "price > 1000", group="category") == []


def test_aggregate_grouped(shop):
    rows = shop.aggregate("products", group="category",
                          aggs=["count", "sum:stock", "min:price", "max:price",
                                "avg:size", "sum:price"])
    assert rows == [
        {"category": None, "count": 1, "sum:stock": None, "min:price": 5,
         "max:price": 5, "avg:size": 8.0, "sum:price": 5},
        {"category": "jeans", "count": 5, "sum:stock": 17, "min:price": 25,
         "max:price": 45, "avg:size": pytest.approx(8.4), "sum:price": 174.5},
        {"category": "shirts", "count": 2, "sum:stock": 4, "min:price": 20,
         "max:price": 60, "avg:size": 10.0, "sum:price": 80},
    ]


def test_aggregate_two_groups_with_where(shop):
    assert shop.aggregate("products", "price < :p", {"p": 50},
                          group=["category", "size"], aggs=["count", "max:price"]) == [
        {"category": None, "size": 8, "count": 1, "max:price": 5},
        {"category": "jeans", "size": 8, "count": 4, "max:price": 45},
        {"category": "jeans", "size": 10, "count": 1, "max:price": 30},
        {"category": "shirts", "size": 8, "count": 1, "max:price": 20},
    ]


def test_aggregate_group_only(shop):
    assert shop.aggregate("products", group="size", aggs=[]) == [
        {"size": 8}, {"size": 10}, {"size": 12}]


@pytest.mark.parametrize("aggs", [["sum"], ["sum:"], ["median:price"], ["count:price"],
                                  ["avg"]])
def test_aggregate_bad_spec(shop, aggs):
    with pytest.raises(ValueError):
        shop.aggregate("products", aggs=aggs)


def test_aggregate_bad_types(shop):
    with pytest.raises(TypeError):
        shop.aggregate("products", aggs=[1])
    with pytest.raises(TypeError):
        shop.aggregate("products", group=[1])
    with pytest.raises(TypeError):
        shop.aggregate("products", aggs=5)


# ---------------------------------------------------------------- indexes

QUERIES = [
    (SEED, None, None),
    ("category == :c", {"c": "shirts"}, "price"),
    ('category IN ("jeans", "shirts") AND price >= 30', None, [("price", "desc")]),
    ("price > 20 AND price <= 45", None, "price"),
    ("price < 39.5", None, None),
    ('tags CONTAINS "slim"', None, None),
    ('tags CONTAINS "red" OR size == 10', None, None),
    ("category == null", None, None),
    ('NOT category == "jeans"', None, None),
    ('name >= "P" AND name < "T"', None, "name"),
]


def all_results(r):
    res = []
    for where, params, sort in QUERIES:
        res.append(r.find("products", where, params, sort=sort))
        res.append(r.count("products", where, params))
        res.append(r.aggregate("products", where, params, group="category",
                               aggs=["count", "sum:stock", "max:price"]))
    return res


def test_index_management(shop):
    assert shop.indexes() == []
    assert shop.indexes("products") == []
    shop.create_index("products", "price")
    shop.create_index("products", "category")
    shop.create_index("products", "category")  # exists: a no-op
    shop.create_index("other", "size")
    assert shop.indexes("products") == ["category", "price"]
    assert shop.indexes() == ["other", "products"]
    shop.drop_index("products", "price")
    assert shop.indexes("products") == ["category"]
    with pytest.raises(shoal.NotFound):
        shop.drop_index("products", "price")
    with pytest.raises(shoal.InvalidArgumentError):
        shop.create_index("products", "_id")
    with pytest.raises(shoal.InvalidArgumentError):
        shop.create_index("products", "")
    with pytest.raises(TypeError):
        shop.indexes(3)


def test_indexes_persist(make_replica, tmp_path):
    r = make_replica("idx")
    fill(r)
    r.create_index("products", "price")
    r.close()
    r = make_replica("idx")
    assert r.indexes("products") == ["price"]


def test_same_results_with_and_without_indexes(shop):
    before = all_results(shop)
    for field in ("category", "price", "tags", "name", "size"):
        shop.create_index("products", field)
    assert all_results(shop) == before
    # Changes after the indexes were built keep them up to date.
    shop.doc("products", "p6")["price"] = 50
    shop.doc("products", "p3").delete()
    shop.doc("products", "p8").list("tags").append("slim")
    shop.doc("products", "p10").update({"category": "jeans", "size": 8, "price": 1})
    with_indexes = all_results(shop)
    for field in ("category", "price", "tags", "name", "size"):
        shop.drop_index("products", field)
    assert all_results(shop) == with_indexes
    assert ids(shop.find("products", SEED)) == ["p1", "p10", "p5"]


# ----------------------------------------------------------- live queries

def take(lq, n, timeout=WAIT):
    """The next n events of lq, each within timeout seconds."""
    out = []
    for _ in range(n):
        ev = lq.next(timeout)
        assert ev is not None, "no event within %ss after %r" % (timeout, out)
        out.append(ev)
    return out


def initial(*doc_ids):
    return [shoal.LiveEvent("enter", i, expected(i)) for i in doc_ids] + [
        shoal.LiveEvent("ready", "", None)]


def test_watch_initial_result(shop):
    with shop.watch("products", SEED) as lq:
        assert take(lq, 4) == initial("p1", "p5", "p6")
        assert lq.next(0) is None
        assert lq.next(0.2) is None


def test_watch_params_and_empty_result(shop):
    with shop.watch("products", "category == :c", {"c": "hats"}) as lq:
        assert take(lq, 1) == [("ready", "", None)]
    with pytest.raises(shoal.InvalidArgumentError, match=":s"):
        shop.watch("products", "size == :s")  # not bound


def test_watch_events_from_this_replica(shop):
    with shop.watch("products", SEED) as lq:
        take(lq, 4)
        shop.doc("products", "p2")["price"] = 30              # enters
        shop.doc("products", "p1")["name"] = "Slim Fit"       # changes inside
        shop.doc("products", "p5")["price"] = 50              # leaves
        shop.doc("products", "p6").delete()                   # leaves
        shop.doc("products", "p4")["price"] = 21              # not in the result
        shop.doc("products", "p1").counter("stock").add(1)    # changes inside
        with shop.transaction():                              # a new document
            shop.doc("products", "p10").update({"category": "jeans", "size": 8,
                                                "price": 1})
        # Unread events of one document fold: p1's two updates are one,
        # in the place of the first, with the newest document.
        evs = take(lq, 5)
        assert [(e.kind, e.id) for e in evs] == [
            ("enter", "p2"), ("update", "p1"), ("leave", "p5"), ("leave", "p6"),
            ("enter", "p10")]
        assert evs[0].doc == dict(expected("p2"), price=30)
        assert evs[1].doc == dict(expected("p1"), name="Slim Fit", stock=6)
        assert evs[2].doc is None and evs[3].doc is None
        assert evs[4].doc == {"category": "jeans", "size": 8, "price": 1, "_id": "p10"}
        assert lq.next(0.3) is None
        # Read between changes, each change is an event of its own.
        shop.doc("products", "p1")["name"] = "Slimmer"
        assert [(e.kind, e.id) for e in take(lq, 1)] == [("update", "p1")]
        shop.doc("products", "p1").counter("stock").add(1)
        assert [(e.kind, e.id) for e in take(lq, 1)] == [("update", "p1")]


def test_watch_events_from_a_merge(shop, make_replica):
    other = make_replica("other")
    with shop.watch("products", SEED) as lq:
        take(lq, 4)
        other.doc("products", "p20").update({"category": "jeans", "size": 8, "price": 9})
        assert shop.merge(other.export()) == 1
        assert take(lq, 1) == [("enter", "p20", {"category": "jeans", "size": 8,
                                                 "price": 9, "_id": "p20"})]
        shop.doc("products", "p20")["price"] = 9  # the same value: no event
        assert lq.next(0.3) is None


def test_watch_ignores_other_collections_and_non_matches(shop):
    with shop.watch("products", SEED) as lq:
        take(lq, 4)
        shop.doc("other", "x2").update({"category": "jeans", "size": 8, "price": 1})
        shop.doc("products", "p3")["price"] = 31
        assert lq.next(0.3) is None


def test_watch_every_document(shop):
    with shop.watch("products") as lq:
        evs = take(lq, 9)
        assert [(e.kind, e.id) for e in evs] == [
            ("enter", i) for i in ("p1", "p2", "p3", "p4", "p5", "p6", "p8", "p9")] + [
            ("ready", "")]
        shop.doc("products", "p7")["name"] = "Back"
        assert take(lq, 1) == [("enter", "p7", {"name": "Back", "_id": "p7"})]


def test_watch_wait_releases_the_gil(shop):
    """A blocking next() lets another thread write meanwhile."""
    with shop.watch("products", SEED) as lq:
        take(lq, 4)
        t = threading.Timer(0.2, lambda: shop.doc("products", "p2").update(
            {"price": 12}))
        t.start()
        try:
            start = time.monotonic()
            ev = lq.next(WAIT)
            assert (ev.kind, ev.id) == ("enter", "p2")
            assert time.monotonic() - start < WAIT
        finally:
            t.join(WAIT)
            assert not t.is_alive()


def test_watch_iterate(shop):
    got = []
    with shop.watch("products", SEED) as lq:
        for ev in lq:
            got.append((ev.kind, ev.id))
            if ev.kind == "ready":
                shop.doc("products", "p1")["price"] = 99
            if ev.kind == "leave":
                break
    assert got == [("enter", "p1"), ("enter", "p5"), ("enter", "p6"), ("ready", ""),
                   ("leave", "p1")]


def test_watch_fileno(shop):
    with shop.watch("products", SEED) as lq:
        take(lq, 4)
        fd = lq.fileno()
        assert isinstance(fd, int) and fd >= 0
        shop.doc("products", "p2")["price"] = 30
        deadline = time.monotonic() + WAIT
        ev = None
        while ev is None:
            left = deadline - time.monotonic()
            assert left > 0, "no event through the fd"
            readable, _, _ = select.select([fd], [], [], left)
            if readable:
                ev = lq.next(0)
        assert (ev.kind, ev.id) == ("enter", "p2")


# A writer in another process: opens the directory given as argv[1] and
# runs one JSON command per stdin line, answering "OK" to each.
WRITER = r"""
import json, sys
import shoal
with shoal.Replica(sys.argv[1]) as r:
    print("OPEN", flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd[0] == "update":
            r.doc(cmd[1], cmd[2]).update(cmd[3])
        elif cmd[0] == "delete":
            r.doc(cmd[1], cmd[2]).delete()
        print("OK", flush=True)
"""


class Writer:
    """The WRITER script in a child process; always reaped by close()."""

    def __init__(self, path):
        self.proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        try:
            assert self.readline() == "OPEN"
        except BaseException:
            self.close()
            raise

    def readline(self):
        ready, _, _ = select.select([self.proc.stdout], [], [], WAIT)
        assert ready, "the writer process did not answer within %ss" % WAIT
        return self.proc.stdout.readline().strip()

    def run(self, *cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        assert self.readline() == "OK"

    def close(self):
        try:
            self.proc.stdin.close()
            assert self.proc.wait(WAIT) == 0, "the writer process failed"
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()


def test_watch_events_from_another_process(shop):
    with shop.watch("products", SEED) as lq:
        take(lq, 4)
        w = Writer(shop.path)
        try:
            w.run("update", "products", "p11", {"category": "jeans", "size": 8, "price": 12})
            assert take(lq, 1) == [("enter", "p11", {"category": "jeans", "size": 8,
                                                     "price": 12, "_id": "p11"})]
            w.run("update", "products", "p11", {"price": 13})
            assert take(lq, 1) == [("update", "p11", {"category": "jeans", "size": 8,
                                                      "price": 13, "_id": "p11"})]
            w.run("update", "products", "p11", {"price": 99})
            assert take(lq, 1) == [("leave", "p11", None)]
            w.run("delete", "products", "p1")
            assert take(lq, 1) == [("leave", "p1", None)]
            w.run("update", "products", "p4", {"price": 1})  # no match
            assert lq.next(0.3) is None
        finally:
            w.close()
    # The other process's writes are the replica's own.
    assert ids(shop.find("products", SEED)) == ["p5", "p6"]


# ----------------------------------------------------------- asyncio

def test_watch_async(shop):
    async def main():
        got = []
        with shop.watch("products", SEED) as lq:
            it = lq.__aiter__()
            for _ in range(4):
                got.append(await asyncio.wait_for(it.__anext__(), WAIT))
            assert got == initial("p1", "p5", "p6")
            # Nothing yet: the wait times out and leaves no reader behind.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(it.__anext__(), 0.2)
            shop.doc("products", "p2")["price"] = 30
            ev = await asyncio.wait_for(it.__anext__(), WAIT)
            assert ev == ("enter", "p2", dict(expected("p2"), price=30))
            asyncio.get_running_loop().call_later(
                0.05, lambda: shop.doc("products", "p5").delete())
            ev = await asyncio.wait_for(it.__anext__(), WAIT)
            assert ev == ("leave", "p5", None)
    asyncio.run(asyncio.wait_for(main(), 3 * WAIT))


def test_watch_async_for(shop):
    async def collect(lq):
        seen = []
        async for ev in lq:
            seen.append((ev.kind, ev.id))
            if ev.kind == "ready":
                shop.doc("products", "p6")["price"] = 26
            elif ev.kind == "update":
                return seen

    async def main():
        async with shop.watch("products", SEED) as lq:
            return await asyncio.wait_for(collect(lq), WAIT)
    assert asyncio.run(main()) == [("enter", "p1"), ("enter", "p5"), ("enter", "p6"),
                                   ("ready", ""), ("update", "p6")]


def test_watch_async_other_process(shop):
    async def main():
        with shop.watch("products", SEED) as lq:
            it = lq.__aiter__()
            for _ in range(4):
                await asyncio.wait_for(it.__anext__(), WAIT)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c",
                "import shoal, sys\n"
                "with shoal.Replica(sys.argv[1]) as r:\n"
                "    r.doc('products', 'p12').update({'category': 'jeans', 'size': 8,"
                " 'price': 3})\n"
                "    r.doc('products', 'p1').delete()\n",
                shop.path)
            try:
                assert await asyncio.wait_for(proc.wait(), WAIT) == 0
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            evs = [await asyncio.wait_for(it.__anext__(), WAIT) for _ in range(2)]
            assert evs == [("enter", "p12", {"category": "jeans", "size": 8, "price": 3,
                                             "_id": "p12"}),
                           ("leave", "p1", None)]
    asyncio.run(main())


def test_watch_async_close_ends_iteration(shop):
    async def main():
        lq = shop.watch("products", SEED)
        seen = []
        asyncio.get_running_loop().call_later(0.3, lq.close)
        async for ev in lq:
            seen.append(ev.kind)
        assert lq.closed
        return seen
    assert asyncio.run(asyncio.wait_for(main(), WAIT)) == ["enter", "enter", "enter",
                                                           "ready"]


@pytest.mark.parametrize("closer", ["live", "replica"])
def test_close_from_another_thread_ends_async_for(make_replica, closer):
    """close() from a thread other than the loop's hands the reader's
    removal to the loop, and the async for ends."""
    r = make_replica("at-" + closer)
    fill(r)

    async def main():
        lq = r.watch("products", SEED)
        seen = []
        timer = None
        try:
            async for ev in lq:
                seen.append(ev.kind)
                if ev.kind == "ready":
                    timer = threading.Timer(0.2, lq.close if closer == "live" else r.close)
                    timer.start()
        finally:
            if timer is not None:
                timer.join(WAIT)
        return seen, lq.closed
    seen, closed = asyncio.run(asyncio.wait_for(main(), WAIT))
    assert seen == ["enter", "enter", "enter", "ready"] and closed
    assert r.closed == (closer == "replica")


def test_watch_async_one_waiter(shop):
    async def main():
        with shop.watch("products", "FALSE") as lq:
            assert (await asyncio.wait_for(lq.__anext__(), WAIT)).kind == "ready"
            first = asyncio.ensure_future(lq.__anext__())
            await asyncio.sleep(0.05)
            with pytest.raises(shoal.BusyError):
                await lq.__anext__()
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            # The cancelled waiter left nothing behind.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(lq.__anext__(), 0.1)
    asyncio.run(main())


# ------------------------------------------------------------ closing

def test_live_close(shop):
    lq = shop.watch("products", SEED)
    assert not lq.closed and "open" in repr(lq)
    lq.close()
    lq.close()  # idempotent
    assert lq.closed and "closed" in repr(lq)
    for use in (lambda: lq.next(0), lambda: iter(lq), lambda: next(lq), lq.fileno,
                lambda: lq.__enter__(), lambda: lq.__aiter__()):
        with pytest.raises(shoal.ClosedError):
            use()
    with pytest.raises(shoal.ClosedError):
        asyncio.run(lq.__anext__())
    assert shop.count("products", SEED) == 3  # the replica is fine


def test_context_manager_closes(shop):
    with shop.watch("products", SEED) as lq:
        pass
    assert lq.closed


def test_replica_close_closes_live_queries(make_replica):
    r = make_replica("rc")
    fill(r)
    a = r.watch("products", SEED)
    b = r.watch("products")
    take(a, 1)
    a.close()
    r.close()
    assert a.closed and b.closed
    with pytest.raises(shoal.ClosedError):
        b.next(0)
    with pytest.raises(shoal.ClosedError):
        r.watch("products", SEED)
    with pytest.raises(shoal.ClosedError):
        r.find("products")
    with pytest.raises(shoal.ClosedError):
        r.count("products")
    with pytest.raises(shoal.ClosedError):
        r.aggregate("products")
    with pytest.raises(shoal.ClosedError):
        r.create_index("products", "price")
    with pytest.raises(shoal.ClosedError):
        r.indexes()
    b.close()  # still idempotent


def test_close_from_another_thread_ends_iteration(shop):
    lq = shop.watch("products", SEED)
    seen = []
    ready = threading.Event()

    def consume():
        for ev in lq:
            seen.append(ev.kind)
            if ev.kind == "ready":
                ready.set()
    t = threading.Thread(target=consume)
    t.start()
    try:
        assert ready.wait(WAIT)
        time.sleep(0.1)  # let it block in the wait
        lq.close()
    finally:
        t.join(WAIT)
    assert not t.is_alive()
    assert seen == ["enter", "enter", "enter", "ready"]


def test_replica_close_from_another_thread_ends_iteration(make_replica):
    r = make_replica("rt")
    fill(r)
    lq = r.watch("products", SEED)
    seen = []
    ready = threading.Event()

    def consume():
        for ev in lq:
            seen.append(ev.kind)
            if ev.kind == "ready":
                ready.set()
    t = threading.Thread(target=consume)
    t.start()
    try:
        assert ready.wait(WAIT)
        time.sleep(0.1)
        r.close()
    finally:
        t.join(WAIT)
    assert not t.is_alive()
    assert lq.closed and seen[-1] == "ready"


def test_replica_close_with_an_async_waiter(make_replica):
    r = make_replica("ra")
    fill(r)

    async def main():
        lq = r.watch("products", SEED)
        asyncio.get_running_loop().call_later(0.2, r.close)
        return [ev.kind async for ev in lq]
    assert asyncio.run(asyncio.wait_for(main(), WAIT)) == ["enter"] * 3 + ["ready"]


def test_unclosed_live_query_is_collected(make_replica):
    r = make_replica("gc")
    fill(r)
    lq = r.watch("products", SEED)
    take(lq, 2)
    del lq
    gc.collect()
    assert r.count("products", SEED) == 3
    lq = r.watch("products", SEED)
    r.close()  # closes lq first
    del lq
    gc.collect()
