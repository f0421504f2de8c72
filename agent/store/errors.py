"""The store's errors: each one line naming the store, the entry and the fix."""

from __future__ import annotations

import errno
import functools
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from steering.errors import SteeringError


class StoreError(SteeringError):
    """The store cannot be used as asked (wrong world, newer schema, damaged database...).

    A SteeringError, so every command reports it in one line with exit code 2.
    """


class RecordUnreadable(StoreError):
    """One entry is corrupt (not the JSON its schema asks for); the message names the store, key and fix."""

    def __init__(self, store: Path, key: str, why: str) -> None:
        super().__init__(f"store {store}: entry {key!r} is corrupt ({why}); {_fix_for(key)}")
        self.store = store
        self.key = key
        self.why = why

    @property
    def feature(self) -> int | None:
        """The feature the entry belongs to (record/N, review/N, manual/N), else None."""
        head, _, tail = self.key.partition("/")
        return int(tail) if head in ("record", "review", "manual") and tail.isdigit() else None


class StoreDamaged(StoreError):
    """SQLite cannot read the store's database (damaged pages, not a database)."""


class StoreForeign(StoreError):
    """The store's database carries SQL (triggers, views) or settings steer-interp never writes."""


class StoreUnwritable(StoreError):
    """The store can be read but not written now (a full disk, a read-only folder); what it holds is intact."""

    def again(self) -> StoreUnwritable:
        """The same error, new (one exception object raised again and again gathers every traceback)."""
        return type(self)(*self.args)


class StoreFull(StoreUnwritable):
    """The disk holding the store is full."""

    def __init__(self, store: Path) -> None:
        super().__init__(f"the disk holding {store} is full; free space and rerun: finished features are kept")
        self.store = store

    def again(self) -> StoreFull:
        return StoreFull(self.store)


class StoreReadOnly(StoreUnwritable):
    """The store's folder or database cannot be written (a read-only mount, permissions)."""

    def __init__(self, store: Path, why: str = "it is on a read-only folder") -> None:
        super().__init__(f"store {store} cannot be written ({why}): reading it works (export, the TUI); "
                         "to write, copy it to a writable folder or pass another --store")
        self.store = store
        self.why = why

    def again(self) -> StoreReadOnly:
        return StoreReadOnly(self.store, self.why)


_READONLY, _IOERR, _FULL, _CANTOPEN = 8, 10, 13, 14
"""SQLite's primary result codes (sqlite3 names them only from Python 3.11)."""

FULL_FREE_BYTES = 1 << 20
"""Below this much free space SQLite's "disk I/O error" or "unable to open database file" is a full disk."""


def unwritable_error(exc: BaseException, store: Path) -> StoreUnwritable | None:
    """The StoreFull or StoreReadOnly ``exc`` (a SQLite error or an OSError) stands for, else None."""
    if isinstance(exc, StoreUnwritable):
        return exc
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            return StoreFull(store)
        if exc.errno == errno.EROFS:
            return StoreReadOnly(store)
        if exc.errno in (errno.EACCES, errno.EPERM):
            return StoreReadOnly(store, f"{exc.strerror or 'permission denied'}: {exc.filename or store}")
        return None
    if not isinstance(exc, sqlite3.DatabaseError):
        return None
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+; the message otherwise
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    if primary == _FULL or "database or disk is full" in text:
        return StoreFull(store)
    if primary == _READONLY or "attempt to write a readonly database" in text:
        return StoreReadOnly(store, text)
    io = primary in (_IOERR, _CANTOPEN) or "disk I/O error" in text or "unable to open database file" in text
    if io and _free_bytes(store) < FULL_FREE_BYTES:  # SQLite reports some ENOSPC so (its -shm, a new file)
        return StoreFull(store)
    return None


def _free_bytes(path: Path) -> int:
    for folder in (path, *path.parents):
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return FULL_FREE_BYTES


def _fix_for(key: str) -> str:
    if key.startswith("record/"):
        return f"rerun feature {key.split('/', 1)[1]} with --force to replace it"
    if key.startswith("meta/world"):
        return "pass another --store (this one cannot say which model and SAE it belongs to)"
    return "it is skipped and recomputed when needed"


_F = TypeVar("_F", bound=Callable[..., Any])


def db_errors(method: _F) -> _F:
    """Turn SQLite's errors into one line: StoreFull or StoreReadOnly when the store cannot be written now
    (an OSError of a value file included), else StoreDamaged (the database cannot be read)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            unwritable = unwritable_error(exc, self.path)
            if unwritable is not None:
                raise unwritable from None
            raise StoreDamaged(f"store {self.path}: its database cannot be read ({exc}); restore the folder "
                               "from a copy or pass another --store") from None
        except OSError as exc:
            unwritable = unwritable_error(exc, self.path)
            if unwritable is None:
                raise
            raise unwritable from None

    return wrapper  # type: ignore[return-value]
