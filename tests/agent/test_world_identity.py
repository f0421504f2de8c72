"""A store and its cache keys name a local model or SAE by what its files hold, not by the path typed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.store.store import Store, StoreError
from tests.agent.cli.test_run import steer_agent

ARGS = ["--features", "0-3", "--max-new-tokens", "4", "--strengths", "4,8,16,32", "--no-progress"]


def _rolled_copy(src: Path, dst: Path) -> None:
    """``dst``: the SAE at ``src`` with its latents renumbered (same files, other contents)."""
    import torch

    if src != dst:
        shutil.copytree(src, dst)
    state = torch.load(dst / "ae.pt", weights_only=True)
    perm = torch.roll(torch.arange(state["decoder.weight"].shape[1]), 5)
    state["decoder.weight"] = state["decoder.weight"][:, perm]
    state["encoder.weight"], state["encoder.bias"] = state["encoder.weight"][perm], state["encoder.bias"][perm]
    torch.save(state, dst / "ae.pt")


def _labels(store: Path) -> list[str | None]:
    with Store(store) as s:
        return [r.final_label for r in s.list_records()]


@pytest.mark.slow  # subprocess runs
def test_one_relative_sae_path_in_two_folders_is_two_worlds(tiny_world, tmp_path: Path) -> None:
    model, sae = tiny_world
    (tmp_path / "a").mkdir()
    shutil.copytree(sae, tmp_path / "a" / "sae")
    _rolled_copy(sae, tmp_path / "b" / "sae")
    env = {"STEER_INTERP_CACHE": str(tmp_path / "cache")}
    first = steer_agent("--model", str(model), "--sae", "sae", *ARGS, env=env, cwd=tmp_path / "a")
    second = steer_agent("--model", str(model), "--sae", "sae", *ARGS, env=env, cwd=tmp_path / "b")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "4 features: 4 done" in first.stdout
    assert "4 features: 4 done" in second.stdout, "b's SAE was answered with a's stored results"
    stores = sorted((tmp_path / "cache").iterdir())
    assert len(stores) == 2, stores  # one default store per SAE
    one, two = stores
    assert _labels(one) != _labels(two), "the renumbered SAE should explain its features differently"


@pytest.mark.slow  # subprocess runs
def test_an_sae_retrained_in_place_is_refused_and_nothing_is_lost(tiny_world, tmp_path: Path) -> None:
    model, sae = tiny_world
    shutil.copytree(sae, tmp_path / "sae")
    store = tmp_path / "store"
    args = ["--model", str(model), "--sae", str(tmp_path / "sae"), "--store", str(store), *ARGS]
    assert steer_agent(*args).returncode == 0
    before = _labels(store)
    _rolled_copy(tmp_path / "sae", tmp_path / "sae")  # new weights, same folder
    again = steer_agent(*args)
    assert again.returncode == 2, again.stdout
    assert "not of SAE" in again.stderr and "as its files are now" in again.stderr and len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert _labels(store) == before


@pytest.mark.slow  # subprocess runs
def test_a_copied_world_is_the_same_world(tiny_world, tmp_path: Path) -> None:
    model, sae = tiny_world
    store = tmp_path / "store"
    first = steer_agent("--model", str(model), "--sae", str(sae), "--store", str(store), *ARGS)
    assert first.returncode == 0 and "4 done" in first.stdout, first.stderr
    shutil.copytree(model, tmp_path / "copy" / "model")
    shutil.copytree(sae, tmp_path / "copy" / "sae")
    moved = steer_agent("--model", "model", "--sae", "sae", "--store", str(store), *ARGS, cwd=tmp_path / "copy")
    assert moved.returncode == 0, moved.stderr
    assert "4 already finished" in moved.stdout, moved.stdout


def test_a_store_bound_before_fingerprints_takes_the_first_one(tmp_path: Path) -> None:
    old = {"model": "m", "revision": "local-aaaaaaaaaaaa", "sae": "/x/sae", "layer": 1}
    with Store(tmp_path / "s") as s:
        s.bind_world(old)
        s.bind_world(old | {"sae_revision": "local-111111111111", "model": "/elsewhere/m"})
        assert s.world()["sae_revision"] == "local-111111111111"
        with pytest.raises(StoreError, match="not of SAE 'x/sae' as its files are now"):
            s.bind_world(old | {"sae_revision": "local-222222222222"})
        with pytest.raises(StoreError, match="not of model 'm' as its files are now"):
            s.bind_world(old | {"sae_revision": "local-111111111111", "revision": "local-bbbbbbbbbbbb"})
