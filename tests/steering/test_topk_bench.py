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


def test_mode_hits_on_the_tiny_world(tiny_engine, tmp_path) -> None:
    import numpy as np
    from PIL import Image

    from steering.topk import EncoderSpec, FolderSource, TopKConfig, collect_topk

    spec = importlib.util.spec_from_file_location("topk_modes", BENCH.with_name("topk_modes.py"))
    modes_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(modes_bench)
    rng = np.random.default_rng(2)
    (tmp_path / "img").mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (56, 56, 3), dtype=np.uint8)).save(tmp_path / "img" / f"{i}.png")
    topk = collect_topk(EncoderSpec.from_vlm(tiny_engine.vlm, tiny_engine.sae), tiny_engine.sae,
                        FolderSource(tmp_path / "img"), tmp_path / "topk", TopKConfig(k=3), progress=False)
    features = [f for f in range(topk.d_sae) if topk.ids[f, 0] >= 0][:3]
    truth = {f: {"family": "colour", "value": "red"} for f in features}
    hits = modes_bench.mode_hits(tiny_engine, topk, truth, features, strength=30.0, hybrid_strength=15.0, n_images=2)
    assert set(hits) == {"steering", "topk", "hybrid"}
    assert all(d["n"] == 3 and 0 <= d["hits"] <= 3 and len(d["texts"]) == 3 for d in hits.values())
