"""How a store opens its diskcache databases: foreign SQL refused, and read-only where they cannot be written."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from diskcache import Cache, Disk
from diskcache.core import DBNAME, ENOVAL, METADATA

from agent.store.errors import StoreError, StoreForeign, StoreReadOnly, StoreUnwritable, unwritable_error

CACHES = ("main", "probes", "judge", "images")
"""The store's databases, each a diskcache folder under the store."""

SQLITE_SETTINGS: dict[str, Any] = {"sqlite_auto_vacuum": 1, "sqlite_cache_size": 2**13, "sqlite_journal_mode": "wal",
                                   "sqlite_mmap_size": 2**26, "sqlite_synchronous": 1}
"""The PRAGMAs diskcache runs from a store's Settings table on every connection: its defaults, the only
values a store may carry (journal_mode=wal and synchronous=1 are its crash safety)."""

OPTIONS: dict[str, Any] = {"eviction_policy": "none", "statistics": 0, "tag_index": 0, "size_limit": 2**30,
                           "cull_limit": 10, **SQLITE_SETTINGS, "disk_min_file_size": 2**15,
                           "disk_pickle_protocol": 0}
"""Every diskcache setting of a store, given on open rather than read back from a cache.db that may come
from someone else."""

_KNOWN_SETTINGS = set(OPTIONS) | set(METADATA)

DISKCACHE_TRIGGERS: dict[str, str] = {
    "Settings_count_insert": "CREATE TRIGGER Settings_count_insert AFTER INSERT ON Cache FOR EACH ROW BEGIN "
                             'UPDATE Settings SET value = value + 1 WHERE key = "count"; END',
    "Settings_count_delete": "CREATE TRIGGER Settings_count_delete AFTER DELETE ON Cache FOR EACH ROW BEGIN "
                             'UPDATE Settings SET value = value - 1 WHERE key = "count"; END',
    "Settings_size_insert": "CREATE TRIGGER Settings_size_insert AFTER INSERT ON Cache FOR EACH ROW BEGIN "
                            'UPDATE Settings SET value = value + NEW.size WHERE key = "size"; END',
    "Settings_size_update": "CREATE TRIGGER Settings_size_update AFTER UPDATE ON Cache FOR EACH ROW BEGIN "
                            'UPDATE Settings SET value = value + NEW.size - OLD.size WHERE key = "size"; END',
    "Settings_size_delete": "CREATE TRIGGER Settings_size_delete AFTER DELETE ON Cache FOR EACH ROW BEGIN "
                            'UPDATE Settings SET value = value - OLD.size WHERE key = "size"; END',
}
"""The triggers diskcache itself writes (they keep its count and size); any other trigger is foreign."""

_CACHE_TABLE = ("CREATE TABLE Cache (rowid INTEGER PRIMARY KEY, key BLOB, raw INTEGER, store_time REAL, "
                "expire_time REAL, access_time REAL, access_count INTEGER DEFAULT 0, tag BLOB, "
                "size INTEGER DEFAULT 0, mode INTEGER DEFAULT 0, filename TEXT, value BLOB)")


def _squeeze(sql: str | None) -> str:
    return " ".join((sql or "").split())


# ---------------------------------------------------------------------------------------------- checks


def check_database(con: sqlite3.Connection, db: Path, store: Path) -> None:
    """Refuse (StoreForeign, one line) a database carrying triggers, views or settings steer-interp never
    writes: SQLite runs a trigger on every write and diskcache runs the ``sqlite_*`` settings as PRAGMAs."""
    where = f"{db.parent.name}/{db.name}"
    found: list[tuple[str, str]] = []
    for kind, name, sql in con.execute("SELECT type, name, sql FROM sqlite_master").fetchall():
        if kind == "trigger" and _squeeze(sql) != DISKCACHE_TRIGGERS.get(name):
            found.append((f"a SQL trigger {name!r}", "it may run code on every write"))
        elif kind == "view":
            found.append((f"a SQL view {name!r}", "it may stand in for the data steer-interp reads"))
    try:
        settings = con.execute("SELECT key, value FROM Settings").fetchall()
    except sqlite3.OperationalError:  # no Settings table: diskcache makes one
        settings = []
    for key, value in settings:
        if key in SQLITE_SETTINGS and str(value).lower() == str(SQLITE_SETTINGS[key]).lower():
            continue
        if key in _KNOWN_SETTINGS and not str(key).startswith("sqlite_") and (
                key not in METADATA or isinstance(value, int) and not isinstance(value, bool)):
            continue  # overwritten with OPTIONS on open (or a count diskcache keeps)
        why = (f"diskcache would run it as PRAGMA {str(key)[7:]} on every open" if str(key).startswith("sqlite_")
               else "diskcache would apply it on open")
        found.append((f"the setting {key}={value!r} in its Settings table", why))
    if found:
        (what, why), more = found[0], f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise StoreForeign(f"store {store} carries {what} ({where}) that steer-interp never writes{more}; {why}: "
                           "remove it or use another store")


def read_only_reason(store: Path) -> str | None:
    """Why the store's folder or databases cannot be written, None when they can (os.access: a read-only
    mount says no even to root, who ignores file modes)."""
    folders = [store] + [store / name for name in CACHES if (store / name).exists()]
    if not all(os.access(folder, os.W_OK) for folder in folders):
        return "it is on a read-only folder"
    for name in CACHES:
        db = store / name / DBNAME
        if db.exists() and not os.access(db, os.W_OK):
            return f"its database {name}/{DBNAME} is read-only"
    return None


# ---------------------------------------------------------------------------------------------- read-only


def connect_readonly(db: Path, store: Path, timeout: float) -> sqlite3.Connection:
    """A connection that never writes ``db`` (an empty in-memory database when there is none yet).

    ``mode=ro`` still sees what another process writes; where SQLite cannot set up its shared memory
    there (a read-only folder, a full disk) and no write-ahead log is pending, the file is opened
    ``immutable`` (no locks, no side files).
    """
    if not db.exists():
        return _empty_database()
    uri = Path(os.path.abspath(db)).as_uri()
    con = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=timeout, isolation_level=None)
    try:
        con.execute("SELECT count(*) FROM sqlite_master").fetchall()
        return con
    except sqlite3.OperationalError as exc:
        con.close()
        if "locked" in str(exc):
            raise
        wal = db.with_name(db.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise StoreError(f"store {store}: its latest writes are in {db.parent.name}/{wal.name}, which cannot be "
                             f"read from here ({exc}); open the store once where its folder can be written") from None
    con = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, timeout=timeout, isolation_level=None)
    con.execute("SELECT count(*) FROM sqlite_master").fetchall()
    return con


def _empty_database() -> sqlite3.Connection:
    con = sqlite3.connect(":memory:", isolation_level=None)
    con.execute("CREATE TABLE Settings (key TEXT NOT NULL UNIQUE, value)")
    con.executemany("INSERT INTO Settings VALUES (?, ?)", list(METADATA.items()))
    con.execute(_CACHE_TABLE)
    con.execute("PRAGMA query_only = 1")
    return con


class ReadOnlyCache(Cache):
    """A diskcache Cache over a database it never writes: no Settings rows written or run as PRAGMAs,
    and every write refused with the reason the store is read-only."""

    def __init__(self, directory: Path, store: Path, why: StoreUnwritable, disk: type[Disk],
                 timeout: float = 120.0) -> None:
        # Cache.__init__ is not called: it writes the Settings table.
        self._directory = str(directory)
        self._timeout = timeout
        self._local = threading.local()
        self._txn_id = None
        self._store = store
        self.why = why
        for key, value in OPTIONS.items():
            setattr(self, key, value)
        self._page_size = 4096
        self._disk = disk(self._directory, min_file_size=OPTIONS["disk_min_file_size"],
                          pickle_protocol=OPTIONS["disk_pickle_protocol"])

    @property
    def _con(self) -> sqlite3.Connection:
        if getattr(self._local, "pid", None) != os.getpid():  # a forked process opens its own
            self.close()
            self._local.pid = os.getpid()
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = connect_readonly(Path(self._directory) / DBNAME, self._store, self._timeout)
        return con

    @contextlib.contextmanager
    def _transact(self, retry: bool = False, filename: str | None = None) -> Iterator[tuple[Any, Any]]:
        """A read snapshot: BEGIN (deferred) takes no write lock."""
        sql = self._sql
        if self._txn_id == threading.get_ident():
            yield sql, _no_cleanup
            return
        sql("BEGIN")
        self._txn_id = threading.get_ident()
        try:
            yield sql, _no_cleanup
        finally:
            self._txn_id = None
            if self._con.in_transaction:
                sql("COMMIT")

    def _refuse(self, *_args: Any, **_kwargs: Any) -> Any:
        raise self.why.again()

    # every diskcache method that writes
    set = add = touch = incr = decr = pop = delete = push = pull = _refuse  # type: ignore[assignment]
    clear = cull = evict = expire = create_tag_index = drop_tag_index = _refuse  # type: ignore[assignment]
    __setitem__ = __delitem__ = _refuse  # type: ignore[assignment]

    def reset(self, key: str, value: Any = ENOVAL, update: bool = True) -> Any:
        if value is not ENOVAL:
            self._refuse()
        return super().reset(key)


def _no_cleanup(_filename: str | None) -> None:
    """Nothing to delete: a read-only cache writes no value files."""


# ---------------------------------------------------------------------------------------------- opening


def open_caches(store: Path, disk: type[Disk], timeout: float = 120.0) -> tuple[list[Cache], StoreUnwritable | None]:
    """The store's caches (in CACHES order) and why they are read-only (None: they are writable).

    Every database is checked for foreign SQL before diskcache touches it. A store that cannot be
    written (a read-only folder, a full disk: diskcache writes its settings on open) is opened read-only,
    so export and the TUI still read it.
    """
    reason = read_only_reason(store)
    why: StoreUnwritable | None = None if reason is None else StoreReadOnly(store, reason)
    if why is None:
        opened: list[Cache] = []
        try:  # reading the schema runs nothing; a plain connection also recovers a log a crash left
            _check_all(store, lambda db: sqlite3.connect(db, timeout=timeout, isolation_level=None))
            for name in CACHES:
                opened.append(Cache(str(store / name), timeout=timeout, disk=disk, **OPTIONS))
            return opened, None
        except (sqlite3.OperationalError, OSError) as exc:
            for cache in opened:
                cache.close()
            why = unwritable_error(exc, store)
            if why is None:
                raise
    _check_all(store, lambda db: connect_readonly(db, store, timeout))
    return [ReadOnlyCache(store / name, store, why, disk, timeout) for name in CACHES], why


def _check_all(store: Path, connect: Callable[[Path], sqlite3.Connection]) -> None:
    for name in CACHES:
        db = store / name / DBNAME
        if db.exists():
            con = connect(db)
            try:
                check_database(con, db, store)
            finally:
                con.close()


def open_checked_cache(directory: Path, store: Path, disk: type[Disk], timeout: float = 120.0,
                       **options: Any) -> Cache:
    """A plain diskcache Cache beside a store (the evaluation's evidence and embeddings), its database
    checked for foreign SQL first and every setting given on open, as a store's own are."""
    db = directory / DBNAME
    if db.exists():
        con = sqlite3.connect(db, timeout=timeout, isolation_level=None)
        try:
            check_database(con, db, store)
        finally:
            con.close()
    return Cache(str(directory), timeout=timeout, disk=disk, **{**OPTIONS, **options})
