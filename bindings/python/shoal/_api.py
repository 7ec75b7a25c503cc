"""The shoal Python API: replicas, documents, counters, lists, transactions.

Everything here is a thin, careful layer over the C library (libshoal)
reached through cffi in API mode.  The GIL is released during every C call.
"""
from __future__ import annotations

import asyncio
import atexit
import dataclasses
import enum
import functools
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping, MutableMapping
from typing import (Any, AsyncIterator, Callable, Dict, Iterable, Iterator, List,
                    NamedTuple, Optional, Sequence, Tuple, TypeVar, Union,
                    overload)

from ._errors import (ClosedError, Deleted, Error, ErrorCode, BusyError,
                      InvalidArgumentError, KindError, ListIndexError,
                      NotFound, error_class)

try:
    from ._shoal_cffi import ffi, lib
except ImportError as exc:  # depends on the build; tested in test_import.py
    if isinstance(exc, ModuleNotFoundError) and exc.name == __package__ + "._shoal_cffi":
        raise ImportError(
            "shoal: the compiled extension shoal._shoal_cffi is missing; build "
            "the project with meson and run through `meson devenv -C BUILD` (or "
            "install it with `meson install`)") from exc
    # The extension is there but could not be loaded (an undefined symbol,
    # a libshoal that does not match, a missing shared library): say why.
    raise ImportError(
        "shoal: the compiled extension shoal._shoal_cffi failed to load: %s"
        % (exc,), name=exc.name, path=exc.path) from exc

__all__ = ["Replica", "Document", "Counter", "ListField", "Transaction",
           "ChangeEvent", "ImportResult", "CheckResult", "Kind", "Value",
           "LogLevel", "Peer", "LiveQuery", "LiveEvent", "SortKey"]

class Redacted:
    """A value this replica may not read: a sealed field whose group it
    does not hold (docs/permissions.md, "Sealed fields").  One instance,
    :data:`REDACTED`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "REDACTED"

    def __reduce__(self) -> str:
        return "REDACTED"


REDACTED = Redacted()

#: A register or list element value.
Value = Union[None, bool, int, float, str, bytes, Redacted]

#: One sort key of :meth:`Replica.find`: a field name (ascending) or a
#: ``(field, "asc" | "desc")`` pair.
SortKey = Union[str, Tuple[str, str]]

_T = TypeVar("_T")

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_UINT64_MAX = (1 << 64) - 1
KEY_BYTES = int(lib.shoal_key_bytes())
DIGEST_BYTES = int(lib.SHOAL_DIGEST_BYTES)
# Longest single wait inside the C library: keeps close() and Ctrl-C prompt.
_WAIT_SLICE_MS = 100
# How often Replica.wait_complete looks at the subscriptions.
_COMPLETE_POLL_S = 0.05


class Kind(enum.IntEnum):
    """The kind of a field (``shoal_kind``)."""

    REGISTER = 1
    COUNTER = 2
    LIST = 3


class ChangeEvent(NamedTuple):
    """A document changed (see :meth:`Replica.changes`).

    Attributes:
        collection: the document's collection.
        doc_id: the document's id.
        remote: True if the change came from another replica (merge, sync).
        overflowed: True if events were dropped before this one (the queue
            is bounded); re-read whatever you track.
        left: True if the document left this partial replica's view and
            was evicted (see :meth:`Replica.subscribe`): its state and
            changes are gone from this replica.  Such an event has
            ``remote`` False.
        voided: True if this replica's own changes to the document became
            VOID (its key was revoked below them, or its certificate came
            from a revoked admin): see :meth:`Replica.orphans`.
    """

    collection: str
    doc_id: str
    remote: bool
    overflowed: bool
    left: bool = False
    voided: bool = False


class ImportResult(NamedTuple):
    """Outcome of :meth:`Replica.import_bundle`."""

    applied: int        #: changes applied now (including released pending ones)
    duplicate: int      #: changes already held (no-ops)
    pending: int        #: changes stored, waiting for dependencies or their time
    equivocations: int  #: conflicting changes for one (author, seq) detected
    rejected: int = 0   #: changes the write check rejected (docs/permissions.md)


class CheckResult(NamedTuple):
    """Outcome of :meth:`Replica.check` (``shoal_check_stats`` and the
    problems reported)."""

    ok: bool             #: nothing is wrong
    problems: List[str]  #: one line each, the first 100 (``problem_count`` counts all)
    problem_count: int   #: problems found, reported or not
    changes: int         #: applied changes in the log
    superseded: int      #: log entries of versions an equivocation replaced
    pending: int         #: changes in the pending set
    evidence: int        #: equivocation evidence envelopes
    documents: int       #: documents in the docs table
    pages: int           #: pages of data.mdb in use
    free_pages: int      #: pages on LMDB's free list


# ---------------------------------------------------------------- helpers

def _strerror(code: int) -> str:
    return ffi.string(lib.shoal_strerror(code)).decode("utf-8", "replace")


def _error(code: int, detail: Optional[str] = None,
           input_side: bool = False) -> Error:
    return error_class(code, input_side)(_strerror(code), code, detail)


def _closed() -> ClosedError:
    return ClosedError(_strerror(ErrorCode.CLOSED), ErrorCode.CLOSED,
                       "the replica is closed")


_LIMITS = {"collection": int(lib.SHOAL_MAX_COLLECTION),
           "document id": int(lib.SHOAL_MAX_DOC_ID),
           "field name": int(lib.SHOAL_MAX_FIELD)}


def _text(s: Any, what: str) -> bytes:
    """Encode a collection, document id or field name for C, checking what
    the library would reject (so reads fail like writes do)."""
    if not isinstance(s, str):
        raise TypeError("%s must be str, not %s" % (what, type(s).__name__))
    try:
        b = s.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(_strerror(ErrorCode.INVAL), ErrorCode.INVAL,
                                   "%s is not valid UTF-8" % what) from None
    if b"\0" in b:
        raise InvalidArgumentError(_strerror(ErrorCode.INVAL), ErrorCode.INVAL,
                                   "%s contains a NUL character" % what)
    if not 0 < len(b) <= _LIMITS[what]:
        raise InvalidArgumentError(_strerror(ErrorCode.INVAL), ErrorCode.INVAL,
                                   "%s must be 1 to %d bytes of UTF-8"
                                   % (what, _LIMITS[what]))
    return b


def _name(p: Any) -> str:
    """Decode a NUL-terminated name returned by C."""
    return ffi.string(p).decode("utf-8", "surrogateescape")


def _check_int64(v: int, what: str = "int") -> int:
    if not _INT64_MIN <= v <= _INT64_MAX:
        raise OverflowError("%s out of the int64 range: %d" % (what, v))
    return v


def _fill(cv: Any, v: Any) -> Any:
    """Fill shoal_value *cv from v; return what must stay alive meanwhile."""
    if v is None:
        cv.type = lib.SHOAL_T_NIL
    elif v is True or v is False:
        cv.type = lib.SHOAL_T_BOOL
        cv.b = v
    elif isinstance(v, int):
        cv.type = lib.SHOAL_T_INT
        cv.i = _check_int64(int(v))
    elif isinstance(v, float):
        cv.type = lib.SHOAL_T_DOUBLE
        cv.d = v
    elif isinstance(v, str):
        try:
            b = v.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgumentError(
                _strerror(ErrorCode.INVAL), ErrorCode.INVAL,
                "string value is not encodable as UTF-8") from None
        cv.type = lib.SHOAL_T_STR
        return _bytes_into(cv, b)
    elif isinstance(v, (bytes, bytearray, memoryview)):
        cv.type = lib.SHOAL_T_BYTES
        return _bytes_into(cv, bytes(v))
    else:
        raise TypeError("shoal values are None, bool, int, float, str or "
                        "bytes, not %s" % type(v).__name__)
    return None


def _bytes_into(cv: Any, b: bytes) -> Any:
    buf = ffi.from_buffer("uint8_t[]", b)
    cv.ptr = buf
    cv.len = len(b)
    return buf


def _value(cv: Any) -> Value:
    """Convert a shoal_value read from C into a Python value."""
    t = cv.type
    if t == lib.SHOAL_T_NIL:
        return None
    if t == lib.SHOAL_T_REDACTED:
        return REDACTED
    if t == lib.SHOAL_T_BOOL:
        return bool(cv.b)
    if t == lib.SHOAL_T_INT:
        return int(cv.i)
    if t == lib.SHOAL_T_DOUBLE:
        return float(cv.d)
    if t in (lib.SHOAL_T_STR, lib.SHOAL_T_BYTES):
        raw = bytes(ffi.buffer(cv.ptr, cv.len)) if cv.len else b""
        if t == lib.SHOAL_T_BYTES:
            return raw
        # Policy for strings from peers that are not valid UTF-8: decoded
        # with surrogateescape, so nothing is lost and nothing raises.
        return raw.decode("utf-8", "surrogateescape")
    raise Error(_strerror(ErrorCode.PROTO), ErrorCode.PROTO,
                "unknown value type %d" % t)


def _author(key: Any) -> Any:
    """An author key (64 hex chars or 32 bytes) as a C buffer."""
    if isinstance(key, str):
        try:
            b = bytes.fromhex(key)
        except ValueError:
            b = b""
    elif isinstance(key, (bytes, bytearray, memoryview)):
        b = bytes(key)
    else:
        raise TypeError("an author key is a hex str or bytes, not %s"
                        % type(key).__name__)
    if len(b) != KEY_BYTES:
        raise InvalidArgumentError(_strerror(ErrorCode.INVAL), ErrorCode.INVAL,
                                   "an author key is %d bytes (%d hex digits)"
                                   % (KEY_BYTES, 2 * KEY_BYTES))
    return ffi.from_buffer("uint8_t[]", b)


def _buffer(data: Any, what: str) -> Any:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return ffi.from_buffer("uint8_t[]", bytes(data) if not isinstance(data, bytes) else data)
    raise TypeError("%s must be bytes-like, not %s" % (what, type(data).__name__))


# Set on a thread while it runs a Python callback called from C (log, clock):
# such a thread may be the replica's network engine, or hold the replica
# lock, so it must not call into shoal, nor close a replica.
_tls = threading.local()


def _in_callback() -> bool:
    return getattr(_tls, "in_callback", False)


@ffi.def_extern()
def shoal_py_clock(ctx: Any) -> int:
    """Trampoline for a Python clock (Replica(clock=...)); called from C."""
    fn = ffi.from_handle(ctx)
    _tls.in_callback = True
    try:
        return int(fn())
    finally:
        _tls.in_callback = False


class LogLevel(enum.IntEnum):
    """Level of a library log message (``shoal_log_level``)."""

    ERROR = 1
    WARN = 2
    INFO = 3
    DEBUG = 4

    @property
    def logging_level(self) -> int:
        """The matching level of the standard ``logging`` module."""
        return _LOGGING_LEVELS[self]


_LOGGING_LEVELS = {LogLevel.ERROR: logging.ERROR, LogLevel.WARN: logging.WARNING,
                   LogLevel.INFO: logging.INFO, LogLevel.DEBUG: logging.DEBUG}


class _LogSink:
    """What the C log callback's ctx handle points to: the user's callable
    (None once the replica is closed) and a count of its failures."""

    __slots__ = ("fn", "failures")

    def __init__(self, fn: Callable[[LogLevel, str], Any]) -> None:
        self.fn: Optional[Callable[[LogLevel, str], Any]] = fn
        self.failures = 0


def _ignore_error(exc_type: Any, exc: Any, tb: Any) -> None:
    return None


@ffi.def_extern(onerror=_ignore_error)
def shoal_py_log(ctx: Any, level: int, msg: Any) -> None:
    """Trampoline for Replica(log=...): called from the library's threads
    (cffi takes the GIL).  Never lets an exception escape into C."""
    try:
        sink = ffi.from_handle(ctx)
        fn = sink.fn
        if fn is None:
            return
        try:
            lvl: Any = LogLevel(level)
        except ValueError:
            lvl = int(level)
        text = ffi.string(msg).decode("utf-8", "replace") if msg != ffi.NULL else ""
        _tls.in_callback = True
        try:
            fn(lvl, text)
        except BaseException:  # noqa: B902 - a log callback must not break the engine
            sink.failures += 1
        finally:
            _tls.in_callback = False
    except BaseException:  # noqa: B902
        pass


@ffi.def_extern(onerror=_ignore_error)
def shoal_py_check(ctx: Any, problem: Any) -> None:
    """Trampoline of Replica.check(): append one problem line to the list
    that ctx is a handle of (called on the checking thread)."""
    ffi.from_handle(ctx).append(ffi.string(problem).decode("utf-8", "replace"))


def _close_handle(p: Any, keep: Any) -> None:
    """Close replica p (the ffi.gc destructor); keep holds the callback
    handles, alive until the library can no longer call them."""
    if _in_callback():
        # The garbage collector ran inside a callback, perhaps on this very
        # replica's engine thread: closing here would make it wait for
        # itself.  Close from a thread of its own.
        threading.Thread(target=_close_handle, args=(p, keep), daemon=True,
                         name="shoal-close").start()
        return
    lib.shoal_replica_close(p)
    for sink in keep:
        if isinstance(sink, _LogSink):
            sink.fn = None


# Replicas with a Python callback (log, clock) that are still open: closed
# at interpreter exit, while the interpreter can still run the callbacks
# that their engine threads may be making.
_with_callbacks: "weakref.WeakSet[Replica]" = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    for r in list(_with_callbacks):
        try:
            r.close()
        except BaseException:  # noqa: B902 - best effort at exit
            pass


# ---------------------------------------------------------------- replica

class Replica:
    """A shoal replica: a directory holding one device's documents.

    ``Replica(path)`` creates the directory, its missing parents and the
    device's Ed25519 identity on first use, and opens it afterwards.  Use it as a context
    manager or call :meth:`close`.

    Args:
        path: the replica directory (str or os.PathLike).
        durable: True (default): every commit is fsynced before it returns.
            False: commits are written but synced only by :meth:`flush` or
            :meth:`close` (an OS crash can lose the most recent ones; a
            process crash loses nothing).
        map_size: initial LMDB map size in bytes (it grows on demand).
        max_drift_ms: how far ahead of the local clock a remote change may
            be before it is held back until its time (default 60000).
        clock: a callable returning the wall clock in milliseconds since the
            epoch, replacing the real clock (tests, simulations).  It is
            called from C with the replica locked: it must not use the
            replica.
        log: a callable ``log(level, message)`` receiving the library's log
            messages (:class:`LogLevel`, str), e.g. from the network engine.
            It runs on the library's threads, must not use shoal (that
            raises :class:`BusyError`), and its exceptions are swallowed.
            After :meth:`close` it is never called again.

    A replica may be used from several threads at once.  Network sync:
    :meth:`listen`, :meth:`connect`, :meth:`sync`, :meth:`peers`.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]", bytes], *,
                 durable: bool = True, map_size: Optional[int] = None,
                 max_drift_ms: Optional[int] = None,
                 clock: Optional[Callable[[], int]] = None,
                 log: Optional[Callable[[LogLevel, str], Any]] = None,
                 root: Optional[Union[str, bytes]] = None) -> None:
        self._p: Any = None
        self._lock = threading.Lock()
        self._idle = threading.Event()  # set once closed and no call in flight
        self._inflight = 0
        self._closed = True
        self._local = threading.local()
        self._txns: "weakref.WeakSet[Transaction]" = weakref.WeakSet()
        self._lives: "weakref.WeakSet[LiveQuery]" = weakref.WeakSet()
        # The C live queries not closed yet (address -> pointer), and how
        # many shoal_live_close calls are running: close() closes the rest
        # and waits for those, even the ones of LiveQuery objects being
        # garbage collected in another thread meanwhile.
        self._live_open: Dict[int, Any] = {}
        self._live_closing = 0
        self._live_done = threading.Condition(self._lock)
        self._clock_handle: Any = None
        self._log_sink: Optional[_LogSink] = None
        self._log_handle: Any = None
        self.path: str = os.fsdecode(os.fspath(path))
        if not isinstance(durable, bool):
            raise TypeError("durable must be a bool")
        if clock is not None and not callable(clock):
            raise TypeError("clock must be callable")
        if log is not None and not callable(log):
            raise TypeError("log must be callable")
        dir_b = os.fsencode(self.path)
        if b"\0" in dir_b:
            raise InvalidArgumentError(_strerror(ErrorCode.INVAL),
                                       ErrorCode.INVAL, "path contains NUL")
        optp = ffi.new("shoal_options **")
        rc = lib.shoal_options_new(optp)
        if rc:
            raise _error(rc)
        opts = ffi.gc(optp[0], lib.shoal_options_free)
        try:
            rc = lib.shoal_options_set_durable(opts, durable)
            if not rc and map_size is not None:
                rc = lib.shoal_options_set_map_size(opts, _u64(map_size, "map_size"))
            if not rc and max_drift_ms is not None:
                rc = lib.shoal_options_set_max_drift_ms(
                    opts, _u64(max_drift_ms, "max_drift_ms"))
            if not rc and clock is not None:
                self._clock_handle = ffi.new_handle(clock)
                rc = lib.shoal_options_set_clock(opts, lib.shoal_py_clock,
                                                 self._clock_handle)
            root_c = None
            if root is not None and not (isinstance(root, str) and root == "self"):
                root_c = _author(root)
            if not rc and root_c is not None:
                rc = lib.shoal_options_set_root(opts, root_c)
            if not rc and log is not None:
                self._log_sink = _LogSink(log)
                self._log_handle = ffi.new_handle(self._log_sink)
                rc = lib.shoal_options_set_log(opts, lib.shoal_py_log,
                                               self._log_handle)
            if rc:
                raise _error(rc)
            parent = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(parent):
                try:  # like mkdir -p for the parents; open creates the last
                    os.makedirs(parent, exist_ok=True)
                except OSError:
                    pass  # the open below reports the failure
            out = ffi.new("shoal_replica **")
            if root == "self":
                # The root's own replica: its key, known once it exists.
                rc = lib.shoal_replica_open(out, dir_b, ffi.NULL)
                if rc:
                    raise _error(rc, "cannot open replica at %r" % self.path)
                own = bytes(ffi.buffer(lib.shoal_replica_id(out[0]), KEY_BYTES))
                lib.shoal_replica_close(out[0])
                rc = lib.shoal_options_set_root(opts, _author(own))
            if not rc:
                rc = lib.shoal_replica_open(out, dir_b, opts)
            if rc:
                raise _error(rc, "cannot open replica at %r" % self.path)
        finally:
            ffi.release(opts)
        # The destructor keeps the callback handles alive until the library
        # is closed (whatever order the garbage collector frees things in).
        keep = tuple(h for h in (self._clock_handle, self._log_handle,
                                 self._log_sink) if h is not None)
        if keep:
            self._p = ffi.gc(out[0], lambda p: _close_handle(p, keep))
            _with_callbacks.add(self)
        else:
            self._p = ffi.gc(out[0], lib.shoal_replica_close)
        self._id = bytes(ffi.buffer(lib.shoal_replica_id(self._p), KEY_BYTES)).hex()
        self._durable = durable
        self._closed = False

    # -- lifetime -------------------------------------------------------

    def _enter(self) -> Any:
        """Mark a C call in flight; raise ClosedError if closed."""
        if _in_callback():
            raise _no_reentry()
        with self._lock:
            if self._closed:
                raise _closed()
            self._inflight += 1
            return self._p

    def _exit(self) -> None:
        with self._lock:
            self._inflight -= 1
            if self._closed and self._inflight == 0:
                self._idle.set()

    def _raise(self, rc: int, input_side: bool = False) -> None:
        """Raise the error for rc with the library's detail (call in flight)."""
        detail: Optional[str] = ffi.string(lib.shoal_replica_errmsg(self._p)).decode(
            "utf-8", "replace")
        # The library's text starts with shoal_strerror(rc), which str(error)
        # adds itself: keep only what follows.
        prefix = _strerror(rc)
        if detail == prefix:
            detail = None
        elif detail and detail.startswith(prefix + ": "):
            detail = detail[len(prefix) + 2:]
        raise _error(rc, detail or None, input_side)

    def close(self) -> None:
        """Close open live queries, abort open transactions, sync and
        close.  Idempotent.

        Waits for calls running in other threads to return first (a
        :meth:`sync` running in another thread: at most its timeout), then
        closes every :class:`LiveQuery` of the replica that is still open
        (an iteration over one running in another thread ends), stops the
        network engine and closes.  After close no log message reaches the
        ``log`` callback.
        """
        if _in_callback():
            raise _no_reentry()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._inflight == 0:
                self._idle.set()
        self._idle.wait()
        # The library requires every live query closed before its replica.
        for lq in list(self._lives):
            lq._close(replica_closing=True)
        for addr in list(self._live_open):
            self._close_live(addr)
        with self._live_done:
            self._live_done.wait_for(lambda: self._live_closing == 0)
        for t in list(self._txns):
            t._drop()
        if self._p is not None:
            ffi.release(self._p)
            self._p = None
        self._clock_handle = None
        self._log_handle = None
        _with_callbacks.discard(self)

    def _close_live(self, addr: int) -> None:
        """shoal_live_close the live query at addr unless it was closed (or
        is being closed) already."""
        with self._lock:
            h = self._live_open.pop(addr, None)
            if h is None:
                return
            self._live_closing += 1
        try:
            lib.shoal_live_close(h)
        finally:
            with self._lock:
                self._live_closing -= 1
                self._live_done.notify_all()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> "Replica":
        if self._closed:
            raise _closed()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return "<shoal.Replica %s %r id=%s...>" % (state, self.path, self._id_short())

    def _id_short(self) -> str:
        return getattr(self, "_id", "?")[:12]

    # -- identity and basics --------------------------------------------

    @property
    def id(self) -> str:
        """This replica's public key (its author id), as 64 hex digits."""
        return self._id

    @property
    def durable(self) -> bool:
        """Whether every commit is fsynced before it returns."""
        return self._durable

    def flush(self) -> None:
        """Force every commit so far to disk (useful when durable=False)."""
        p = self._enter()
        try:
            rc = lib.shoal_replica_flush(p)
            if rc:
                self._raise(rc)
        finally:
            self._exit()

    # -- documents --------------------------------------------------------

    def doc(self, collection: str, doc_id: str) -> "Document":
        """A live view of document doc_id of collection (it need not exist)."""
        if self._closed:
            raise _closed()
        return Document(self, collection, doc_id)

    def __getitem__(self, key: Tuple[str, str]) -> "Document":
        """``r["orders", "o-1"]`` is ``r.doc("orders", "o-1")``."""
        if not isinstance(key, tuple) or len(key) != 2:
            raise TypeError("index a replica with (collection, doc_id)")
        return self.doc(key[0], key[1])

    def docs(self, collection: str) -> List[str]:
        """Ids of the live documents of collection, sorted (bytewise)."""
        coll = _text(collection, "collection")
        return self._strlist(lambda p, out: lib.shoal_docs(p, coll, out))

    def collections(self) -> List[str]:
        """Names of the collections holding at least one live document."""
        return self._strlist(lib.shoal_collections)

    def equivocators(self) -> List[str]:
        """Hex ids of authors caught signing two different changes with one
        sequence number."""
        return self._strlist(lib.shoal_equivocators)

    def _strlist(self, fn: Callable[[Any, Any], int]) -> List[str]:
        p = self._enter()
        try:
            out = ffi.new("shoal_strlist **")
            rc = fn(p, out)
            if rc:
                self._raise(rc)
            sl = ffi.gc(out[0], lib.shoal_strlist_free)
            try:
                n = lib.shoal_strlist_count(sl)
                return [_name(lib.shoal_strlist_get(sl, i)) for i in range(n)]
            finally:
                ffi.release(sl)
        finally:
            self._exit()

    # -- transactions -----------------------------------------------------

    def transaction(self) -> "Transaction":
        """A transaction over several documents, committed atomically.

        Use as ``with r.transaction():``.  Inside the block every edit made
        on this thread through documents of this replica goes into the
        transaction; it commits when the block ends and aborts if it raises.
        Reads inside the block do not see its uncommitted edits.
        """
        return Transaction(self)

    def _current_txn(self) -> Optional["Transaction"]:
        return getattr(self._local, "txn", None)

    def _write(self, ops: Callable[["_TxnOps"], None]) -> None:
        """Run ops in the thread's open transaction, or in a new one that
        commits at once (one change per document)."""
        t = self._current_txn()
        if t is not None:
            t._run(ops)
            return
        p = self._enter()
        try:
            out = ffi.new("shoal_txn **")
            rc = lib.shoal_txn_begin(p, out)
            if rc:
                self._raise(rc)
            txn = out[0]
            try:
                ops(_TxnOps(self, txn, None))
            except BaseException:
                lib.shoal_txn_abort(txn)
                raise
            rc = lib.shoal_txn_commit(txn)
            if rc:
                self._raise(rc)
        finally:
            self._exit()

    # -- reads --------------------------------------------------------------

    def _read(self, coll: bytes, did: bytes, fn: Callable[[Any], Any],
              missing: Callable[[int], Any]) -> Any:
        """Call fn(shoal_doc*) on a fresh snapshot of the document; if it is
        deleted or unknown return missing(code)."""
        p = self._enter()
        try:
            out = ffi.new("shoal_doc **")
            rc = lib.shoal_doc_get(p, coll, did, out)
            if rc == lib.SHOAL_ENOTFOUND or rc == lib.SHOAL_EDELETED:
                return missing(rc)
            if rc:
                self._raise(rc)
            d = out[0]
            try:
                return fn(d)
            finally:
                lib.shoal_doc_free(d)
        finally:
            self._exit()

    # -- queries --------------------------------------------------------------

    def _query(self, collection: str, where: Optional[str],
               params: Optional[Mapping[str, Any]],
               run: Callable[[Any, Any], _T]) -> _T:
        """Compile where for collection, bind params, and return run(p, q)
        with the call in flight (q freed afterwards)."""
        coll = _text(collection, "collection")
        text = _where(where)
        binds = _params(params)
        p = self._enter()
        try:
            out = ffi.new("shoal_query **")
            rc = lib.shoal_query_new(p, coll, text, out)
            if rc:
                self._raise(rc)
            q = ffi.gc(out[0], lib.shoal_query_free)
            try:
                cv = ffi.new("shoal_value *")
                for name, b, v in binds:
                    keep = _fill(cv, v)
                    rc = lib.shoal_query_bind(q, b, cv)
                    del keep
                    if rc == lib.SHOAL_ENOTFOUND:
                        raise NotFound(_strerror(rc), rc,
                                       "the query has no parameter :%s" % name)
                    if rc:
                        raise _error(rc, "cannot bind parameter :%s" % name)
                return run(p, q)
            finally:
                ffi.release(q)
        finally:
            self._exit()

    def find(self, collection: str, where: Optional[str] = None,
             params: Optional[Mapping[str, Value]] = None,
             sort: Union[None, SortKey, Sequence[SortKey]] = None,
             limit: Optional[int] = None, offset: int = 0,
             fields: Union[None, str, Iterable[str]] = None) -> List[Dict[str, Any]]:
        """The live documents of collection that match ``where``, in one
        read snapshot, as a list of plain dicts.

        Args:
            collection: the collection to search (unknown: no rows).
            where: a predicate in the query language (docs/queries.md), e.g.
                ``'category == "jeans" AND size == 8 AND price < :max'``;
                None or ``""`` matches every live document.
            params: values of the ``:name`` parameters of ``where``, by name
                (without the colon; a leading colon is accepted): None,
                bool, int, float, str or bytes.  They are bound as values,
                never spliced into the text.  Another type raises TypeError,
                a name the query does not have :class:`NotFound`, a
                parameter left unbound :class:`InvalidArgumentError`.
            sort: a field name, or a list of sort keys, the first sorting
                first; a key is a field name (ascending) or a pair
                ``(field, "asc")`` / ``(field, "desc")``.  ``"_id"`` is the
                document id.  Values sort in the total order of
                docs/queries.md (absent and null first); ties go by id
                ascending.  None: by id.
            limit: at most this many rows (None: all; 0: none).
            offset: skip this many rows first.
            fields: a field name or the field names to return (None: every
                field).

        Each row is a dict of the document's visible fields, converted as
        :meth:`Document.to_dict` does (registers as their value, counters
        as int, lists as list), plus ``"_id"``, the document id (which
        wins over a field of that name).  Errors: a syntax error in where
        is an :class:`InvalidArgumentError` whose message names the byte
        position (``"position 14: ..."``); a query over a bound (4 KiB of
        text, 64 predicates, ...) a :class:`TooBigError`.
        """
        keys = _sort_keys(sort)
        if limit is not None:
            limit = _count_arg(limit, "limit")
        offset = _count_arg(offset, "offset")
        names = _field_list(fields)

        def run(p: Any, q: Any) -> List[Dict[str, Any]]:
            for f, desc in keys:
                rc = lib.shoal_query_sort(q, f, desc)
                if rc:
                    raise _error(rc, "cannot sort by %r" % f.decode("utf-8"))
            # The C limit 0 means "no limit": an empty page still runs the
            # query (so its errors show) but returns nothing.
            lib.shoal_query_limit(q, 1 if limit == 0 else (limit or 0), offset)
            for f in names or ():
                if f != b"_id":
                    rc = lib.shoal_query_field(q, f)
                    if rc:
                        raise _error(rc, "cannot return field %r" % f.decode("utf-8"))
            out = ffi.new("shoal_rows **")
            rc = lib.shoal_find(p, q, out)
            if rc:
                self._raise(rc)
            rows = ffi.gc(out[0], lib.shoal_rows_free)
            try:
                if limit == 0:
                    return []
                return [_row(lib.shoal_rows_id(rows, i), lib.shoal_rows_doc(rows, i),
                             names)
                        for i in range(lib.shoal_rows_count(rows))]
            finally:
                ffi.release(rows)
        return self._query(collection, where, params, run)

    def count(self, collection: str, where: Optional[str] = None,
              params: Optional[Mapping[str, Value]] = None) -> int:
        """Number of live documents of collection that match where (with
        params), as :meth:`find` would return them without a limit."""
        def run(p: Any, q: Any) -> int:
            out = ffi.new("uint64_t *")
            rc = lib.shoal_count(p, q, out)
            if rc:
                self._raise(rc)
            return int(out[0])
        return self._query(collection, where, params, run)

    def aggregate(self, collection: str, where: Optional[str] = None,
                  params: Optional[Mapping[str, Value]] = None,
                  group: Union[str, Iterable[str]] = (),
                  aggs: Union[str, Iterable[str]] = ("count",)) -> List[Dict[str, Any]]:
        """Aggregates over the documents that match where, grouped by the
        fields of group, in one read snapshot.

        Args:
            collection, where, params: as for :meth:`find`.
            group: a field name or field names; one group per distinct
                combination of their values (an absent field or a list
                groups as None).  Empty: one group over every match (even
                when nothing matches).
            aggs: the aggregates, each a string: ``"count"`` (matching
                documents), ``"sum:F"``, ``"avg:F"`` (over the numbers of
                field F, registers and counters; other values are skipped;
                a sum is an int while every term is an int and it does not
                overflow, else a float), ``"min:F"``, ``"max:F"`` (over the
                values present and not null, in the sort order of
                :meth:`find`; lists skipped).  An aggregate with nothing to
                aggregate is None.

        Returns one dict per group, sorted by the group values: each group
        field with its value, then each aggregate under its spec, e.g.
        ``{"category": "jeans", "count": 4, "sum:stock": 21}``.
        """
        gnames = _field_list(group) or []
        specs = _agg_specs(aggs)

        def run(p: Any, q: Any) -> List[Dict[str, Any]]:
            keep = [ffi.new("char[]", g) for g in gnames]
            garr = ffi.new("char *[]", keep) if keep else ffi.NULL
            sarr = ffi.new("shoal_aggregate_spec[]", max(len(specs), 1))
            for j, (_, op, f) in enumerate(specs):
                sarr[j].op = op
                if f is not None:
                    keep.append(ffi.new("char[]", f))
                    sarr[j].field = keep[-1]
                else:
                    sarr[j].field = ffi.NULL
            out = ffi.new("shoal_groups **")
            rc = lib.shoal_aggregate(p, q, garr, len(gnames), sarr, len(specs), out)
            if rc:
                self._raise(rc)
            g = ffi.gc(out[0], lib.shoal_groups_free)
            try:
                cv = ffi.new("shoal_value *")
                res = []
                for i in range(lib.shoal_groups_count(g)):
                    row: Dict[str, Any] = {}
                    for k, name in enumerate(gnames):
                        lib.shoal_groups_key(g, i, k, cv)
                        row[name.decode("utf-8")] = _value(cv)
                    for j, (key, _, _) in enumerate(specs):
                        lib.shoal_groups_value(g, i, j, cv)
                        row[key] = _value(cv)
                    res.append(row)
                return res
            finally:
                ffi.release(g)
        return self._query(collection, where, params, run)

    # -- indexes --------------------------------------------------------------

    def create_index(self, collection: str, field: str) -> None:
        """Index field of collection (a list field by its elements).

        The index is built now, then kept up to date by every change (local,
        merged or synced); it is stored in the replica directory, so every
        process that opens it shares it.  Creating an index that exists does
        nothing.  An index only makes :meth:`find`, :meth:`count`,
        :meth:`aggregate` and :meth:`watch` faster: the results are the
        same without it.  ``"_id"`` is always indexed
        (:class:`InvalidArgumentError`).
        """
        coll = _text(collection, "collection")
        f = _text(field, "field name")
        self._call(lambda p: lib.shoal_index_add(p, coll, f))

    def drop_index(self, collection: str, field: str) -> None:
        """Drop the index of field of collection (:class:`NotFound` if there
        is none)."""
        coll = _text(collection, "collection")
        f = _text(field, "field name")
        self._call(lambda p: lib.shoal_index_drop(p, coll, f))

    def indexes(self, collection: Optional[str] = None) -> List[str]:
        """The indexed fields of collection, sorted; with no collection,
        the collections that have at least one index."""
        coll = ffi.NULL if collection is None else _text(collection, "collection")
        return self._strlist(lambda p, out: lib.shoal_indexes(p, coll, out))

    # -- live queries ---------------------------------------------------------

    def watch(self, collection: str, where: Optional[str] = None,
              params: Optional[Mapping[str, Value]] = None) -> "LiveQuery":
        """A live query: the documents of collection that match where (with
        params, as for :meth:`find`) now, then every change to that set.

        The returned :class:`LiveQuery` first gives an ``"enter"`` event per
        matching document (by id), then one ``"ready"``; after that
        ``"enter"``, ``"update"`` and ``"leave"`` events as commits (of this
        replica, of other handles and of other processes on the same
        directory), merges and syncs move documents into, within and out of
        the result.  Iterate over it (blocking), call
        :meth:`LiveQuery.next`, or ``async for`` over it in asyncio; close
        it (or use it as a context manager) when done.  :meth:`close`
        closes the live queries still open.
        """
        def run(p: Any, q: Any) -> LiveQuery:
            out = ffi.new("shoal_live **")
            rc = lib.shoal_live_open(p, q, out)
            if rc:
                self._raise(rc)
            return LiveQuery(self, out[0], collection, where)
        return self._query(collection, where, params, run)

    # -- subscriptions (partial sync) -----------------------------------------

    def subscribe(self, name: str, collection: str, where: Optional[str] = None,
                  params: Optional[Mapping[str, Value]] = None) -> None:
        """Create or replace the subscription ``name``: this replica then
        holds only the documents that match one of its subscriptions.

        Args:
            name: the subscription's name, 1 to 64 bytes of UTF-8.
            collection, where, params: the documents it selects, as for
                :meth:`find` (every parameter bound; None or ``""``: the
                whole collection).  The parameters are bound now: the
                subscription keeps their values.

        A replica with no subscription is full and syncs every document.
        With at least one it is partial: peers send it the documents that
        match any subscription (on the peer's state), and it evicts those
        that leave its view (a change event with ``left`` set), once its
        own changes to them are acknowledged by a full peer.  The set is
        stored in the replica directory; it takes effect at the next
        :meth:`sync` and on live links at once.  A new or changed
        subscription is ``"pending"`` in :meth:`subscriptions` until a
        peer has sent everything that matched it; subscribing again with
        the same definition changes nothing.  Replacing one evicts what no
        subscription matches any more.

        Errors: :class:`InvalidArgumentError` for a bad name, a syntax
        error or a parameter left unbound; :class:`NotFound` for a
        parameter the predicate does not have; :class:`TooBigError` past
        64 subscriptions.
        """
        nb = _sub_name(name)

        def run(p: Any, q: Any) -> None:
            rc = lib.shoal_subscribe(p, nb, q)
            if rc:
                self._raise(rc)
        self._query(collection, where, params, run)

    def unsubscribe(self, name: str) -> None:
        """Remove the subscription ``name`` (:class:`NotFound` if there is
        none) and evict every document no remaining subscription matches,
        except those holding this replica's own changes that no full peer
        has acknowledged yet (they go once a sync shows them acknowledged).
        With no subscription left the replica is full again: the next sync
        brings everything."""
        nb = _sub_name(name)
        self._call(lambda p: lib.shoal_unsubscribe(p, nb))

    def subscriptions(self) -> List[Dict[str, Any]]:
        """This replica's subscriptions in creation order, as plain dicts
        (the shape of ``shoal -d DIR subscriptions``)::

            {"name": "mine", "collection": "products",
             "where": "store_id == :s", "params": {"s": 3},
             "state": "complete", "docs": 1000}

        ``where`` is the predicate as given (``"TRUE"`` for a whole
        collection), ``params`` the bound values by name (no colon),
        ``state`` ``"pending"`` until a peer has sent every document that
        matched when the exchange began, then ``"complete"``, and ``docs``
        the number of documents it matches in this replica now.  Empty for
        a full replica."""
        p = self._enter()
        try:
            out = ffi.new("shoal_subs **")
            rc = lib.shoal_subscriptions(p, out)
            if rc:
                self._raise(rc)
            subs = ffi.gc(out[0], lib.shoal_subs_free)
            try:
                return _subs_list(subs)
            finally:
                ffi.release(subs)
        finally:
            self._exit()

    def wait_complete(self, timeout: float = 5.0) -> bool:
        """Wait until every subscription is ``"complete"``: True once they
        all are (at once for a full replica), False if ``timeout`` seconds
        passed first.

        For live links (:meth:`connect`), where nothing else says when the
        view is whole.  It polls :meth:`subscriptions` every 50 ms (the GIL
        is released in between).  After :meth:`sync` or :meth:`sync_async`
        there is nothing to wait for: they return once every subscription
        is complete.
        """
        _timeout_ms(timeout)
        deadline = time.monotonic() + timeout
        while True:
            if all(s["state"] == "complete" for s in self.subscriptions()):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(_COMPLETE_POLL_S, left))

    # -- version, bundles, digests -----------------------------------------

    def version(self) -> Dict[str, int]:
        """The version vector: ``{author_hex: highest contiguous seq}``."""
        p = self._enter()
        try:
            out = ffi.new("shoal_vv **")
            rc = lib.shoal_replica_version(p, out)
            if rc:
                self._raise(rc)
            return _vv_to_dict(ffi.gc(out[0], lib.shoal_vv_free))
        finally:
            self._exit()

    def export(self, since: Optional[Mapping[Union[str, bytes], int]] = None) -> bytes:
        """The signed changes a replica at version ``since`` lacks (all of
        them when since is None), in causal order, as bundle bytes for
        :meth:`merge` on another replica."""
        vv = None
        if since is not None:
            vv = _dict_to_vv(since)
        p = self._enter()
        try:
            out = ffi.new("uint8_t **")
            n = ffi.new("size_t *")
            rc = lib.shoal_export(p, vv if vv is not None else ffi.NULL, out, n)
            if rc:
                self._raise(rc)
            try:
                return bytes(ffi.buffer(out[0], n[0])) if n[0] else b""
            finally:
                lib.shoal_free(out[0])
        finally:
            self._exit()
            if vv is not None:
                ffi.release(vv)

    def import_bundle(self, bundle: Union[bytes, bytearray, memoryview]) -> ImportResult:
        """Verify and apply a bundle; return the full :class:`ImportResult`.

        A bundle holding any invalid change is rejected whole and nothing
        changes: :class:`SignatureError`, :class:`DecodeError` (or its
        subclasses :class:`TruncatedError`, :class:`VersionError`,
        :class:`InputTooBigError`).
        """
        buf = _buffer(bundle, "bundle")
        p = self._enter()
        try:
            res = ffi.new("shoal_import_result *")
            rc = lib.shoal_import(p, buf, len(buf), res)
            if rc:
                self._raise(rc, input_side=True)
            return ImportResult(int(res.applied), int(res.duplicate),
                                int(res.pending), int(res.equivocations), int(res.rejected))
        finally:
            self._exit()

    # ------------------------------------------------------- permissions

    @property
    def root(self) -> Optional[str]:
        """The root key this replica trusts (hex), or ``None`` in open mode
        (docs/permissions.md)."""
        p = self._enter()
        try:
            out = ffi.new("uint8_t[]", KEY_BYTES)
            rc = lib.shoal_replica_root(p, out)
            if rc == ErrorCode.NOTFOUND:
                return None
            if rc:
                self._raise(rc)
            return bytes(ffi.buffer(out, KEY_BYTES)).hex()
        finally:
            self._exit()

    def auth_policy(self, policy: Union[str, Dict[str, Any]]) -> int:
        """Sign and publish a policy (JSON text or a dict, the format of
        docs/permissions.md); return its version.  Raises
        :class:`InvalidArgumentError` for a policy that breaks a rule and
        :class:`PermissionDeniedError` when this key may not publish."""
        text = policy if isinstance(policy, str) else json.dumps(policy)
        b = text.encode("utf-8")
        p = self._enter()
        try:
            v = ffi.new("uint64_t *")
            rc = lib.shoal_auth_policy(p, b, len(b), v)
            if rc:
                self._raise(rc)
            return int(v[0])
        finally:
            self._exit()

    def auth_grant(self, key: Union[str, bytes], roles: Sequence[str], *,
                   user: Optional[str] = None,
                   attrs: Optional[Dict[str, Any]] = None,
                   expires: Optional[float] = None) -> None:
        """Certify device ``key`` with ``roles``, ``user`` (default: the key
        in hex) and scalar ``attrs``, valid for ``expires`` seconds (default:
        without end)."""
        k = _author(key)
        if isinstance(roles, str) or not roles:
            raise TypeError("roles is a non-empty sequence of str")
        keep: List[Any] = []
        c_roles = [ffi.new("char[]", r.encode("utf-8")) for r in roles]
        names = list((attrs or {}).keys())
        c_names = [ffi.new("char[]", n.encode("utf-8")) for n in names]
        vals = ffi.new("shoal_value[]", max(1, len(names)))
        for i, n in enumerate(names):
            keep.append(_fill(vals + i, attrs[n]))  # type: ignore[index]
        spec = ffi.new("shoal_cert_spec *")
        c_user = ffi.new("char[]", (user if user is not None
                                    else bytes(ffi.buffer(k, KEY_BYTES)).hex()).encode("utf-8"))
        spec.user = c_user
        roles_arr = ffi.new("char *[]", c_roles)
        names_arr = ffi.new("char *[]", c_names or [ffi.NULL])
        spec.roles = roles_arr
        spec.nroles = len(c_roles)
        spec.attr_names = names_arr
        spec.attr_values = vals
        spec.nattrs = len(names)
        spec.life_ms = 0 if expires is None else _u64(int(expires * 1000), "expires")
        p = self._enter()
        try:
            rc = lib.shoal_auth_grant(p, k, spec)
            if rc:
                self._raise(rc)
        finally:
            self._exit()

    def auth_admin(self, key: Union[str, bytes], caps: Sequence[str], *,
                   scope: Optional[str] = None,
                   max_life: Optional[float] = None) -> None:
        """Grant ``key`` admin capabilities (``"policy"``, ``"issue"``,
        ``"revoke"``, ``"delegate"``) within ``scope``, for certificates of
        at most ``max_life`` seconds."""
        names = {"policy": 1, "issue": 2, "revoke": 4, "delegate": 8}
        bits = 0
        for c in caps:
            if c not in names:
                raise InvalidArgumentError(_strerror(ErrorCode.INVAL), ErrorCode.INVAL,
                                           "unknown capability %r" % (c,))
            bits |= names[c]
        k = _author(key)
        sc = ffi.new("char[]", scope.encode("utf-8")) if scope else ffi.NULL
        life = 0 if max_life is None else _u64(int(max_life * 1000), "max_life")
        p = self._enter()
        try:
            rc = lib.shoal_auth_admin(p, k, bits, sc, life)
            if rc:
                self._raise(rc)
        finally:
            self._exit()

    def auth_revoke(self, key: Union[str, bytes], *, cut: Optional[int] = None,
                    reason: str = "") -> int:
        """Revoke ``key``: publish a revocation with ``cut`` (None: the
        greatest seq of ``key`` this replica holds) and ``reason``.  A replica
        that holds it makes the key's changes past the cut take no effect,
        refuses its links and serves it nothing but ``_auth``
        (docs/permissions.md, "Revoking a device").  Returns the cut."""
        k = _author(key)
        c = 0xFFFFFFFFFFFFFFFF if cut is None else _u64(cut, "cut")
        if c == 0xFFFFFFFFFFFFFFFF and cut is not None:
            raise InvalidArgumentError(_strerror(ErrorCode.INVAL), ErrorCode.INVAL,
                                       "cut out of range")
        why = ffi.new("char[]", reason.encode("utf-8"))
        done = ffi.new("uint64_t *")
        p = self._enter()
        try:
            rc = lib.shoal_auth_revoke(p, k, c, why, done)
            if rc:
                self._raise(rc)
        finally:
            self._exit()
        return int(done[0])

    def _json_of(self, fn: Any) -> Any:
        """Call fn(replica, char **) and decode the JSON it returns."""
        p = self._enter()
        try:
            out = ffi.new("char **")
            rc = fn(p, out)
            if rc:
                self._raise(rc)
            try:
                return json.loads(ffi.string(out[0]).decode("utf-8"))
            finally:
                lib.shoal_free(out[0])
        finally:
            self._exit()

    def auth_show(self) -> Dict[str, Any]:
        """The replica's authority: mode, root, policy, certificates,
        admins, revocations, equivocations and, enforcing, withheld (the
        JSON of ``shoal auth show``) as a dict."""
        return self._json_of(lib.shoal_auth_show)

    def orphans(self) -> List[Dict[str, Any]]:
        """This replica's own changes that are VOID here (the JSON of
        ``shoal auth orphans``): each a dict with ``change``, ``seq``,
        ``collection``, ``doc`` and ``ops``.  They are never lost; see
        :meth:`orphan_reauthor`."""
        return self._json_of(lib.shoal_orphans)

    def orphan_reauthor(self, dst: "Replica") -> int:
        """Re-issue :meth:`orphans` on ``dst`` (a replica with another key,
        the device's new one) as new changes checked by dst's permissions;
        return how many were made.  List removes and replaces are left out,
        list inserts go to the end.  Raises :class:`PermissionDeniedError`
        when dst's roles do not allow one (those before it are made)."""
        p = self._enter()
        try:
            q = dst._enter()
            try:
                n = ffi.new("size_t *")
                rc = lib.shoal_orphan_reauthor(p, q, n)
                if rc:
                    self._raise(rc)
                return int(n[0])
            finally:
                dst._exit()
        finally:
            self._exit()

    def merge(self, bundle: Union[bytes, bytearray, memoryview]) -> int:
        """Apply a bundle from :meth:`export`; return the number of changes
        applied (duplicates are no-ops).  Raises :class:`SignatureError` or
        :class:`DecodeError` and leaves the state unchanged if the bundle
        holds any invalid change."""
        return self.import_bundle(bundle).applied

    def digest(self, full: bool = False, commitment: bool = False) -> str:
        """Hex digest of the visible state (what a user sees), or with
        full=True of the full CRDT state, or with commitment=True the
        commitment digest (equal whatever sealed fields each replica may
        read).  Replicas that applied the same changes have equal
        digests."""
        p = self._enter()
        try:
            out = ffi.new("uint8_t[]", DIGEST_BYTES)
            if commitment:
                rc = lib.shoal_digest_commitment(p, out)
            else:
                rc = lib.shoal_digest(p, bool(full), out)
            if rc:
                self._raise(rc)
            return bytes(ffi.buffer(out, DIGEST_BYTES)).hex()
        finally:
            self._exit()

    def check(self) -> CheckResult:
        """Verify the replica (``shoal_replica_check``): every page of
        data.mdb, every change's signature and id, the indexes and the
        version vector against the log, the pending set and the evidence,
        and every document rebuilt from its changes and compared with its
        stored state.  Read-only, one snapshot; it takes time in proportion
        to the log.  Returns a :class:`CheckResult`; ``ok`` is False when
        the replica is damaged (see docs/operations.md, "A damaged
        replica").  Raises :class:`Error` only when the check itself
        cannot run to its end (out of memory, a storage error)."""
        p = self._enter()
        try:
            found: List[str] = []
            handle = ffi.new_handle(found)
            st = ffi.new("shoal_check_stats *")
            rc = lib.shoal_replica_check(p, lib.shoal_py_check, handle, st)
            if rc and rc != ErrorCode.CORRUPT:
                self._raise(rc)
            return CheckResult(rc == 0, found, int(st.problems), int(st.changes),
                               int(st.superseded), int(st.pending), int(st.evidence),
                               int(st.documents), int(st.pages), int(st.free_pages))
        finally:
            self._exit()

    def pending_count(self) -> int:
        """Changes waiting in the pending set (for dependencies or time)."""
        p = self._enter()
        try:
            out = ffi.new("uint64_t *")
            rc = lib.shoal_pending_count(p, out)
            if rc:
                self._raise(rc)
            return int(out[0])
        finally:
            self._exit()

    # -- network ------------------------------------------------------------

    def _net(self, call: Callable[[Any], int]) -> None:
        self._call(call)

    def _call(self, call: Callable[[Any], int]) -> None:
        """call(p) with the call in flight; raise the error it returns."""
        p = self._enter()
        try:
            rc = call(p)
            if rc:
                self._raise(rc)
        finally:
            self._exit()

    def allow(self, *peer_ids: Union[str, bytes]) -> None:
        """Admit the peers with these public keys (hex ``Replica.id``
        strings or 32 raw bytes) on this replica's listening endpoints.

        The allow-list decides who may link with this replica, not whose
        changes it accepts (a relay forwards changes written by others).
        :meth:`disallow` takes keys off it again.
        """
        keys = [_author(k) for k in peer_ids]
        for k in keys:
            self._net(lambda p, k=k: lib.shoal_net_allow(p, k))

    def disallow(self, *peer_ids: Union[str, bytes]) -> None:
        """Revoke these public keys (hex ``Replica.id`` strings or 32 raw
        bytes) while running: take them off the allow-list, refuse their
        future handshakes (even under :meth:`allow_any`), and close every
        link up with them now.  Each closing and each refused attempt shows
        in :meth:`peers` (``last_error``, ``refused``) and the log.
        :meth:`allow` admits a key again.

        Changes such a key already wrote, or that others forward, are still
        accepted: the allow-list says who may link, not who may write.
        """
        keys = [_author(k) for k in peer_ids]
        for k in keys:
            self._net(lambda p, k=k: lib.shoal_net_disallow(p, k))

    def allow_any(self, enabled: bool = True) -> None:
        """Admit every peer that completes the encrypted handshake, whatever
        its key (``enabled=True``), or only the allowed keys again (False).
        Never the default: an explicit choice for open relays and tests."""
        if not isinstance(enabled, bool):
            raise TypeError("allow_any takes a bool")
        self._net(lambda p: lib.shoal_net_allow_any(p, enabled))

    def listen(self, endpoint: str = "tcp://127.0.0.1:*",
               allow: Optional[Iterable[Union[str, bytes]]] = None, *,
               allow_any: Optional[bool] = None) -> str:
        """Accept links from allowed peers on endpoint; return the endpoint
        actually bound (``"tcp://127.0.0.1:*"`` lets the OS pick the port).

        Args:
            endpoint: a ZeroMQ endpoint, e.g. ``"tcp://0.0.0.0:7000"``.
            allow: peer ids to add to the allow-list first (see
                :meth:`allow`); None keeps the allow-list as it is.  With
                no allowed key every incoming link is refused.
            allow_any: True admits any key (see :meth:`allow_any`); must be
                explicit.  None leaves that setting as it is.

        A replica may listen on several endpoints.  Raises
        :class:`InvalidArgumentError` for a malformed endpoint and
        :class:`TransportError` when it cannot be bound (address in use).
        """
        ep = _endpoint(endpoint)
        if isinstance(allow, (str, bytes, bytearray, memoryview)):
            raise TypeError("allow is a list of peer ids, not a single id")
        keys = [] if allow is None else [_author(k) for k in allow]
        if allow_any is not None and not isinstance(allow_any, bool):
            raise TypeError("allow_any must be a bool or None")
        p = self._enter()
        try:
            for k in keys:
                rc = lib.shoal_net_allow(p, k)
                if rc:
                    self._raise(rc)
            if allow_any is not None:
                rc = lib.shoal_net_allow_any(p, allow_any)
                if rc:
                    self._raise(rc)
            out = ffi.new("char **")
            rc = lib.shoal_net_listen(p, ep, out)
            if rc:
                self._raise(rc)
            if out[0] == ffi.NULL:
                return endpoint
            try:
                return ffi.string(out[0]).decode("utf-8", "replace")
            finally:
                lib.shoal_free(out[0])
        finally:
            self._exit()

    def connect(self, endpoint: str, peer_id: Union[str, bytes]) -> None:
        """Keep a live link to the replica ``peer_id`` listening at endpoint.

        Returns at once; in the background the engine connects, both sides
        catch up, then every commit is pushed to the peer as it happens
        (both ways).  A failed or dropped link is retried with back-off for
        as long as the replica is open or until :meth:`disconnect`.  Watch
        :meth:`peers` for the link's state.
        """
        ep = _endpoint(endpoint)
        key = _author(peer_id)
        self._net(lambda p: lib.shoal_net_connect(p, ep, key))

    def disconnect(self, endpoint: str) -> None:
        """Drop the link made by :meth:`connect` to endpoint (NotFound if
        there is none)."""
        ep = _endpoint(endpoint)
        self._net(lambda p: lib.shoal_net_disconnect(p, ep))

    def sync(self, endpoint: str, peer_id: Union[str, bytes],
             timeout: float = 5.0) -> None:
        """One-shot sync with the replica ``peer_id`` listening at endpoint.

        Returns once each side holds every change the other held when the
        sync began; on a partial replica (:meth:`subscribe`), once it holds
        every document that matched its subscriptions on the peer then, so
        every subscription is ``"complete"``.  The GIL is released
        meanwhile.  :meth:`sync_async` is the asyncio form.  Raises
        :class:`RefusedError` when the peer refuses the link (our key is
        not on its allow-list, or ``peer_id`` is not its key) and
        :class:`TimeoutError` (also the built-in one) when it cannot be
        reached or the exchange does not finish within ``timeout``
        seconds.
        """
        ep = _endpoint(endpoint)
        key = _author(peer_id)
        ms = _timeout_ms(timeout)
        self._net(lambda p: lib.shoal_net_sync(p, ep, key, ms))

    async def sync_async(self, endpoint: str, peer_id: Union[str, bytes],
                         timeout: float = 5.0) -> None:
        """:meth:`sync` for asyncio: the sync runs in the running loop's
        default executor (a thread, the GIL released in C), so the loop
        goes on meanwhile.  Same arguments, same result and errors; when
        the await returns, every subscription is complete.

        Cancelling the await does not stop the sync: it runs to its end (at
        most ``timeout``) in its thread.  :meth:`close` cuts it short.
        """
        ep = _endpoint(endpoint)
        key = _author(peer_id)
        ms = _timeout_ms(timeout)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            None, self._net, lambda p: lib.shoal_net_sync(p, ep, key, ms))

    def stop_network(self) -> None:
        """Close every link and listening socket (the replica stays open;
        the next network call starts again from scratch, with the same
        allow-list)."""
        p = self._enter()
        try:
            lib.shoal_net_stop(p)
        finally:
            self._exit()

    def peers(self) -> List["Peer"]:
        """Every peer this replica has linked with (connected now or not,
        as persisted in the replica directory) and those whose links were
        refused, as :class:`Peer` records."""
        p = self._enter()
        try:
            out = ffi.new("shoal_peers **")
            rc = lib.shoal_net_peers(p, out)
            if rc:
                self._raise(rc)
            ps = ffi.gc(out[0], lib.shoal_peers_free)
            try:
                return _peers_list(ps)
            finally:
                ffi.release(ps)
        finally:
            self._exit()

    # -- events ---------------------------------------------------------------

    def next_change(self, timeout: Optional[float] = 0.0) -> Optional[ChangeEvent]:
        """The next change event, waiting up to timeout seconds (None:
        forever); None if none came in time or the replica was closed."""
        if timeout is not None:
            if timeout != timeout or timeout < 0:
                raise ValueError("timeout must be >= 0 or None")
            deadline = time.monotonic() + timeout
        while True:
            if timeout is None:
                wait_ms = _WAIT_SLICE_MS
            else:
                left = deadline - time.monotonic()
                wait_ms = max(0, min(_WAIT_SLICE_MS, int(left * 1000.0 + 0.999)))
            with self._lock:
                if self._closed:
                    return None
                self._inflight += 1
                p = self._p
            try:
                out = ffi.new("shoal_event **")
                rc = lib.shoal_event_next(p, wait_ms, out)
                if rc == 0:
                    e = ffi.gc(out[0], lib.shoal_event_free)
                    try:
                        return ChangeEvent(
                            _name(lib.shoal_event_collection(e)),
                            _name(lib.shoal_event_doc_id(e)),
                            bool(lib.shoal_event_remote(e)),
                            bool(lib.shoal_event_overflowed(e)),
                            bool(lib.shoal_event_left(e)),
                            bool(lib.shoal_event_voided(e)))
                    finally:
                        ffi.release(e)
                if rc == lib.SHOAL_ECLOSED:
                    return None
                if rc != lib.SHOAL_ETIMEDOUT:
                    self._raise(rc)
            finally:
                self._exit()
            if timeout is not None and time.monotonic() >= deadline:
                return None

    def changes(self, timeout: Optional[float] = None) -> Iterator[ChangeEvent]:
        """Iterate over change events (one per document per commit or merge,
        local and remote, and one with ``left`` set per document a partial
        replica evicted).  The iteration ends when no event came for
        ``timeout`` seconds (None: never) or the replica is closed.

        Waiting happens in C with the GIL released (in short slices, so
        Ctrl-C and close() from another thread stay prompt).
        """
        if timeout is not None and (timeout != timeout or timeout < 0):
            raise ValueError("timeout must be >= 0 or None")
        while True:
            ev = self.next_change(timeout)
            if ev is None:
                return
            yield ev


# ------------------------------------------------------------------ queries

def _where(where: Any) -> Any:
    """The predicate text for C (NULL for None)."""
    if where is None:
        return ffi.NULL
    if not isinstance(where, str):
        raise TypeError("where must be a str (a predicate) or None, not %s"
                        % type(where).__name__)
    b = where.encode("utf-8", "surrogateescape")
    if b"\0" in b:
        raise InvalidArgumentError(_strerror(ErrorCode.INVAL), ErrorCode.INVAL,
                                   "where contains a NUL character")
    return b


def _params(params: Any) -> List[Tuple[str, bytes, Value]]:
    """Check params (name -> scalar) before any C call: (name, C name, value)."""
    if params is None:
        return []
    if not isinstance(params, Mapping):
        raise TypeError("params must be a mapping {name: value}, not %s"
                        % type(params).__name__)
    res = []
    for name, v in params.items():
        if not isinstance(name, str):
            raise TypeError("a parameter name is a str, not %s" % type(name).__name__)
        bare = name[1:] if name.startswith(":") else name
        b = bare.encode("utf-8", "surrogateescape")
        if not b or b"\0" in b:
            raise InvalidArgumentError(_strerror(ErrorCode.INVAL), ErrorCode.INVAL,
                                       "invalid parameter name %r" % (name,))
        if v is None or isinstance(v, (bool, float, str, bytes, bytearray, memoryview)):
            pass
        elif isinstance(v, int):
            if not _INT64_MIN <= v <= _INT64_MAX:
                raise OverflowError("parameter :%s out of the int64 range: %d" % (bare, v))
        else:
            raise TypeError("parameter :%s must be None, bool, int, float, str or "
                            "bytes, not %s" % (bare, type(v).__name__))
        res.append((bare, b, v))
    return res


_DIRECTIONS = {"asc": False, "desc": True}


def _sort_key(key: Any) -> Tuple[bytes, bool]:
    if isinstance(key, str):
        return _text(key, "field name"), False
    if isinstance(key, tuple):
        if len(key) != 2:
            raise ValueError("a sort key is a field name or a (field, \"asc\" | "
                             "\"desc\") pair, not %r" % (key,))
        field, direction = key
        d = direction.lower() if isinstance(direction, str) else None
        if d not in _DIRECTIONS:
            raise ValueError("sort direction must be \"asc\" or \"desc\", not %r"
                             % (direction,))
        return _text(field, "field name"), _DIRECTIONS[d]
    raise TypeError("a sort key is a field name or a (field, \"asc\" | \"desc\") "
                    "pair, not %s" % type(key).__name__)


def _sort_keys(sort: Any) -> List[Tuple[bytes, bool]]:
    """sort: None, one key (a field name or a (field, direction) tuple), or
    a list of keys."""
    if sort is None:
        return []
    if isinstance(sort, (str, tuple)):
        return [_sort_key(sort)]
    if isinstance(sort, (bytes, bytearray, Mapping)) or not isinstance(sort, Iterable):
        raise TypeError("sort must be a field name, a (field, direction) pair or "
                        "a list of them, not %s" % type(sort).__name__)
    return [_sort_key(k) for k in sort]


def _count_arg(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError("%s must be an int, not %s" % (what, type(v).__name__))
    if v < 0:
        raise ValueError("%s must be >= 0" % what)
    if v > _UINT64_MAX:
        raise OverflowError("%s out of the uint64 range" % what)
    return v


def _field_list(fields: Any) -> Optional[List[bytes]]:
    """None, one field name or an iterable of them, for C."""
    if fields is None:
        return None
    if isinstance(fields, str):
        return [_text(fields, "field name")]
    if isinstance(fields, (bytes, bytearray, Mapping)) or not isinstance(fields, Iterable):
        raise TypeError("expected a field name or a list of field names, not %s"
                        % type(fields).__name__)
    return [_text(f, "field name") for f in fields]


_AGG_OPS = {"sum": lib.SHOAL_AGG_SUM, "min": lib.SHOAL_AGG_MIN,
            "max": lib.SHOAL_AGG_MAX, "avg": lib.SHOAL_AGG_AVG}


def _agg_specs(aggs: Any) -> List[Tuple[str, int, Optional[bytes]]]:
    """("count" | "op:field", ...) -> (result key, op, field for C)."""
    if isinstance(aggs, str):
        aggs = [aggs]
    elif isinstance(aggs, (bytes, bytearray, Mapping)) or not isinstance(aggs, Iterable):
        raise TypeError("aggs must be a list of aggregate specs such as "
                        "[\"count\", \"sum:price\"], not %s" % type(aggs).__name__)
    res: List[Tuple[str, int, Optional[bytes]]] = []
    for spec in aggs:
        if not isinstance(spec, str):
            raise TypeError("an aggregate spec is a str such as \"sum:price\", not %s"
                            % type(spec).__name__)
        op, colon, field = spec.partition(":")
        op = op.strip().lower()
        if op == "count" and not colon:
            res.append(("count", lib.SHOAL_AGG_COUNT, None))
        elif op in _AGG_OPS and colon and field:
            res.append(("%s:%s" % (op, field), _AGG_OPS[op], _text(field, "field name")))
        else:
            raise ValueError("unknown aggregate %r: expected \"count\" or "
                             "\"sum:F\", \"min:F\", \"max:F\", \"avg:F\"" % (spec,))
    return res


def _row(doc_id: Any, d: Any, names: Optional[List[bytes]]) -> Dict[str, Any]:
    """A result row: the document's fields (those in names, if given) and
    "_id"."""
    row = _all_fields(d) if names != [] else {}
    if names is not None:
        wanted = {n.decode("utf-8") for n in names}
        row = {k: v for k, v in row.items() if k in wanted}
    row["_id"] = _name(doc_id)
    return row


class LiveEvent(NamedTuple):
    """One event of a :class:`LiveQuery`.

    Attributes:
        kind: ``"enter"`` (the document matches now and did not),
            ``"update"`` (it matched, still matches and changed),
            ``"leave"`` (it no longer matches, or was deleted) or
            ``"ready"`` (the ``"enter"`` events before it were the initial
            result).
        id: the document id (``""`` for ``"ready"``).
        doc: for ``"enter"`` and ``"update"`` the whole document as
            :meth:`Replica.find` returns it (fields and ``"_id"``); None for
            ``"leave"`` and ``"ready"``.
    """

    kind: str
    id: str
    doc: Optional[Dict[str, Any]]


_LIVE_KINDS = {lib.SHOAL_LIVE_ENTER: "enter", lib.SHOAL_LIVE_UPDATE: "update",
               lib.SHOAL_LIVE_LEAVE: "leave", lib.SHOAL_LIVE_READY: "ready"}
# How long close() from another thread waits for an event loop to drop its
# reader of the live query's fd before closing the fd anyway.
_LOOP_HANDOFF_S = 5.0


def _wake(fut: "asyncio.Future[bool]") -> None:
    if not fut.done():
        fut.set_result(True)


class LiveQuery:
    """A live query opened by :meth:`Replica.watch`: a stream of
    :class:`LiveEvent`.

    Read it in whichever way suits the program:

    * ``for ev in lq:`` blocks for each event (the wait happens in C with
      the GIL released, in short slices, so Ctrl-C and a close from another
      thread stay prompt); the iteration ends when the live query is closed.
    * :meth:`next` waits at most ``timeout`` seconds and returns None when
      nothing came.
    * ``async for ev in lq:`` in asyncio: the running loop watches
      :meth:`fileno` (``loop.add_reader``), no thread and no polling.

    Use it as a context manager, or call :meth:`close`; the replica's
    :meth:`Replica.close` closes the live queries still open.  Any use
    after close raises :class:`ClosedError`.  One object may be shared by
    threads (calls on it run one at a time), but only one consumer should
    read it.
    """

    def __init__(self, replica: Replica, handle: Any, collection: str,
                 where: Optional[str]) -> None:
        # The destructor keeps the replica's handle alive: the library
        # requires the live query closed first, whatever order the garbage
        # collector frees things in.
        addr = int(ffi.cast("uintptr_t", handle))
        with replica._lock:
            replica._live_open[addr] = handle
        # Whoever comes first closes it: close(), the replica's close(), or
        # this destructor (which keeps the replica alive until then).
        self._p: Any = ffi.gc(handle, functools.partial(_live_destructor, replica=replica))
        self._r = replica
        self._lock = threading.Lock()
        self._closed = False
        self._fd = int(lib.shoal_live_fd(self._p))
        # The asyncio waiter: (loop, future) while a coroutine awaits the fd.
        self._waiter: Optional[Tuple[asyncio.AbstractEventLoop, "asyncio.Future[bool]"]] = None
        self.collection: str = collection
        self.where: Optional[str] = where
        replica._lives.add(self)

    def __repr__(self) -> str:
        return "<shoal.LiveQuery %s %s WHERE %s>" % (
            "closed" if self._closed else "open", self.collection,
            self.where if self.where else "TRUE")

    # -- lifetime -------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the live query (or its replica) was closed."""
        return self._closed

    @property
    def replica(self) -> Replica:
        """The replica the live query watches."""
        return self._r

    def close(self) -> None:
        """Close the live query (idempotent).  A blocking iteration or an
        ``async for`` waiting on it in another thread or task ends."""
        self._close(replica_closing=False)

    def _close(self, replica_closing: bool) -> None:
        with self._lock:
            self._closed = True
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._drop_waiter(*waiter)
        with self._lock:
            # No C call on it can be running now: they run under the lock
            # and check _closed first.
            if self._p is None:
                return
            r = self._r
            if not replica_closing:
                # Keep the replica open meanwhile; if it is closing, its
                # close() closes this live query itself.
                try:
                    r._enter()
                except ClosedError:
                    return
            try:
                ffi.release(self._p)
                self._p = None
            finally:
                if not replica_closing:
                    r._exit()
                r._lives.discard(self)

    def _drop_waiter(self, loop: asyncio.AbstractEventLoop,
                     fut: "asyncio.Future[bool]") -> None:
        """Stop loop watching the fd and wake the coroutine awaiting fut,
        before the fd is closed."""
        def drop() -> None:
            loop.remove_reader(self._fd)
            if not fut.done():
                fut.set_result(False)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop or not loop.is_running():
            drop()
            return
        done = threading.Event()

        def drop_and_signal() -> None:
            try:
                drop()
            finally:
                done.set()
        try:
            loop.call_soon_threadsafe(drop_and_signal)
        except RuntimeError:  # the loop was closed meanwhile
            return
        done.wait(_LOOP_HANDOFF_S)

    def __enter__(self) -> "LiveQuery":
        if self._closed:
            raise _live_closed()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> "LiveQuery":
        return self.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    def fileno(self) -> int:
        """A file descriptor that polls readable when an event may be
        waiting (then call ``next(0)``); valid until :meth:`close`."""
        if self._closed:
            raise _live_closed()
        return self._fd

    # -- events ---------------------------------------------------------

    def _poll(self, wait_ms: int) -> Optional[LiveEvent]:
        """One shoal_live_next call of at most wait_ms; None on timeout.
        ClosedError if closed."""
        with self._lock:
            if self._closed:
                raise _live_closed()
            r = self._r
            r._enter()
            try:
                out = ffi.new("shoal_live_event **")
                rc = lib.shoal_live_next(self._p, wait_ms, out)
                if rc == lib.SHOAL_ETIMEDOUT:
                    return None
                if rc:
                    r._raise(rc)
                e = ffi.gc(out[0], lib.shoal_live_event_free)
                try:
                    return _live_event(e)
                finally:
                    ffi.release(e)
            finally:
                r._exit()

    def next(self, timeout: Optional[float] = None) -> Optional[LiveEvent]:
        """The next event, waiting up to timeout seconds (None: until one
        comes; 0: do not wait); None if none came in time.  Raises
        :class:`ClosedError` if the live query is closed, before or while
        waiting."""
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise TypeError("timeout must be a number of seconds or None")
            if timeout != timeout or timeout < 0:
                raise ValueError("timeout must be >= 0 or None")
            deadline = time.monotonic() + timeout
        while True:
            if timeout is None:
                wait_ms = _WAIT_SLICE_MS
            else:
                left = deadline - time.monotonic()
                wait_ms = max(0, min(_WAIT_SLICE_MS, int(left * 1000.0 + 0.999)))
            ev = self._poll(wait_ms)
            if ev is not None:
                return ev
            if timeout is not None and time.monotonic() >= deadline:
                return None

    def __iter__(self) -> Iterator[LiveEvent]:
        if self._closed:
            raise _live_closed()
        return self

    def __next__(self) -> LiveEvent:
        """The next event, waiting as long as it takes.  StopIteration once
        the live query is closed while waiting; :class:`ClosedError` if it
        was closed before the call."""
        if self._closed:
            raise _live_closed()
        try:
            ev = self.next(None)
        except ClosedError:
            raise StopIteration from None
        assert ev is not None
        return ev

    def __aiter__(self) -> AsyncIterator[LiveEvent]:
        if self._closed:
            raise _live_closed()
        return self

    async def __anext__(self) -> LiveEvent:
        """The next event, awaited through the running loop's watch of the
        fd.  StopAsyncIteration once the live query is closed while
        waiting; :class:`ClosedError` if it was closed before the call."""
        if self._closed:
            raise _live_closed()
        loop = asyncio.get_running_loop()
        while True:
            try:
                ev = self._poll(0)
            except ClosedError:
                raise StopAsyncIteration from None
            if ev is not None:
                return ev
            fut: "asyncio.Future[bool]" = loop.create_future()
            with self._lock:
                if self._closed:
                    raise StopAsyncIteration
                if self._waiter is not None:
                    raise BusyError(_strerror(ErrorCode.BUSY), ErrorCode.BUSY,
                                    "another coroutine is already waiting on "
                                    "this live query")
                self._waiter = (loop, fut)
                loop.add_reader(self._fd, _wake, fut)
            try:
                alive = await fut
            finally:
                with self._lock:
                    if self._waiter is not None and self._waiter[1] is fut:
                        self._waiter = None
                        loop.remove_reader(self._fd)
            if not alive:
                raise StopAsyncIteration


def _live_destructor(h: Any, replica: Replica) -> None:
    """Close live query h (its ffi.gc destructor, also run by
    LiveQuery.close) unless its replica closed it already."""
    addr = int(ffi.cast("uintptr_t", h))
    if _in_callback():
        # Inside a log or clock callback the replica may be locked by this
        # very thread: close from a thread of its own.
        threading.Thread(target=replica._close_live, args=(addr,), daemon=True,
                         name="shoal-live-close").start()
        return
    replica._close_live(addr)


def _live_closed() -> ClosedError:
    return ClosedError(_strerror(ErrorCode.CLOSED), ErrorCode.CLOSED,
                       "the live query is closed")


def _live_event(e: Any) -> LiveEvent:
    kind = int(lib.shoal_live_event_kind(e))
    doc_id = _name(lib.shoal_live_event_id(e))
    d = lib.shoal_live_event_doc(e)
    return LiveEvent(_LIVE_KINDS.get(kind, str(kind)), doc_id,
                     None if d == ffi.NULL else _row(lib.shoal_live_event_id(e), d, None))


def _no_reentry() -> BusyError:
    return BusyError(_strerror(ErrorCode.BUSY), ErrorCode.BUSY,
                     "shoal cannot be used from inside a log or clock callback")


def _sub_name(name: Any) -> bytes:
    """A subscription name for C.  Its length (1 to 64 bytes) is the
    library's to check: it says so in the error's detail."""
    if not isinstance(name, str):
        raise TypeError("a subscription name is a str, not %s" % type(name).__name__)
    try:
        b = name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(_strerror(ErrorCode.INVAL), ErrorCode.INVAL,
                                   "subscription name is not valid UTF-8") from None
    if not b or b"\0" in b:
        raise InvalidArgumentError(_strerror(ErrorCode.INVAL), ErrorCode.INVAL,
                                   "a subscription name is 1 to 64 bytes of UTF-8 "
                                   "without NUL, not %r" % (name,))
    return b


def _subs_list(subs: Any) -> List[Dict[str, Any]]:
    """The shoal_subs list as dicts (see Replica.subscriptions)."""
    res = []
    cv = ffi.new("shoal_value *")
    for i in range(lib.shoal_subs_count(subs)):
        params: Dict[str, Value] = {}
        for k in range(lib.shoal_subs_param_count(subs, i)):
            rc = lib.shoal_subs_param_value(subs, i, k, cv)
            if rc:
                raise _error(rc)
            params[_name(lib.shoal_subs_param_name(subs, i, k))] = _value(cv)
        res.append({
            "name": _name(lib.shoal_subs_name(subs, i)),
            "collection": _name(lib.shoal_subs_collection(subs, i)),
            "where": _name(lib.shoal_subs_where(subs, i)),
            "params": params,
            "state": "complete" if lib.shoal_subs_complete(subs, i) else "pending",
            "docs": int(lib.shoal_subs_docs(subs, i)),
        })
    return res


def _endpoint(ep: Any) -> bytes:
    """A ZeroMQ endpoint for C."""
    if not isinstance(ep, str):
        raise TypeError("an endpoint is a str such as 'tcp://127.0.0.1:7000', "
                        "not %s" % type(ep).__name__)
    try:
        b = ep.encode("utf-8")
    except UnicodeEncodeError:
        b = b""
    if not b or b"\0" in b:
        raise InvalidArgumentError(_strerror(ErrorCode.INVAL), ErrorCode.INVAL,
                                   "invalid endpoint %r (expected e.g. "
                                   "'tcp://127.0.0.1:7000')" % (ep,))
    return b


def _timeout_ms(timeout: Any) -> int:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError("timeout must be a number of seconds")
    if timeout != timeout or timeout < 0:
        raise ValueError("timeout must be >= 0 seconds")
    return int(min(float(timeout) * 1000.0 + 0.999, float(_INT_MAX)))


_INT_MAX = (1 << 31) - 1


@dataclasses.dataclass(frozen=True)
class Peer(Mapping):
    """What a replica knows about one peer (see :meth:`Replica.peers`).

    A frozen dataclass that is also a read-only mapping: ``p.lag`` and
    ``p["lag"]`` are the same, and ``dict(p)`` gives a plain dict.
    """

    id: str                   #: the peer's public key, 64 hex digits
    endpoint: Optional[str]   #: where we connect to it; None if it connected to us
    connected: bool           #: a link is up now
    last_seen_ms: int         #: wall clock (ms since the epoch) of its last frame; 0: never
    sent: int                 #: changes sent to it
    received: int             #: changes received from it (applied, duplicate or pending)
    lag: int                  #: changes we hold that it is not known to hold
    rejected: int             #: frames or changes of it rejected (malformed, bad signature)
    connects: int             #: handshakes completed
    refused: int              #: links refused (by us or by it)
    equivocations: int        #: conflicting changes it showed us
    last_error: Optional[str]  #: text of the last error on the link, or None

    def __getitem__(self, key: str) -> Any:
        if isinstance(key, str) and key in _PEER_FIELDS:
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(_PEER_FIELDS)

    def __len__(self) -> int:
        return len(_PEER_FIELDS)

    def to_dict(self) -> Dict[str, Any]:
        """A plain dict of every field."""
        return {k: getattr(self, k) for k in _PEER_FIELDS}

    # dataclass() generates __eq__ (field-wise) and, frozen, __hash__.


_PEER_FIELDS = tuple(f.name for f in dataclasses.fields(Peer))


def _peers_list(ps: Any) -> List[Peer]:
    res = []
    for i in range(lib.shoal_peers_count(ps)):
        def stat(which: int, i: int = i) -> int:
            return int(lib.shoal_peers_stat(ps, i, which))
        key = lib.shoal_peers_key(ps, i)
        ep = lib.shoal_peers_endpoint(ps, i)
        err = lib.shoal_peers_last_error(ps, i)
        ep_s = ffi.string(ep).decode("utf-8", "replace") if ep != ffi.NULL else ""
        err_s = ffi.string(err).decode("utf-8", "replace") if err != ffi.NULL else ""
        res.append(Peer(
            id=bytes(ffi.buffer(key, KEY_BYTES)).hex() if key != ffi.NULL else "",
            endpoint=ep_s or None,
            connected=stat(lib.SHOAL_PS_CONNECTED) != 0,
            last_seen_ms=stat(lib.SHOAL_PS_LAST_SEEN_MS),
            sent=stat(lib.SHOAL_PS_SENT),
            received=stat(lib.SHOAL_PS_RECEIVED),
            lag=stat(lib.SHOAL_PS_LAG),
            rejected=stat(lib.SHOAL_PS_REJECTED),
            connects=stat(lib.SHOAL_PS_CONNECTS),
            refused=stat(lib.SHOAL_PS_REFUSED),
            equivocations=stat(lib.SHOAL_PS_EQUIVOCATIONS),
            last_error=err_s or None))
    return res


def _u64(v: Any, what: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError("%s must be an int" % what)
    if not 0 <= v <= _UINT64_MAX:
        raise OverflowError("%s out of the uint64 range" % what)
    return v


def _vv_to_dict(vv: Any) -> Dict[str, int]:
    try:
        res: Dict[str, int] = {}
        author = ffi.new("uint8_t **")
        seq = ffi.new("uint64_t *")
        for i in range(lib.shoal_vv_count(vv)):
            rc = lib.shoal_vv_entry(vv, i, author, seq)
            if rc:
                raise _error(rc)
            res[bytes(ffi.buffer(author[0], KEY_BYTES)).hex()] = int(seq[0])
        return res
    finally:
        ffi.release(vv)


def _dict_to_vv(since: Mapping[Union[str, bytes], int]) -> Any:
    if not isinstance(since, Mapping):
        raise TypeError("since must be a mapping {author: seq} (from "
                        "Replica.version()) or None")
    items = [(_author(k), _u64(v, "seq")) for k, v in since.items()]
    out = ffi.new("shoal_vv **")
    rc = lib.shoal_vv_new(out)
    if rc:
        raise _error(rc)
    vv = ffi.gc(out[0], lib.shoal_vv_free)
    for key, seq in items:
        rc = lib.shoal_vv_set(vv, key, seq)
        if rc:
            ffi.release(vv)
            raise _error(rc)
    return vv


# ------------------------------------------------------------ transactions

class _TxnOps:
    """The edit calls of one C transaction (used with the call in flight)."""

    __slots__ = ("_r", "_t", "_owner")

    def __init__(self, replica: Replica, txn: Any, owner: Optional["Transaction"]) -> None:
        self._r = replica
        self._t = txn
        self._owner = owner

    def _check(self, rc: int) -> None:
        if rc:
            self._r._raise(rc)

    def set(self, c: bytes, d: bytes, f: bytes, v: Any) -> None:
        cv = ffi.new("shoal_value *")
        keep = _fill(cv, v)
        self._check(lib.shoal_txn_set(self._t, c, d, f, cv))
        del keep

    def unset(self, c: bytes, d: bytes, f: bytes) -> None:
        self._check(lib.shoal_txn_unset(self._t, c, d, f))

    def add(self, c: bytes, d: bytes, f: bytes, delta: int) -> None:
        self._check(lib.shoal_txn_counter_add(self._t, c, d, f, delta))

    def insert(self, c: bytes, d: bytes, f: bytes, i: int, v: Any) -> None:
        cv = ffi.new("shoal_value *")
        keep = _fill(cv, v)
        self._check(lib.shoal_txn_list_insert(self._t, c, d, f, i, cv))
        del keep
        if self._owner is not None:
            self._owner._list_edit(c, d, f, ("insert", i, v))

    def remove(self, c: bytes, d: bytes, f: bytes, i: int) -> None:
        self._check(lib.shoal_txn_list_remove(self._t, c, d, f, i))
        if self._owner is not None:
            self._owner._list_edit(c, d, f, ("remove", i, None))

    def replace(self, c: bytes, d: bytes, f: bytes, i: int, v: Any) -> None:
        cv = ffi.new("shoal_value *")
        keep = _fill(cv, v)
        self._check(lib.shoal_txn_list_replace(self._t, c, d, f, i, cv))
        del keep
        if self._owner is not None:
            self._owner._list_edit(c, d, f, ("replace", i, v))

    def delete(self, c: bytes, d: bytes) -> None:
        self._check(lib.shoal_txn_delete(self._t, c, d))
        if self._owner is not None:
            self._owner._deleted.add((c, d))


class Transaction:
    """An atomic group of edits over one or more documents.

    Get one from :meth:`Replica.transaction` and use it as a context
    manager; the edits made inside the block on this thread (through any
    document of the replica) commit together when the block ends, or are
    dropped if it raises.  :meth:`commit` and :meth:`abort` end it early.

    Edits are resolved against the newest state at commit (list indexes
    included); reads inside the block do not see uncommitted edits, but
    :meth:`ListField.append` and negative list indexes account for the
    inserts and removals already made in this transaction.
    """

    def __init__(self, replica: Replica) -> None:
        self._r = replica
        self._p: Any = None
        self._lock = threading.Lock()
        # The list edits made so far, per (collection, id, field), in order:
        # (kind, index, value).  ListField replays them over the state it
        # reads, so that a second pop() or a negative index sees the first.
        self._list_edits: Dict[Tuple[bytes, bytes, bytes], List[Tuple[str, int, Any]]] = {}
        self._deleted: set = set()
        self._thread: Optional[threading.local] = None
        self._done = False
        self._lost = False  # dropped by Replica.close() while open

    @property
    def active(self) -> bool:
        """True between the start of the with block and commit/abort."""
        return self._p is not None

    def __enter__(self) -> "Transaction":
        r = self._r
        if self._done or self._p is not None:
            raise BusyError(_strerror(ErrorCode.BUSY), ErrorCode.BUSY,
                            "a Transaction object can be used once")
        if r._current_txn() is not None:
            raise BusyError(_strerror(ErrorCode.BUSY), ErrorCode.BUSY,
                            "a transaction is already open on this thread")
        p = r._enter()
        try:
            out = ffi.new("shoal_txn **")
            rc = lib.shoal_txn_begin(p, out)
            if rc:
                r._raise(rc)
            self._p = ffi.gc(out[0], lib.shoal_txn_abort)
            r._txns.add(self)
        finally:
            r._exit()
        r._local.txn = self
        self._thread = r._local
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        elif self._p is not None:
            self.commit()
        elif self._lost:
            raise ClosedError(_strerror(ErrorCode.CLOSED), ErrorCode.CLOSED,
                              "the replica was closed before the transaction "
                              "committed; its edits were dropped")

    def _release_thread(self) -> None:
        if self._thread is not None and getattr(self._thread, "txn", None) is self:
            self._thread.txn = None
        self._thread = None

    def _run(self, ops: Callable[[_TxnOps], None]) -> None:
        r = self._r
        with self._lock:
            if self._p is None:
                raise _closed() if r._closed else BusyError(
                    _strerror(ErrorCode.BUSY), ErrorCode.BUSY,
                    "the transaction has ended")
            r._enter()
            try:
                ops(_TxnOps(r, self._p, self))
            finally:
                r._exit()

    def _list_edit(self, c: bytes, d: bytes, f: bytes, edit: Tuple[str, int, Any]) -> None:
        self._list_edits.setdefault((c, d, f), []).append(edit)

    def _has_list_edits(self, c: bytes, d: bytes, f: bytes) -> bool:
        return (c, d, f) in self._list_edits

    def _list_view(self, c: bytes, d: bytes, f: bytes, items: List[Any]) -> List[Any]:
        """items (a stored list) with this transaction's edits of that list
        applied the way the commit applies them: an insert past the end
        appends, a removal or replacement out of range does nothing here
        (the commit reports it)."""
        for kind, i, v in self._list_edits.get((c, d, f), ()):
            if kind == "insert":
                items.insert(min(i, len(items)), v)
            elif 0 <= i < len(items):
                if kind == "remove":
                    del items[i]
                else:
                    items[i] = v
        return items

    def commit(self) -> None:
        """Commit every edit atomically (durable on return unless the replica
        is non-durable).  On error nothing of the transaction is stored."""
        r = self._r
        with self._lock:
            self._release_thread()
            if self._p is None:
                if r._closed:
                    raise _closed()
                raise BusyError(_strerror(ErrorCode.BUSY), ErrorCode.BUSY,
                                "the transaction has ended")
            t = self._p
            try:
                p = r._enter()
            except ClosedError:
                self._drop_locked()
                raise
            try:
                ffi.gc(t, None)  # commit frees it, even on error
                self._p = None
                self._done = True
                r._txns.discard(self)
                rc = lib.shoal_txn_commit(t)
                if rc:
                    r._raise(rc)
            finally:
                r._exit()
            del p

    def abort(self) -> None:
        """Drop every edit of the transaction.  Idempotent."""
        with self._lock:
            self._release_thread()
            self._drop_locked()

    def _drop(self) -> None:
        # Called by Replica.close() with no C call in flight.
        with self._lock:
            if self._p is not None:
                self._lost = True
            self._drop_locked()

    def _drop_locked(self) -> None:
        if self._p is not None:
            ffi.release(self._p)
            self._p = None
        self._done = True
        self._r._txns.discard(self)

    def doc(self, collection: str, doc_id: str) -> "Document":
        """Same as ``replica.doc()`` (edits go into this transaction while it
        is open on this thread)."""
        return self._r.doc(collection, doc_id)


# --------------------------------------------------------------- documents

def _find(d: Any, f: bytes) -> int:
    i = ffi.new("size_t *")
    if lib.shoal_doc_field_find(d, f, i):
        return -1
    return int(i[0])


def _field_value(d: Any, i: int) -> Any:
    kind = lib.shoal_doc_field_kind(d, i)
    if kind == lib.SHOAL_K_REGISTER:
        cv = ffi.new("shoal_value *")
        rc = lib.shoal_doc_field_value(d, i, cv)
        if rc:
            raise _error(rc)
        return _value(cv)
    if kind == lib.SHOAL_K_COUNTER:
        out = ffi.new("int64_t *")
        rc = lib.shoal_doc_field_counter(d, i, out)
        if rc == lib.SHOAL_EPERM:
            return REDACTED  # sealed increments this replica may not read
        if rc:
            raise _error(rc)
        return int(out[0])
    if kind == lib.SHOAL_K_LIST:
        return _list_items(d, i)
    raise _error(lib.SHOAL_EKIND, "unknown field kind %d" % kind)


def _list_len(d: Any, i: int) -> int:
    n = ffi.new("size_t *")
    rc = lib.shoal_doc_field_list_len(d, i, n)
    if rc:
        raise _error(rc)
    return int(n[0])


def _list_items(d: Any, i: int) -> List[Value]:
    n = _list_len(d, i)
    cv = ffi.new("shoal_value *")
    res = []
    for j in range(n):
        rc = lib.shoal_doc_field_list_item(d, i, j, cv)
        if rc:
            raise _error(rc)
        res.append(_value(cv))
    return res


def _all_fields(d: Any) -> Dict[str, Any]:
    return {_name(lib.shoal_doc_field_name(d, i)): _field_value(d, i)
            for i in range(lib.shoal_doc_field_count(d))}


def _field_names(d: Any) -> List[str]:
    return [_name(lib.shoal_doc_field_name(d, i))
            for i in range(lib.shoal_doc_field_count(d))]


class Document(MutableMapping):
    """A live view of one document: a mapping of field name to value.

    Reads take a fresh snapshot each time; every write (``d[f] = v``,
    ``del d[f]``, :meth:`update`, counter and list edits, :meth:`delete`) is
    one signed change committed at once, unless a :meth:`Replica.transaction`
    is open on this thread, in which case it joins that transaction.

    Reading a field: a register gives its value (None, bool, int, float,
    str, bytes), a counter an int, a list a Python list.  A missing field
    raises :class:`NotFound`, a field of a deleted document
    :class:`Deleted` (both are KeyError).  A deleted or never-seen document
    reads as empty.
    """

    __slots__ = ("_r", "_c", "_d", "collection", "id", "__weakref__")

    def __init__(self, replica: Replica, collection: str, doc_id: str) -> None:
        self._r = replica
        self._c = _text(collection, "collection")
        self._d = _text(doc_id, "document id")
        self.collection: str = collection
        self.id: str = doc_id

    def __repr__(self) -> str:
        return "<shoal.Document %s/%s>" % (self.collection, self.id)

    @property
    def replica(self) -> Replica:
        """The replica this document belongs to."""
        return self._r

    # -- reads ----------------------------------------------------------

    def _missing_field(self, field: str) -> Callable[[int], Any]:
        def missing(rc: int) -> Any:
            if rc == lib.SHOAL_EDELETED:
                raise Deleted(_strerror(rc), rc, "document %s/%s is deleted"
                              % (self.collection, self.id))
            raise NotFound(_strerror(rc), rc, "no document %s/%s"
                           % (self.collection, self.id))
        return missing

    def __getitem__(self, field: str) -> Any:
        f = _text(field, "field name")

        def read(d: Any) -> Any:
            i = _find(d, f)
            if i < 0:
                raise NotFound(_strerror(lib.SHOAL_ENOTFOUND), lib.SHOAL_ENOTFOUND,
                               "no field %r" % field)
            return _field_value(d, i)
        return self._r._read(self._c, self._d, read, self._missing_field(field))

    def get(self, field: str, default: Any = None) -> Any:
        """The field's value, or default if the field (or document) is
        missing or deleted."""
        try:
            return self[field]
        except KeyError:
            return default

    def __contains__(self, field: object) -> bool:
        if not isinstance(field, str):
            return False
        f = _text(field, "field name")
        return self._r._read(self._c, self._d, lambda d: _find(d, f) >= 0,
                             lambda rc: False)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return self._r._read(self._c, self._d,
                             lambda d: int(lib.shoal_doc_field_count(d)),
                             lambda rc: 0)

    def keys(self) -> List[str]:  # type: ignore[override]
        """Names of the visible fields (a snapshot), sorted bytewise."""
        return self._r._read(self._c, self._d, _field_names, lambda rc: [])

    def items(self) -> Any:
        """(name, value) pairs of one snapshot."""
        return self.to_dict().items()

    def values(self) -> Any:
        """Values of one snapshot."""
        return self.to_dict().values()

    def to_dict(self) -> Dict[str, Any]:
        """Every visible field from one snapshot, as a plain dict (counters as
        int, lists as list).  Empty for a deleted or never-seen document."""
        return self._r._read(self._c, self._d, _all_fields, lambda rc: {})

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self.to_dict() == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def kind(self, field: str) -> Kind:
        """The visible kind of field (NotFound if it is not visible)."""
        f = _text(field, "field name")

        def read(d: Any) -> Kind:
            i = _find(d, f)
            if i < 0:
                raise NotFound(_strerror(lib.SHOAL_ENOTFOUND), lib.SHOAL_ENOTFOUND,
                               "no field %r" % field)
            return Kind(lib.shoal_doc_field_kind(d, i))
        return self._r._read(self._c, self._d, read, self._missing_field(field))

    @property
    def exists(self) -> bool:
        """True if the document is live (seen by this replica, not deleted)."""
        return self._r._read(self._c, self._d, lambda d: True, lambda rc: False)

    @property
    def deleted(self) -> bool:
        """True if the document is deleted (in its current epoch)."""
        return self._r._read(self._c, self._d, lambda d: False,
                             lambda rc: rc == lib.SHOAL_EDELETED)

    @property
    def epoch(self) -> Optional[int]:
        """The live document's epoch (0 until deleted and re-created), or
        None if it is deleted or unknown."""
        return self._r._read(self._c, self._d,
                             lambda d: int(lib.shoal_doc_epoch(d)),
                             lambda rc: None)

    # -- writes ---------------------------------------------------------

    def __setitem__(self, field: str, value: Value) -> None:
        f = _text(field, "field name")
        c, d = self._c, self._d
        self._r._write(lambda t: t.set(c, d, f, value))

    def __delitem__(self, field: str) -> None:
        """Remove the field (whatever its kind).  KeyError if not visible."""
        if field not in self:
            raise NotFound(_strerror(lib.SHOAL_ENOTFOUND), lib.SHOAL_ENOTFOUND,
                           "no field %r" % (field,))
        self.unset(field)

    def unset(self, field: str) -> None:
        """Remove the field without checking that it is there (idempotent)."""
        f = _text(field, "field name")
        c, d = self._c, self._d
        self._r._write(lambda t: t.unset(c, d, f))

    def update(self, other: Any = (), **kwargs: Value) -> None:  # type: ignore[override]
        """Set several register fields in one change (like dict.update)."""
        if isinstance(other, Mapping):
            pairs = list(other.items())
        elif hasattr(other, "keys"):
            pairs = [(k, other[k]) for k in other.keys()]
        else:
            pairs = list(other)
        pairs.extend(kwargs.items())
        enc = [(_text(k, "field name"), v) for k, v in pairs]
        c, d = self._c, self._d

        def ops(t: _TxnOps) -> None:
            for f, v in enc:
                t.set(c, d, f, v)
        if enc:
            self._r._write(ops)

    def clear(self) -> None:
        """Remove every visible field in one change (the document stays
        live; see :meth:`delete`)."""
        names = [_text(n, "field name") for n in self.keys()]
        c, d = self._c, self._d

        def ops(t: _TxnOps) -> None:
            for f in names:
                t.unset(c, d, f)
        if names:
            self._r._write(ops)

    def delete(self) -> None:
        """Delete the document.  Delete wins over concurrent edits of its
        epoch; a later write re-creates the document in the next epoch."""
        c, d = self._c, self._d
        self._r._write(lambda t: t.delete(c, d))

    # -- typed fields -------------------------------------------------------

    def counter(self, field: str) -> "Counter":
        """The counter field ``field`` (a PN-counter: concurrent increments
        and decrements all count)."""
        return Counter(self, field)

    def list(self, field: str) -> "ListField":
        """The list field ``field`` (an RGA list)."""
        return ListField(self, field)


class Counter:
    """A live view of a counter field.  ``value`` reads it (0 when absent);
    :meth:`add` changes it; ``c += n`` and ``c -= n`` work too."""

    __slots__ = ("_doc", "_f", "name")

    def __init__(self, doc: Document, field: str) -> None:
        self._doc = doc
        self._f = _text(field, "field name")
        self.name = field

    def add(self, delta: int = 1) -> None:
        """Add delta (may be negative) in one change."""
        if not isinstance(delta, int):
            raise TypeError("counter delta must be an int, not %s" % type(delta).__name__)
        delta = _check_int64(int(delta), "counter delta")
        doc, f = self._doc, self._f
        doc._r._write(lambda t: t.add(doc._c, doc._d, f, delta))

    def __iadd__(self, delta: int) -> "Counter":
        self.add(delta)
        return self

    def __isub__(self, delta: int) -> "Counter":
        if not isinstance(delta, int):
            raise TypeError("counter delta must be an int")
        self.add(-delta)
        return self

    @property
    def value(self) -> int:
        """The counter's value (0 if the field or document is absent; a
        :class:`KindError` if the field holds another kind)."""
        f = self._f

        def read(d: Any) -> int:
            i = _find(d, f)
            if i < 0:
                return 0
            out = ffi.new("int64_t *")
            rc = lib.shoal_doc_field_counter(d, i, out)
            if rc:
                raise _error(rc, "field %r is not a counter" % self.name)
            return int(out[0])
        return self._doc._r._read(self._doc._c, self._doc._d, read, lambda rc: 0)

    def __int__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return "<shoal.Counter %s/%s.%s>" % (self._doc.collection, self._doc.id, self.name)


class ListField:
    """A live view of a list field, with the usual list methods.

    Reads take a snapshot; ``insert``, ``append``, ``extend``,
    ``lines[i] = v``, ``del lines[i]``, ``pop``, ``remove`` and ``clear``
    write.  Out-of-range indexes raise :class:`ListIndexError` (an
    IndexError).  An absent list reads as empty.
    """

    __slots__ = ("_doc", "_f", "name")

    def __init__(self, doc: Document, field: str) -> None:
        self._doc = doc
        self._f = _text(field, "field name")
        self.name = field

    def __repr__(self) -> str:
        return "<shoal.ListField %s/%s.%s>" % (self._doc.collection, self._doc.id, self.name)

    def _read(self, fn: Callable[[Any, int], Any], absent: Callable[[], Any]) -> Any:
        f = self._f

        def read(d: Any) -> Any:
            i = _find(d, f)
            if i < 0:
                return absent()
            if lib.shoal_doc_field_kind(d, i) != lib.SHOAL_K_LIST:
                raise _error(lib.SHOAL_EKIND, "field %r is not a list" % self.name)
            return fn(d, i)
        doc = self._doc
        return doc._r._read(doc._c, doc._d, read, lambda rc: absent())

    def to_list(self) -> List[Value]:
        """The elements (a snapshot) as a Python list."""
        return self._read(_list_items, list)

    def __len__(self) -> int:
        return self._read(_list_len, lambda: 0)

    def _items_for_write(self) -> List[Value]:
        """The elements edits are resolved against: a snapshot with the list
        edits made so far in this thread's transaction applied."""
        items = self.to_list()
        t = self._doc._r._current_txn()
        if t is not None:
            items = t._list_view(self._doc._c, self._doc._d, self._f, items)
        return items

    def _len_for_write(self) -> int:
        """The length edits are resolved against (see _items_for_write)."""
        t = self._doc._r._current_txn()
        if t is None or not t._has_list_edits(self._doc._c, self._doc._d, self._f):
            return len(self)
        return len(self._items_for_write())

    def __iter__(self) -> Iterator[Value]:
        return iter(self.to_list())

    def __contains__(self, value: object) -> bool:
        return value in self.to_list()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ListField):
            return self.to_list() == other.to_list()
        if isinstance(other, list):
            return self.to_list() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def index(self, value: Value) -> int:
        """Index of the first element equal to value (ValueError if none)."""
        return self.to_list().index(value)

    def count(self, value: Value) -> int:
        """Number of elements equal to value."""
        return self.to_list().count(value)

    @overload
    def __getitem__(self, i: int) -> Value: ...
    @overload
    def __getitem__(self, i: slice) -> List[Value]: ...

    def __getitem__(self, i: Union[int, slice]) -> Any:
        if isinstance(i, slice):
            return self.to_list()[i]
        i = _index(i)

        def item(d: Any, fi: int) -> Value:
            n = _list_len(d, fi)
            j = i + n if i < 0 else i
            if not 0 <= j < n:
                raise _range(i, n)
            cv = ffi.new("shoal_value *")
            rc = lib.shoal_doc_field_list_item(d, fi, j, cv)
            if rc:
                raise _error(rc)
            return _value(cv)

        def absent() -> Value:
            raise _range(i, 0)
        return self._read(item, absent)

    def _abs(self, i: int, for_insert: bool = False) -> int:
        i = _index(i)
        if for_insert:
            if i == 0:
                return 0
            n = self._len_for_write()
            if i < 0:
                return max(i + n, 0)
            return min(i, n)
        if i < 0:
            n = self._len_for_write()
            if i + n < 0:
                raise _range(i, n)
            return i + n
        return i

    def insert(self, index: int, value: Value) -> None:
        """Insert value before index (list.insert semantics: indexes past
        the end append, negative ones count from the end)."""
        j = self._abs(index, for_insert=True)
        doc, f = self._doc, self._f
        doc._r._write(lambda t: t.insert(doc._c, doc._d, f, j, value))

    def append(self, value: Value) -> None:
        """Append value."""
        j = self._len_for_write()
        doc, f = self._doc, self._f
        doc._r._write(lambda t: t.insert(doc._c, doc._d, f, j, value))

    def extend(self, values: Iterable[Value]) -> None:
        """Append every value, in one change."""
        vals = list(values)
        if not vals:
            return
        j = self._len_for_write()
        doc, f = self._doc, self._f

        def ops(t: _TxnOps) -> None:
            for k, v in enumerate(vals):
                t.insert(doc._c, doc._d, f, j + k, v)
        doc._r._write(ops)

    def __iadd__(self, values: Iterable[Value]) -> "ListField":
        self.extend(values)
        return self

    def __setitem__(self, index: int, value: Value) -> None:
        """Replace element index (LWW; a concurrent delete wins)."""
        if isinstance(index, slice):
            raise TypeError("slice assignment is not supported on a shoal list")
        j = self._abs(index)
        doc, f = self._doc, self._f
        doc._r._write(lambda t: t.replace(doc._c, doc._d, f, j, value))

    def __delitem__(self, index: int) -> None:
        """Remove element index."""
        if isinstance(index, slice):
            raise TypeError("slice deletion is not supported on a shoal list")
        j = self._abs(index)
        doc, f = self._doc, self._f
        doc._r._write(lambda t: t.remove(doc._c, doc._d, f, j))

    def pop(self, index: int = -1) -> Value:
        """Remove and return element index (read then remove: not atomic
        against other writers).  Inside a transaction it sees the list
        edits already made in it, so pop() twice removes two elements."""
        items = self._items_for_write()
        i = _index(index)
        try:
            value = items[i]
        except IndexError:
            raise _range(i, len(items)) from None
        j = i + len(items) if i < 0 else i
        doc, f = self._doc, self._f
        doc._r._write(lambda t: t.remove(doc._c, doc._d, f, j))
        return value

    def remove(self, value: Value) -> None:
        """Remove the first element equal to value (ValueError if none);
        inside a transaction, as the list stands after its edits so far."""
        j = self._items_for_write().index(value)
        doc, f = self._doc, self._f
        doc._r._write(lambda t: t.remove(doc._c, doc._d, f, j))

    def clear(self) -> None:
        """Remove every element, in one change."""
        n = self._len_for_write()
        doc, f = self._doc, self._f

        def ops(t: _TxnOps) -> None:
            for _ in range(n):
                t.remove(doc._c, doc._d, f, 0)
        if n:
            doc._r._write(ops)


def _index(i: Any) -> int:
    if not hasattr(i, "__index__"):
        raise TypeError("list indices must be integers, not %s" % type(i).__name__)
    return i.__index__()


def _range(i: int, n: int) -> ListIndexError:
    return ListIndexError(_strerror(lib.SHOAL_ERANGE), lib.SHOAL_ERANGE,
                          "list index %d out of range (length %d)" % (i, n))
