"""A diskcache Disk that only ever reads and writes plain text and numbers: nothing in a store is unpickled."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from typing import Any

from diskcache import Disk
from diskcache.core import MODE_BINARY, MODE_PICKLE, MODE_RAW, MODE_TEXT, UNKNOWN

log = logging.getLogger(__name__)

_MODE_NAMES = {MODE_BINARY: "binary data", MODE_PICKLE: "a pickle", MODE_TEXT: "text in a file", MODE_RAW: "raw"}
_VALUE_FILE = re.compile(r"^[0-9a-f]{2}[/\\][0-9a-f]{2}[/\\][0-9a-f]{28}\.val$")
"""The names diskcache gives value files (``ab/cd/<28 hex>.val``); a row naming any other path is corrupt."""


class CorruptValue(Exception):
    """A stored value is not what this store writes (a pickle, bytes, a missing or foreign file).

    Deliberately not an OSError: diskcache reads an OSError as "deleted meanwhile" and answers None,
    which would drop the record silently.
    """

    def __init__(self, why: str, *, missing_file: bool = False) -> None:
        super().__init__(why)
        self.missing_file = missing_file


class UnreadableKey:
    """Stands for a key stored as a pickle (this store's keys are text): skipped, never unpickled."""

    def __repr__(self) -> str:
        return "<a key stored as a pickle>"


class TextOnlyDisk(Disk):
    """Stores str/int/float values and text keys; refuses to load anything else."""

    def __init__(self, directory: str, min_file_size: int = 0, pickle_protocol: int = 0, **_ignored: Any) -> None:
        # Unknown ``disk_*`` settings read from a foreign cache.db are ignored rather than trusted.
        super().__init__(directory, min_file_size=min_file_size, pickle_protocol=pickle_protocol)

    def put(self, key: Any) -> tuple[Any, bool]:
        if not isinstance(key, (str, bytes, int, float)) or isinstance(key, bool):
            raise TypeError(f"store keys are text, not {type(key).__name__}")
        return super().put(key)

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            return UnreadableKey()
        return bytes(key) if isinstance(key, sqlite3.Binary) else key

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> tuple[int, int, str | None, Any]:
        if read or isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise TypeError(f"store values are JSON text or numbers, not {type(value).__name__}")
        return super().store(value, read, key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode == MODE_RAW and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return value
        if mode == MODE_TEXT and not read:
            return self._read_text(filename)
        what = _MODE_NAMES.get(mode, f"mode {mode!r}")
        if mode == MODE_RAW:
            what = f"raw {type(value).__name__}"
        raise CorruptValue(f"stored as {what}, which this store never writes; it was not loaded")

    def _read_text(self, filename: str | None) -> str:
        path = self._value_path(filename)
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read()
        except FileNotFoundError:
            raise CorruptValue(f"its value file {filename} is missing", missing_file=True) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CorruptValue(f"its value file {filename} cannot be read ({exc.__class__.__name__})") from None

    def _value_path(self, filename: str | None) -> str:
        if not isinstance(filename, str) or not _VALUE_FILE.match(filename):
            raise CorruptValue(f"it names a value file outside the store ({filename!r})")
        return os.path.join(self._directory, filename)

    def remove(self, file_path: str) -> None:
        # A foreign row could name any path; only files diskcache itself would have made are deleted.
        if isinstance(file_path, str) and _VALUE_FILE.match(file_path):
            super().remove(file_path)


class CacheDisk(TextOnlyDisk):
    """For pure caches (eval evidence, embeddings): also keeps bytes, and answers a refused row as a miss."""

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> tuple[int, int, str | None, Any]:
        if isinstance(value, bytes) and not read:
            return Disk.store(self, value, read, key)
        return super().store(value, read, key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        try:
            if mode == MODE_RAW and isinstance(value, (bytes, sqlite3.Binary)):
                return bytes(value)
            if mode == MODE_BINARY and not read:
                with open(self._value_path(filename), "rb") as fh:
                    return fh.read()
            return super().fetch(mode, filename, value, read)
        except (CorruptValue, OSError) as exc:
            log.warning("cache %s: ignoring an entry (%s); it is recomputed", self._directory, exc)
            return None
