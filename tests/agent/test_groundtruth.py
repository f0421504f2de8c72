"""Ground truth follows the SAE's files and layer, not its path (issue 17, item 12)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agent.eval.world import truth_for_sae
from agent.store.export import export_store
from agent.groundtruth import ground_truth_for
from agent.store.records import FeatureRecord
from agent.store.store import Store
from steering import toy
from steering.revisions import content_revision

pytestmark = pytest.mark.skipif(not toy.is_available(), reason="the toy world is not installed")


def toy_world(sae: Path | None = None, layer: int = 3, **kw: object) -> dict:
    sae = sae or toy.sae_dir()
    return {"model": str(toy.model_dir()), "revision": content_revision(toy.model_dir()), "sae": str(sae),
            "sae_revision": content_revision(sae), "layer": layer, **kw}


@pytest.fixture
def copied_sae(tmp_path: Path) -> Path:
    copy = tmp_path / "elsewhere" / "sae"
    shutil.copytree(toy.sae_dir(), copy)
    return copy


def test_the_toy_sae_at_its_layer_has_ground_truth() -> None:
    truth = ground_truth_for(toy_world())
    assert truth is not None and truth[0]["value"] == toy.ground_truth()[0]["value"]


def test_another_layer_gets_no_ground_truth() -> None:
    assert ground_truth_for(toy_world(layer=2)) is None
    assert truth_for_sae(str(toy.sae_dir()), 2) is None
    assert truth_for_sae(str(toy.sae_dir()), 3) is not None and truth_for_sae(str(toy.sae_dir())) is not None


def test_a_copy_of_the_toy_sae_elsewhere_has_ground_truth(copied_sae: Path) -> None:
    assert ground_truth_for(toy_world(copied_sae)) == ground_truth_for(toy_world())


def test_other_files_at_the_toy_path_get_none(copied_sae: Path) -> None:
    config = json.loads((copied_sae / "config.json").read_text())
    config["trainer"]["steps"] += 1  # retrained: the fingerprint changes, whatever the folder
    (copied_sae / "config.json").write_text(json.dumps(config))
    assert ground_truth_for(toy_world(sae=toy.sae_dir(), sae_revision=content_revision(copied_sae))) is None
    # A world recorded before fingerprints existed gets the truth its folder carries, as eval does.
    assert ground_truth_for(toy_world(sae_revision=None)) is not None
    assert ground_truth_for(toy_world(copied_sae, sae_revision=None)) == truth_for_sae(str(copied_sae), 3)
    (copied_sae / "ground_truth.json").unlink()
    assert ground_truth_for(toy_world(copied_sae, sae_revision=None)) is None


def test_a_copy_without_its_truth_file_is_known_by_fingerprint(copied_sae: Path) -> None:
    (copied_sae / "ground_truth.json").unlink()
    assert ground_truth_for(toy_world(copied_sae)) == ground_truth_for(toy_world())
    assert ground_truth_for(toy_world(copied_sae, layer=2)) is None


def test_export_attaches_truth_by_fingerprint_and_layer(tmp_path: Path, copied_sae: Path) -> None:
    rec = FeatureRecord(feature=0, status="done", explanation="a cross", label="cross")
    for name, world, expect in (("layer2", toy_world(layer=2), None), ("copy", toy_world(copied_sae), "value")):
        with Store(tmp_path / name) as s:
            s.bind_world(world)
            s.put_record(rec)
            export_store(s, tmp_path / f"{name}.jsonl")
        row = json.loads((tmp_path / f"{name}.jsonl").read_text())
        assert (row["ground_truth"] and "value") == (expect and "value"), name
