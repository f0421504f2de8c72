"""`steer-agent` in a terminal of 80 columns: what it does from the first second, and lines that fit."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from agent.cli.progress import stats_lines
from agent.run.events import RunStats

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def run_in_terminal(args: list[str], columns: int = 80, timeout: float = 240) -> tuple[int, list[str]]:
    """Run ``steer-agent args`` on a pseudo-terminal of ``columns``; (exit code, screen lines seen)."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "24", "TERM": "xterm-256color"}
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            proc.kill()
            raise AssertionError("the CLI printed nothing for too long")
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    code = proc.wait(timeout=30)
    text = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))
    return code, [line for line in re.split(r"[\r\n]", text) if line.strip()]


def test_run_says_what_it_does_and_fits_80_columns(tiny_world: tuple[Path, Path], tmp_path: Path) -> None:
    model, sae = tiny_world
    code, lines = run_in_terminal(["--model", str(model), "--sae", str(sae), "--max-new-tokens", "4",
                                   "--features", "0-7", "--store", str(tmp_path / "store"), "--table-limit", "8"])
    screen = "\n".join(lines)
    assert code == 0, screen
    assert "loading the model" in screen
    assert "measuring the hidden-state norm" in screen
    assert "probing 8 features x 7 strengths" in screen
    assert re.search(r"probes \d+ run", screen), screen  # probes counted as they finish (no total that grows)
    assert re.search(r"sweep +\S* *\d+/8", screen), screen  # a phase bar whose total is known from the start
    assert "r0:" not in screen  # rounds in words, not a code
    assert "rounds/probes: judge rounds and probes run" in screen  # the table's 1/9 column explained
    # lines that carry the store's path as a command to paste are never wrapped (a wrapped path cannot be pasted)
    path_lines = ("store: ", "next: review", "then share them")
    too_wide = [line for line in lines if len(line.rstrip()) > 80 and not line.lstrip().startswith(path_lines)]
    assert not too_wide, too_wide


def test_stats_lines_fit_80_columns_with_big_numbers() -> None:
    s = RunStats(total=5000, to_run=5000, in_flight={i: i % 4 for i in range(64)}, probes_done=123456,
                 probes_queued=234567, judge_calls=98765, prompt_tokens=123_456_789, completion_tokens=9_876_543,
                 cost_usd=1234.5678, failed=4321, errors=4321, started=time.monotonic() - 3600,
                 judge_live_calls=98765, judge_seconds=98765 * 123.4, judge_format="json_object+schema")
    lines = stats_lines(s)
    assert lines[-1] == "judge endpoint 123.4 s/call over 98765 requests, format json_object+schema"
    for line in lines:
        assert len(line) <= 80, line
