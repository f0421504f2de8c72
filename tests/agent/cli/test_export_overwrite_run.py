"""No silent overwrite: `--export FILE` on a run, and `export --out FILE`, replace a file only when the new export
holds all of it (same store, no feature dropped); `export --store` never makes a store (issue 31, items 3-4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.store.export import ExportRefused, export_store
from agent.store.store import Store
from tests.agent.cli.test_run import steer_agent, world_args
from tests.tui.fakes import FakeEngine, fill_store


def make_store(path: Path, features: list[int]) -> Path:
    with Store(path) as store:
        fill_store(store, FakeEngine(), features)
    return path


def test_an_export_replaces_a_file_only_when_it_holds_all_of_it(tmp_path: Path) -> None:
    a, b, out = make_store(tmp_path / "a", [0, 1, 2, 3]), make_store(tmp_path / "b", [0, 1]), tmp_path / "x.jsonl"
    with Store(a) as store:
        export_store(store, out, keep="--out")
        assert {json.loads(line)["store_id"] for line in out.read_text().splitlines()} == {store.id}
        export_store(store, out, [0, 1, 2, 3], keep="--out")  # the same again (reviews updated): replaced
        before = out.read_text()
        with pytest.raises(ExportRefused) as caught:
            export_store(store, out, [0, 1], keep="--out")
        assert str(caught.value) == (f"{out} exists and holds 2 records this export would drop (features 2-3): "
                                     "pass --overwrite to replace it, or another --out")
        assert out.read_text() == before
    with Store(b) as other, pytest.raises(ExportRefused, match="holds 4 records of another store than"):
        export_store(other, out, keep="--out")
    assert out.read_text() == before


def test_export_refuses_a_folder_that_is_not_a_store_and_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "parent").mkdir()
    result = steer_agent("export", "--store", str(tmp_path / "parent"), "--out", str(tmp_path / "x.jsonl"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "is not a store" in result.stderr and "exported" not in result.stdout
    assert list((tmp_path / "parent").iterdir()) == [] and not (tmp_path / "x.jsonl").exists()


def test_a_run_does_not_replace_a_bigger_export(tiny_world, tmp_path: Path) -> None:
    out, store = tmp_path / "reviewed.jsonl", tmp_path / "store"
    with Store(make_store(tmp_path / "old", list(range(8)))) as old:
        export_store(old, out)
    before = out.read_text()
    result = steer_agent("--features", "0-3", *world_args(tiny_world), "--store", str(store), "--export", str(out),
                         "--no-progress")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (f"error: {out} exists and holds 4 records this export would drop (features 4-7): "
                                     "pass --overwrite to replace it, or another --export")
    assert out.read_text() == before and not store.exists()  # refused before anything ran or was created


@pytest.mark.slow  # three runs in real processes: CI's second stage
def test_a_run_does_not_replace_an_export_of_another_store(tiny_world, tmp_path: Path) -> None:
    out, store = tmp_path / "x.jsonl", tmp_path / "store"
    with Store(make_store(tmp_path / "old", [0, 1])) as old:
        export_store(old, out)
    before = out.read_text()
    args = ["--features", "0-1", *world_args(tiny_world), "--store", str(store), "--export", str(out), "--no-progress"]
    refused = steer_agent(*args)
    assert refused.returncode == 2 and "records of another store than" in refused.stderr, refused.stderr
    assert "--overwrite" in refused.stderr and out.read_text() == before
    assert "done" not in refused.stdout  # nothing was run
    forced = steer_agent(*args, "--overwrite")
    assert forced.returncode == 0, forced.stderr
    assert [json.loads(line)["feature"] for line in out.read_text().splitlines()] == [0, 1]
