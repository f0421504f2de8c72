"""`--model owner/name` without the hub: said at once, in one line, with no retries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}],
                         ids=["HF_HUB_OFFLINE", "hub-unreachable"])
def test_an_uncached_hub_model_offline_fails_at_once(env: dict[str, str], tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "agent.cli", "--model", "nonexistent-org/nope", "--sae",
                             "nonexistent-org/nope-sae/layer3", "--features", "0-3", "--store", str(tmp_path / "s"),
                             "--no-progress"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HF_HOME": str(tmp_path / "hf"), **env})
    assert result.returncode == 2
    assert "nonexistent-org/nope" in result.stderr and "not in the Hugging Face cache" in result.stderr
    assert "Retrying" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
