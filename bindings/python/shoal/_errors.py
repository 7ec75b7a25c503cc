"""Exception classes of the shoal package.

Every ``shoal_err`` code of the C library maps to one class below, all
under :class:`shoal.Error`.  Where a built-in exception means the same thing
the class also derives from it, so ordinary Python code keeps working:
``NotFound`` and ``Deleted`` are ``KeyError`` (``d.get()`` and ``in`` rely on
it), ``ListIndexError`` is an ``IndexError``, the argument and input errors
are ``ValueError``, ``KindError`` is a ``TypeError``.
"""
from __future__ import annotations

import builtins
import enum
from typing import Dict, Optional, Type

__all__ = [
    "ErrorCode", "Error", "NoMemoryError", "InvalidArgumentError", "NotFound",
    "ClosedError", "TimeoutError", "NoSpaceError", "DecodeError",
    "SignatureError", "CorruptError", "StorageError", "TransportError",
    "Deleted", "KindError", "ListIndexError", "TruncatedError", "TooBigError",
    "InputTooBigError", "VersionError", "ReadOnlyError", "BusyError",
    "RefusedError", "PermissionDeniedError",
]


class ErrorCode(enum.IntEnum):
    """The ``shoal_err`` codes of include/shoal.h (SHOAL_E<NAME> -> <NAME>)."""

    OK = 0
    NOMEM = 1
    INVAL = 2
    NOTFOUND = 3
    CLOSED = 4
    TIMEDOUT = 5
    NOSPC = 6
    PROTO = 7
    BADSIG = 8
    CORRUPT = 9
    STORE = 10
    TRANSPORT = 11
    DELETED = 12
    KIND = 13
    RANGE = 14
    TRUNC = 15
    TOOBIG = 16
    VERSION = 17
    READONLY = 18
    BUSY = 19
    REFUSED = 20
    PERM = 21


class Error(Exception):
    """Base class of every error raised by shoal.

    Attributes:
        code: the :class:`ErrorCode` (a plain ``int`` for a code this version
            of the binding does not know).
        strerror: the library's description of the code (``shoal_strerror``).
        detail: a more specific message from the library, or ``None``.
    """

    code: int
    strerror: str
    detail: Optional[str]

    def __init__(self, strerror: str, code: int = -1,
                 detail: Optional[str] = None) -> None:
        super().__init__(strerror)
        try:
            self.code = ErrorCode(code)
        except ValueError:
            self.code = code
        self.strerror = strerror
        self.detail = detail

    def __str__(self) -> str:
        if self.detail and self.detail != self.strerror:
            return "%s: %s" % (self.strerror, self.detail)
        return self.strerror

    def __reduce__(self):  # keep pickling (multiprocessing) working
        return (type(self), (self.strerror, int(self.code), self.detail))


class NoMemoryError(Error, MemoryError):
    """SHOAL_ENOMEM: the library ran out of memory."""


class InvalidArgumentError(Error, ValueError):
    """SHOAL_EINVAL: an invalid argument (bad name, NUL byte, invalid UTF-8,
    over-long name or value, malformed author key)."""


class NotFound(Error, KeyError):
    """SHOAL_ENOTFOUND: no such document, field or entry.  A ``KeyError``."""


class ClosedError(Error):
    """SHOAL_ECLOSED: the replica is closed (raised by the binding before any
    C call is made on a closed replica)."""


class TimeoutError(Error, builtins.TimeoutError):
    """SHOAL_ETIMEDOUT: an operation timed out.  Also a built-in
    ``TimeoutError``."""


class StorageError(Error):
    """SHOAL_ESTORE: a storage (LMDB) error with no closer mapping."""


class NoSpaceError(StorageError):
    """SHOAL_ENOSPC: the disk is full; nothing of the failed call was stored."""


class CorruptError(StorageError):
    """SHOAL_ECORRUPT: stored state failed validation."""


class ReadOnlyError(StorageError):
    """SHOAL_EREADONLY: the replica directory or a file in it is not writable."""


class DecodeError(Error, ValueError):
    """SHOAL_EPROTO: input (a bundle, a change) is malformed.  Nothing of it
    was applied."""


class TruncatedError(DecodeError):
    """SHOAL_ETRUNC: input ends before its declared length."""


class VersionError(DecodeError):
    """SHOAL_EVERSION: input uses an unknown format version."""


class TooBigError(Error, ValueError):
    """SHOAL_ETOOBIG: a value or the state would exceed a documented bound."""


class InputTooBigError(DecodeError, TooBigError):
    """SHOAL_ETOOBIG raised for input (a bundle): both a :class:`DecodeError`
    and a :class:`TooBigError`."""


class SignatureError(Error, ValueError):
    """SHOAL_EBADSIG: a signature check failed; the whole bundle was dropped
    unparsed and nothing changed."""


class TransportError(Error):
    """SHOAL_ETRANSPORT: a network error with no closer mapping."""


class RefusedError(TransportError, builtins.ConnectionRefusedError):
    """SHOAL_EREFUSED: the peer refused the link (our key is not on its
    allow-list, or the CurveZMQ handshake failed, e.g. a wrong peer key).
    Also a built-in ``ConnectionRefusedError``."""


class PermissionDeniedError(Error, builtins.PermissionError):
    """SHOAL_EPERM: the write is not allowed by the replica's permissions
    (docs/permissions.md).  Also a built-in ``PermissionError``."""


class Deleted(Error, KeyError):
    """SHOAL_EDELETED: the document is deleted.  A ``KeyError``."""


class KindError(Error, TypeError):
    """SHOAL_EKIND: the field holds another kind (register, counter, list)."""


class ListIndexError(Error, IndexError):
    """SHOAL_ERANGE: list index out of range.  An ``IndexError``."""


class BusyError(Error):
    """SHOAL_EBUSY: in use.  From the library: the address is already bound
    (``listen``), or a link to the endpoint with another key exists
    (``connect``).  From the binding: a transaction is already open on this
    thread or has ended, or shoal was called from a ``log`` or ``clock``
    callback."""


_BY_CODE: Dict[int, Type[Error]] = {
    ErrorCode.NOMEM: NoMemoryError,
    ErrorCode.INVAL: InvalidArgumentError,
    ErrorCode.NOTFOUND: NotFound,
    ErrorCode.CLOSED: ClosedError,
    ErrorCode.TIMEDOUT: TimeoutError,
    ErrorCode.NOSPC: NoSpaceError,
    ErrorCode.PROTO: DecodeError,
    ErrorCode.BADSIG: SignatureError,
    ErrorCode.CORRUPT: CorruptError,
    ErrorCode.STORE: StorageError,
    ErrorCode.TRANSPORT: TransportError,
    ErrorCode.DELETED: Deleted,
    ErrorCode.KIND: KindError,
    ErrorCode.RANGE: ListIndexError,
    ErrorCode.TRUNC: TruncatedError,
    ErrorCode.TOOBIG: TooBigError,
    ErrorCode.VERSION: VersionError,
    ErrorCode.READONLY: ReadOnlyError,
    ErrorCode.BUSY: BusyError,
    ErrorCode.REFUSED: RefusedError,
    ErrorCode.PERM: PermissionDeniedError,
}


def error_class(code: int, input_side: bool = False) -> Type[Error]:
    """The exception class for code (``input_side``: the error is about
    input handed to merge, where SHOAL_ETOOBIG is a decode error)."""
    if input_side and code == ErrorCode.TOOBIG:
        return InputTooBigError
    return _BY_CODE.get(code, Error)
