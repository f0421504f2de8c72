"""Drive the real `steer-tui` command in tmux as a person would, on a store made by `steer-agent`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def command(name: str) -> str | None:
    """A console script of this environment (beside the interpreter, else on PATH)."""
    return shutil.which(name, path=str(BIN)) or shutil.which(name)


pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
              pytest.mark.skipif(command("steer-tui") is None or command("steer-agent") is None,
                                 reason="steer-tui / steer-agent are not installed (pip install -e .)")]
REVIEWER = "tmux-tester"


def world_args(tmp: Path) -> list[str]:
    """--model/--sae of the toy world, or of a tiny random world when the toy world is not built."""
    from steering import toy

    if toy.is_available():
        return ["--model", str(toy.model_dir()), "--sae", str(toy.sae_dir())]
    subprocess.run([sys.executable, "-m", "steering.tiny", "--out", str(tmp / "world")], check=True,
                   capture_output=True, timeout=300)
    return ["--model", str(tmp / "world" / "model"), "--sae", str(tmp / "world" / "sae")]


class Tmux:
    """One tmux server on a private socket (never the user's), holding one session."""

    def __init__(self, socket: Path, width: int = 100, height: int = 30) -> None:
        self.base = ["tmux", "-S", str(socket)]
        self.size = (width, height)

    def start(self, command: str, env: dict[str, str]) -> None:
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        subprocess.run([*self.base, "new-session", "-d", "-s", "tui", "-x", str(self.size[0]), "-y",
                        str(self.size[1]), f"env {exports} {command}; sleep 30"], check=True)

    def keys(self, *keys: str, literal: bool = False) -> None:
        """Send keys one at a time, a little apart, as a person types (not as one pasted burst)."""
        for key in keys:
            subprocess.run([*self.base, "send-keys", "-t", "tui", *(["-l"] if literal else []), key], check=True)
            time.sleep(0.15)

    def screen(self) -> str:
        out = subprocess.run([*self.base, "capture-pane", "-p", "-t", "tui"], capture_output=True, text=True, check=False)
        return out.stdout

    def wait_for(self, text: str, timeout: float = 20.0) -> float:
        t0 = time.monotonic()
        while text not in self.screen():
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"{text!r} never appeared; the screen shows:\n{self.screen()}")
            time.sleep(0.1)
        return time.monotonic() - t0

    def wait_match(self, pattern: str, timeout: float = 20.0, first_line: bool = False) -> re.Match[str]:
        """Wait until ``pattern`` matches the screen (or only its first line, the header); its match."""
        t0 = time.monotonic()
        while True:
            screen = self.screen()
            found = re.search(pattern, screen.splitlines()[0] if first_line and screen else screen)
            if found:
                return found
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"{pattern!r} never matched; the screen shows:\n{screen}")
            time.sleep(0.1)

    def wait_gone(self, text: str, timeout: float = 20.0) -> None:
        t0 = time.monotonic()
        while text in self.screen():
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"{text!r} never went away; the screen shows:\n{self.screen()}")
            time.sleep(0.1)

    def stop(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, check=False)


def make_store(tmp: Path, env: dict[str, str]) -> Path:
    """Features 0-7 of the world, run by `steer-agent` into a fresh store."""
    store = tmp / "store"
    made = subprocess.run([command("steer-agent"), "--features", "0-7", "--store", str(store), *world_args(tmp),
                           "--max-new-tokens", "6", "--max-rounds", "2", "--no-progress"],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert made.returncode == 0, made.stderr
    return store


def open_tui(tmux: Tmux, store: Path, done: Path, home: Path) -> None:
    """`steer-tui --store STORE` in the tmux session; its exit code goes to ``done``."""
    tmux.start(f"sh -c '{command('steer-tui')} --store {store}; echo $? > {done}'",
               {"STEER_REVIEWER": REVIEWER, "PATH": os.environ.get("PATH", ""), "TERM": "xterm-256color",
                "HOME": os.environ.get("HOME", str(home))})


def wait_exit(tmux: Tmux, done: Path, timeout: float = 10.0) -> None:
    t0 = time.monotonic()
    while not done.exists() and time.monotonic() - t0 < timeout:
        time.sleep(0.1)
    assert done.exists() and done.read_text().strip() == "0", tmux.screen()


def test_review_in_the_real_app_shows_in_export(tmp_path: Path) -> None:
    env = {**os.environ, "STEER_REVIEWER": REVIEWER, "STEER_INTERP_CACHE": str(tmp_path / "cache")}
    store = make_store(tmp_path, env)

    tmux = Tmux(tmp_path / "tmux.sock")
    done = tmp_path / "exit-code"
    try:
        open_tui(tmux, store, done, tmp_path)
        tmux.wait_for("8 of 8 features", timeout=60)  # how fast it opens is bench/ matter, not a test's
        tmux.keys("Enter")  # open feature 0
        tmux.wait_for("Descriptions")
        tmux.wait_for("forced choice")  # the feature page's overview, once its record is read
        tmux.keys("a")
        tmux.wait_for(f"accepted by {REVIEWER}")
        tmux.keys("Escape")
        tmux.wait_for("8 of 8 features")
        tmux.keys("Down", "e")
        tmux.wait_for("Edit feature #1")
        # the explanation is a multi-line editor holding the old text, the cursor at its start: delete it all
        subprocess.run([*tmux.base, "send-keys", "-t", "tui", "-N", "600", "Delete"], check=True)
        tmux.keys("Edited by a person in tmux.", literal=True)
        tmux.keys("Tab", "End", "C-u")  # to the label, cleared
        tmux.keys("tmux label", literal=True)
        tmux.keys("Enter", "Enter")  # the label, then an empty reason
        tmux.wait_for("edited")
        tmux.keys("q")
        wait_exit(tmux, done)
    finally:
        tmux.stop()

    out = subprocess.run([command("steer-agent"), "export", "--store", str(store), "--out", "-"], env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    rows = {r["feature"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert rows[0]["review"]["decision"] == "accept" and rows[0]["review"]["reviewer"] == REVIEWER
    edit = rows[1]["review"]
    assert (edit["decision"], edit["explanation"], edit["label"]) == ("edit", "Edited by a person in tmux.",
                                                                       "tmux label")
    assert all(rows[f]["review"] is None for f in range(2, 8))


def test_review_flow_at_80x24(tmp_path: Path) -> None:
    """Issue 18's review walk in a small terminal: open, accept and advance, reject with a reason,
    re-run with a note and see it in the Judge tab, export with x, then read the JSONL."""
    env = {**os.environ, "STEER_REVIEWER": REVIEWER, "STEER_INTERP_CACHE": str(tmp_path / "cache")}
    store = make_store(tmp_path, env)
    export = tmp_path / "review.jsonl"
    reason = "names the shape but steering changes the colour"
    note = "look at colour"

    def shown() -> int:
        """The feature the detail view shows (its header, set once the record is loaded)."""
        return int(tmux.wait_match(r"feature #(\d+)", first_line=True).group(1))

    tmux = Tmux(tmp_path / "tmux.sock", width=80, height=24)
    done = tmp_path / "exit-code"
    try:
        open_tui(tmux, store, done, tmp_path)
        tmux.wait_for("8 of 8 features", timeout=60)
        tmux.keys("Enter")  # open the first feature
        tmux.wait_for("Descriptions")
        tmux.wait_for("forced choice")  # the feature page's overview, once its record is read
        first = shown()

        tmux.keys("a")  # accept: the view moves on to the next undecided feature
        tmux.wait_for(f"feature {first} accepted by {REVIEWER}")
        rejected = int(tmux.wait_match(rf"feature #(?!{first}\b)(\d+)", first_line=True).group(1))
        tmux.wait_for(f"#{rejected} ")
        tmux.wait_for("forced choice")  # the feature page's overview, once its record is read

        tmux.keys("r")  # reject, with a reason
        tmux.wait_for(f"Reject feature #{rejected}")
        tmux.keys(reason, literal=True)
        tmux.keys("Enter")
        tmux.wait_gone(f"Reject feature #{rejected}")
        tmux.wait_for(f"rejected by {REVIEWER}")
        assert shown() == rejected  # a rejection stays on the feature

        tmux.keys("v")  # the next undecided feature
        rerun = int(tmux.wait_match(rf"feature #(?!(?:{first}|{rejected})\b)(\d+)", first_line=True).group(1))
        tmux.wait_for("forced choice")  # the feature page's overview, once its record is read
        tmux.keys("n")  # re-run with a note to the judge
        tmux.wait_for(f"Re-run feature #{rerun}")
        tmux.keys(note, literal=True)
        tmux.keys("Enter")
        tmux.wait_gone(f"Re-run feature #{rerun}")
        tmux.keys("3")  # the Judge tab: the note heads the transcript once the re-run has written its record
        tmux.wait_for(f"reviewer's note to the judge: {note}", timeout=120)
        tmux.wait_for("What colour")  # the offline judge asked what the note asks, not just echoed it
        tmux.wait_for(f"re-run #{rerun}: 1 done", timeout=60)
        assert shown() == rerun

        tmux.keys("x")  # export, typing a path in place of the suggested one
        tmux.wait_for("Export every record as JSON lines")
        tmux.keys("End", "C-u")
        tmux.keys(str(export), literal=True)
        tmux.keys("Enter")
        tmux.wait_gone("Export every record as JSON lines", timeout=60)
        tmux.wait_for("exported 8 records", timeout=10)
        assert export.exists()
        tmux.keys("q")
        wait_exit(tmux, done)
    finally:
        tmux.stop()

    rows = {r["feature"]: r for r in map(json.loads, export.read_text().splitlines())}
    assert sorted(rows) == list(range(8))
    accepted = rows[first]["review"]
    assert (accepted["decision"], accepted["reviewer"]) == ("accept", REVIEWER)
    no = rows[rejected]
    assert (no["review"]["decision"], no["review"]["reviewer"], no["review"]["note"]) == ("reject", REVIEWER, reason)
    assert no["rejected"] is True and no["explanation"] is None and no["label"] is None
    assert no["judge_explanation"]  # the judge's answer stays, out of the way
    again = rows[rerun]
    assert again["note"] == note and again["review"] is None and again["status"] == "done"
    assert all(rows[f]["review"] is None for f in set(range(8)) - {first, rejected})
