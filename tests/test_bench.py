"""The benchmarks' CPU modes stay runnable (tiny settings; the figures themselves are not tested)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each runs a benchmark script in a subprocess (10-45 s)

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _run(script: str, *args: str) -> str:
    out = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                         timeout=600, cwd=BENCH)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_throughput_cpu_mode_runs_and_ours_matches_plain() -> None:
    out = _run("throughput.py", "--rows", "8", "--batch", "8", "--new-tokens", "4", "--repeats", "1")
    assert "ours (prefix cache)" in out and "x ref" in out
    assert "greedy texts identical, plain vs ours: True" in out


def test_end_to_end_cpu_mode_runs() -> None:
    out = _run("end_to_end.py", "--features", "6", "--latency", "0.05", "--concurrency", "4", "--new-tokens", "4")
    assert "features: {'done': 6}" in out
    assert "lower bound" in out


def test_gpu_code_paths_run_on_a_shrunken_config() -> None:
    # The --gpu branches build their own full-size Gemma-3 and processor; --smoke runs exactly that code
    # on the CPU with narrow layers, so a GPU session never finds a broken script.
    out = _run("throughput.py", "--smoke", "--rows", "4", "--batch", "4", "--new-tokens", "3", "--repeats", "1")
    assert "model bench/gemma3-4b-random" in out
    assert "greedy texts identical, plain vs ours: True" in out
    out = _run("end_to_end.py", "--smoke", "--features", "4", "--latency", "0.05", "--concurrency", "4",
               "--new-tokens", "3")
    assert "features: {'done': 4}" in out
