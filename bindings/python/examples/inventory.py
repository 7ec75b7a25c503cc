#!/usr/bin/env python3
"""A small field-inventory app: two devices count stock offline and converge.

Two scanners ("front" and "back" of a shop) each keep their own shoal
replica.  They start from the same catalogue, then lose the network: the
front desk sells, the back room receives a delivery and both fix a
product's price.  When they meet again they swap bundles (the bytes could
travel over a file, USB or a socket) and end with identical inventories:
every sale and every delivery counts (counters), the later price edit wins
(last write wins), and the stock-take notes from both devices are kept
(lists).

Run from a build:  meson devenv -C BUILD /usr/bin/python3 bindings/python/examples/inventory.py
"""
import tempfile
import time

import shoal

CATALOGUE = {
    "sku-100": {"name": "Headlamp", "price": 24.0, "stock": 12},
    "sku-200": {"name": "Rope 30 m", "price": 59.0, "stock": 5},
    "sku-300": {"name": "Carabiner", "price": 7.5, "stock": 40},
}


def show(title, replica):
    print("%s (device %s...)" % (title, replica.id[:8]))
    for sku in replica.docs("products"):
        p = replica.doc("products", sku)
        print("  %-8s %-10s %6.2f  stock %3d  notes %s" % (
            sku, p["name"], p["price"], p.counter("stock").value, p.list("notes").to_list()))


def sell(replica, sku, qty):
    """A sale: one change, stock goes down by qty."""
    replica.doc("products", sku).counter("stock").add(-qty)


def receive(replica, delivery):
    """A delivery: several products updated atomically."""
    with replica.transaction():
        for sku, qty in delivery.items():
            p = replica.doc("products", sku)
            p.counter("stock").add(qty)
            p.list("notes").append("received %d" % qty)


def swap(a, b):
    """Exchange what each side lacks; return the changes applied each way."""
    to_b = b.merge(a.export(since=b.version()))
    to_a = a.merge(b.export(since=a.version()))
    return to_b, to_a


def main():
    with tempfile.TemporaryDirectory(prefix="shoal-inventory-") as tmp:
        with shoal.Replica(tmp + "/front") as front, shoal.Replica(tmp + "/back") as back:
            # The front desk enters the catalogue; the back room syncs it.
            with front.transaction():
                for sku, item in CATALOGUE.items():
                    p = front.doc("products", sku)
                    p.update({"name": item["name"], "price": item["price"]})
                    p.counter("stock").add(item["stock"])
            swap(front, back)
            show("Both devices after the first sync", back)

            # --- offline: each device works on its own --------------------
            sell(front, "sku-100", 2)
            sell(front, "sku-300", 10)
            front.doc("products", "sku-200")["price"] = 55.0    # a sale price
            front.doc("products", "sku-300").list("notes").append("shelf 3 recounted")

            time.sleep(0.01)  # the back room works a moment later
            receive(back, {"sku-100": 6, "sku-200": 3})
            sell(back, "sku-100", 1)
            back.doc("products", "sku-200")["price"] = 61.0     # later: wins

            print()
            show("Front desk, offline", front)
            show("Back room, offline", back)

            # --- they meet again --------------------------------------------
            to_back, to_front = swap(front, back)
            print("\nSynced: %d changes to the back room, %d to the front desk"
                  % (to_back, to_front))
            remote = {e.doc_id for e in front.changes(timeout=0) if e.remote}
            print("Front desk saw remote changes to:", ", ".join(sorted(remote)))
            show("Front desk, after sync", front)
            show("Back room, after sync", back)

            assert front.digest() == back.digest(), "devices diverged"
            stock = {sku: front.doc("products", sku).counter("stock").value
                     for sku in CATALOGUE}
            assert stock == {"sku-100": 15, "sku-200": 8, "sku-300": 30}, stock
            assert front.doc("products", "sku-200")["price"] == 61.0
            print("\nConverged: both devices hold the same inventory (digest %s...)"
                  % front.digest()[:16])


if __name__ == "__main__":
    main()
