"""A full disk: the run stops in one line, nothing stored is lost, the store still exports and resumes."""

from __future__ import annotations

import errno
import gc
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from diskcache import Cache

from agent.run.config import RunConfig
from agent.judges import OfflineJudge
from agent.run import run_features
from agent.store.store import Store, StoreError
from agent.world import world_of
from tests.agent.fakes import FakeEngine
from tests.agent.mounts import RUNNER, in_namespace, needs_mounts
from tests.agent.test_store_safety import CFG, done, steer_agent

FULL = "the disk holding {} is full; free space and rerun: finished features are kept"


class Disk:
    """SQLite's own limit on every connection the store's caches use (in any thread): while ``full``, no
    database may grow by a page, and SQLite answers SQLITE_FULL "database or disk is full"."""

    def __init__(self) -> None:
        self.full = False

    def limit(self, con: sqlite3.Connection) -> None:
        if self.full:
            (pages,) = con.execute("PRAGMA page_count").fetchone()
            con.execute(f"PRAGMA max_page_count = {pages}")
        else:
            con.execute("PRAGMA max_page_count = 1073741823")


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[Disk]:
    disk, original = Disk(), Cache._con

    def con(self: Cache) -> sqlite3.Connection:
        connection = original.fget(self)
        disk.limit(connection)
        return connection

    monkeypatch.setattr(Cache, "_con", property(con))
    yield disk


def stored(store: Path) -> dict[int, str]:
    with Store(store) as s:
        return {r.feature: r.explanation for r in s.list_records()}


def test_a_full_disk_stops_the_run_in_one_line_and_the_store_resumes(tmp_path: Path, disk: Disk,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    path, features = tmp_path / "s", list(range(64))
    with Store(path) as s:
        assert run_features(FakeEngine(), OfflineJudge(), s, features[:4], CFG).exit_code == 0
    kept = stored(path)
    gc.collect()  # a judge client an earlier test dropped must not be finalised inside this run's loop
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    disk.full = True
    with Store(path) as s, pytest.raises(StoreError) as caught:
        run_features(FakeEngine(), OfflineJudge(), s, features, RunConfig(sweep=CFG.sweep, in_flight=64))
    gc.collect()  # asyncio reports a task exception nobody read when the task is collected
    assert str(caught.value) == FULL.format(path)
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not loud, [r.getMessage()[:200] for r in loud]
    disk.full = False  # space freed
    assert {f: stored(path)[f] for f in kept} == kept, "a record stored before the disk filled was lost"
    with Store(path) as s:
        summary = run_features(FakeEngine(), OfflineJudge(), s, features, CFG)
        assert summary.exit_code == 0 and {summary.statuses[f] for f in kept} == {"skipped-done"}
        assert s.features() == features


def test_a_lease_the_disk_cannot_take_stops_the_run_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """The scheduler's workers claim each feature in the store: a full disk there ends every worker, and
    the run says so once (no task exception left to asyncio, no line per feature)."""
    claims: list[int] = []
    original = Store.claim

    def claim(self: Store, f: int, holder: str, ttl: float) -> bool:
        if len(claims) == 6:  # the disk fills up after six claims
            def full(*_args: object, **_kwargs: object) -> None:
                raise sqlite3.OperationalError("database or disk is full")

            monkeypatch.setattr(self._main, "set", full)
        claims.append(f)
        return original(self, f, holder, ttl)

    monkeypatch.setattr(Store, "claim", claim)
    caplog.set_level(logging.DEBUG)
    with Store(tmp_path / "s") as s, pytest.raises(StoreError) as caught:
        run_features(FakeEngine(), OfflineJudge(), s, range(32), RunConfig(sweep=CFG.sweep, in_flight=16))
    gc.collect()
    assert str(caught.value) == FULL.format(tmp_path / "s")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text[-3000:]


def test_a_store_full_at_open_still_exports_and_a_run_stops_before_loading(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s"
    with Store(path) as s:
        s.bind_world(world_of(FakeEngine()))
        s.put_record(done(1))
    import agent.store.sqlite

    def full(*_args: object, **_kwargs: object) -> Cache:  # diskcache writes its settings on open
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(agent.store.sqlite, "Cache", full)
    with Store(path) as s:
        assert [r.feature for r in s.list_records()] == [1] and s.world() is not None
        loaded: list[int] = []

        def engine() -> FakeEngine:
            loaded.append(1)
            return FakeEngine()

        assert run_features(engine, OfflineJudge(), s, [1], CFG).statuses == {1: "skipped-done"}
        with pytest.raises(StoreError, match=f"^{FULL.format(path)}$"):
            run_features(engine, OfflineJudge(), s, [1, 2], CFG)
        assert not loaded, "the model was loaded for a run that cannot store anything"
        with pytest.raises(StoreError, match="is full; free space"):
            s.set_review(1, "accept")


def test_a_value_file_the_disk_cannot_take_is_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long record lives in a value file beside the database: ENOSPC writing it is the same one line."""
    from agent.store.disk import TextOnlyDisk

    def no_space(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with Store(tmp_path / "s") as s:
        s.put_record(done(1))
        monkeypatch.setattr(TextOnlyDisk, "store", no_space)
        with pytest.raises(StoreError) as caught:
            s.put_record(done(2, "x" * 40_000))
        assert str(caught.value) == FULL.format(tmp_path / "s")
        monkeypatch.undo()
        assert [r.feature for r in s.list_records()] == [1]




@needs_mounts
def test_a_real_full_disk(tmp_path: Path) -> None:
    """On a 32 MiB tmpfs: a run that fills it stops in one line; on the full disk the store exports; once
    space is freed the run resumes and keeps what was stored."""
    (tmp_path / "runner.py").write_text(RUNNER)
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    result = in_namespace(f"""
        set -u; D={disk}; O={out}; run() {{ "$PY" {tmp_path}/runner.py $D/store "$@"; }}
        mount -t tmpfs -o size=32m none $D
        run 0 3 > $O/first.out 2> $O/first.err; echo "first $?"
        free=$(df --output=avail -k $D | tail -1)
        dd if=/dev/zero of=$D/filler bs=1k count=$((free - 1536)) 2>/dev/null
        run 0 999 > $O/full.out 2> $O/full.err; echo "full $?"
        dd if=/dev/zero of=$D/filler2 bs=4k 2>/dev/null; echo "free $(df --output=avail -k $D | tail -1 | tr -d " ")"
        "$PY" -m agent.cli export --store $D/store --out $O/x.jsonl > $O/export.out 2> $O/export.err
        echo "export $?"
        rm $D/filler $D/filler2
        run 0 19 > $O/resume.out 2> $O/resume.err; echo "resume $?"
    """)
    steps = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert steps == {"first": "0", "full": "2", "free": "0", "export": "0", "resume": "0"}, \
        (result.stdout, result.stderr, *(p.read_text()[-2000:] for p in sorted(out.glob("*.err"))))
    assert (out / "full.err").read_text() == f"error: {FULL.format(disk / 'store')}\n"
    assert (out / "export.err").read_text() == "" and (out / "resume.err").read_text() == ""
    exported = (out / "x.jsonl").read_text().splitlines()
    assert len(exported) >= 4 and "exported" in (out / "export.out").read_text()
    assert (out / "resume.out").read_text().strip() == "['done', 'skipped-done'] 0"
