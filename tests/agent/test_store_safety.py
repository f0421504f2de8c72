"""Hostile and broken stores: nothing is unpickled, a corrupt entry is one line, the rest stays usable."""

from __future__ import annotations

import json
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agent.run.config import RunConfig, SweepConfig
from agent.run.events import RunError
from agent.judges import OfflineJudge
from agent.store.records import FeatureRecord
from agent.run import run_features
from agent.world import world_of
from agent.store.store import RecordUnreadable, Store, StoreError
from tests.agent.fakes import FakeEngine

CFG = RunConfig(sweep=SweepConfig(strengths=(5.0, 20.0, 80.0), background=2, panel=0))


class Hostile:
    """Unpickling this creates ``marker``: proof that code from the store ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - the pickle protocol
        return (open, (str(self.marker), "w"))


def done(f: int, explanation: str = "red things") -> FeatureRecord:
    return FeatureRecord(feature=f, status="done", explanation=explanation, label="red", confidence=0.8)


def make_store(path: Path, features: range | list[int] = range(1, 4), *, world: bool = True) -> Path:
    with Store(path) as s:
        if world:
            s.bind_world(world_of(FakeEngine()))
        for f in features:
            s.put_record(done(f, "x" * (40_000 if f == 3 else 10)))  # record 3 lives in a value file
    return path


def sql(store: Path, query: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(store / "main" / "cache.db") as db:
        rows = db.execute(query, params).fetchall()
    db.close()
    return rows


def steer_agent(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, timeout=300)


def poison(store: Path, marker: Path) -> None:
    """record/2 becomes a pickle row, record/3's value file a pickle file, and one key a pickle."""
    blob = pickle.dumps(Hostile(marker))
    sql(store, "UPDATE Cache SET mode=4, value=? WHERE key='record/2'", (blob,))
    ((filename,),) = sql(store, "SELECT filename FROM Cache WHERE key='record/3'")
    (store / "main" / filename).write_bytes(blob)
    sql(store, "UPDATE Cache SET mode=4 WHERE key='record/3'")
    sql(store, "INSERT INTO Cache (key, raw, store_time, mode, value) VALUES (?, 0, 0, 1, 'x')", (blob,))


def test_a_hostile_pickle_row_is_never_unpickled(tmp_path: Path) -> None:
    store, marker = make_store(tmp_path / "s"), tmp_path / "PWNED"
    poison(store, marker)
    # export (the CLI, in its own process)
    out = tmp_path / "x.jsonl"
    result = steer_agent("export", "--store", str(store), "--out", str(out))
    assert not marker.exists(), "opening the store ran code from it"
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 2 and "'record/2' is corrupt" in lines[0] and "pickle" in lines[0]
    assert "rerun feature 2 with --force" in lines[0] and "'record/3' is corrupt" in lines[1]
    assert [json.loads(line)["feature"] for line in out.read_text().splitlines()] == [1]
    # list (what the TUI's rows come from)
    with Store(store) as s:
        errors: list[RecordUnreadable] = []
        assert [r.feature for r in s.list_records(errors=errors)] == [1]
        assert [e.key for e in errors] == ["record/2", "record/3"] and s.features() == [1, 2, 3]
    assert not marker.exists()


def test_a_run_skips_a_corrupt_record_and_force_repairs_it(tmp_path: Path) -> None:
    store, marker = make_store(tmp_path / "s"), tmp_path / "PWNED"
    poison(store, marker)
    with Store(store) as s:
        events: list = []
        summary = run_features(FakeEngine(), OfflineJudge(), s, [1, 2, 3], CFG, on_event=events.append)
        assert not marker.exists()
        assert summary.statuses == {1: "skipped-done", 2: "unreadable", 3: "unreadable"}
        assert any(isinstance(e, RunError) and "'record/2' is corrupt" in e.message for e in events)
        summary = run_features(FakeEngine(), OfflineJudge(), s, [2], RunConfig(sweep=CFG.sweep, force=True))
        assert summary.statuses == {2: "done"} and s.get_record(2).status == "done"
        errors: list[RecordUnreadable] = []
        assert [r.feature for r in s.list_records([1, 2, 3], errors=errors)] == [1, 2]
        assert [e.key for e in errors] == ["record/3"]
    assert not marker.exists()


def test_a_row_naming_a_file_outside_the_store_is_neither_read_nor_deleted(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s")
    victim = tmp_path / "victim.json"
    victim.write_text(json.dumps(done(2, "planted").to_dict()))
    sql(store, "UPDATE Cache SET mode=3, value=NULL, filename=? WHERE key='record/2'", (str(victim),))
    with Store(store) as s:
        with pytest.raises(RecordUnreadable, match="outside the store"):
            s.get_record(2)
        s.put_record(done(2, "repaired"))  # --force: overwrites the row
        assert s.get_record(2).explanation == "repaired"
    assert victim.exists(), "repairing a record deleted a file outside the store"


def test_an_incomplete_record_is_corrupt_not_done(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s", [1])
    with Store(store) as s:
        s._main.set("record/11", '{"schema":1,"feature":11,"status":"done"}')
        s._main.set("record/12", json.dumps(done(12).to_dict() | {"explanation": None}))
        s._main.set("record/13", json.dumps(done(99).to_dict()))
        s._main.set("record/14", json.dumps(done(14).to_dict() | {"transcript": "abc"}))
        for f, why in ((11, "incomplete: no explanation"), (12, "done record without an explanation"),
                       (13, "names feature 99"), (14, "'transcript' holds str")):
            with pytest.raises(RecordUnreadable, match=why):
                s.get_record(f)
    result = steer_agent("export", "--store", str(store), "--out", "-")
    assert result.returncode == 1 and [json.loads(x)["feature"] for x in result.stdout.splitlines()] == [1]
    assert result.stderr.count("error:") == 4 and "Traceback" not in result.stderr


def test_a_corrupt_review_or_key_does_not_break_the_store(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s", [1, 2])
    with Store(store) as s:
        s._main.set("review/1", json.dumps({"current": "yes", "history": []}))
        s._main.set("record/abc", "{}")
        assert s.get_record(1).review is None and s.reviewed_features() == set()
        assert s.features() == [1, 2]
        s.set_review(2, "accept", reviewer="ann")
        assert s.reviewed_features() == {2}


def test_a_deleted_value_file_is_reported(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s")
    ((filename,),) = sql(store, "SELECT filename FROM Cache WHERE key='record/3'")
    (store / "main" / filename).unlink()
    result = steer_agent("export", "--store", str(store), "--out", str(tmp_path / "x.jsonl"))
    assert result.returncode == 1, result.stderr
    assert f"'record/3' is corrupt (its value file {filename} is missing)" in result.stderr
    assert "exported 2 records" in result.stdout and "1 corrupt" in result.stdout


def test_damaged_database_pages_are_one_line(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s", range(300))
    db = store / "main" / "cache.db"
    size = db.stat().st_size
    with db.open("r+b") as fh:
        fh.seek(size // 2)
        fh.write(b"\xff" * (size // 4))
    result = steer_agent("export", "--store", str(store), "--out", str(tmp_path / "x.jsonl"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "its database cannot be read" in result.stderr
    assert "malformed" in result.stderr and not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize("world", ["[1, 2", "[1, 2]", '"a world"'])
def test_a_garbage_world_does_not_crash_export_and_refuses_a_run(tmp_path: Path, world: str) -> None:
    store = make_store(tmp_path / "s")
    sql(store, "UPDATE Cache SET value=? WHERE key='meta/world'", (world,))
    result = steer_agent("export", "--store", str(store), "--out", str(tmp_path / "x.jsonl"))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "'meta/world' is corrupt" in result.stderr and "exported 3 records" in result.stdout
    with Store(store) as s, pytest.raises(StoreError, match="'meta/world' is corrupt.*pass another --store"):
        run_features(FakeEngine(), OfflineJudge(), s, [5], CFG)


def test_export_says_how_many_requested_features_are_missing(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s", [7])
    result = steer_agent("export", "--store", str(store), "--out", str(tmp_path / "x.jsonl"), "--features", "0-127")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (f"exported 1 records to {tmp_path / 'x.jsonl'}; 127 of the 128 requested "
                                     "features are not in the store")


def test_values_other_than_text_are_refused_on_write(tmp_path: Path) -> None:
    with Store(tmp_path / "s") as s:
        for value in (b"bytes", {"a": 1}, [1], True):
            with pytest.raises(TypeError):
                s._main.set("x", value)
        assert "x" not in list(s._main.iterkeys())


@pytest.mark.parametrize("schema, why", [("pickle", "stored as a pickle"), ("text", "'one'")])
def test_a_corrupt_schema_entry_is_refused_in_one_line(tmp_path: Path, schema: str, why: str) -> None:
    store, marker = make_store(tmp_path / "s"), tmp_path / "PWNED"
    if schema == "pickle":
        sql(store, "UPDATE Cache SET mode=4, value=? WHERE key='meta/schema'", (pickle.dumps(Hostile(marker)),))
    else:
        sql(store, "UPDATE Cache SET value='one' WHERE key='meta/schema'")
    with pytest.raises(StoreError, match=f"its schema entry is corrupt.*{why}"):
        Store(store)
    result = steer_agent("export", "--store", str(store), "--out", "-")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not marker.exists()


def test_the_eval_caches_never_unpickle_either(tmp_path: Path) -> None:
    from agent.eval.cache import EvalCache

    marker = tmp_path / "PWNED"
    with EvalCache(tmp_path / "eval") as cache:
        cache.put_evidence("k", {"texts": ["red"]})
        cache.embeddings.set("e", b"\x00\x00\x80\x3f")
        cache.embeddings.set("big", b"\x01" * 40_000)  # kept in a value file
        assert cache.get_evidence("k") == {"texts": ["red"]} and cache.embeddings.get("e") == b"\x00\x00\x80\x3f"
        assert cache.embeddings.get("big") == b"\x01" * 40_000
    blob = pickle.dumps(Hostile(marker))
    for name, key in (("evidence", "k"), ("embeddings", "e")):
        with sqlite3.connect(tmp_path / "eval" / name / "cache.db") as db:
            db.execute("UPDATE Cache SET mode=4, value=? WHERE key=?", (blob, key))
        db.close()
    with EvalCache(tmp_path / "eval") as cache:
        assert cache.get_evidence("k") is None and cache.embeddings.get("e") is None  # a miss: recomputed
        assert cache.embeddings.get("big") == b"\x01" * 40_000
    assert not marker.exists()
