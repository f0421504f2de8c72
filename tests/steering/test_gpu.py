"""The engine on CUDA (skipped without it; `bench/gpu_session.sh tests` runs them on a GPU machine).

The CPU suite pins every invariant on the toy world; these check that nothing changes on the GPU:
the fast decode path (also compiled with CUDA graphs) and the vision prefix cache give the tokens of
plain HF generate, and steering still names the toy features' concepts in bf16.
"""

from __future__ import annotations

import pytest
import torch

from steering import toy

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not toy.is_available(), reason="toy world not built (python -m steering.toy.build)")]


def _engine(dtype: str = "float32", **settings):  # type: ignore[no-untyped-def]
    from steering.engine import GenerationSettings, SteeringEngine
    from steering.models import load_vlm
    from steering.sae import load_sae

    vlm = load_vlm(toy.model_dir(), dtype=dtype, device="cuda")
    return SteeringEngine(vlm, load_sae(toy.sae_dir()), settings=GenerationSettings(max_new_tokens=24, **settings))


def _probes():  # type: ignore[no-untyped-def]
    from steering.probes import Probe

    strengths = toy.ground_truth_meta()["strengths"]
    mixed = [Probe(f, s) for f in (8, 13, 14, 35, 38, 42) for s in strengths]
    mixed += [Probe(None), Probe(8, strengths[-1], direction="random", seed=3),
              Probe(14, strengths[1], samples=4, seed=7, greedy=False),
              Probe(42, strengths[1], prompt="ask", question="What shape is the highlighted element?")]
    return mixed


def _texts(engine) -> list[tuple[str, ...]]:  # type: ignore[no-untyped-def]
    return [r.texts for r in engine.run(_probes())]


@pytest.fixture(scope="module")
def reference() -> list[tuple[str, ...]]:
    """Plain HF generate, no prefix cache, in float32: what every faster path must reproduce."""
    return _texts(_engine(decode="hf", prefix_cache=False))


def test_steering_changes_the_answer_on_cuda(reference: list[tuple[str, ...]]) -> None:
    baseline = reference[-4]
    assert sum(t != baseline for t in reference[:18]) >= 12


@pytest.mark.parametrize("settings", [
    {"decode": "hf", "prefix_cache": True},
    {"decode": "fast", "prefix_cache": True, "compile_decode": False},
    {"decode": "fast", "prefix_cache": False, "compile_decode": False},
    {"decode": "fast", "prefix_cache": True, "compile_decode": True},
], ids=["prefix-cache", "fast", "fast-no-prefix", "fast-compiled"])
def test_faster_paths_give_the_same_tokens(reference: list[tuple[str, ...]], settings: dict) -> None:
    engine = _engine(**settings)
    assert _texts(engine) == reference
    assert _texts(engine) == reference  # a second call reuses the kept cache and compiled step


def test_bf16_still_names_the_toy_concepts() -> None:
    from steering.probes import Probe

    engine = _engine("bfloat16")
    strength = toy.ground_truth_meta()["strengths"][1]
    gt = toy.ground_truth()
    results = engine.run([Probe(f, strength) for f in (8, 13, 14, 35, 38, 42)])
    named = [toy.names_value(r.texts[0], gt[r.probe.feature]["value"], gt[r.probe.feature]["family"])
             for r in results]
    assert sum(named) >= 5, [r.texts[0] for r in results]
    assert engine.run([Probe(None)])[0].texts[0].startswith("nothing")


def test_batch_size_comes_from_free_gpu_memory() -> None:
    engine = _engine()
    rows = engine.batch_rows()
    assert rows > 32  # the CPU default; a GPU holds many more toy rows
    free, _total = torch.cuda.mem_get_info()
    assert free > 0
