"""The top-k speed bench runs (its full-Gemma path at a smoke-test size, so the GPU code stays honest)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "topk_speed.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("topk_speed", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_full_gemma_path_smoke(capsys) -> None:
    bench = load_bench()
    assert bench.GEMMA3_VISION["image_size"] // bench.GEMMA3_VISION["patch_size"] == 64
    bench.main(["--full-gemma", "--gemma-layers", "1", "--image-size", "56", "--n", "5", "--batch-size", "2",
                "--k", "3", "--repeat", "1", "--threads", "1"])
    out = capsys.readouterr().out
    assert "one streaming pass" in out and "two-pass reference" in out and "speed-up" in out
    assert "same top-k scores in" in out

