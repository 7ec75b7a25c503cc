"""shoal: offline-first documents that merge by themselves.

A Pythonic binding of libshoal, a peer-to-peer CRDT replication library::

    import shoal

    with shoal.Replica("data/device-a") as r:
        d = r.doc("orders", "o-1")
        d["status"] = "open"
        d.counter("stock").add(5)
        bundle = r.export()          # bytes for another replica's merge()

Replicas also sync live over the network (encrypted, authenticated
links)::

    r.listen("tcp://127.0.0.1:*", allow=[other_id])   # -> the bound endpoint
    r.sync("tcp://127.0.0.1:7001", other_id, timeout=5.0)
    r.connect("tcp://127.0.0.1:7001", other_id)         # live push, both ways

A replica that subscribes holds only the documents its subscriptions
match (partial sync)::

    r.subscribe("mine", "products", "store_id == :s", params={"s": 3})
    r.sync("tcp://127.0.0.1:7001", other_id)    # then every one is complete
    r.subscriptions()    # [{"name": "mine", ..., "state": "complete", ...}]

Queries, aggregates, indexes and live queries::

    r.find("products", 'category == "jeans" AND price < :max',
           params={"max": 40}, sort=[("price", "desc")], limit=10)
    r.aggregate("products", group="category", aggs=["count", "sum:stock"])
    with r.watch("products", "stock > 0") as live:
        for ev in live:                  # LiveEvent(kind, id, doc)
            ...

See docs/python.md for a walk-through.
"""
from ._errors import (BusyError, ClosedError, CorruptError, DecodeError,
                      Deleted, Error, ErrorCode, InputTooBigError,
                      InvalidArgumentError, KindError, ListIndexError,
                      NoMemoryError, NoSpaceError, NotFound, PermissionDeniedError,
                      ReadOnlyError, RefusedError, SignatureError, StorageError, TimeoutError, TooBigError,
                      TransportError, TruncatedError, VersionError)
from ._api import (ChangeEvent, CheckResult, Counter, Document, ImportResult, Kind,
                   ListField, LiveEvent, LiveQuery, LogLevel, Peer, Replica,
                   SortKey, Transaction, Value, Redacted, REDACTED,
                   ffi as _ffi,
                   lib as _lib)

#: Limits of the library (bytes).
KEY_BYTES: int = int(_lib.shoal_key_bytes())
DIGEST_BYTES: int = int(_lib.SHOAL_DIGEST_BYTES)
MAX_COLLECTION: int = int(_lib.SHOAL_MAX_COLLECTION)
MAX_DOC_ID: int = int(_lib.SHOAL_MAX_DOC_ID)
MAX_FIELD: int = int(_lib.SHOAL_MAX_FIELD)
MAX_VALUE: int = int(_lib.SHOAL_MAX_VALUE)


def library_version() -> str:
    """Version ("MAJOR.MINOR.PATCH") of the libshoal actually loaded."""
    return _ffi.string(_lib.shoal_version()).decode("ascii")


def strerror(code: int) -> str:
    """The library's description of an error code."""
    return _ffi.string(_lib.shoal_strerror(int(code))).decode("utf-8", "replace")


__version__: str = library_version()

__all__ = [
    "Replica", "Document", "Counter", "ListField", "Transaction",
    "ChangeEvent", "ImportResult", "CheckResult", "Kind", "Value", "Redacted", "REDACTED",
    "LogLevel", "Peer",
    "LiveQuery", "LiveEvent", "SortKey",
    "library_version", "strerror", "__version__",
    "KEY_BYTES", "DIGEST_BYTES", "MAX_COLLECTION", "MAX_DOC_ID", "MAX_FIELD",
    "MAX_VALUE",
    "ErrorCode", "Error", "NoMemoryError", "InvalidArgumentError", "NotFound",
    "ClosedError", "TimeoutError", "NoSpaceError", "DecodeError",
    "SignatureError", "CorruptError", "StorageError", "TransportError",
    "Deleted", "KindError", "ListIndexError", "TruncatedError", "TooBigError",
    "InputTooBigError", "VersionError", "ReadOnlyError", "BusyError",
    "RefusedError", "PermissionDeniedError",
]
