"""Probe cache keys follow a base image's pixels, not only its name: a file rewritten in place or a changed
built-in drawing is a new image, so no cache serves the old one's answers."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

import steering.images as images
from steering.probes import Probe

FP = {"model": "m", "revision": "r", "sae": "s", "layer": 1}


def _write(path: Path, data: bytes, mtime_ns: int) -> None:
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_named_plain_images_keep_the_key_they_always_had() -> None:
    # Stores filled before image identities joined the key stay valid for white, black and noise.
    for base in ("white", "black", "noise"):
        p = Probe(feature=3, strength=2.0, base_image=base)
        old = hashlib.sha256(json.dumps({"probe": p.to_dict(), "engine": FP}, sort_keys=True).encode()).hexdigest()
        assert p.key(FP) == old


def test_a_file_rewritten_in_place_is_a_new_image(tmp_path: Path) -> None:
    path = tmp_path / "base.png"
    _write(path, b"first image", 1_000_000_000)
    probe = Probe(feature=3, strength=2.0, base_image=str(path))
    first = probe.key(FP)
    _write(path, b"other image", 2_000_000_000)
    assert probe.key(FP) != first
    _write(path, b"first image", 3_000_000_000)  # the same bytes again: the same image
    assert probe.key(FP) == first


def test_a_changed_drawing_is_a_new_image(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = Probe(feature=3, strength=2.0, base_image="object-a")
    before = probe.key(FP)
    images.object_digest.cache_clear()
    monkeypatch.setitem(images.OBJECT_DRAWINGS, "object-a", ("black", "cross", "checkered", "small", 0.35))
    try:
        assert probe.key(FP) != before
    finally:
        images.object_digest.cache_clear()


def test_the_eval_cache_runs_a_rewritten_image_again(tmp_path: Path) -> None:
    from agent.eval.cache import EvalCache
    from tests.agent.fakes import FakeEngine

    engine = FakeEngine()
    path = tmp_path / "base.png"
    _write(path, b"first image", 1_000_000_000)
    probe = Probe(feature=3, strength=20.0, base_image=str(path))
    with EvalCache(tmp_path / "cache") as cache:
        cache.run_probes(engine, [probe])
        cache.run_probes(engine, [probe])
        assert len(engine.calls) == 1  # unchanged file: answered from the cache
        _write(path, b"other image", 2_000_000_000)
        cache.run_probes(engine, [probe])
        assert len(engine.calls) == 2


def _image(path: Path, pixels, mtime_ns: int) -> None:
    from PIL import Image

    Image.fromarray(pixels).save(path)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_the_engine_reads_a_rewritten_image_again(tiny_engine, tmp_path: Path) -> None:
    """What the engine keeps of an image (inputs, unsteered logits, vision prefix) follows the file: a run
    after a rewrite answers as a fresh engine does on the new file."""
    import numpy as np

    from steering.engine import SteeringEngine

    path = tmp_path / "base.png"
    white = np.full((32, 32, 3), 255, dtype=np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    probe = Probe(feature=1, strength=3.0, base_image=str(path))
    _image(path, white, 1_000_000_000)
    first_norm = tiny_engine.hidden_norm(str(path))
    first = tiny_engine.run([probe])[0]
    _image(path, noise, 2_000_000_000)
    again = tiny_engine.run([probe])[0]
    fresh = SteeringEngine(tiny_engine.vlm, tiny_engine.sae, settings=tiny_engine.settings).run([probe])[0]
    assert again.kl_first == pytest.approx(fresh.kl_first) and again.texts == fresh.texts
    assert again.kl_first != pytest.approx(first.kl_first)  # the two images do differ for this model
    assert tiny_engine.hidden_norm(str(path)) != pytest.approx(first_norm)
