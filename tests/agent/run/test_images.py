"""Top-k / hybrid evidence in the loop, torch-free: a fake describer, the fake engine, scripted judges."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import prompts
from agent.run.config import RunConfig, SweepConfig
from agent.judges.evidence import Evidence, ImageEvidence
from agent.judges import LLMJudge, OfflineJudge
from agent.judges.base import JudgeContext
from agent.judges.llm import build_messages
from agent.judges.scripted import ScriptedChat, final_reply
from agent.probes import Probe, ProbeResult
from agent.run import run_features
from agent.run.images import default_hybrid_strength, png_data_url, reference_hybrid_strength
from agent.store.store import Store
from agent.topk import TopKMissing, record_topk
from steering.probes import EvidenceRequest
from tests.agent.fakes import CONCEPTS, FakeEngine

SWEEP = SweepConfig(strengths=(5.0, 10.0, 20.0, 40.0), background=2, panel=0)


class FakeDescriber:
    """Feature f's top images show ``IMAGE_WORDS[f % 8]``; records every describe call."""

    def __init__(self, words: Callable[[int], str] | None = None, fired: Callable[[int], bool] | None = None) -> None:
        self.words = words or (lambda f: f"{CONCEPTS[f % len(CONCEPTS)]} things")
        self.fired = fired or (lambda f: True)
        self.calls: list[list[EvidenceRequest]] = []
        self.picture_calls: list[tuple[int, int]] = []

    def prepare(self) -> dict[str, Any]:
        return {"model": "fake-vlm", "sae": "fake-sae", "layer": 1, "prompts": ["vlm_topk@v1"], "topk": "fake-topk"}

    def describe(self, requests: Sequence[EvidenceRequest], on_result: Any = None) -> list[ImageEvidence]:
        self.calls.append(list(requests))
        out = []
        for r in requests:
            if self.fired(r.feature):
                e = ImageEvidence(r.feature, r.mode, r.strength, r.n_images, (self.words(r.feature),), (3, 1),
                                  ("scene_3.png", "scene_1.png"))
            else:
                e = ImageEvidence(r.feature, r.mode, r.strength, r.n_images, (), (), (), "no active images")
            if on_result:
                on_result(r, e)
            out.append(e)
        return out

    def pictures(self, feature: int, n: int) -> list[bytes]:
        self.picture_calls.append((feature, n))
        return [b"\x89PNG-fake-1", b"\x89PNG-fake-2"]


def run(store: Store | None, features: Sequence[int], evidence: str = "all", judge: Any = None,
        describer: Any = None, **config: Any) -> Any:
    cfg = RunConfig(sweep=SWEEP, evidence=evidence, **config)
    return run_features(FakeEngine(), judge or OfflineJudge(), store, list(features), cfg,
                        describer=describer or FakeDescriber())


# ----------------------------------------------------------------------------- the loop


def test_records_carry_topk_and_hybrid_descriptions_numbered_after_the_sweep(store: Store) -> None:
    describer = FakeDescriber()
    summary = run(store, range(4), describer=describer)
    assert all(s == "done" for s in summary.statuses.values())
    assert summary.images["modes"] == ["topk", "hybrid"]
    # No --hybrid-strength: half the hidden-state norm (the fake engine's norm is 10).
    assert summary.images["hybrid_strength"] == 5.0 and "norm" in summary.images["hybrid_source"]
    assert len(describer.calls) == 1 and len(describer.calls[0]) == 8, "requests of all loops share one call"
    rec = store.get_record(1)
    modes = [(i["role"], i["image"]["strength"]) for i in rec.image_evidence]
    assert modes == [("topk", 0.0), ("hybrid", 5.0)]
    first_image = rec.image_evidence[0]["id"]
    assert first_image == max(e["id"] for e in rec.evidence if e["round"] == 1) + 1
    assert rec.fingerprint["evidence"]["hybrid_strength"] == 5.0 and "vlm_topk@v1" in rec.prompt_versions
    assert any(t["kind"] == "images" for t in rec.transcript)


def test_descriptions_come_from_the_store_until_forced(store: Store) -> None:
    run(store, range(3))
    again = FakeDescriber()
    run(store, range(3), describer=again, rejudge=True)
    assert again.calls == [], "cached descriptions were computed again"
    assert store.get_record(0).image_evidence[0]["image"]["texts"] == ["red things"]
    forced = FakeDescriber()
    run(store, range(3), describer=forced, force=True)
    assert sum(len(c) for c in forced.calls) == 6


def test_cache_keys_cover_everything_that_changes_a_description() -> None:
    fp = FakeDescriber().prepare()
    base = EvidenceRequest(3, "hybrid", 50.0, 5)
    keys = {base.key(fp), EvidenceRequest(3, "hybrid", 25.0, 5).key(fp),
            EvidenceRequest(3, "topk", 0.0, 5).key(fp), EvidenceRequest(3, "hybrid", 50.0, 3).key(fp),
            EvidenceRequest(4, "hybrid", 50.0, 5).key(fp), base.key({**fp, "topk": "other"}),
            base.key({**fp, "prompts": ["vlm_topk@v2"]}), base.key({**fp, "revision": "r2"})}
    assert len(keys) == 8
    assert EvidenceRequest(3, "hybrid", 50, 5).key(fp) == base.key(fp)  # 50 and 50.0 alike


def test_topk_mode_alone_asks_only_for_topk(store: Store) -> None:
    describer = FakeDescriber()
    summary = run(store, [2], evidence="topk", describer=describer)
    assert [r.mode for r in describer.calls[0]] == ["topk"] and "hybrid_strength" not in summary.images
    summary = run(store, [2], evidence="hybrid", describer=describer, hybrid_strength=12.5, force=True)
    assert [(r.mode, r.strength) for r in describer.calls[-1]] == [("hybrid", 12.5)]
    assert summary.images["hybrid_source"] == "given"


def test_steering_only_runs_leave_records_and_config_as_before(store: Store) -> None:
    describer = FakeDescriber()
    summary = run(store, [0], evidence="steering", describer=describer)
    rec = store.get_record(0)
    assert describer.calls == [] and summary.images == {} and rec.image_evidence == []
    assert "evidence" not in rec.fingerprint
    assert "evidence" not in RunConfig().to_dict()  # keys derived from older configs stay the same


def test_evidence_without_a_collection_names_steer_agent_topk(store: Store) -> None:
    with pytest.raises(TopKMissing, match="steer-agent topk"):
        run_features(FakeEngine(), OfflineJudge(), store, [0], RunConfig(sweep=SWEEP, evidence="topk"))
    record_topk(store, store.path / "topk" / "gone")
    with pytest.raises(TopKMissing, match="missing or unfinished"):
        run_features(FakeEngine(), OfflineJudge(), store, [0], RunConfig(sweep=SWEEP, evidence="hybrid"))


def test_run_config_round_trips_the_evidence_settings() -> None:
    cfg = RunConfig(evidence="all", hybrid_strength=50.0, topk_images=3, judge_images=True)
    d = cfg.to_dict()
    assert (d["evidence"], d["hybrid_strength"], d["topk_images"], d["judge_images"]) == ("all", 50.0, 3, True)
    assert RunConfig.from_dict(json.loads(json.dumps(d))) == cfg
    assert RunConfig.from_dict(RunConfig().to_dict()) == RunConfig()
    with pytest.raises(ValueError, match="unknown evidence"):
        RunConfig(evidence="pictures")


def test_hybrid_strength_defaults() -> None:
    gemma = "javifer/google_gemma-3-4b-it-saes/enc_res_out_layer_16_top_k_8192_25_1.0_HF_22191080"
    assert reference_hybrid_strength(gemma, 16) == 50.0
    assert reference_hybrid_strength(gemma, 6) is None and reference_hybrid_strength("org/other-sae", 16) is None
    assert default_hybrid_strength({"sae": gemma, "layer": 16}, norm=300.0)[0] == 50.0
    assert default_hybrid_strength({"sae": "x", "layer": 3}, norm=80.0) == (40.0, "0.5 x the hidden-state norm 80")
    with pytest.raises(RuntimeError, match="--hybrid-strength"):
        default_hybrid_strength({"sae": "x", "layer": 3}, norm=None)


# ----------------------------------------------------------------------------- judges


def _image_ctx(pictures: list[str] | None = None) -> JudgeContext:
    ev = Evidence()
    ev.add([ProbeResult(Probe(None), ("nothing, the image is empty and white.",)),
            ProbeResult(Probe(3, strength=50.0), ("a red circle",), kl_first=0.25)], round=1)
    ev.add_images([ImageEvidence(3, "topk", 0.0, 5, ("red round shapes",), (4, 2, 9), ("a", "b", "c")),
                   ImageEvidence(3, "hybrid", 25.0, 5, ("bright red circles",), (4, 2, 9), ("a", "b", "c"))], round=1)
    return JudgeContext(feature=3, round=1, max_rounds=4, evidence=ev, strengths=[50.0], probes_left=5,
                        world={"model": "toy", "sae": "toy-sae", "layer": 3}, pictures=pictures or [])


def test_judge_prompts_are_versioned_and_explain_the_image_evidence() -> None:
    assert prompts.load("judge_system").ref == "judge_system@v6" and prompts.load("judge_round").ref == "judge_round@v4"
    messages = build_messages(_image_ctx(), "text")
    system = messages[0]["content"]
    assert 'the "top-k" description; in the "hybrid" description' in system and "Black in these images is the mask" in system
    assert "attached" not in system
    # The strategy of issue 16: read windows per strength, state competing hypotheses, ask what separates them.
    assert "Find the window" in system and "H1: red colour vs H2: red striped objects" in system
    assert "control at the same strength and base image" in system
    assert messages[1]["content"] == (
        "Feature 3. Here is the opening sweep (strengths 50).\n"
        "\n"
        "#1 baseline (strength 0)\n"
        '  - "nothing, the image is empty and white."\n'
        "#2 steered, strength 50 (KL 0.250)\n"
        '  - "a red circle"\n'
        "\n"
        "The feature's top-activating images, inactive regions blacked out:\n"
        "#3 top-k description of 3 masked top images\n"
        '  - "red round shapes"\n'
        "#4 hybrid description of 3 masked top images, steered at strength 25 where the feature fires\n"
        '  - "bright red circles"\n'
        "\n"
        "You may ask for up to 5 more probes, or give your final answer. Round 1 of 4."
    )


def test_pictures_go_to_the_first_message_as_image_content_parts() -> None:
    url = png_data_url(b"\x89PNG")
    messages = build_messages(_image_ctx([url, url]), "schema")
    assert "The same masked images are attached" in messages[0]["content"]
    parts = messages[1]["content"]
    assert parts[0]["type"] == "text" and "(attached)" in parts[0]["text"]
    assert parts[1:] == [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}}] * 2


def test_llm_judge_gets_the_images_only_when_asked(store: Store) -> None:
    chat = ScriptedChat(lambda messages: final_reply(evidence=[7]))
    describer = FakeDescriber()
    run(store, [0], judge=LLMJudge(chat), describer=describer, judge_images=True)
    first = chat.calls[0][1]["content"]
    assert isinstance(first, list) and [p["type"] for p in first] == ["text", "image_url", "image_url"]
    assert first[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert "red things" in first[0]["text"] and describer.picture_calls == [(0, 5)]
    assert store.get_record(0).status == "done"  # citing an image description (#7) is valid

    chat = ScriptedChat(lambda messages: final_reply())
    run(store, [1], judge=LLMJudge(chat))
    assert isinstance(chat.calls[0][1]["content"], str) and "top-k description" in chat.calls[0][1]["content"]


def test_offline_judge_reads_the_descriptions(store: Store) -> None:
    # Steering names red for feature 0 and the images agree: the answer says so and cites them.
    run(store, [0, 8], describer=FakeDescriber(lambda f: "red circles"))
    rec = store.get_record(0)
    assert "top-activating images say red" in rec.explanation
    assert {i["id"] for i in rec.image_evidence} <= set(rec.transcript[-1]["evidence"])
    # A feature whose steering changes nothing (onset far above the sweep) but whose images share a concept.
    engine = FakeEngine(onset=1e6)
    cfg = RunConfig(sweep=SWEEP, evidence="topk", force=True)
    run_features(engine, OfflineJudge(), store, [5], cfg, describer=FakeDescriber(lambda f: "striped fences"))
    rec = store.get_record(5)
    assert rec.status == "done" and "striped fences" in rec.explanation and rec.label == "striped fences"
    assert rec.confidence == OfflineJudge().params.image_confidence
    # Nothing anywhere: still "no clear concept", and a feature that never fired is said to be so.
    run_features(engine, OfflineJudge(), store, [6], cfg, describer=FakeDescriber(fired=lambda f: False))
    rec = store.get_record(6)
    assert rec.label == "no clear concept" and rec.image_evidence[0]["image"]["note"] == "no active images"


def test_image_evidence_round_trips_through_the_store(tmp_path: Path) -> None:
    e = ImageEvidence(3, "hybrid", 25.0, 5, ("red",), (4, 2), ("a.png", "b.png"))
    with Store(tmp_path / "s") as s:
        s.put_image_evidence("k", e)
        assert s.get_image_evidence("k") == e and s.get_image_evidence("nope") is None
