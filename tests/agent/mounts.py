"""Real mounts for store tests, in a user and mount namespace (``unshare -rm``): a small tmpfs that fills up,
a read-only bind. Root ignores file permissions, a read-only mount it cannot."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def can_mount() -> bool:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k none /tmp && mount -o "
                            "remount,ro,bind /tmp"], capture_output=True, timeout=30)
    return probe.returncode == 0


RUNNER = """
import logging, sys
from agent.run.config import RunConfig, SweepConfig
from agent.judges import OfflineJudge
from agent.run import run_features
from agent.store.store import Store, StoreError
from tests.agent.fakes import FakeEngine

logging.basicConfig(level=logging.WARNING)  # as the CLI: every warning and error shows
store, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
config = RunConfig(sweep=SweepConfig(strengths=(5.0, 20.0, 80.0), background=2, panel=0), in_flight=64)
try:
    with Store(store) as s:
        summary = run_features(FakeEngine(d_sae=1000), OfflineJudge(), s, range(first, last + 1), config)
except StoreError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
print(sorted(set(summary.statuses.values())), summary.exit_code)
sys.exit(summary.exit_code)
"""
"""``python RUNNER STORE FIRST LAST``: explain features FIRST-LAST with the fake engine and the offline judge,
reporting a StoreError in one line (exit 2) as the CLI does."""

needs_mounts = pytest.mark.skipif(not can_mount(), reason="needs user and mount namespaces (unshare -rm)")


def in_namespace(script: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run bash ``script`` (from the checkout's root) where it may mount; its mounts end with it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PY": sys.executable}
    return subprocess.run(["unshare", "-rm", "bash", "-c", script], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env=env)
