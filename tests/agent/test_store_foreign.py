"""A store is data, not a program: SQL triggers, views and settings steer-interp never writes are refused on open."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from diskcache import Cache

from agent.judges import OfflineJudge
from agent.run import run_features
from agent.store.store import Store, StoreError
from tests.agent.fakes import FakeEngine
from tests.agent.test_store_safety import CFG, make_store, steer_agent

ATTACKER = ("CREATE TRIGGER evil AFTER INSERT ON Cache WHEN NEW.key LIKE 'record/%' BEGIN UPDATE Cache "
            "SET value = replace(value, '\"explanation\": \"', '\"explanation\": \"ATTACKER ') "
            "WHERE rowid = NEW.rowid; END")
DELETER = ("CREATE TRIGGER tidy AFTER UPDATE ON Cache WHEN NEW.key LIKE 'lease/%' BEGIN "
           "DELETE FROM Cache WHERE key IN ('record/1', 'record/2'); END")
PICKLER = ("CREATE TRIGGER plant AFTER INSERT ON Settings BEGIN INSERT OR IGNORE INTO Cache "
           "(key, raw, store_time, mode, value) VALUES ('record/9999', 1, 0, 4, X'80049500'); END")
IMPOSTOR = ("CREATE TRIGGER Settings_count_insert AFTER INSERT ON Cache FOR EACH ROW BEGIN "
            "DELETE FROM Cache WHERE key LIKE 'record/%'; END")
"""Named like one of diskcache's own triggers, doing something else."""


def execute(db: Path, *statements: str) -> None:
    with sqlite3.connect(db) as con:
        for statement in statements:
            con.execute(statement)
    con.close()


def rows(db: Path, query: str) -> list[tuple]:
    with sqlite3.connect(db) as con:
        out = con.execute(query).fetchall()
    con.close()
    return out


def records(store: Path) -> list[tuple]:
    return rows(store / "main" / "cache.db", "SELECT key, value FROM Cache WHERE key LIKE 'record/%' ORDER BY key")


@pytest.mark.parametrize("name, sql, db", [
    ("evil", ATTACKER, "main"),
    ("tidy", DELETER, "main"),
    ("plant", PICKLER, "main"),
    ("Settings_count_insert", IMPOSTOR, "main"),
    ("evil", ATTACKER.replace("record/%", "%"), "judge"),
])
def test_a_foreign_trigger_is_refused_on_open_and_never_runs(tmp_path: Path, name: str, sql: str, db: str) -> None:
    store = make_store(tmp_path / "s")
    if name == "Settings_count_insert":
        execute(store / db / "cache.db", f"DROP TRIGGER {name}")
    execute(store / db / "cache.db", sql)
    before = records(store)
    with pytest.raises(StoreError) as caught:
        Store(store)
    assert str(caught.value) == (f"store {store} carries a SQL trigger {name!r} ({db}/cache.db) that steer-interp "
                                 "never writes; it may run code on every write: remove it or use another store")
    out = tmp_path / "x.jsonl"
    result = steer_agent("export", "--store", str(store), "--out", str(out))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"carries a SQL trigger {name!r}" in result.stderr and not out.exists()
    assert type(caught.value).__name__ == "StoreForeign"
    assert records(store) == before, "the trigger ran"


def test_a_run_never_reaches_a_store_with_a_trigger(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s", [])
    execute(store / "main" / "cache.db", ATTACKER)
    with pytest.raises(StoreError, match="'evil'"):
        with Store(store) as s:
            run_features(FakeEngine(), OfflineJudge(), s, [1, 2], CFG)
    assert records(store) == []


def test_a_view_is_refused(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s")
    execute(store / "probes" / "cache.db", "CREATE VIEW shadow AS SELECT * FROM Cache")
    with pytest.raises(StoreError, match=r"carries a SQL view 'shadow' \(probes/cache.db\)"):
        Store(store)


@pytest.mark.parametrize("settings, first", [
    ({"sqlite_journal_mode": "off", "sqlite_synchronous": 0}, "sqlite_journal_mode='off'"),
    ({"sqlite_locking_mode": "exclusive"}, "sqlite_locking_mode='exclusive'"),
    ({"sqlite_query_only": 1}, "sqlite_query_only=1"),
])
def test_foreign_sqlite_settings_are_refused_not_run_as_pragmas(tmp_path: Path, settings: dict, first: str) -> None:
    store = make_store(tmp_path / "s")
    db = store / "main" / "cache.db"
    execute(db, *(f"INSERT OR REPLACE INTO Settings VALUES ('{k}', {v!r})" for k, v in settings.items()))
    pragma = first.split("=")[0][len("sqlite_"):]
    more = " (and 1 more)" if len(settings) > 1 else ""
    with pytest.raises(StoreError) as caught:
        Store(store)
    assert str(caught.value) == (f"store {store} carries the setting {first} in its Settings table (main/cache.db) "
                                 f"that steer-interp never writes{more}; diskcache would run it as PRAGMA {pragma} "
                                 "on every open: remove it or use another store")
    result = steer_agent("export", "--store", str(store), "--out", "-")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert rows(db, "PRAGMA journal_mode") == [("wal",)], "a setting from the store was applied"


@pytest.mark.parametrize("key, value", [("disk__directory", "/etc"), ("_local", "x"), ("count", "many")])
def test_other_foreign_settings_are_refused(tmp_path: Path, key: str, value: str) -> None:
    """diskcache sets every Settings row on its objects (``disk_*`` on its Disk: the value files' folder)."""
    store = make_store(tmp_path / "s")
    execute(store / "main" / "cache.db", f"INSERT OR REPLACE INTO Settings VALUES ('{key}', '{value}')")
    with pytest.raises(StoreError, match=f"carries the setting {key}='{value}'.*diskcache would apply it on open"):
        Store(store)


def test_what_diskcache_writes_is_allowed_and_kept(tmp_path: Path) -> None:
    """The allowed triggers are exactly diskcache's own (a diskcache upgrade that changes them shows here),
    and a store made with the defaults of earlier versions (no sqlite_* given) still opens."""
    from agent.store.sqlite import DISKCACHE_TRIGGERS, OPTIONS

    fresh = Cache(str(tmp_path / "fresh"), eviction_policy="none")
    fresh.close()
    found = dict(rows(tmp_path / "fresh" / "cache.db", "SELECT name, sql FROM sqlite_master WHERE type='trigger'"))
    assert {k: " ".join(v.split()) for k, v in found.items()} == DISKCACHE_TRIGGERS
    settings = dict(rows(tmp_path / "fresh" / "cache.db", "SELECT key, value FROM Settings"))
    assert {k: settings[k] for k in OPTIONS if k.startswith("sqlite_")} == \
        {k: v for k, v in OPTIONS.items() if k.startswith("sqlite_")}
    store = make_store(tmp_path / "s")
    with Store(store) as s:
        assert s.features() == [1, 2, 3] and s.read_only is None


@pytest.mark.parametrize("folder", ["evidence", "embeddings"])
def test_an_evaluation_cache_with_a_foreign_trigger_is_refused(tmp_path: Path, folder: str) -> None:
    """The evaluation's own caches beside its stores are opened with the same check."""
    from agent.eval.cache import EvalCache

    EvalCache(tmp_path / "eval").close()
    execute(tmp_path / "eval" / folder / "cache.db", ATTACKER.replace("record/%", "%"))
    with pytest.raises(StoreError, match=r"a SQL trigger 'evil' \(" + folder):
        EvalCache(tmp_path / "eval")
