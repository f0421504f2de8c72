"""Planted features: the plan per seed, foreground patches, class-mean directions, and (slow) a real build."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from steering import toy
from steering.toy import planted, scenes


def test_plan_is_seeded_and_covers_every_kind() -> None:
    a, b = planted.plan(0), planted.plan(1)
    assert a == planted.plan(0) and a != b
    kinds = {k: sum(s["kind"] == k for s in a) for k in planted.COUNTS}
    assert kinds == planted.COUNTS
    for s in a:
        fams = [f for f, _ in s["claims"]]
        assert len(fams) == len(set(fams))  # a pair combines two families
        assert planted.SCALES[0] <= s["scale"] <= planted.SCALES[1]
        if s["kind"] == "context":
            assert fams == ["pattern"]


def test_foreground_marks_object_patches_only() -> None:
    obj = scenes.Scene("object", "red", "square", "solid", "large", cx=0.25, cy=0.25, extent=0.4)
    fg = planted.foreground([obj, scenes.Scene("field", "red", pattern="solid"), scenes.Scene("empty")], grid=8)
    grid = fg[0].reshape(8, 8)
    assert grid[1, 1] and not grid[6, 6]
    assert fg[1].all() and not fg[2].any()


def test_means_recover_a_planted_class_direction() -> None:
    gen = torch.Generator().manual_seed(0)
    scene_list = [scenes.Scene("field", c, pattern="solid") for c in ("red", "blue") * 20]
    red = torch.zeros(16)
    red[3] = 1.0
    acts = torch.randn(len(scene_list), 4, 16, generator=gen) * 0.1
    acts += torch.stack([red if s.colour == "red" else torch.zeros(16) for s in scene_list])[:, None, :]
    d = planted.Means(acts, scene_list).direction([("colour", "red")])
    assert d.norm().item() == pytest.approx(1.0)
    assert d[3].item() > 0.95


@pytest.mark.slow
@pytest.mark.skipif(not toy.is_available(), reason="toy world not built")
def test_build_writes_an_sae_the_core_loads(tmp_path: Path) -> None:
    from steering.sae import load_sae
    from steering.toy import truth

    out = planted.build(tmp_path / "p", seed=2, n_scenes=300)
    sae = load_sae(out)
    gt = truth.load(out)
    assert sae.d_sae == len(gt) == sum(planted.COUNTS.values())
    for f, v in gt.items():
        norm = sae.direction(f).norm().item()
        assert norm == pytest.approx(v["scale"], rel=1e-4)
        assert v["kind"] in planted.COUNTS and v["claims"]
    assert planted.ensure(out, seed=2) == out
    built = (out / "ae.pt").stat().st_mtime_ns
    assert planted.ensure(out, seed=2) == out and (out / "ae.pt").stat().st_mtime_ns == built  # kept


@pytest.mark.slow
@pytest.mark.skipif(not toy.is_available(), reason="toy world not built")
def test_a_planted_dictionary_of_another_world_is_built_again(tmp_path: Path) -> None:
    import json
    import shutil

    import torch

    from steering.toy import DATA_DIR, truth

    world = tmp_path / "world"
    shutil.copytree(DATA_DIR, world)
    out = planted.ensure(tmp_path / "p", seed=1, source=world)
    first = truth.load_meta(out)["source_world"]
    assert first == planted.source_world(world)
    state = torch.load(world / "sae" / "ae.pt", weights_only=True)
    state["b_dec"] = state["b_dec"] + 0.01  # another world: its SAE differs
    torch.save(state, world / "sae" / "ae.pt")
    meta = json.loads((out / truth.GROUND_TRUTH_FILE).read_text())["meta"]
    assert meta["source_world"] != planted.source_world(world)
    planted.ensure(out, seed=1, source=world)
    assert truth.load_meta(out)["source_world"] == planted.source_world(world) != first
