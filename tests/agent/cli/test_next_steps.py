"""After a run, the CLI says what to do next: the steer-tui command that opens its store, then export."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest


def test_a_finished_run_prints_the_review_and_export_commands(tiny_world: tuple[Path, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli.main import main

    model, sae = tiny_world
    monkeypatch.chdir(tmp_path)
    args = ["--model", str(model), "--sae", str(sae), "--max-new-tokens", "4", "--features", "0-1",
            "--store", "runs/s", "--no-progress", "--table-limit", "0"]
    assert main(args) == 0
    out = capsys.readouterr().out
    review = next(line for line in out.splitlines() if line.startswith("next: review"))
    command = shlex.split(review.split(": ", 2)[2])
    assert command[:3] == ["steer-tui", "--store", "runs/s"]  # relative to the working folder, as typed
    assert command[command.index("--model") + 1] == str(model) and command[command.index("--sae") + 1] == str(sae)
    assert "steer-agent export --store runs/s --html site (or --out explanations.jsonl)" in out


def test_a_store_outside_the_working_folder_keeps_its_full_path() -> None:
    from types import SimpleNamespace

    from agent.cli.run import next_steps

    prepared: Any = SimpleNamespace(store=SimpleNamespace(path="/elsewhere/store"), world=SimpleNamespace(
        model=None, sae=None, layer=None, revision=None))
    lines = next_steps(prepared)
    assert lines[0] == "next: review the explanations: steer-tui --store /elsewhere/store"
