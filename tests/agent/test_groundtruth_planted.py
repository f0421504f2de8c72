"""One ground-truth lookup: run, export and the TUI show a planted SAE's truth as eval scores it (issue 28, part 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.eval.world import truth_for_sae
from agent.store.export import export_store
from agent.groundtruth import ground_truth_for
from agent.store.records import FeatureRecord
from agent.store.store import Store
from steering import toy
from steering.revisions import content_revision
from steering.toy import truth as gt_file

LAYER = 3


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A planted dictionary's folder as steering.toy.planted.build writes it (weights stand-in: the lookup
    reads only the files' fingerprint and ground_truth.json)."""
    out = tmp_path / "planted" / "seed-0"
    out.mkdir(parents=True)
    (out / "ae.pt").write_bytes(b"planted weights")
    (out / "config.json").write_text(json.dumps({"layer": LAYER, "planted": {"seed": 0}}))
    truth = {0: {"family": "colour", "value": "red", "purity": 1.0, "claims": [["colour", "red"]],
                 "kind": "single", "scale": 1.0},
             1: {"family": "shape", "value": "cross", "purity": 1.0, "claims": [["shape", "cross"], ["size", "small"]],
                 "kind": "conjunction", "scale": 1.0}}
    gt_file.save(truth, out, {"layer": LAYER, "planted_seed": 0})
    return out


def world(sae: Path, layer: int = LAYER, **kw: object) -> dict:
    return {"model": "toy-model", "revision": None, "sae": str(sae), "sae_revision": content_revision(sae),
            "layer": layer, **kw}


def test_run_export_and_tui_get_the_truth_eval_scores(planted: Path) -> None:
    truth = truth_for_sae(str(planted), LAYER)
    assert truth is not None and truth[1]["value"] == "cross"
    assert ground_truth_for(world(planted)) == truth == truth_for_sae(str(planted))


def test_truth_at_another_layer_is_refused_by_both(planted: Path) -> None:
    assert truth_for_sae(str(planted), LAYER - 1) is None
    assert ground_truth_for(world(planted, layer=LAYER - 1)) is None


def test_files_retrained_since_the_run_get_none(planted: Path) -> None:
    ran = world(planted)
    (planted / "ae.pt").write_bytes(b"retrained weights")
    assert ground_truth_for(ran) is None
    assert ground_truth_for(world(planted)) is not None  # a run of the files there now


def test_export_attaches_the_planted_truth(tmp_path: Path, planted: Path) -> None:
    rec = FeatureRecord(feature=1, status="done", explanation="small crosses", label="cross")
    rows = {}
    for name, layer in (("same", LAYER), ("other", LAYER - 1)):
        with Store(tmp_path / name) as s:
            s.bind_world(world(planted, layer=layer))
            s.put_record(rec)
            export_store(s, tmp_path / f"{name}.jsonl")
        rows[name] = json.loads((tmp_path / f"{name}.jsonl").read_text())
    assert rows["same"]["ground_truth"] == {"family": "shape", "value": "cross", "purity": 1.0}
    assert rows["same"]["names_ground_truth"] is True
    assert rows["other"]["ground_truth"] is None


@pytest.mark.slow
@pytest.mark.skipif(not toy.is_available(), reason="the toy world is not installed")
def test_a_built_planted_dictionary_has_the_same_truth_everywhere(tmp_path: Path) -> None:
    from steering.toy import planted as builder

    out = builder.build(tmp_path / "p", seed=3, n_scenes=300)
    layer = toy.ground_truth_meta()["layer"]
    truth = truth_for_sae(str(out), layer)
    assert truth is not None and len(truth) == sum(builder.COUNTS.values())
    assert ground_truth_for(world(out, layer=layer)) == truth
    assert ground_truth_for(world(out, layer=layer + 1)) is None
