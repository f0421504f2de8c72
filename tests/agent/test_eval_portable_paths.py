"""Evaluation reports name no absolute path (they are read on other machines), and the TUI still matches a
report to its store: by the SAE's content fingerprint, else by the SAE folder's name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.eval.report import REPO_ROOT, bundled_world, portable_path, scrub_command, write_report
from tests.agent.fakes import FakeEngine
from tests.agent.test_eval_runner import run_eval


class LocalEngine(FakeEngine):
    """The fake world, loaded from local folders as a user's own model and SAE are."""

    def __init__(self, model: str, sae: str, sae_revision: str) -> None:
        super().__init__(model=model, revision="local-0123456789ab")
        self.sae_id, self.sae_revision = sae, sae_revision

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "sae": self.sae_id, "sae_revision": self.sae_revision}


def test_paths_as_a_report_writes_them(tmp_path: Path) -> None:
    assert portable_path("org/model") == "org/model"  # a hub id
    assert portable_path("runs/sae") == "runs/sae"  # already relative
    assert portable_path(str(REPO_ROOT / "steering" / "toy" / "data" / "sae")) == "steering/toy/data/sae"
    assert portable_path(str(tmp_path / "models" / "my-sae")) == "models/my-sae"
    assert portable_path(None) is None
    command = f"steer-agent eval --model {REPO_ROOT}/steering/toy/data/model --sae {tmp_path}/x/sae --report r"
    assert scrub_command(command, {}) == "steer-agent eval --model steering/toy/data/model --sae x/sae --report r"


def test_metrics_json_holds_no_absolute_path(tmp_path: Path) -> None:
    model, sae = tmp_path / "home" / "me" / "vlm", tmp_path / "home" / "me" / "saes" / "layer3"
    engine = LocalEngine(str(model), str(sae), "local-feedfacecafe")
    m = run_eval(tmp_path, modes=("oneshot", "offline"), engine=engine)
    write_report(m, tmp_path / "rep", command=f"steer-agent eval --model {model} --sae {sae}", plots=False)
    text = (tmp_path / "rep" / "metrics.json").read_text() + (tmp_path / "rep" / "report.md").read_text()
    assert str(tmp_path) not in text and "/home/me" not in text
    world = json.loads((tmp_path / "rep" / "metrics.json").read_text())["world"]
    assert (world["model"], world["sae"]) == ("me/vlm", "saes/layer3")
    # what matches the report to its world travels with it: the content fingerprints and the layer
    assert (world["revision"], world["sae_revision"], world["layer"]) == ("local-0123456789ab", "local-feedfacecafe", 1)


def test_the_tui_matches_a_report_to_its_store_by_content(tmp_path: Path) -> None:
    from tui.evaluation import same_world

    store = {"model": "/a/vlm", "revision": "local-0123456789ab", "sae": "/elsewhere/saes/layer3",
             "sae_revision": "local-feedfacecafe", "layer": 1}
    report = {"model": "me/vlm", "revision": "local-0123456789ab", "sae": "saes/layer3",
              "sae_revision": "local-feedfacecafe", "layer": 1}
    assert same_world(report, store)
    # the same folder name holding another SAE (retrained in place) is another world
    assert not same_world({**report, "sae_revision": "local-000000000000"}, store)
    # a folder of another name holding the same SAE (a copy) is the same world
    assert same_world({**report, "sae": "copies/sae-v2"}, store)
    assert not same_world({**report, "layer": 2}, store)
    # an older report without the fingerprint: the folder's name decides
    old = {k: v for k, v in report.items() if k != "sae_revision"}
    assert same_world(old, store) and not same_world({**old, "sae": "saes/layer4"}, store)


def test_the_toy_world_is_named_from_a_relative_path() -> None:
    from steering import toy

    if not toy.is_available():
        return
    relative = toy.sae_dir().resolve().relative_to(REPO_ROOT).as_posix()
    assert "bundled toy world" in (bundled_world({"sae": relative, "layer": 3}) or "")
