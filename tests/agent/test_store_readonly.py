"""A store on a read-only folder is read (export, a run with nothing to do, the TUI), and a write says read-only."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.judges import OfflineJudge
from agent.run import run_features
from agent.store.store import Store, StoreError
from agent.world import world_of
from tests.agent.fakes import FakeEngine
from tests.agent.mounts import RUNNER, in_namespace, needs_mounts
from tests.agent.test_store_safety import CFG, done, make_store

READ_ONLY = ("store {} cannot be written (it is on a read-only folder): reading it works (export, the TUI); "
             "to write, copy it to a writable folder or pass another --store")


@needs_mounts
def test_a_store_on_a_read_only_mount(tmp_path: Path) -> None:
    """A real read-only bind mount (root ignores file modes, not a read-only mount): export, a run with
    nothing to do and a plain open read it; a run with work and a review say read-only in one line."""
    store, out = make_store(tmp_path / "store", range(4)), tmp_path / "out"
    out.mkdir()
    (tmp_path / "runner.py").write_text(RUNNER)
    result = in_namespace(f"""
        set -u; S={store}; O={out}; run() {{ "$PY" {tmp_path}/runner.py $S "$@"; }}
        mount --bind -o ro $S $S
        touch $S/x 2> /dev/null; echo "touch $?"
        "$PY" -m agent.cli export --store $S --out $O/x.jsonl > $O/export.out 2> $O/export.err; echo "export $?"
        run 1 3 > $O/nothing.out 2> $O/nothing.err; echo "nothing $?"
        run 1 5 > $O/work.out 2> $O/work.err; echo "work $?"
        "$PY" -m agent.cli review accept --feature 1 --store $S > $O/review.out 2> $O/review.err; echo "review $?"
        "$PY" -c "from agent.store.store import Store; s = Store('$S'); print(len(s.list_records()), bool(s.read_only))" \\
            > $O/open.out 2> $O/open.err; echo "open $?"
    """)
    steps = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    errors = {p.stem: p.read_text() for p in sorted(out.glob("*.err")) if p.read_text()}
    assert steps == {"touch": "1", "export": "0", "nothing": "0", "work": "2", "review": "2", "open": "0"}, \
        (result.stdout, result.stderr, errors)
    line = f"error: {READ_ONLY.format(store)}\n"
    assert errors == {"work": line, "review": line}
    assert [json.loads(x)["feature"] for x in (out / "x.jsonl").read_text().splitlines()] == [0, 1, 2, 3]
    assert (out / "nothing.out").read_text() == "['skipped-done'] 0\n"
    assert (out / "open.out").read_text() == "4 True\n"


@pytest.mark.slow
@needs_mounts
def test_the_cli_runs_on_a_read_only_mount(tiny_world: tuple[Path, Path], tmp_path: Path) -> None:
    """`steer-agent run` on the tiny world: nothing to do reads the store, work to do is one line."""
    model, sae = tiny_world
    store, out = tmp_path / "store", tmp_path / "out"
    out.mkdir()
    world = f"--model {model} --sae {sae} --max-new-tokens 4 --strengths 4,8,16,32 --no-progress --store {store}"
    result = in_namespace(f"""
        set -u; S={store}; O={out}; agent() {{ "$PY" -m agent.cli "$@"; }}
        agent run --features 0-3 {world} > $O/first.out 2> $O/first.err; echo "first $?"
        mount --bind -o ro $S $S
        agent run --features 0-3 {world} > $O/nothing.out 2> $O/nothing.err; echo "nothing $?"
        agent run --features 0-5 {world} > $O/work.out 2> $O/work.err; echo "work $?"
    """)
    steps = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert steps == {"first": "0", "nothing": "0", "work": "2"}, (result.stdout, result.stderr)
    assert "0 done, 0 failed, 4 already finished" in (out / "nothing.out").read_text()
    assert "error" not in (out / "nothing.err").read_text()
    assert (out / "work.err").read_text() == f"error: {READ_ONLY.format(store)}\n"


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it to make store folders read as not writable (as a read-only mount makes them): a store then
    opens its databases with SQLite's mode=ro, which refuses every write whoever runs it."""
    import agent.store.sqlite

    return lambda: monkeypatch.setattr(agent.store.sqlite, "read_only_reason",
                                       lambda _store: "it is on a read-only folder")


def test_a_read_only_store_reads_and_refuses_writes_in_one_line(tmp_path: Path, read_only: Callable[[], None],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = make_store(tmp_path / "s")
    read_only()
    before = (path / "main" / "cache.db").read_bytes()
    with Store(path) as s:
        assert [r.feature for r in s.list_records()] == [1, 2, 3] and s.world() is not None
        assert s.probe_count() == 0 and s.get_probe("k") is None
        for write in (lambda: s.set_review(1, "accept"), lambda: s.put_record(done(4)),
                      lambda: s.set_meta("x", 1), lambda: s.claim(4, "me", 60)):
            with pytest.raises(StoreError) as caught:
                write()
            assert str(caught.value) == READ_ONLY.format(path)
        assert run_features(FakeEngine(), OfflineJudge(), s, [1, 2], CFG).statuses == {1: "skipped-done",
                                                                                   2: "skipped-done"}
        with pytest.raises(StoreError, match="cannot be written .*read-only folder"):
            run_features(FakeEngine(), OfflineJudge(), s, [1, 5], CFG)
    assert main(["export", "--store", str(path), "--out", str(tmp_path / "x.jsonl")]) == 0
    assert "exported 3 records" in capsys.readouterr().out
    assert (path / "main" / "cache.db").read_bytes() == before


def test_an_empty_read_only_folder_reads_as_an_empty_store(tmp_path: Path, read_only: Callable[[], None]) -> None:
    (tmp_path / "s").mkdir()
    read_only()
    with Store(tmp_path / "s") as s:
        assert s.features() == [] and s.world() is None and s.counts()["records"] == 0
    assert list((tmp_path / "s").iterdir()) == []


async def test_the_tui_browses_a_read_only_store(tmp_path: Path, read_only: Callable[[], None]) -> None:
    from tui.app import create_app

    path = tmp_path / "s"
    with Store(path) as s:
        s.bind_world(world_of(FakeEngine()))
        for f in range(4):
            s.put_record(done(f))
    read_only()
    with Store(path) as s:
        app = create_app(s, engine=FakeEngine(), reviewer="tester")
        async with app.run_test(size=(100, 30)) as pilot:
            for _ in range(100):
                await pilot.pause(0.05)
                if len(app.rows) == 4:
                    break
            assert sorted(app.rows) == [0, 1, 2, 3]
        assert s.read_only is not None
