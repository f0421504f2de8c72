"""Fixtures: tiny random models of every family, and an engine on the shared tiny world (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from steering import tiny


@pytest.fixture(scope="session", params=tiny.FAMILIES)
def family_model(request: pytest.FixtureRequest):
    """(family, model, VisionInfo) for each supported family, random weights."""
    from steering.models import inspect_vision

    model = tiny.tiny_model(request.param)
    return request.param, model, inspect_vision(model)


@pytest.fixture(scope="session")
def tiny_engine(tiny_world: tuple[Path, Path]):
    from steering.engine import GenerationSettings, SteeringEngine
    from steering.models import load_vlm
    from steering.sae import load_sae

    model_dir, sae_dir = tiny_world
    vlm = load_vlm(model_dir)
    return SteeringEngine(vlm, load_sae(sae_dir), settings=GenerationSettings(max_new_tokens=12))
