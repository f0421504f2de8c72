"""`steer-agent probe` as a user runs it, on the tiny world that `python -m steering.tiny` writes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _run(*args: str) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "agent.cli", "probe", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_probe_json(tiny_world) -> None:
    model, sae = map(str, tiny_world)
    out = _run("--model", model, "--sae", sae, "--feature", "0", "--strengths", "0,8,32", "--json",
               "--max-new-tokens", "12")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["strength"] for r in rows] == [0.0, 8.0, 32.0]
    assert all(len(r["texts"]) == 1 for r in rows)
    assert rows[0]["texts"] != rows[2]["texts"]
    assert rows[0]["kl_first"] == 0.0 < rows[2]["kl_first"]


def test_probe_table_with_samples_and_question(tiny_world, capsys, monkeypatch) -> None:
    """In this process (the subprocess path is test_probe_json's): the table with samples and a question."""
    from agent.cli.main import main

    monkeypatch.setenv("COLUMNS", "200")
    model, sae = map(str, tiny_world)
    code = main(["probe", "--model", model, "--sae", sae, "--feature", "1", "--strengths", "16", "--samples", "2",
                 "--question", "What colour is the highlighted element?", "--max-new-tokens", "6"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "feature 1" in out.out and "What colour" in out.out


@pytest.mark.slow  # a dozen subprocesses
def test_bad_inputs_exit_2_with_one_line(tiny_world, tmp_path) -> None:
    model, sae = map(str, tiny_world)
    cases = [
        (["--model", model, "--sae", sae, "--feature", "999"], "out of range"),
        (["--model", model, "--sae", sae, "--feature", "1", "--layer", "7"], "layer 7 is out of range"),
        (["--model", str(tmp_path / "nope"), "--sae", sae, "--feature", "1"], "does not exist"),
        (["--model", model, "--sae", str(tmp_path), "--feature", "1"], "holds no SAE"),
        (["--model", model, "--feature", "1"], "--sae"),
    ]
    for args, message in cases:
        out = _run(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert message in out.stderr, (args, out.stderr)
        assert out.stderr.strip().count("\n") == 0, out.stderr
    bad = _run("--model", model, "--sae", sae, "--feature", "1", "--strengths", "a,b")
    assert bad.returncode == 2 and "bad --strengths" in bad.stderr
