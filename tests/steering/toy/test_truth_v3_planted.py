"""Planted truth version 2 (issue 29): each planted feature's kind mix, and old caches rebuilt."""

from __future__ import annotations

from pathlib import Path

import pytest

from steering import toy
from steering.toy import planted, truth

pytestmark = pytest.mark.skipif(not toy.is_available(), reason="toy world not built")


def _cached(out: Path, **meta: object) -> None:
    out.mkdir(parents=True)
    (out / "ae.pt").write_bytes(b"weights")
    truth.save({0: {"claims": [["colour", "red"]], "kind": "single"}}, out,
               {"planted_seed": 0, "source_world": planted.source_world(toy.DATA_DIR), **meta})


@pytest.mark.parametrize("version, rebuilt", [(None, True), (planted.PLANTED_VERSION, False)])
def test_ensure_rebuilds_a_cache_of_an_older_planted_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             version: int | None, rebuilt: bool) -> None:
    out = tmp_path / "seed-0"
    _cached(out, **({} if version is None else {"planted_version": version}))
    built: list[Path] = []
    monkeypatch.setattr(planted, "build", lambda o, seed, source: built.append(o) or o)
    assert planted.ensure(out, 0) == out
    assert built == ([out] if rebuilt else [])


@pytest.mark.slow
def test_build_records_each_features_kind_mix(tmp_path: Path) -> None:
    out = planted.build(tmp_path / "p", seed=0, n_scenes=300)
    gt, meta = truth.load(out), truth.load_meta(out)
    assert meta["planted_version"] == planted.PLANTED_VERSION and "truth_version" not in meta
    for t in gt.values():
        assert set(t["kind_mix"]) == {"field", "object", "empty"} and "n_active_scenes" not in t
        assert sum(t["kind_mix"].values()) == pytest.approx(1.0, abs=1e-3)
    assert len({tuple(sorted(t["kind_mix"].items())) for t in gt.values()}) > 1  # each feature's own mix
