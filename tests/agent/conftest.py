"""Fixtures for agent tests: a real engine on the shared tiny world (tests/conftest.py), a fake engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent.fakes import FakeEngine

TEST_KEY = "sk-test-DO-NOT-LEAK-5f2c9a7e1b"


@pytest.fixture(scope="session")
def tiny_engine(tiny_world: tuple[Path, Path]):
    """A real SteeringEngine on the tiny world, short answers."""
    from steering.engine import GenerationSettings, SteeringEngine
    from steering.models import load_vlm
    from steering.sae import load_sae

    model_dir, sae_dir = tiny_world
    vlm = load_vlm(str(model_dir), dtype="fp32", device="cpu")
    sae = load_sae(str(sae_dir), d_in=vlm.vision.width)
    return SteeringEngine(vlm, sae, settings=GenerationSettings(max_new_tokens=6, batch_size=64))


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def store(tmp_path: Path):
    from agent.store.store import Store

    with Store(tmp_path / "store") as s:
        yield s
