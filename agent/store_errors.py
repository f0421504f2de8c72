"""The store's errors: each one line naming the store, the entry and the fix."""

from __future__ import annotations

import functools
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


def _fix_for(key: str) -> str:
    if key.startswith("record/"):
        return f"rerun feature {key.split('/', 1)[1]} with --force to replace it"
    if key.startswith("meta/world"):
        return "pass another --store (this one cannot say which model and SAE it belongs to)"
    return "it is skipped and recomputed when needed"


_F = TypeVar("_F", bound=Callable[..., Any])


def db_errors(method: _F) -> _F:
    """Turn SQLite's errors about a damaged database into one StoreDamaged line."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise StoreDamaged(f"store {self.path}: its database cannot be read ({exc}); restore the folder "
                               "from a copy or pass another --store") from None

    return wrapper  # type: ignore[return-value]
