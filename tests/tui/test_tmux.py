"""Drive the real `steer-tui` command in tmux as a person would, on a store made by `steer-agent`."""

from __future__ import annotations

import json
import os
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

    def stop(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, check=False)


def test_review_in_the_real_app_shows_in_export(tmp_path: Path) -> None:
    store = tmp_path / "store"
    env = {**os.environ, "STEER_REVIEWER": REVIEWER, "STEER_INTERP_CACHE": str(tmp_path / "cache")}
    made = subprocess.run([command("steer-agent"), "--features", "0-7", "--store", str(store), *world_args(tmp_path),
                           "--max-new-tokens", "6", "--max-rounds", "2", "--no-progress"],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert made.returncode == 0, made.stderr

    tmux = Tmux(tmp_path / "tmux.sock")
    done = tmp_path / "exit-code"
    try:
        tmux.start(f"sh -c '{command('steer-tui')} --store {store}; echo $? > {done}'",
                   {"STEER_REVIEWER": REVIEWER, "PATH": os.environ.get("PATH", ""), "TERM": "xterm-256color",
                    "HOME": os.environ.get("HOME", str(tmp_path))})
        tmux.wait_for("8 of 8 features", timeout=60)  # how fast it opens is bench/ matter, not a test's
        tmux.keys("Enter")  # open feature 0
        tmux.wait_for("Descriptions")
        tmux.wait_for("baseline")
        tmux.keys("a")
        tmux.wait_for(f"accepted by {REVIEWER}")
        tmux.keys("Escape")
        tmux.wait_for("8 of 8 features")
        tmux.keys("Down", "e")
        tmux.wait_for("Edit feature #1")
        tmux.keys("Edited by a person in tmux.", literal=True)
        tmux.keys("Enter")
        tmux.keys("tmux label", literal=True)
        tmux.keys("Enter", "Enter")  # the label, then an empty reason
        tmux.wait_for("edited")
        tmux.keys("q")
        t0 = time.monotonic()
        while not done.exists() and time.monotonic() - t0 < 10:
            time.sleep(0.1)
        assert done.exists() and done.read_text().strip() == "0", tmux.screen()
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
