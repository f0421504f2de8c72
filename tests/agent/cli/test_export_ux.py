"""`steer-agent export`: rejected answers are not exported as valid, no silent overwrite, a --help that fits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def steer_agent(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, timeout=120,
                          env=os.environ.copy())


def test_export_keeps_rejected_answers_out_of_the_top_level_and_never_overwrites(tmp_path: Path) -> None:
    from agent.store.store import Store
    from tests.tui.fakes import FakeEngine, fill_store

    with Store(tmp_path / "store") as store:
        fill_store(store, FakeEngine(), [0, 1])
        store.set_review(1, "reject", reviewer="ann", note="too vague")
    out = tmp_path / "out.jsonl"
    first = steer_agent("export", "--store", str(tmp_path / "store"), "--out", str(out))
    assert first.returncode == 0, first.stderr
    rows = {r["feature"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows[0]["explanation"] and rows[0]["rejected"] is False
    rejected = rows[1]
    assert (rejected["explanation"], rejected["label"], rejected["rejected"]) == (None, None, True)
    assert rejected["judge_explanation"] and rejected["review"]["decision"] == "reject"
    assert rejected["review"]["note"] == "too vague"

    out.write_text("keep me\n")
    again = steer_agent("export", "--store", str(tmp_path / "store"), "--out", str(out))
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert out.read_text() == "keep me\n"
    forced = steer_agent("export", "--store", str(tmp_path / "store"), "--out", str(out), "--overwrite")
    assert forced.returncode == 0 and len(out.read_text().splitlines()) == 2


def test_export_help_lists_only_what_an_export_uses() -> None:
    text = steer_agent("export", "--help").stdout
    for flag in ("--dtype", "--device", "--batch-size", "--decode", "--no-compile", "--max-new-tokens"):
        assert flag not in text, flag
    for flag in ("--store", "--out", "--features", "--overwrite", "--model", "--sae", "--layer"):
        assert flag in text, flag
